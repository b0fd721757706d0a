"""pcapng writer for the constricted output (issue 8): one Section Header Block naming the
tool and the policy, one Interface Description Block with nanosecond timestamps, then one
Enhanced Packet Block per record, carrying the original length.

It is :class:`~pcapconstrictor.engine.sinks.pcap_writer.PcapWriter` with another file header and
another record: buffering, flushing, standard output and errors are the same.  The blocks are
built from ``formats/pcapng`` schemas (construct, imported when a block is built); the
per-record header is packed through the struct derived from ``enhanced_packet_block_header``.
"""

from __future__ import annotations

from collections.abc import Sequence

from pcapconstrictor.formats.derived import pcapng as ng

from .pcap_writer import PcapWriter

_EPB = ng.enhanced_packet_block_header
_TRAILER = ng.block_trailer
assert list(_EPB.fields) == [
    "block_type", "block_total_length", "interface_id", "timestamp_upper", "timestamp_lower",
    "captured_packet_length", "original_packet_length",
]  # fmt: skip
_EPB_OVERHEAD = _EPB.size + _TRAILER.size  # 32 bytes around the (padded) packet data
_PADDING = [b"", b"\0\0\0", b"\0\0", b"\0"]  # by incl_len % 4
NANOSECONDS = 9  # if_tsresol: 10^-9 s


def _option(code: int, value: bytes) -> dict:
    return {"option_code": code, "option_value": value}


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def section_header_block(comment: str, application: str) -> bytes:
    # construct, imported only where a block is built
    from pcapconstrictor.formats import pcapng as pcapng_schemas

    opts = [_option(ng.OPT_COMMENT, _text(comment)), _option(ng.SHB_USERAPPL, _text(application)),
            _option(ng.OPT_ENDOFOPT, b"")]  # fmt: skip
    body = {"byte_order_magic": ng.BYTE_ORDER_MAGIC, "major_version": 1, "minor_version": 0,
            "section_length": ng.SECTION_LENGTH_UNKNOWN, "options": opts}  # fmt: skip
    return pcapng_schemas.block.build({"block_type": ng.BLOCK_TYPE_SHB, "body": body})


def interface_description_block(snaplen: int, if_name: str | None, if_filter: str | None,
                                linktype: int = ng.LINKTYPE_ETHERNET) -> bytes:  # fmt: skip
    # construct, imported only where a block is built
    from pcapconstrictor.formats import pcapng as pcapng_schemas

    opts = [_option(ng.IF_NAME, _text(if_name))] if if_name else []
    opts.append(_option(ng.IF_TSRESOL, bytes([NANOSECONDS])))
    if if_filter:
        opts.append(_option(ng.IF_FILTER, bytes([ng.IF_FILTER_LIBPCAP]) + _text(if_filter)))
    opts.append(_option(ng.OPT_ENDOFOPT, b""))
    body = {"linktype": linktype, "reserved": 0, "snaplen": snaplen, "options": opts}
    return pcapng_schemas.block.build({"block_type": ng.BLOCK_TYPE_IDB, "body": body})


class PcapngWriter(PcapWriter):
    """Writes a one-interface pcapng section to ``path`` (``'-'`` = standard output).

    ``if_name`` is the captured interface (omitted when unknown, e.g. offline without
    ``capture.interface``); ``if_filter`` the capture filter expression, if any."""

    def __init__(self, path: str, snaplen: int, *, comment: str, application: str,
                 if_name: str | None = None, if_filter: str | None = None,
                 buffer_size: int = 1 << 20, linktype: int = ng.LINKTYPE_ETHERNET) -> None:  # fmt: skip
        self._header = section_header_block(comment, application) + interface_description_block(
            snaplen, if_name, if_filter, linktype
        )
        self._pack_epb = _EPB.whole_struct().pack
        self._pack_trailer = _TRAILER.whole_struct().pack
        super().__init__(path, snaplen, buffer_size)

    def file_header(self) -> bytes:
        return self._header

    def record_size(self, incl_len: int) -> int:
        return _EPB_OVERHEAD + incl_len + (-incl_len & 3)

    def write_batch(self, frames: Sequence[tuple[int, bytes | memoryview, int]],
                    lengths: Sequence[int]) -> None:  # fmt: skip
        """Append one EPB on interface 0 per frame ``(ts_ns, data, orig_len)``: the
        first ``lengths[i]`` bytes of its data, the timestamp in whole nanoseconds,
        orig_len never below incl_len."""
        payloads = self._payloads(frames, lengths)
        append = self._parts.append
        pack_epb, pack_trailer = self._pack_epb, self._pack_trailer
        pending = self._pending
        for (ts_ns, _, orig_len), incl_len, data in zip(frames, lengths, payloads, strict=True):
            total = _EPB_OVERHEAD + incl_len + (-incl_len & 3)
            append(pack_epb(
                ng.BLOCK_TYPE_EPB, total, 0, (ts_ns >> 32) & 0xFFFFFFFF, ts_ns & 0xFFFFFFFF, incl_len,
                orig_len if orig_len > incl_len else incl_len,
            ))  # fmt: skip
            append(data)
            append(_PADDING[incl_len & 3] + pack_trailer(total))
            pending += total
        self._pending = pending
        self.records += len(lengths)
        if pending >= self._buffer_size:
            self.flush()
