"""Frame decoder: Ethernet/VLAN -> IPv4/IPv6 -> TCP/UDP (SPEC §7).

Publishes the facts that classification rules read (``decode.*``, ``ip.*``,
``tcp.*``, ``udp.*``).  The hot path, :func:`decode_fields`, is one function
returning a plain tuple (the generated evaluator unpacks it into locals).  It
reads each field it needs as bytes at the offset, shift and mask derived from
the ``formats/`` schema (``Final`` constants): compiled by mypyc
(engine/compiled.py), a byte index is far cheaper than a ``struct`` call.
:func:`decode` wraps the same tuple as a :class:`Decoded` for tests and tools.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from pcapconstrictor.formats import ethernet, ip, transport
from pcapconstrictor.formats.layout import Layout

_ETH: Final = Layout(ethernet.ethernet_header)
_VLAN: Final = Layout(ethernet.vlan_tag)
_IPV4: Final = Layout(ip.ipv4_header)
_IPV6: Final = Layout(ip.ipv6_header)
_TCP: Final = Layout(transport.tcp_header)
_UDP: Final = Layout(transport.udp_header)

_ETH_SIZE: Final = _ETH.size
_VLAN_SIZE: Final = _VLAN.size
_ETH_TYPE_AT: Final = _ETH.big_endian_at("ethertype", 2)
_VLAN_TYPE_AT: Final = _VLAN.big_endian_at("ethertype", 2)
_TAG_8021Q: Final = ethernet.VLAN_ETHERTYPES[0]
_TAG_8021AD: Final = ethernet.VLAN_ETHERTYPES[1]
_TYPE_IPV4: Final = ethernet.ETHERTYPE_IPV4
_TYPE_IPV6: Final = ethernet.ETHERTYPE_IPV6

_V4_SIZE: Final = _IPV4.size
_V4_VERSION_AT: Final = _IPV4.in_byte("version")[0]
_V4_VERSION_SHIFT: Final = _IPV4.in_byte("version")[1]
_V4_VERSION_MASK: Final = _IPV4.in_byte("version")[2]
_V4_IHL_AT: Final = _IPV4.in_byte("ihl")[0]
_V4_IHL_SHIFT: Final = _IPV4.in_byte("ihl")[1]
_V4_IHL_MASK: Final = _IPV4.in_byte("ihl")[2]
_V4_TOTAL_AT: Final = _IPV4.big_endian_at("total_length", 2)
_V4_FRAG_AT: Final = _IPV4.big_endian_at("flags_fragment", 2)  # MF bit + fragment offset live here
_V4_PROTO_AT: Final = _IPV4.big_endian_at("protocol", 1)
_V4_SRC_AT: Final = _IPV4.offset("src")
_V4_DST_AT: Final = _IPV4.offset("dst")
_V4_ADDR: Final = _IPV4.fields["src"].size
_MF_OR_OFFSET: Final = (_IPV4.word("more_fragments")[2] << _IPV4.word("more_fragments")[1]) | (
    _IPV4.word("fragment_offset")[2] << _IPV4.word("fragment_offset")[1]
)

_V6_SIZE: Final = _IPV6.size
_V6_VERSION_AT: Final = _IPV6.in_byte("version")[0]
_V6_VERSION_SHIFT: Final = _IPV6.in_byte("version")[1]
_V6_VERSION_MASK: Final = _IPV6.in_byte("version")[2]
_V6_PAYLOAD_AT: Final = _IPV6.big_endian_at("payload_length", 2)
_V6_NEXT_AT: Final = _IPV6.big_endian_at("next_header", 1)
_V6_SRC_AT: Final = _IPV6.offset("src")
_V6_DST_AT: Final = _IPV6.offset("dst")
_V6_ADDR: Final = _IPV6.fields["src"].size
_V6_EXTENSIONS: Final = ip.IPV6_EXTENSION_HEADERS

_TCP_SIZE: Final = _TCP.size
_TCP_SRC_AT: Final = _TCP.big_endian_at("src_port", 2)
_TCP_DST_AT: Final = _TCP.big_endian_at("dst_port", 2)
_TCP_SEQ_AT: Final = _TCP.big_endian_at("seq", 4)
_TCP_DOFF_AT: Final = _TCP.in_byte("data_offset")[0]
_TCP_DOFF_SHIFT: Final = _TCP.in_byte("data_offset")[1]
_TCP_DOFF_MASK: Final = _TCP.in_byte("data_offset")[2]
_TCP_FLAGS_AT: Final = _TCP.big_endian_at("flags", 1)

_UDP_SIZE: Final = _UDP.size
_UDP_SRC_AT: Final = _UDP.big_endian_at("src_port", 2)
_UDP_DST_AT: Final = _UDP.big_endian_at("dst_port", 2)
_UDP_LEN_AT: Final = _UDP.big_endian_at("length", 2)

PROTO_TCP: Final = ip.IPPROTO_TCP
PROTO_UDP: Final = ip.IPPROTO_UDP


class Decoded(NamedTuple):
    """What the decoder learned about one frame, in :func:`decode_fields`
    order.  Fields a step did not reach keep their defaults (0, False, b"")."""

    error: str = ""
    ethertype: int = 0
    vlan_tags: int = 0
    ip: bool = False
    ip_version: int = 0
    protocol: int = 0
    network_offset: int = 0
    transport_offset: int = 0
    tcp: bool = False
    udp: bool = False
    src_addr: bytes = b""
    dst_addr: bytes = b""
    src_port: int = 0
    dst_port: int = 0
    payload_offset: int = 0
    payload_len: int = 0
    tcp_seq: int = 0
    tcp_flags: int = 0

    @property
    def ok(self) -> bool:
        return not self.error


FIELDS = Decoded._fields


def decode(data: bytes, n: int) -> Decoded:
    """Decode the first ``n`` bytes of ``data`` (the frame's safe length)."""
    return Decoded._make(decode_fields(data, n))


def decode_fields(data: bytes, n: int) -> tuple:
    """:func:`decode` as a plain tuple in ``FIELDS`` order (the per-packet path:
    one call, locals only, no object to fill in)."""
    if n < _ETH_SIZE:
        return _net_error("truncated_ethernet_header", 0, 0, 0)
    ethertype = data[_ETH_TYPE_AT] << 8 | data[_ETH_TYPE_AT + 1]
    off = _ETH_SIZE
    tags = 0
    while ethertype == _TAG_8021Q or ethertype == _TAG_8021AD:
        if off + _VLAN_SIZE > n:
            return _net_error("truncated_vlan_tag", 0, tags, 0)
        tags += 1
        ethertype = data[off + _VLAN_TYPE_AT] << 8 | data[off + _VLAN_TYPE_AT + 1]
        off += _VLAN_SIZE
    net = off
    if ethertype == _TYPE_IPV4:
        if off + _V4_SIZE > n:
            return _net_error("truncated_ipv4_header", ethertype, tags, net)
        ihl = ((data[off + _V4_IHL_AT] >> _V4_IHL_SHIFT) & _V4_IHL_MASK) * 4
        if (data[off + _V4_VERSION_AT] >> _V4_VERSION_SHIFT) & _V4_VERSION_MASK != 4 or ihl < _V4_SIZE:
            return _net_error("invalid_ipv4_ihl", ethertype, tags, net)
        if off + ihl > n:
            return _net_error("truncated_ipv4_header", ethertype, tags, net)
        p = off + _V4_TOTAL_AT
        total = data[p] << 8 | data[p + 1]
        if total < ihl:
            return _net_error("invalid_ipv4_total_length", ethertype, tags, net)
        if off + total > n:
            return _net_error("truncated_ipv4_packet", ethertype, tags, net)
        version = 4
        protocol = data[off + _V4_PROTO_AT]
        p = off + _V4_SRC_AT
        src = data[p : p + _V4_ADDR]
        p = off + _V4_DST_AT
        dst = data[p : p + _V4_ADDR]
        p = off + _V4_FRAG_AT
        if (data[p] << 8 | data[p + 1]) & _MF_OR_OFFSET:  # any fragment: IP, but no transport
            return ("", ethertype, tags, True, 4, protocol, net, 0, False, False, src, dst, 0, 0, 0, 0, 0, 0)
        off += ihl
        end = net + total
    elif ethertype == _TYPE_IPV6:
        if off + _V6_SIZE > n:
            return _net_error("truncated_ipv6_header", ethertype, tags, net)
        if (data[off + _V6_VERSION_AT] >> _V6_VERSION_SHIFT) & _V6_VERSION_MASK != 6:
            return _net_error("truncated_ipv6_header", ethertype, tags, net)
        p = off + _V6_PAYLOAD_AT
        end = off + _V6_SIZE + (data[p] << 8 | data[p + 1])
        if end > n:
            return _net_error("truncated_ipv6_packet", ethertype, tags, net)
        protocol = data[off + _V6_NEXT_AT]
        if protocol in _V6_EXTENSIONS:
            return _net_error("unsupported_ipv6_extension_headers", ethertype, tags, net)
        version = 6
        p = off + _V6_SRC_AT
        src = data[p : p + _V6_ADDR]
        p = off + _V6_DST_AT
        dst = data[p : p + _V6_ADDR]
        off += _V6_SIZE
    else:  # non-IP
        return ("", ethertype, tags, False, 0, 0, net, 0, False, False, b"", b"", 0, 0, 0, 0, 0, 0)
    # the transport header, inside the region [off, end) the IP header gives
    limit = n if n < end else end
    if protocol == PROTO_TCP:
        if off + _TCP_SIZE > limit:
            return ("truncated_tcp_header", ethertype, tags, True, version, protocol, net, off,
                    False, False, src, dst, 0, 0, 0, 0, 0, 0)  # fmt: skip
        hdr = ((data[off + _TCP_DOFF_AT] >> _TCP_DOFF_SHIFT) & _TCP_DOFF_MASK) * 4
        if hdr < _TCP_SIZE or off + hdr > limit:
            reason = "invalid_tcp_data_offset" if hdr < _TCP_SIZE else "truncated_tcp_header"
            return (reason, ethertype, tags, True, version, protocol, net, off,
                    False, False, src, dst, 0, 0, 0, 0, 0, 0)  # fmt: skip
        p = off + _TCP_SEQ_AT
        seq = data[p] << 24 | data[p + 1] << 16 | data[p + 2] << 8 | data[p + 3]
        p = off + _TCP_SRC_AT
        sport = data[p] << 8 | data[p + 1]
        p = off + _TCP_DST_AT
        dport = data[p] << 8 | data[p + 1]
        return ("", ethertype, tags, True, version, protocol, net, off, True, False, src, dst,
                sport, dport, off + hdr, end - off - hdr, seq, data[off + _TCP_FLAGS_AT])  # fmt: skip
    if protocol == PROTO_UDP:
        if off + _UDP_SIZE > limit:
            return ("truncated_udp_header", ethertype, tags, True, version, protocol, net, off,
                    False, False, src, dst, 0, 0, 0, 0, 0, 0)  # fmt: skip
        p = off + _UDP_LEN_AT
        length = data[p] << 8 | data[p + 1]
        if length < _UDP_SIZE or off + length > end:
            reason = "invalid_udp_length" if length < _UDP_SIZE else "truncated_udp_payload"
            return (reason, ethertype, tags, True, version, protocol, net, off,
                    False, False, src, dst, 0, 0, 0, 0, 0, 0)  # fmt: skip
        p = off + _UDP_SRC_AT
        sport = data[p] << 8 | data[p + 1]
        p = off + _UDP_DST_AT
        dport = data[p] << 8 | data[p + 1]
        return ("", ethertype, tags, True, version, protocol, net, off, False, True, src, dst,
                sport, dport, off + _UDP_SIZE, length - _UDP_SIZE, 0, 0)  # fmt: skip
    return ("", ethertype, tags, True, version, protocol, net, off, False, False, src, dst, 0, 0, 0, 0, 0, 0)


def _net_error(reason: str, ethertype: int, tags: int, net: int) -> tuple:
    """A frame that failed before its transport header: what was learned so far."""
    return (reason, ethertype, tags, False, 0, 0, net, 0, False, False, b"", b"", 0, 0, 0, 0, 0, 0)
