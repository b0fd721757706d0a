"""Runs of pcapng Enhanced Packet Blocks read in place from the read buffer (issue 21).

Most of a pcapng file is Enhanced Packet Blocks back to back.  The reader
(engine/sources/pcapng_reader.py) hands each run of them to :func:`enhanced_run`, which
reads their fixed fields where they lie (one struct call a block: the fastest read
interpreted) and appends one frame per block; a compiled install finds a run it decides and
writes in place with :func:`records_run` (a native read per field, no frame); any other
block, and any block that is not whole and well-formed, is left to the reader's
block-by-block path, which reads it and says what is wrong with it.  Compiled with mypyc
(engine/compiled.py); the offsets come from the schema (formats/pcapng, derived).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from pcapconstrictor.formats.derived import pcapng as ng

if TYPE_CHECKING:  # mypyc's native integers; at run time (pure Python) plain annotations
    from mypy_extensions import i64

_FIXED: Final = ng.BIG.enhanced_packet_block_fixed
_FIXED_LE: Final = ng.LITTLE.enhanced_packet_block_fixed
HEADER_SIZE: Final = ng.BLOCK_HEADER_SIZE
TRAILER_SIZE: Final = ng.BLOCK_TRAILER_SIZE
# a block header and the Enhanced Packet Block's fixed fields after it, as one struct: one
# call reads them, interpreted or compiled
_BLOCK_LE: Final = struct.Struct(ng.LITTLE.block_header.whole_struct().format
                                 + _FIXED_LE.whole_struct().format[1:])  # fmt: skip
_BLOCK_BE: Final = struct.Struct(ng.BIG.block_header.whole_struct().format + _FIXED.whole_struct().format[1:])
_HEADER: Final = ng.BIG.block_header
_TYPE_AT: Final = _HEADER.big_endian_at("block_type", 4)
_LENGTH_AT: Final = _HEADER.big_endian_at("block_total_length", 4)
_IFACE_AT: Final = HEADER_SIZE + _FIXED.big_endian_at("interface_id", 4)
_UPPER_AT: Final = HEADER_SIZE + _FIXED.big_endian_at("timestamp_upper", 4)
_LOWER_AT: Final = HEADER_SIZE + _FIXED.big_endian_at("timestamp_lower", 4)
_INCL_AT: Final = HEADER_SIZE + _FIXED.big_endian_at("captured_packet_length", 4)
_ORIG_AT: Final = HEADER_SIZE + _FIXED.big_endian_at("original_packet_length", 4)
DATA_AT: Final = HEADER_SIZE + _FIXED.size  # where an Enhanced Packet Block's packet starts
SMALLEST: Final = DATA_AT + TRAILER_SIZE  # one with no packet and no options
_EPB: Final = ng.BLOCK_TYPE_EPB
_FAST_PER: Final = 1 << 10  # timestamp_ns: ticks below _FAST_TICKS times a ns_per_tick below
_FAST_TICKS: Final = 1 << 53  # this fit in 63 bits (microsecond ticks until the year 2255)


class Interface:
    """One IDB: what the packets on it are and how their timestamps count (``ns_per_tick``
    is 0 where a tick is no whole number of nanoseconds: see :func:`timestamp_ns`)."""

    def __init__(self, linktype: int, snaplen: int, units_per_second: int, offset_ns: int,
                 ns_per_tick: int) -> None:  # fmt: skip
        self.linktype = linktype
        self.snaplen = snaplen
        self.units_per_second = units_per_second
        self.offset_ns = offset_ns
        self.ns_per_tick = ns_per_tick


def timestamp_ns(iface: Interface, ticks: int) -> int:
    """A packet's time in ns since the epoch, from its ticks on ``iface``.  Compiled, a
    product of tagged integers past 31 bits each is a Python long multiplication (~700
    instructions a packet for microsecond ticks): where the product surely fits in 63 bits it
    is a machine one (``i64``), else (a file from centuries ahead) the plain one."""
    per = iface.ns_per_tick
    if per == 1:
        return ticks + iface.offset_ns
    if per:
        if per < _FAST_PER and ticks < _FAST_TICKS:
            t: i64 = ticks
            p: i64 = per
            ns: int = t * p
            return ns + iface.offset_ns
        return ticks * per + iface.offset_ns
    return ticks * 1_000_000_000 // iface.units_per_second + iface.offset_ns


def u32_at(buf: bytes, p: int, big: bool) -> int:
    """The 4-byte unsigned integer at ``p`` in the section's byte order (each byte read into
    a native 64-bit local before it is shifted, as pcap_records.record_header does: compiled,
    machine instructions instead of calls on tagged integers)."""
    at: i64 = p
    b0: i64 = buf[at]
    b1: i64 = buf[at + 1]
    b2: i64 = buf[at + 2]
    b3: i64 = buf[at + 3]
    if big:
        return b0 << 24 | b1 << 16 | b2 << 8 | b3
    return b0 | b1 << 8 | b2 << 16 | b3 << 24


class PcapngRecords:
    """``count`` Enhanced Packet Blocks back to back in ``buf[first:stop]``, each whole,
    well-formed, on a known interface of ``linktype``, its padding zero and its orig_len at
    least its incl_len: blocks a pcapng output of the section (byte order ``big``) writes
    back byte for byte when it keeps their packet whole.  The first is block number
    ``number + 1`` of the file.  A batch of frames with no frame object in it
    (:meth:`frames` makes them, with ``packet``)."""

    def __init__(self, buf: bytes, first: int, stop: int, count: int, linktype: int, big: bool,
                 interfaces: list[Interface], number: int,
                 packet: Callable[[bytes, int, int, int, bytes], bytes] | None) -> None:  # fmt: skip
        self.buf = buf
        self.first = first
        self.stop = stop
        self.count = count
        self.linktype = linktype
        self.big = big
        self.interfaces = interfaces
        self.number = number
        self.packet = packet

    def __len__(self) -> int:
        return self.count

    def frames(self) -> list[tuple[int, bytes, int]]:
        """The blocks as ``(ts_ns, data, orig_len)`` frames, as the reader makes them."""
        out: list[tuple[int, bytes, int]] = []
        enhanced_run(self.buf, self.first, self.big, self.interfaces, self.linktype, out, self.count,
                     self.stop - self.first, self.packet, self.number)  # fmt: skip
        return out


def enhanced_run(buf: bytes, pos: int, big: bool, interfaces: list[Interface], linktype: int,
                 batch: list[tuple[int, bytes, int]], room: int, room_bytes: int,
                 packet: Callable[[bytes, int, int, int, bytes], bytes] | None,
                 number: int) -> tuple[int, int, int]:  # fmt: skip
    """Append to ``batch`` a frame ``(ts_ns, data, orig_len)`` for each Enhanced Packet
    Block from ``buf[pos:]`` while it is whole in ``buf``, well-formed, on a known
    interface of ``linktype``, and the run has fewer than ``room`` frames and
    ``room_bytes`` bytes of packets; ``packet`` (a pcapng output's) makes each frame's
    data from ``(bytes, block number, interface, ticks, options)``, the first block
    being number ``number + 1``.  Returns ``(pos after the run, frames, packet bytes)``."""
    stop = len(buf)
    unpack = (_BLOCK_BE if big else _BLOCK_LE).unpack_from
    count = 0
    added = 0
    while count < room and added < room_bytes and stop - pos >= SMALLEST:
        fields: tuple[int, int, int, int, int, int, int] = unpack(buf, pos)
        block_type, length, iface_id, upper, lower, incl, orig = fields
        padded = _packet_end(buf, pos, stop, big, block_type, length, iface_id, incl, interfaces, linktype)
        if padded < 0:
            break
        start = pos + DATA_AT
        end_of_block = pos + length
        ticks = upper << 32 | lower
        if packet is not None:  # a pcapng output writes the packet back as it came
            options = buf[padded : end_of_block - TRAILER_SIZE]
            data = packet(buf[start : start + incl], number + count + 1, iface_id, ticks, options)
        else:
            data = buf[start : start + incl]
        batch.append((timestamp_ns(interfaces[iface_id], ticks), data, orig))
        pos = end_of_block
        added += incl
        count += 1
    return pos, count, added


def records_run(buf: bytes, pos: int, big: bool, interfaces: list[Interface],
                linktype: int) -> tuple[int, int]:  # fmt: skip
    """``(pos after the run, blocks)``: how far from ``pos`` Enhanced Packet Blocks run that
    :func:`enhanced_run` would take and a pcapng output of the section writes back as they are
    (:class:`PcapngRecords`: padding zero, orig_len at least incl_len).  For compiled installs
    (the only ones that run blocks in place): each field read where it lies, no struct call
    and no tuple per block (a third of the instructions of a pcapng-to-pcapng run were here)."""
    stop = len(buf)
    count = 0
    while stop - pos >= SMALLEST:
        length = u32_at(buf, pos + _LENGTH_AT, big)
        incl = u32_at(buf, pos + _INCL_AT, big)
        iface_id = u32_at(buf, pos + _IFACE_AT, big)
        padded = _packet_end(buf, pos, stop, big, u32_at(buf, pos + _TYPE_AT, big), length, iface_id, incl,
                             interfaces, linktype)  # fmt: skip
        if padded < 0 or u32_at(buf, pos + _ORIG_AT, big) < incl:
            break
        p = pos + DATA_AT + incl
        while p < padded and buf[p] == 0:
            p += 1
        if p < padded:  # padding not zero: the frame path writes it as zeros
            break
        pos += length
        count += 1
    return pos, count


def _packet_end(buf: bytes, pos: int, stop: int, big: bool, block_type: int, length: int, iface_id: int,
                incl: int, interfaces: list[Interface], linktype: int) -> int:  # fmt: skip
    """Where the padded packet of the block at ``pos`` ends if it is an Enhanced Packet Block
    whole in ``buf[:stop]``, well-formed (its trailer repeats its length) and on a known
    interface of ``linktype``; else -1."""
    end_of_block = pos + length
    if block_type != _EPB or length < SMALLEST or length & 3 or end_of_block > stop:
        return -1
    padded = pos + DATA_AT + incl + (-incl & 3)
    if (padded > end_of_block - TRAILER_SIZE or iface_id >= len(interfaces)
            or u32_at(buf, end_of_block - TRAILER_SIZE, big) != length):  # fmt: skip
        return -1
    return padded if interfaces[iface_id].linktype == linktype else -1


def enhanced_fields(buf: bytes, pos: int, big: bool) -> tuple[int, int, int, int, int]:
    """``(interface_id, ticks, incl_len, orig_len, block length)`` of the Enhanced Packet Block
    at ``pos`` of a :class:`PcapngRecords` run (checked when the run was found)."""
    ticks = u32_at(buf, pos + _UPPER_AT, big) << 32 | u32_at(buf, pos + _LOWER_AT, big)
    return (u32_at(buf, pos + _IFACE_AT, big), ticks, u32_at(buf, pos + _INCL_AT, big),
            u32_at(buf, pos + _ORIG_AT, big), u32_at(buf, pos + _LENGTH_AT, big))  # fmt: skip


def packet_at(buf: bytes, pos: int, big: bool, interfaces: list[Interface]) -> tuple[int, int, int, int]:
    """``(ts_ns, incl_len, orig_len, block length)`` of the block at ``pos`` of a
    :class:`PcapngRecords` run."""
    iface, ticks, incl, orig, length = enhanced_fields(buf, pos, big)
    return timestamp_ns(interfaces[iface], ticks), incl, orig, length
