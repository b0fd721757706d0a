"""QUIC packet headers (RFC 9000 §17, RFC 9369 §3.2) and the variable-length integer (§16)."""

import construct as cs

# Long-header packet types (what a packet is; its two type bits depend on the version)
LONG_INITIAL = 0
LONG_ZERO_RTT = 1
LONG_HANDSHAKE = 2
LONG_RETRY = 3
MAX_CID_LENGTH = 20

VERSION_NEGOTIATION = 0x00000000  # RFC 8999 §6: no packet type, a list of versions follows
VERSION_1 = 0x00000001  # RFC 9000
VERSION_2 = 0x6B3343CF  # RFC 9369
DRAFT_VERSION_PREFIX = 0xFF000000  # ff0000xx: IETF drafts, laid out as version 1
GOOGLE_QUIC_PREFIX = b"Q0"  # Google QUIC "Q0xx": its own header layout, not RFC 9000's

# type bits -> packet type, per version family (RFC 9000 §17.2, RFC 9369 §3.2)
_V1_TYPES = (LONG_INITIAL, LONG_ZERO_RTT, LONG_HANDSHAKE, LONG_RETRY)
_V2_TYPES = (LONG_RETRY, LONG_INITIAL, LONG_ZERO_RTT, LONG_HANDSHAKE)


def long_packet_types(version: int) -> tuple[int, int, int, int] | None:
    """The packet type each value of the two type bits means in ``version``, or
    None for a version whose long-header layout is not known (RFC 8999: only the
    version and the connection IDs may be read then)."""
    if version == VERSION_1 or version & 0xFFFFFF00 == DRAFT_VERSION_PREFIX:
        return _V1_TYPES
    if version == VERSION_2:
        return _V2_TYPES
    return None


def _packet_type(version: int, bits: int) -> int:
    return (long_packet_types(version) or _V1_TYPES)[bits]


def long_type_bits(version: int, packet_type: int) -> int:
    """The two type bits that say ``packet_type`` in ``version`` (for building packets)."""
    types = long_packet_types(version) or _V1_TYPES
    return types.index(packet_type)


_VARINT_MASKS = {size: (1 << (8 * size - 2)) - 1 for size in (4, 8)}  # without the 2 size bits


def varint_at(buf, off: int, end: int):
    """RFC 9000 §16 variable-length integer at ``off``: ``(value, size)``, or
    ``None`` when its bytes are not all before ``end``.  The two top bits of the
    first byte give the size (1, 2, 4 or 8 bytes)."""
    if off >= end:
        return None
    first = buf[off]
    size = 1 << (first >> 6)
    if off + size > end:
        return None
    if size == 1:
        return first & 0x3F, 1
    if size == 2:  # the common length field: cheaper than int.from_bytes
        return (first & 0x3F) << 8 | buf[off + 1], 2
    return int.from_bytes(buf[off : off + size], "big") & _VARINT_MASKS[size], size


class VarInt(cs.Construct):
    """construct adapter over :func:`varint_at` (one implementation for both)."""

    def _parse(self, stream, context, path):
        first = cs.stream_read(stream, 1, path)
        size = 1 << (first[0] >> 6)
        data = first + cs.stream_read(stream, size - 1, path)
        return varint_at(data, 0, size)[0]

    def _build(self, obj, stream, context, path):
        for size, limit in ((1, 1 << 6), (2, 1 << 14), (4, 1 << 30), (8, 1 << 62)):
            if 0 <= obj < limit:
                prefix = {1: 0, 2: 1, 4: 2, 8: 3}[size] << (size * 8 - 2)
                cs.stream_write(stream, (prefix | obj).to_bytes(size, "big"), size, path)
                return obj
        raise cs.IntegerError(f"{obj} does not fit a QUIC varint", path=path)


quic_varint = VarInt()

# The fixed-size start of every long header: what the per-packet walk reads
# through a derived Layout before following the length-prefixed fields.
quic_long_header_fixed = cs.Struct(
    "first_byte" / cs.BitStruct(
        "header_form" / cs.BitsInteger(1),  # 1 = long
        "fixed_bit" / cs.BitsInteger(1),
        "long_packet_type" / cs.BitsInteger(2),
        "type_specific_bits" / cs.BitsInteger(4),
    ),
    "version" / cs.Int32ub,
    "dcid_length" / cs.Int8ub,
)

quic_long_header = cs.Struct(
    "fixed" / quic_long_header_fixed,
    "dcid" / cs.Bytes(cs.this.fixed.dcid_length),
    "scid_length" / cs.Int8ub,
    "scid" / cs.Bytes(cs.this.scid_length),
    "type_fields" / cs.Switch(
        lambda ctx: _packet_type(ctx.fixed.version, ctx.fixed.first_byte.long_packet_type),
        {
            LONG_INITIAL: cs.Struct(
                "token_length" / quic_varint,
                "token" / cs.Bytes(cs.this.token_length),
                "length" / quic_varint,
            ),
            LONG_ZERO_RTT: cs.Struct("length" / quic_varint),
            LONG_HANDSHAKE: cs.Struct("length" / quic_varint),
            LONG_RETRY: cs.Struct(),  # extends to the end of the datagram
        },
    ),
)

quic_short_header_first_byte = cs.BitStruct(
    "header_form" / cs.BitsInteger(1),  # 0 = short
    "fixed_bit" / cs.BitsInteger(1),
    "spin_bit" / cs.BitsInteger(1),
    "reserved_bits" / cs.BitsInteger(2),
    "key_phase" / cs.BitsInteger(1),
    "packet_number_length" / cs.BitsInteger(2),
)

# The DCID length is not on the wire: the receiver knows it (RFC 9000 §17.3).
quic_short_header = cs.Struct(
    "first_byte" / quic_short_header_first_byte,
    "dcid" / cs.Bytes(cs.this._params.dcid_length),
)
