"""What of QUIC's wire format is code rather than a layout: the version table, which packet
type a long header's two type bits mean per version (RFC 9000 §17.2, RFC 9369 §3.2), and the
variable-length integer (RFC 9000 §16).  Imports nothing: the per-packet walk uses it without
construct (compiled with mypyc beside it: engine/compiled.py); formats/quic.py builds its
schemas on it.
"""

import typing  # typing.Final: constants mypyc compiles in (a plain import: derive.py skips modules)

# Long-header packet types (what a packet is; its two type bits depend on the version)
LONG_INITIAL: typing.Final = 0
LONG_ZERO_RTT: typing.Final = 1
LONG_HANDSHAKE: typing.Final = 2
LONG_RETRY: typing.Final = 3
MAX_CID_LENGTH: typing.Final = 20

VERSION_NEGOTIATION: typing.Final = 0x00000000  # RFC 8999 §6: no packet type, a list of versions follows
VERSION_1: typing.Final = 0x00000001  # RFC 9000
VERSION_2: typing.Final = 0x6B3343CF  # RFC 9369
DRAFT_VERSION_PREFIX: typing.Final = 0xFF000000  # ff0000xx: IETF drafts, laid out as version 1
GOOGLE_QUIC_PREFIX: typing.Final = b"Q0"  # Google QUIC "Q0xx": its own header layout, not RFC 9000's

# type bits -> packet type, per version family (RFC 9000 §17.2, RFC 9369 §3.2): byte ``bits``
# is the type (bytes, not a tuple: compiled, an index computed per packet reads a byte where a
# tuple of four ints held as a C struct is rebuilt as a Python tuple to be indexed)
_V1_TYPES: typing.Final = bytes((LONG_INITIAL, LONG_ZERO_RTT, LONG_HANDSHAKE, LONG_RETRY))
_V2_TYPES: typing.Final = bytes((LONG_RETRY, LONG_INITIAL, LONG_ZERO_RTT, LONG_HANDSHAKE))


def long_packet_types(version: int) -> bytes:
    """The packet type each value of the two type bits means in ``version`` (byte ``bits``),
    or b"" for a version whose long-header layout is not known (RFC 8999: only the
    version and the connection IDs may be read then)."""
    if version == VERSION_1 or version & 0xFFFFFF00 == DRAFT_VERSION_PREFIX:
        return _V1_TYPES
    if version == VERSION_2:
        return _V2_TYPES
    return b""


def packet_type_of(version: int, bits: int) -> int:
    """The packet type that a long header's two type ``bits`` mean in ``version`` (an unknown
    version's header is read as version 1's, for building and parsing test packets)."""
    return (long_packet_types(version) or _V1_TYPES)[bits]


def long_type_bits(version: int, packet_type: int) -> int:
    """The two type bits that say ``packet_type`` in ``version`` (for building packets)."""
    types = long_packet_types(version) or _V1_TYPES
    return types.index(packet_type)


def varint_at(buf: bytes, off: int, end: int) -> tuple[int, int]:
    """RFC 9000 §16 variable-length integer at ``off``: ``(value, size)``, or
    ``(0, 0)`` when its bytes are not all before ``end`` (a pair either way: compiled, no
    object per call).  The two top bits of the first byte give the size (1, 2, 4 or 8 bytes)."""
    if off >= end:
        return 0, 0
    first = buf[off]
    size = 1 << (first >> 6)
    if off + size > end:
        return 0, 0
    if size == 1:
        return first & 0x3F, 1
    if size == 2:  # the common length field: cheaper than int.from_bytes
        return (first & 0x3F) << 8 | buf[off + 1], 2
    value = int.from_bytes(buf[off : off + size], "big")
    return value & ((1 << (8 * size - 2)) - 1), size  # without the two size bits
