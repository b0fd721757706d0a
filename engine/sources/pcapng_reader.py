"""Streaming pcapng reader for the offline feed (issue 15).

Block by block, in constant memory: sections of either byte order, any number of interfaces
and link types, ``if_tsresol`` in powers of 10 and of 2, ``if_tsoffset``; Enhanced, Simple
and obsolete Packet Blocks; other blocks are queued for a pcapng output to pass through
(Name Resolution, Decryption Secrets, Interface Statistics, custom copyable) or skipped.
Layouts come from ``formats/pcapng`` (derived); construct parses only SHBs and IDBs.  Like
the classic reader, every whole packet before a bad block is yielded first, then the error
names the block (counted from 1) and its offset.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from types import TracebackType
from typing import BinaryIO

from pcapconstrictor.engine.sources.pcap_reader import PcapReadError, open_input
from pcapconstrictor.engine.sources.pcapng_packets import (
    Interface,
    PcapngRecords,
    enhanced_run,
    records_run,
    timestamp_ns,
)
from pcapconstrictor.engine.sources.record_batch import RecordBatch
from pcapconstrictor.formats.derived import pcapng as ng

_HEADER = {False: ng.LITTLE.block_header, True: ng.BIG.block_header}
_EPB = {False: ng.LITTLE.enhanced_packet_block_fixed, True: ng.BIG.enhanced_packet_block_fixed}
_PB = {False: ng.LITTLE.packet_block_fixed, True: ng.BIG.packet_block_fixed}
_SPB = {False: ng.LITTLE.simple_packet_block_fixed, True: ng.BIG.simple_packet_block_fixed}
_TRAILER = ng.BLOCK_TRAILER_SIZE
_HEADER_SIZE = ng.BLOCK_HEADER_SIZE
# Blocks a pcapng output carries over (draft §4.5-4.7, §5.2 custom blocks that may be copied).
PASSED_THROUGH = frozenset({ng.BLOCK_TYPE_IDB, ng.BLOCK_TYPE_NRB, ng.BLOCK_TYPE_ISB, ng.BLOCK_TYPE_DSB,
                            0x00000BAD})  # fmt: skip
BATCH_FRAMES = 4096
BATCH_BYTES = 1 << 20
_MAX_SINGLE_READ = 16 << 20
_CHUNK_SIZE = 1 << 20


class PcapngPacket(bytes):
    """A packet's bytes that remember where they came from, so a pcapng output can write
    them back on their interface with their own timestamp ticks and options."""

    block: int
    interface_id: int
    ticks: int
    options: bytes

    @classmethod
    def of(cls, data: bytes, block: int, interface_id: int, ticks: int, options: bytes) -> PcapngPacket:
        packet = cls(data)
        packet.block, packet.interface_id, packet.ticks, packet.options = block, interface_id, ticks, options
        return packet


class PcapngReader:
    """pcapng packets as ``(ts_ns, data, orig_len)`` frames, batched by link type.

    ``blocks`` queues ``(block number, raw block, big_endian)`` of the blocks a pcapng output
    passes through, when ``keep_blocks`` is set; ``linktypes`` are those of every interface
    met so far; ``require_linktype`` makes an interface of another link type an error."""

    nanosecond = True
    snaplen = 0

    def __init__(self, path: str, stream: BinaryIO | None = None) -> None:
        self.path = path
        self.keep_blocks = True  # until the caller knows the output is not pcapng
        self.blocks: deque[tuple[int, bytes, bool]] = deque()
        self.linktypes: list[int] = []
        self.require_linktype: int | None = None
        self.interfaces: list[Interface] = []
        self.big_endian = False
        self._block_no = 0
        self._offset = 0
        self._close_file = path != "-"
        self._file, self._remaining = open_input(path, stream, buffering=0)  # closed in close()
        self._buf = b""  # read ahead, a chunk at a time; blocks are cut from it at _pos
        self._pos = 0
        self._ahead: list = []
        try:
            self._ahead = list(self._packets_until_first())
        except BaseException:
            self.close()
            raise

    @property
    def linktype(self) -> int:
        """The link type of the first interface (Ethernet if there is none)."""
        return self.linktypes[0] if self.linktypes else ng.LINKTYPE_ETHERNET

    @property
    def first_packet_block(self) -> int | None:
        """Before :meth:`batches` starts: the block number of the first packet (None if the
        file has none), so a writer knows which queued blocks come before it."""
        return self._ahead[0][1][1].block if self._ahead else None

    # --- reading blocks
    def _read(self, size: int) -> bytes:
        """Up to ``size`` bytes from the file (fewer only at its end), in pieces of at most
        16 MiB, never past the size the file had when opened."""
        pieces, got = [], 0
        while got < size:
            want = min(size - got, _MAX_SINGLE_READ)
            if self._remaining is not None:
                want = min(want, self._remaining)
                if want <= 0:
                    break
            try:
                piece = self._file.read(want)
            except OSError as exc:
                raise PcapReadError(f"failed to read input file: {exc.strerror}") from None
            if not piece:
                break
            if self._remaining is not None:
                self._remaining -= len(piece)
            pieces.append(piece)
            got += len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _available(self, size: int) -> int:
        """Make ``size`` bytes from the read position available in the buffer (a chunk at a
        time: blocks are cut out of the buffer; one cut by the chunk's end is completed by an
        exact read); returns how many are, fewer only at the end of the file."""
        have = len(self._buf) - self._pos
        if have < size:
            # A block that straddles the chunk's end is completed by an exact read, so the next
            # chunk comes whole in a buffer of its own: joining the rest of the old buffer to a
            # new chunk copied every chunk once more (b"" + chunk is the chunk itself).
            more = self._read(size - have if have else max(size, _CHUNK_SIZE))
            self._buf = self._buf[self._pos :] + more
            self._pos = 0
            have = len(self._buf)
        return have if have < size else size

    def _error(self, what: str) -> PcapReadError:
        return PcapReadError(f"block {self._block_no} at file offset {self._offset}: {what}")

    def _next_block(self) -> tuple[int, bytes] | None:
        """``(block_type, whole block)`` of the next block, or None at a clean end."""
        got = self._available(_HEADER_SIZE)
        self._block_no += 1
        if not got:
            return None
        if got < _HEADER_SIZE:
            raise self._error(f"unexpected EOF while reading block header; {got} trailing "
                              "byte(s) could not be processed")  # fmt: skip
        buf, pos = self._buf, self._pos
        big = self.big_endian
        head = _HEADER_SIZE
        if buf[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":  # a new section: its byte-order magic decides
            head += 4
            self._available(head)
            buf, pos = self._buf, self._pos
            magic = buf[pos + _HEADER_SIZE : pos + head]
            if magic == b"\x1a\x2b\x3c\x4d":
                big = True
            elif magic == b"\x4d\x3c\x2b\x1a":
                big = False
            else:
                raise self._error("invalid Section Header Block byte-order magic")
        block_type, length = _HEADER[big].whole_struct().unpack_from(buf, pos)
        if length < _HEADER_SIZE + _TRAILER + (head - _HEADER_SIZE) or length % 4:
            raise self._error(f"invalid block total length {length}")
        available = self._available(length)
        if available < length:
            raise self._error(f"unexpected EOF while reading block body; expected {length} byte(s), "
                              f"available {available} byte(s), "
                              f"missing {length - available} byte(s)")  # fmt: skip
        pos = self._pos
        raw = self._buf[pos : pos + length]
        self._pos = pos + length
        trailer = _HEADER[big].whole_struct().unpack_from(raw, length - 8)[1]
        if trailer != length:
            raise self._error(f"block total length {length} differs from the trailing copy {trailer}")
        if block_type == ng.BLOCK_TYPE_SHB:
            self._section(raw, big)
        return block_type, raw

    def _section(self, raw: bytes, big: bool) -> None:
        # construct, imported only where a block is parsed
        from pcapconstrictor.formats import pcapng as pcapng_schemas

        body = pcapng_schemas.schemas(big).block.parse(raw).body
        if body.major_version != 1:
            raise self._error(f"unsupported pcapng version {body.major_version}.{body.minor_version}")
        self.big_endian = big
        self.interfaces = []

    def _interface(self, raw: bytes) -> None:
        # construct, imported only where a block is parsed
        from pcapconstrictor.formats import pcapng as pcapng_schemas

        section = pcapng_schemas.schemas(self.big_endian)
        try:
            body = section.block.parse(raw).body
        except Exception as exc:  # construct's errors: a malformed options list
            raise self._error(f"malformed Interface Description Block: {type(exc).__name__}") from None
        units, offset = 10**ng.IF_TSRESOL_DEFAULT, 0
        for opt in body.options:
            if opt.option_code == ng.IF_TSRESOL and len(opt.option_value) == 1:
                r = opt.option_value[0]
                units = 2 ** (r & 0x7F) if r & 0x80 else 10**r
            elif opt.option_code == ng.IF_TSOFFSET and len(opt.option_value) == 8:
                offset = section.if_tsoffset.parse(opt.option_value)
        if self.require_linktype is not None and body.linktype != self.require_linktype:
            raise self._error(f"an interface of link type {body.linktype} cannot go to a classic "
                              f"PCAP output of link type {self.require_linktype} "
                              "(capture.format = pcap)")  # fmt: skip
        per_tick = 1_000_000_000 // units if 1_000_000_000 % units == 0 else 0
        self.interfaces.append(Interface(body.linktype, body.snaplen, units, offset * 1_000_000_000,
                                         per_tick))  # fmt: skip
        if body.linktype not in self.linktypes:
            self.linktypes.append(body.linktype)

    # --- packets
    def _packets_until_first(self) -> Iterator:
        """At open: the first SHB and the blocks up to and including the first packet."""
        first = self._next_block()
        if first is None or first[0] != ng.BLOCK_TYPE_SHB:
            raise self._error("not a pcapng Section Header Block")
        self.blocks.append((self._block_no, first[1], self.big_endian))
        self._offset = len(first[1])
        for packet in self._packets():
            yield packet
            return

    def _packets(self) -> Iterator[tuple[int, tuple[int, PcapngPacket, int]]]:
        """``(linktype, frame)`` for every packet; other blocks are handled on the way."""
        while True:
            offset = self._offset
            block = self._next_block()
            if block is None:
                return
            block_type, raw = block
            frame = None
            if block_type == ng.BLOCK_TYPE_EPB:
                frame = self._enhanced(raw)
            elif block_type == ng.BLOCK_TYPE_SPB:
                frame = self._simple(raw)
            elif block_type == ng.BLOCK_TYPE_PB:
                frame = self._obsolete(raw)
            else:
                if block_type == ng.BLOCK_TYPE_IDB:
                    self._interface(raw)
                if self.keep_blocks and (block_type in PASSED_THROUGH or block_type == ng.BLOCK_TYPE_SHB):
                    self.blocks.append((self._block_no, raw, self.big_endian))
            self._offset = offset + len(raw)
            if frame is not None:
                yield frame

    def _enhanced_run(self, batch: RecordBatch, linktype: int, size: int) -> int:
        """Append to ``batch`` the frames of the Enhanced Packet Blocks that follow, read in
        place from the buffer (engine/sources/pcapng_packets.py), while the batch has room
        (``size`` bytes so far); returns the bytes added.  Any other block, or one that is
        not whole and well-formed, is left to :meth:`_next_block`, which reads it (and says
        what is wrong with it)."""
        packet = PcapngPacket.of if self.keep_blocks else None
        pos, count, added = enhanced_run(self._buf, self._pos, self.big_endian, self.interfaces, linktype,
                                         batch, BATCH_FRAMES - len(batch), BATCH_BYTES - size,
                                         packet, self._block_no)  # fmt: skip
        self._block_no += count
        self._offset += pos - self._pos
        self._pos = pos
        return added

    def _on(self, interface_id: int) -> Interface:
        if interface_id >= len(self.interfaces):
            raise self._error(f"interface {interface_id} has no Interface Description Block")
        return self.interfaces[interface_id]

    def _frame(self, iface: Interface, interface_id: int, ticks: int, data: bytes, orig: int,
               options: bytes) -> tuple[int, tuple[int, PcapngPacket, int]]:  # fmt: skip
        if self.keep_blocks:  # a pcapng output writes the packet back as it came
            data = PcapngPacket.of(data, self._block_no, interface_id, ticks, options)
        return iface.linktype, (timestamp_ns(iface, ticks), data, orig)

    def _enhanced(self, raw: bytes):
        layout = _EPB[self.big_endian]
        start = _HEADER_SIZE + layout.size
        if len(raw) < start + _TRAILER:
            raise self._error("Enhanced Packet Block shorter than its fixed fields")
        iface_id, upper, lower, incl, orig = layout.whole_struct().unpack_from(raw, _HEADER_SIZE)
        end = start + incl
        if end + (-incl % 4) > len(raw) - _TRAILER:
            raise self._error(f"captured length {incl} exceeds the Enhanced Packet Block")
        iface = self._on(iface_id)
        options = raw[end + (-incl % 4) : len(raw) - _TRAILER]
        return self._frame(iface, iface_id, upper << 32 | lower, raw[start:end], orig, options)

    def _simple(self, raw: bytes):
        layout = _SPB[self.big_endian]
        start = _HEADER_SIZE + layout.size
        if len(raw) < start + _TRAILER:
            raise self._error("Simple Packet Block shorter than its fixed fields")
        (orig,) = layout.whole_struct().unpack_from(raw, _HEADER_SIZE)
        iface = self._on(0)
        incl = min(orig, iface.snaplen or orig, len(raw) - _TRAILER - start)  # draft §4.4
        return self._frame(iface, 0, 0, raw[start : start + incl], orig, b"")

    def _obsolete(self, raw: bytes):
        layout = _PB[self.big_endian]
        start = _HEADER_SIZE + layout.size
        if len(raw) < start + _TRAILER:
            raise self._error("Packet Block shorter than its fixed fields")
        iface_id, _, upper, lower, incl, orig = layout.whole_struct().unpack_from(raw, _HEADER_SIZE)
        end = start + incl
        if end + (-incl % 4) > len(raw) - _TRAILER:
            raise self._error(f"captured length {incl} exceeds the Packet Block")
        options = raw[end + (-incl % 4) : len(raw) - _TRAILER]
        return self._frame(self._on(iface_id), iface_id, upper << 32 | lower, raw[start:end], orig, options)

    def batches(self, records: bool = False) -> Iterator[RecordBatch | PcapngRecords]:
        """Frames in lists of one link type each (``.linktype``), up to ~1 MiB or 4096 frames;
        at a bad block the good frames before it come as a last list, then the error.  With
        ``records``, runs of Enhanced Packet Blocks that a pcapng output writes back as they
        are come as :class:`PcapngRecords` left in the read buffer, frame lists for the rest."""
        batch = RecordBatch()
        size = 0
        source = self._packets()
        pending, self._ahead = self._ahead, []
        packet = PcapngPacket.of if self.keep_blocks else None
        try:
            for linktype, frame in _chain(pending, source):
                full = len(batch) >= BATCH_FRAMES or size >= BATCH_BYTES
                if batch and (linktype != batch.linktype or full):
                    yield batch
                    batch, size = RecordBatch(), 0
                batch.linktype = linktype
                batch.append(frame)
                size += len(frame[1])
                if records:
                    buf, first = self._buf, self._pos
                    stop, count = records_run(buf, first, self.big_endian, self.interfaces, linktype)
                    if count:
                        yield batch
                        batch, size = RecordBatch(), 0
                        run = PcapngRecords(buf, first, stop, count, linktype, self.big_endian,
                                            self.interfaces, self._block_no, packet)  # fmt: skip
                        self._block_no += count
                        self._offset += stop - first
                        self._pos = stop
                        yield run
                        continue
                size += self._enhanced_run(batch, linktype, size)
        except PcapReadError:
            if batch:
                yield batch
            raise
        if batch:
            yield batch

    def __iter__(self) -> Iterator[tuple[int, bytes, int]]:
        for batch in self.batches():
            yield from batch

    def close(self) -> None:
        if self._file is not None and self._close_file:
            self._file.close()
        self._file = None

    def __enter__(self) -> PcapngReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest
