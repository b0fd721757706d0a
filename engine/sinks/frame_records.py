"""Frames as the records of an output file, a batch at a time (issue 21).

The writers' loop over the frames of a batch: each frame's kept bytes, and around them a
classic PCAP record header (:func:`pcap_records`) or a pcapng Enhanced Packet Block
(:func:`epb_records`), appended to the writer's list of parts, which reaches the file by
``writev`` without being joined.  And the same for runs left in the read buffer (compiled
installs): a classic PCAP run as blocks (:func:`records_as_blocks`), a pcapng run as
records (:func:`blocks_as_pcap`) or as its own section writes it (:func:`cut_blocks`).  One
record header (:func:`record_bytes`) and one block's head and tail (:func:`block_head`,
:func:`block_tail`) serve them all.  Compiled with mypyc (engine/compiled.py).  Every
layout is the derived one of formats/.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from pcapconstrictor.engine.sources.pcap_records import HEADER_SIZE as RECORD_HEADER_SIZE
from pcapconstrictor.engine.sources.pcap_records import PcapRecords, buffer_part, record_header
from pcapconstrictor.engine.sources.pcapng_packets import (
    DATA_AT,
    TRAILER_SIZE,
    PcapngRecords,
    enhanced_fields,
    packet_at,
)
from pcapconstrictor.formats.derived import pcap
from pcapconstrictor.formats.derived import pcapng as ng

if TYPE_CHECKING:  # mypyc's native integers; at run time (pure Python) plain annotations
    from mypy_extensions import i64

_RECORD_LE: Final = pcap.pcaprec_hdr_le.whole_struct()
_RECORD_BE: Final = pcap.pcaprec_hdr_be.whole_struct()
RECORD_SIZE: Final = pcap.pcaprec_hdr_le.size
_EPB_LE: Final = ng.LITTLE.enhanced_packet_block_header.whole_struct()
_EPB_BE: Final = ng.BIG.enhanced_packet_block_header.whole_struct()
_TRAILER_LE: Final = ng.LITTLE.block_trailer.whole_struct()
_TRAILER_BE: Final = ng.BIG.block_trailer.whole_struct()
# block_head_le: the header's seven little-endian 32-bit fields as three pairs and the last,
# after the padding (0-3 zero bytes) and trailer of the block before it; a list, not a tuple
# (compiled, a tuple constant is built anew when indexed by a computed value)
_EPB_PAIRS_LE: Final = struct.Struct("<QQQL").pack
_TAIL_HEAD_LE: Final = [struct.Struct(f"<{padding}xLQQQL").pack for padding in range(4)]
EPB_OVERHEAD: Final = ng.LITTLE.enhanced_packet_block_header.size + ng.LITTLE.block_trailer.size
# a packet's padding is the first -incl_len % 4 of these (a slice: compiled, indexing a tuple
# constant by a computed value builds the tuple anew each time)
_PADDING: Final = b"\0\0\0"
_EPB_TYPE: Final = ng.BLOCK_TYPE_EPB
_MASK32: Final = 0xFFFFFFFF
# record_le, block_head_le: times and lengths that keep their ints within 63 bits.  The time's
# bound is the largest tagged int (compiled, 2**62 itself is a boxed long, read by name and
# compared by a call on every use)
_FAST_UNITS_MAX: Final = (1 << 62) - 1
_FAST_LENGTH: Final = 1 << 31
# record_le is the faster little-endian header compiled (native arithmetic, no struct call with
# boxed ints) and the slower one interpreted (two to_bytes calls and a concatenation: ~390 ns
# against the struct's ~190): the frame loop takes it only where this module runs compiled (its
# file an extension, not its source: engine/compiled.is_compiled's test, which sinks may not import)
_NATIVE_HEADERS: Final = not __file__.endswith(".py")

assert list(pcap.pcaprec_hdr_le.fields) == ["ts_sec", "ts_usec", "incl_len", "orig_len"]
assert [pcap.pcaprec_hdr_le.offset(f) for f in pcap.pcaprec_hdr_le.fields] == [0, 4, 8, 12]  # record_le
assert pcap.pcaprec_hdr_le.whole_struct().format == "<LLLL"
assert list(ng.LITTLE.enhanced_packet_block_header.fields) == [
    "block_type", "block_total_length", "interface_id", "timestamp_upper", "timestamp_lower",
    "captured_packet_length", "original_packet_length",
]  # fmt: skip
assert ng.LITTLE.enhanced_packet_block_header.whole_struct().format == "<LLLLLLL"  # block_head_le

Frames = Sequence[tuple[int, Any, int]]  # (ts_ns, data, orig_len); data bytes or a view


def kept_payloads(frames: Frames, lengths: Sequence[int]) -> list[bytes]:
    """The bytes each record carries: the first ``lengths[i]`` of frame i's data, as bytes
    of their own (a view may be reused by its source: it is copied).  All checked before a
    writer buffers anything: a length past its data, or counts that differ, raise
    ValueError."""
    if len(frames) != len(lengths):
        raise ValueError(f"{len(lengths)} length(s) for {len(frames)} frame(s)")
    return [data if n == len(data) and isinstance(data, bytes) else _cut(data, n)
            for (_, data, _), n in zip(frames, lengths, strict=True)]  # fmt: skip


def _cut(data: Any, n: int) -> bytes:
    if n > len(data):
        raise ValueError(f"incl_len {n} exceeds the {len(data)} byte(s) of packet data")
    if isinstance(data, bytes):  # compiled: a native slice, no generic one and no bytes() call
        return data[:n]
    return bytes(data[:n])


Pack = Callable[..., bytes]  # a whole_struct().pack of a record header, block header or trailer


def record_bytes(pack: Pack, units: int, per_second: int, n: int, orig: int) -> bytes:
    """A PCAP record header for a packet of ``n`` bytes (``orig`` on the wire: never below
    ``n``, §6.4) stamped ``units`` after the epoch, ``per_second`` of them a second."""
    sec = units // per_second
    return pack(sec & _MASK32, units - sec * per_second, n, orig if orig > n else n)


def record_le(units: int, per_second: int, n: int, orig: int) -> bytes:
    """:func:`record_bytes` little-endian (our writer's order) as two 8-byte integers: compiled,
    native arithmetic and no struct call with four boxed ints (~2,200 -> ~800 instructions a
    record); a time before the epoch or a length past 2**31 takes :func:`record_bytes`."""
    o = orig if orig > n else n
    if units < 0 or units > _FAST_UNITS_MAX or o >= _FAST_LENGTH:
        return record_bytes(_RECORD_LE.pack, units, per_second, n, orig)
    u: i64 = units
    per: i64 = per_second
    sec: i64 = u // per
    time: int = (sec & _MASK32) | (u - sec * per) << 32  # ts_sec, then the fraction
    lengths: int = n | o << 32  # incl_len, then orig_len
    return time.to_bytes(8, "little") + lengths.to_bytes(8, "little")


def block_head(pack: Pack, size: int, iface: int, ticks: int, n: int, orig: int) -> bytes:
    """An Enhanced Packet Block's header: ``size`` bytes in all, a packet of ``n`` bytes."""
    return pack(_EPB_TYPE, size, iface, (ticks >> 32) & _MASK32, ticks & _MASK32, n, orig if orig > n else n)


def block_head_le(size: int, iface: int, ticks: int, n: int, orig: int, after_n: int = -1,
                  after_size: int = 0) -> bytes:  # fmt: skip
    """:func:`block_head` little-endian, and before it the padding and trailer of the block it
    follows (:func:`bare_tail_le`: a block of ``after_size`` bytes with ``after_n`` packet
    bytes and no options; ``after_n`` -1: none), in one struct call that takes the header's
    fields in pairs (compiled, a call costs ~1,250 instructions whatever its fields: two
    became one and seven boxed ints four: ~3,200 -> ~2,300 instructions a block).  Ticks past
    2**62 or a size, interface or length past 2**31 take :func:`block_head`."""
    o = orig if orig > n else n
    if ticks < 0 or ticks > _FAST_UNITS_MAX or size >= _FAST_LENGTH or iface >= _FAST_LENGTH or (
        o >= _FAST_LENGTH
    ):
        head = block_head(_EPB_LE.pack, size, iface, ticks, n, orig)
        return head if after_n < 0 else bare_tail_le(after_n, after_size) + head
    kind = _EPB_TYPE | size << 32  # block_type, block_total_length
    upper = iface | (ticks >> 32) << 32  # interface_id, timestamp_upper
    lower = (ticks & _MASK32) | n << 32  # timestamp_lower, captured_packet_length
    if after_n < 0:
        return _EPB_PAIRS_LE(kind, upper, lower, o)
    return _TAIL_HEAD_LE[-after_n & 3](after_size, kind, upper, lower, o)


def block_tail(trailer: Pack, n: int, options: bytes, size: int) -> bytes:
    """What follows an Enhanced Packet Block's ``n`` packet bytes: padding, options, trailer."""
    return _PADDING[: -n & 3] + options + trailer(size)


def bare_tail_le(n: int, size: int) -> bytes:
    """:func:`block_tail` of a little-endian block with no options, the trailer by to_bytes
    (compiled: one concatenation, no struct call and no argument tuple)."""
    return _PADDING[: -n & 3] + size.to_bytes(4, "little")


def pcap_records(frames: Frames, lengths: Sequence[int], payloads: list[bytes], parts: list[Any],
                 big: bool = False, nanosecond: bool = False) -> int:  # fmt: skip
    """Append a §11.2 record per frame (header, then its payload) to ``parts``: the
    timestamp truncated to whole microseconds (§11.3; ``nanosecond``: kept whole),
    orig_len never below incl_len (§6.4); little-endian unless ``big``.  Returns the bytes
    appended."""
    pack = _RECORD_BE.pack if big else _RECORD_LE.pack
    native = _NATIVE_HEADERS and not big
    tick = 1 if nanosecond else 1000  # ns per unit of the fraction field
    per_second = 1_000_000_000 // tick
    append = parts.append
    for (ts_ns, _, orig), n, payload in zip(frames, lengths, payloads, strict=True):
        units = ts_ns // tick
        append(record_le(units, per_second, n, orig) if native
               else record_bytes(pack, units, per_second, n, orig))  # fmt: skip
        append(payload)
    return RECORD_SIZE * len(payloads) + sum(lengths)


def epb_records(frames: Frames, lengths: Sequence[int], payloads: list[bytes], parts: list[Any],
                first: int = 0, before: int = -1, big: bool = False,
                own: bool = True) -> tuple[int, int]:  # fmt: skip
    """Append an Enhanced Packet Block per frame from ``first`` to ``parts``; ``own``: on
    interface 0, little-endian whatever ``big``, nanosecond ticks (our pcapng writer); else on the frame's
    own interface with its own ticks and options (its data is a reader's PcapngPacket), in
    the section's byte order ``big``, stopping at the first packet whose input block number
    is ``before`` or more (a block queued before it goes first; -1: none).  Returns
    ``(index of the first frame not written, bytes appended)``."""
    epb = (_EPB_BE if big else _EPB_LE).pack
    trailer = (_TRAILER_BE if big else _TRAILER_LE).pack
    append = parts.append
    total = 0
    if own:
        last_n = -1  # the packet bytes of the last block if its tail is still to come, else -1
        last_size = 0
        for (ticks, _, orig), n, payload in zip(frames, lengths, payloads, strict=True):
            size = EPB_OVERHEAD + n + (-n & 3)
            append(block_head_le(size, 0, ticks, n, orig, last_n, last_size))  # the last one's tail first
            append(payload)
            last_n, last_size = n, size
            total += size
        if last_n >= 0:
            append(bare_tail_le(last_n, last_size))
        return len(payloads), total
    i = first
    while i < len(payloads):
        _, packet, orig = frames[i]
        if before >= 0 and i > first and packet.block >= before:
            break
        n = lengths[i]
        options = packet.options
        ticks = packet.ticks
        size = EPB_OVERHEAD + n + (-n & 3) + len(options)
        append(block_head(epb, size, packet.interface_id, ticks, n, orig))
        append(payloads[i])
        append(block_tail(trailer, n, options, size))
        total += size
        i += 1
    return i, total


def records_as_blocks(records: PcapRecords, cuts: list[int], parts: list[Any]) -> int:
    """Append to ``parts`` an Enhanced Packet Block per record of a classic PCAP run, as
    :func:`epb_records` writes its frame for our pcapng writer (interface 0, nanosecond
    ticks), the packet a part of the read buffer (buffer_part); each record whose offset is ``cuts[2 i]`` cut
    to ``cuts[2 i + 1]`` bytes.  Returns the bytes appended."""
    buf = records.buf
    view = memoryview(buf)
    pos = records.first
    i = 0
    cut_at = cuts[0] if cuts else -1
    total = 0
    last_n = -1  # the packet bytes of the last block (its tail still to come), else -1
    last_size = 0
    while pos < records.stop:
        sec, usec, incl, orig = record_header(buf, pos)
        n = incl
        if pos == cut_at:
            n = cuts[i + 1]
            i += 2
            cut_at = cuts[i] if i < len(cuts) else -1
        # two 32-bit fields: at most ~4.3e18 ns, a machine product (on tagged ints, past 31
        # bits a factor makes it a Python long multiplication: ~1,600 instructions a block)
        s: i64 = sec
        u: i64 = usec
        t: i64 = (s * 1_000_000 + u) * 1000
        size = EPB_OVERHEAD + n + (-n & 3)
        start = pos + RECORD_HEADER_SIZE
        parts.append(block_head_le(size, 0, t, n, orig, last_n, last_size))  # the last one's tail first
        parts.append(buffer_part(buf, view, start, start + n))
        last_n, last_size = n, size
        total += size
        pos = start + incl
    if last_n >= 0:
        parts.append(bare_tail_le(last_n, last_size))
    return total


def cut_blocks(run: PcapngRecords, cuts: list[int], parts: list[Any]) -> int:
    """Append to ``parts`` the blocks of ``run`` as a pcapng output of its section writes
    them: runs kept whole as parts of the buffer (buffer_part: long ones not copied); each
    block whose offset is ``cuts[2 i]`` rebuilt with its packet cut to ``cuts[2 i + 1]`` bytes
    (its interface, ticks, orig_len and options as they were).  Returns the bytes appended."""
    buf = run.buf
    big = run.big
    view = memoryview(buf)
    epb = (_EPB_BE if big else _EPB_LE).pack
    trailer = (_TRAILER_BE if big else _TRAILER_LE).pack
    whole = run.first
    total = 0
    for i in range(0, len(cuts), 2):
        at = cuts[i]
        kept = cuts[i + 1]
        iface, ticks, incl, orig, length = enhanced_fields(buf, at, big)
        options = buf[at + DATA_AT + incl + (-incl & 3) : at + length - TRAILER_SIZE]
        size = EPB_OVERHEAD + kept + (-kept & 3) + len(options)
        if at > whole:
            parts.append(buffer_part(buf, view, whole, at))
        parts.append(block_head(epb, size, iface, ticks, kept, orig) if big
                     else block_head_le(size, iface, ticks, kept, orig))  # fmt: skip
        parts.append(buffer_part(buf, view, at + DATA_AT, at + DATA_AT + kept))
        parts.append(block_tail(trailer, kept, options, size))
        total += at - whole + size
        whole = at + length
    if run.stop > whole:
        parts.append(view[whole : run.stop])
        total += run.stop - whole
    return total


def blocks_as_pcap(run: PcapngRecords, cuts: list[int], parts: list[Any]) -> int:
    """Append to ``parts`` the packets of ``run`` as classic PCAP records (little-endian,
    microseconds, as :func:`pcap_records` writes a frame): a new record header each, the
    packet's bytes a part of the buffer (buffer_part); each block whose offset is ``cuts[2 i]`` cut to
    ``cuts[2 i + 1]`` bytes.  Returns the bytes appended."""
    buf = run.buf
    big = run.big
    interfaces = run.interfaces
    view = memoryview(buf)
    pos = run.first
    total = 0
    i = 0
    cut_at = cuts[0] if cuts else -1
    while pos < run.stop:
        ts_ns, n, orig, length = packet_at(buf, pos, big, interfaces)
        if pos == cut_at:
            n = cuts[i + 1]
            i += 2
            cut_at = cuts[i] if i < len(cuts) else -1
        parts.append(record_le(ts_ns // 1000, 1_000_000, n, orig))
        parts.append(buffer_part(buf, view, pos + DATA_AT, pos + DATA_AT + n))
        total += RECORD_SIZE + n
        pos += length
    return total
