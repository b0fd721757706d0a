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

from pcapconstrictor.engine.sources.pcap_records import PcapRecords
from pcapconstrictor.formats.derived import pcapng as ng

from .frame_records import EPB_OVERHEAD, epb_records, records_as_blocks
from .pcap_writer import PcapWriter

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
        super().__init__(path, snaplen, buffer_size)

    def file_header(self) -> bytes:
        return self._header

    def record_size(self, incl_len: int) -> int:
        return EPB_OVERHEAD + incl_len + (-incl_len & 3)

    @property
    def takes_records(self) -> bool:
        """Whether :meth:`write_records` applies: a run of classic PCAP records is wrapped in
        the blocks :meth:`write_batch` writes for their frames, the packets views of the
        read buffer (engine/sinks/frame_records.records_as_blocks)."""
        return type(self).write_batch is PcapngWriter.write_batch

    def write_records(self, records: PcapRecords, cuts: list[int]) -> None:
        """An Enhanced Packet Block per record of ``records``, the record at offset
        ``cuts[2 i]`` cut to ``cuts[2 i + 1]`` bytes."""
        self._check_open()
        self._buffered(records_as_blocks(records, cuts, self._parts), records.count)

    def write_batch(self, frames: Sequence[tuple[int, bytes | memoryview, int]],
                    lengths: Sequence[int]) -> None:  # fmt: skip
        """Append one EPB on interface 0 per frame ``(ts_ns, data, orig_len)``: the
        first ``lengths[i]`` bytes of its data, the timestamp in whole nanoseconds,
        orig_len never below incl_len."""
        payloads = self._payloads(frames, lengths)
        self._buffered(epb_records(frames, lengths, payloads, self._parts)[1], len(lengths))
