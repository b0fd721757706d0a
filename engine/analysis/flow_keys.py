"""The key of one direction of a TCP or UDP connection, for the per-direction tables of the
TLS, SSH and DTLS walks; and of a connection, for QUIC's (the direction from its smaller
endpoint, SPEC §9.2).

A direction is keyed by one bytes object: both addresses, then both ports, as they lie in an
IP header without options followed by its TCP or UDP header (source address right before the
destination, source port right before the destination port).  In the usual frame that is one
slice of it; with IPv4 options between, it is built from the parts.  One object to hash and
compare, where a tuple of two address slices and two ports was five (and, in a large table,
as many cache misses): lookups ran the 1M mix 8 % and bulk TLS 13 % faster (issue 21).  The
``*_in`` functions read the addresses from the frame where they lie: the decoder hands no
address objects on (the parts' forms are for tools and tests).
"""

from __future__ import annotations

from typing import Final

from pcapconstrictor.formats.derived import ip as ip_format
from pcapconstrictor.formats.derived import transport

_V4_SRC_AT: Final = ip_format.ipv4_header.offset("src")
_V6_SRC_AT: Final = ip_format.ipv6_header.offset("src")
_V4_SIZE: Final = ip_format.ipv4_header.fields["src"].size
_V6_SIZE: Final = ip_format.ipv6_header.fields["src"].size
_PORT: Final = transport.tcp_header.big_endian_at("dst_port", 2)  # the second port's offset
_PORTS: Final = _PORT + 2
assert ip_format.ipv4_header.offset("dst") == _V4_SRC_AT + _V4_SIZE == _V4_SRC_AT + 4
assert ip_format.ipv6_header.offset("dst") == _V6_SRC_AT + _V6_SIZE == _V6_SRC_AT + 16
# compiled, the addresses are compared byte by byte where they lie (native reads, no objects);
# interpreted, as two slices (one comparison in C, where the loop runs bytecode per byte: on
# addresses sharing a long prefix, the pure flow walk 16 % faster).  By this module's own file
_INTERPRETED: Final = __file__.endswith(".py")
assert transport.tcp_header.big_endian_at("src_port", 2) == 0
assert transport.udp_header.big_endian_at("src_port", 2) == 0
assert transport.udp_header.big_endian_at("dst_port", 2) == _PORT


def direction_key(src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    """The key of the direction from ``src``:``sport`` to ``dst``:``dport`` (for tools and tests)."""
    return src + dst + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")


def sender_first(src: bytes, dst: bytes, sport: int, dport: int) -> bool:
    """Whether the sender is a connection's first endpoint: the smaller ``(address, port)``,
    bytes compared, then the port; a tie goes to the sender (SPEC §9.2)."""
    return src < dst or (src == dst and sport <= dport)


def connection_key(src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    """The key of the connection between the two endpoints: :func:`direction_key` from the
    first endpoint (for tools and tests)."""
    if sender_first(src, dst, sport, dport):
        return direction_key(src, dst, sport, dport)
    return direction_key(dst, src, dport, sport)


def connection_key_in(data: bytes, version: int, sport: int, dport: int, net: int,
                      transport_at: int) -> tuple[bytes, bool]:  # fmt: skip
    """:func:`connection_key` of the segment or datagram in ``data`` (IP ``version`` at ``net``,
    TCP/UDP header at ``transport_at``), and whether its sender is the first endpoint."""
    if sender_first_in(data, version, net, sport, dport):
        return key_in(data, version, net, transport_at), True
    return reverse_key_in(data, version, net, transport_at), False


def sender_first_in(data: bytes, version: int, net: int, sport: int, dport: int) -> bool:
    """:func:`sender_first` of the packet in ``data``, its addresses compared where they lie
    (compiled: byte reads, no address objects)."""
    at, size = _addresses(version)
    at += net
    if _INTERPRETED:
        first = data[at : at + size]
        second = data[at + size : at + 2 * size]
        return first < second or (first == second and sport <= dport)
    for i in range(size):
        a = data[at + i]
        b = data[at + size + i]
        if a != b:
            return a < b
    return sport <= dport


def addresses_in(data: bytes, version: int, net: int, forward: bool) -> bytes:
    """The packet's source then destination address (``forward``), or the other way round."""
    at, size = _addresses(version)
    at += net
    if forward:
        return data[at : at + 2 * size]
    return data[at + size : at + 2 * size] + data[at : at + size]


def key_in(data: bytes, version: int, net: int, transport_at: int) -> bytes:
    """:func:`direction_key` of the segment or datagram in ``data`` (IP ``version`` at ``net``,
    TCP/UDP header at ``transport_at``)."""
    at, size = _addresses(version)
    at += net
    if at + 2 * size == transport_at:
        return data[at : transport_at + _PORTS]
    return data[at : at + 2 * size] + data[transport_at : transport_at + _PORTS]


def reverse_key_in(data: bytes, version: int, net: int, transport_at: int) -> bytes:
    """:func:`direction_key` of the other direction of the segment's connection."""
    at, size = _addresses(version)
    at += net
    ports = transport_at + _PORT
    return (data[at + size : at + 2 * size] + data[at : at + size] + data[ports : transport_at + _PORTS]
            + data[transport_at:ports])  # fmt: skip


def _addresses(version: int) -> tuple[int, int]:
    """Where the source address lies in an IP ``version`` header, and an address's size (the
    destination address follows it)."""
    if version == 4:
        return _V4_SRC_AT, _V4_SIZE
    return _V6_SRC_AT, _V6_SIZE
