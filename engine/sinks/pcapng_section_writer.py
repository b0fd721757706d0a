"""pcapng output for a pcapng input (issue 15): the input's sections, interfaces, link types,
timestamp resolutions, comments, Name Resolution and Decryption Secrets blocks, written back
around the constricted packets.

Each section keeps its byte order, so the blocks passed through are the input's bytes; only
the Section Header Block is rebuilt (our comment and application added, section length
unknown) and each Interface Description Block's snap length lowered to the output's.  A
packet is written as an Enhanced Packet Block on its own interface, with its own timestamp
ticks and options.  The reader queues the other blocks with their block numbers; before a
packet the writer writes those that came before it, at close all that are left.  The
blocks of the current section written so far open every further file of a rotated capture.
"""

from __future__ import annotations

from collections.abc import Sequence

from pcapconstrictor.engine.sources.pcapng_packets import PcapngRecords
from pcapconstrictor.engine.sources.pcapng_reader import PcapngReader
from pcapconstrictor.formats.derived import pcapng as ng

from .frame_records import EPB_OVERHEAD, cut_blocks, epb_records
from .pcap_writer import PcapWriter

_BLOCK_HEADER = {False: ng.LITTLE.block_header, True: ng.BIG.block_header}


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


class PcapngSections:
    """What the files of one run share: the reader's queue and the current section's blocks
    as written (for the next file of a rotated capture)."""

    def __init__(self, reader: PcapngReader, snaplen: int, comment: str, application: str) -> None:
        self.reader = reader
        self.snaplen = snaplen
        self.comment = comment
        self.application = application
        self.section: list[bytes] = []
        self.big_endian = False
        self.opened = False

    def take(self, before: int | None) -> list[bytes]:
        """The queued blocks numbered below ``before`` (all when None), as they are written."""
        out = []
        queue = self.reader.blocks
        while queue and (before is None or queue[0][0] < before):
            _, raw, big = queue.popleft()
            block_type = _BLOCK_HEADER[big].whole_struct().unpack_from(raw)[0]
            if block_type == ng.BLOCK_TYPE_SHB:
                raw = self._section_header(raw, big)
                self.section = []
                self.big_endian = big
            elif block_type == ng.BLOCK_TYPE_IDB:
                raw = self._interface(raw, big)
            self.section.append(raw)
            out.append(raw)
        return out

    def next_block(self) -> int:
        """The block number of the first queued block (-1: none queued)."""
        queue = self.reader.blocks
        return queue[0][0] if queue else -1

    def _section_header(self, raw: bytes, big: bool) -> bytes:
        # construct, imported only where a block is parsed
        from pcapconstrictor.formats import pcapng as pcapng_schemas

        section = pcapng_schemas.schemas(big)
        shb = section.block.parse(raw)
        kept = [o for o in shb.body.options if o.option_code not in (ng.SHB_USERAPPL, ng.OPT_ENDOFOPT)]
        options = [{"option_code": ng.OPT_COMMENT, "option_value": _text(self.comment)}, *kept,
                   {"option_code": ng.SHB_USERAPPL, "option_value": _text(self.application)},
                   {"option_code": ng.OPT_ENDOFOPT, "option_value": b""}]  # fmt: skip
        body = dict(shb.body, section_length=ng.SECTION_LENGTH_UNKNOWN, options=options)
        return section.block.build({"block_type": ng.BLOCK_TYPE_SHB, "body": body})

    def _interface(self, raw: bytes, big: bool) -> bytes:
        # construct, imported only where a block is parsed
        from pcapconstrictor.formats import pcapng as pcapng_schemas

        section = pcapng_schemas.schemas(big)
        idb = section.block.parse(raw)
        if idb.body.snaplen and idb.body.snaplen <= self.snaplen:
            return raw
        body = dict(idb.body, snaplen=self.snaplen)  # no packet is longer than the output's
        return section.block.build({"block_type": ng.BLOCK_TYPE_IDB, "body": body})


class PcapngSectionWriter(PcapWriter):
    """Writes the sections of a pcapng input, with the constricted packets, to ``path``."""

    def __init__(self, path: str, sections: PcapngSections, buffer_size: int = 1 << 20) -> None:
        self._sections = sections
        super().__init__(path, sections.snaplen, buffer_size)

    def file_header(self) -> bytes:
        """The current section as written so far (a later file of a rotated capture); for
        the first file, the blocks the reader has queued before its first packet."""
        sections = self._sections
        if not sections.opened:
            sections.opened = True
            return b"".join(sections.take(sections.reader.first_packet_block))
        return b"".join(sections.section)

    def record_size(self, incl_len: int) -> int:
        return EPB_OVERHEAD + incl_len + (-incl_len & 3)

    def write_batch(self, frames: Sequence[tuple[int, bytes | memoryview, int]],
                    lengths: Sequence[int]) -> None:  # fmt: skip
        """One EPB per frame on its own interface with its own ticks and options, each
        after the queued blocks that came before it in the input."""
        payloads = self._payloads(frames, lengths)
        sections = self._sections
        size = 0
        i = 0
        while i < len(payloads):
            for raw in sections.take(frames[i][1].block):  # type: ignore[union-attr]
                self._parts.append(raw)
                size += len(raw)
            i, added = epb_records(frames, lengths, payloads, self._parts, i, sections.next_block(),
                                   sections.big_endian, own=False)  # fmt: skip
            size += added
        self._buffered(size, len(lengths))

    @property
    def takes_blocks(self) -> bool:
        """Whether :meth:`write_blocks` applies: the input's packet blocks are, byte for byte,
        what :meth:`write_batch` writes for their frames (engine/sources/pcapng_packets.py)."""
        return type(self).write_batch is PcapngSectionWriter.write_batch

    def write_blocks(self, run: PcapngRecords, cuts: list[int]) -> None:
        """Append a run of the input's Enhanced Packet Blocks as they are, after the queued
        blocks that came before it, but each block at offset ``cuts[2 i]`` with its packet cut
        to ``cuts[2 i + 1]`` bytes."""
        self._check_open()
        for raw in self._sections.take(run.number + 1):
            self._append(raw)
        self._buffered(cut_blocks(run, cuts, self._parts), run.count)

    def close(self) -> None:
        """Write the blocks left after the last packet, then close."""
        if self._file is not None and not self._failed:
            for raw in self._sections.take(None):
                self._append(raw)
        super().close()

