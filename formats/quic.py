"""QUIC packet headers (RFC 9000 §17, RFC 9369 §3.2) and the variable-length integer (§16)."""

import construct as cs

from pcapconstrictor.formats.quic_wire import (  # noqa: F401  (re-exported: the QUIC names live here too)
    DRAFT_VERSION_PREFIX,
    GOOGLE_QUIC_PREFIX,
    LONG_HANDSHAKE,
    LONG_INITIAL,
    LONG_RETRY,
    LONG_ZERO_RTT,
    MAX_CID_LENGTH,
    VERSION_1,
    VERSION_2,
    VERSION_NEGOTIATION,
    long_packet_types,
    long_type_bits,
    packet_type_of,
    varint_at,
)


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
        lambda ctx: packet_type_of(ctx.fixed.version, ctx.fixed.first_byte.long_packet_type),
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
