"""Runs of pcapng Enhanced Packet Blocks read in place from the read buffer (issue 21).

Most of a pcapng file is Enhanced Packet Blocks back to back.  The reader
(engine/sources/pcapng_reader.py) hands each run of them to :func:`enhanced_run`, which
reads their fixed fields where they lie (one struct call a block: the fastest read both
interpreted and compiled) and appends one frame per block; any
other block, and any block that is not whole and well-formed, is left to the reader's
block-by-block path, which reads it and says what is wrong with it.  Compiled with mypyc
(engine/compiled.py); the offsets come from the schema (formats/pcapng, derived).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from pcapconstrictor.formats.derived import pcapng as ng

_FIXED: Final = ng.BIG.enhanced_packet_block_fixed
_FIXED_LE: Final = ng.LITTLE.enhanced_packet_block_fixed
HEADER_SIZE: Final = ng.BLOCK_HEADER_SIZE
TRAILER_SIZE: Final = ng.BLOCK_TRAILER_SIZE
# a block header and the Enhanced Packet Block's fixed fields after it, as one struct: one
# call reads them, interpreted or compiled
_BLOCK_LE: Final = struct.Struct(ng.LITTLE.block_header.whole_struct().format
                                 + _FIXED_LE.whole_struct().format[1:])  # fmt: skip
_BLOCK_BE: Final = struct.Struct(ng.BIG.block_header.whole_struct().format + _FIXED.whole_struct().format[1:])
DATA_AT: Final = HEADER_SIZE + _FIXED.size  # where an Enhanced Packet Block's packet starts
SMALLEST: Final = DATA_AT + TRAILER_SIZE  # one with no packet and no options
_EPB: Final = ng.BLOCK_TYPE_EPB


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
    """A packet's time in ns since the epoch, from its ticks on ``iface``."""
    if iface.ns_per_tick:
        return ticks * iface.ns_per_tick + iface.offset_ns
    return ticks * 1_000_000_000 // iface.units_per_second + iface.offset_ns


def u32_at(buf: bytes, p: int, big: bool) -> int:
    """The 4-byte unsigned integer at ``p`` in the section's byte order."""
    if big:
        return buf[p] << 24 | buf[p + 1] << 16 | buf[p + 2] << 8 | buf[p + 3]
    return buf[p] | buf[p + 1] << 8 | buf[p + 2] << 16 | buf[p + 3] << 24


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
    known = len(interfaces)
    unpack = (_BLOCK_BE if big else _BLOCK_LE).unpack_from
    count = 0
    added = 0
    while count < room and added < room_bytes and stop - pos >= SMALLEST:
        fields: tuple[int, int, int, int, int, int, int] = unpack(buf, pos)
        block_type, length, iface_id, upper, lower, incl, orig = fields
        end_of_block = pos + length
        if block_type != _EPB or length < SMALLEST or length & 3 or end_of_block > stop:
            break
        start = pos + DATA_AT
        end = start + incl
        padded = end + (-incl & 3)
        if (padded > end_of_block - TRAILER_SIZE or iface_id >= known
                or u32_at(buf, end_of_block - TRAILER_SIZE, big) != length):  # fmt: skip
            break
        iface = interfaces[iface_id]
        if iface.linktype != linktype:
            break
        ticks = upper << 32 | lower
        if packet is not None:  # a pcapng output writes the packet back as it came
            options = buf[padded : end_of_block - TRAILER_SIZE]
            data = packet(buf[start:end], number + count + 1, iface_id, ticks, options)
        else:
            data = buf[start:end]
        batch.append((timestamp_ns(iface, ticks), data, orig))
        pos = end_of_block
        added += incl
        count += 1
    return pos, count, added
