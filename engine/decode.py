"""Frame decoder: Ethernet/VLAN -> IPv4/IPv6 -> TCP/UDP (SPEC §7).

Publishes the facts that classification rules read (``decode.*``, ``ip.*``,
``tcp.*``, ``udp.*``).  Each header is read with one ``struct`` unpack whose
format, field positions, shifts and masks are derived from the ``formats/``
schema (a few hundred nanoseconds per frame instead of one call per field).
"""

from __future__ import annotations

from ..formats import ethernet, ip, transport
from ..formats.layout import Layout

_ETH = Layout(ethernet.ethernet_header)
_VLAN = Layout(ethernet.vlan_tag)
_IPV4 = Layout(ip.ipv4_header)
_IPV6 = Layout(ip.ipv6_header)
_TCP = Layout(transport.tcp_header)
_UDP = Layout(transport.udp_header)

_ETH_SIZE = _ETH.size
_ETH_TYPE = _ETH.reader("ethertype")
_VLAN_SIZE = _VLAN.size
_VLAN_INNER_TYPE = _VLAN.reader("ethertype")
_VLAN_TYPES = ethernet.VLAN_ETHERTYPES
_TYPE_IPV4 = ethernet.ETHERTYPE_IPV4
_TYPE_IPV6 = ethernet.ETHERTYPE_IPV6

_V4_SIZE = _IPV4.size
_V4_UNPACK = _IPV4.struct.unpack_from
_V4_VI, _V4_VERSION_SHIFT, _V4_VERSION_MASK = _IPV4.word("version")
_, _V4_IHL_SHIFT, _V4_IHL_MASK = _IPV4.word("ihl")
_V4_TOTAL = _IPV4.word("total_length")[0]
_V4_FRAG = _IPV4.word("flags_fragment")[0]  # MF bit + fragment offset live in this word
_V4_PROTO = _IPV4.word("protocol")[0]
_V4_SRC = _IPV4.word("src")[0]
_V4_DST = _IPV4.word("dst")[0]
_MF_OR_OFFSET = (_IPV4.fields["more_fragments"].mask << _IPV4.fields["more_fragments"].shift) | (
    _IPV4.fields["fragment_offset"].mask << _IPV4.fields["fragment_offset"].shift
)

_V6_SIZE = _IPV6.size
_V6_UNPACK = _IPV6.struct.unpack_from
_V6_VCL, _V6_VERSION_SHIFT, _V6_VERSION_MASK = _IPV6.word("version")
_V6_PAYLOAD = _IPV6.word("payload_length")[0]
_V6_NEXT = _IPV6.word("next_header")[0]
_V6_SRC = _IPV6.word("src")[0]
_V6_DST = _IPV6.word("dst")[0]
_V6_EXTENSIONS = ip.IPV6_EXTENSION_HEADERS

_TCP_SIZE = _TCP.size
_TCP_UNPACK = _TCP.struct.unpack_from
_TCP_SRC = _TCP.word("src_port")[0]
_TCP_DST = _TCP.word("dst_port")[0]
_TCP_SEQ = _TCP.word("seq")[0]
_TCP_OR, _TCP_DOFF_SHIFT, _TCP_DOFF_MASK = _TCP.word("data_offset")
_TCP_FLAGS = _TCP.word("flags")[0]

_UDP_SIZE = _UDP.size
_UDP_UNPACK = _UDP.struct.unpack_from
_UDP_SRC = _UDP.word("src_port")[0]
_UDP_DST = _UDP.word("dst_port")[0]
_UDP_LEN = _UDP.word("length")[0]

PROTO_TCP = ip.IPPROTO_TCP
PROTO_UDP = ip.IPPROTO_UDP


class Decoded:
    """What the decoder learned about one frame.  Fields a step did not reach
    keep the class defaults (0, False, b""); only reached ones are stored."""

    error = ""
    ethertype = 0
    vlan_tags = 0
    ip = False
    ip_version = 0
    protocol = 0
    network_offset = 0
    transport_offset = 0
    tcp = False
    udp = False
    src_addr = b""
    dst_addr = b""
    src_port = 0
    dst_port = 0
    payload_offset = 0
    payload_len = 0
    tcp_seq = 0
    tcp_flags = 0

    @property
    def ok(self) -> bool:
        return not self.error


def _failed(d: Decoded, reason: str) -> Decoded:
    d.error = reason
    return d


def decode(data: bytes, n: int) -> Decoded:
    """Decode the first ``n`` bytes of ``data`` (the frame's safe length)."""
    d = Decoded()
    if n < _ETH_SIZE:
        return _failed(d, "truncated_ethernet_header")
    ethertype = _ETH_TYPE(data)
    off = _ETH_SIZE
    if ethertype in _VLAN_TYPES:
        tags = 0
        while ethertype in _VLAN_TYPES:
            if off + _VLAN_SIZE > n:
                d.vlan_tags = tags
                return _failed(d, "truncated_vlan_tag")
            tags += 1
            ethertype = _VLAN_INNER_TYPE(data, off)
            off += _VLAN_SIZE
        d.vlan_tags = tags
    d.ethertype = ethertype
    d.network_offset = off
    if ethertype == _TYPE_IPV4:
        return _ipv4(d, data, n, off)
    if ethertype == _TYPE_IPV6:
        return _ipv6(d, data, n, off)
    return d  # non-IP


def _ipv4(d: Decoded, data: bytes, n: int, off: int) -> Decoded:
    if off + _V4_SIZE > n:
        return _failed(d, "truncated_ipv4_header")
    w = _V4_UNPACK(data, off)
    vi = w[_V4_VI]
    ihl = ((vi >> _V4_IHL_SHIFT) & _V4_IHL_MASK) * 4
    if (vi >> _V4_VERSION_SHIFT) & _V4_VERSION_MASK != 4 or ihl < _V4_SIZE:
        return _failed(d, "invalid_ipv4_ihl")
    if off + ihl > n:
        return _failed(d, "truncated_ipv4_header")
    total = w[_V4_TOTAL]
    if total < ihl:
        return _failed(d, "invalid_ipv4_total_length")
    if off + total > n:
        return _failed(d, "truncated_ipv4_packet")
    d.ip = True
    d.ip_version = 4
    d.protocol = w[_V4_PROTO]
    d.src_addr = w[_V4_SRC]
    d.dst_addr = w[_V4_DST]
    if w[_V4_FRAG] & _MF_OR_OFFSET:
        return d  # any fragment: IP, but no transport
    return _transport(d, data, n, off + ihl, off + total)


def _ipv6(d: Decoded, data: bytes, n: int, off: int) -> Decoded:
    if off + _V6_SIZE > n:
        return _failed(d, "truncated_ipv6_header")
    w = _V6_UNPACK(data, off)
    if (w[_V6_VCL] >> _V6_VERSION_SHIFT) & _V6_VERSION_MASK != 6:
        return _failed(d, "truncated_ipv6_header")
    end = off + _V6_SIZE + w[_V6_PAYLOAD]
    if end > n:
        return _failed(d, "truncated_ipv6_packet")
    next_header = w[_V6_NEXT]
    if next_header in _V6_EXTENSIONS:
        return _failed(d, "unsupported_ipv6_extension_headers")
    d.ip = True
    d.ip_version = 6
    d.protocol = next_header
    d.src_addr = w[_V6_SRC]
    d.dst_addr = w[_V6_DST]
    return _transport(d, data, n, off + _V6_SIZE, end)


def _transport(d: Decoded, data: bytes, n: int, off: int, end: int) -> Decoded:
    """Transport header inside the region [off, end) given by the IP header."""
    d.transport_offset = off
    limit = n if n < end else end
    protocol = d.protocol
    if protocol == PROTO_TCP:
        if off + _TCP_SIZE > limit:
            return _failed(d, "truncated_tcp_header")
        w = _TCP_UNPACK(data, off)
        hdr = ((w[_TCP_OR] >> _TCP_DOFF_SHIFT) & _TCP_DOFF_MASK) * 4
        if hdr < _TCP_SIZE:
            return _failed(d, "invalid_tcp_data_offset")
        if off + hdr > limit:
            return _failed(d, "truncated_tcp_header")
        d.tcp = True
        d.src_port = w[_TCP_SRC]
        d.dst_port = w[_TCP_DST]
        d.tcp_seq = w[_TCP_SEQ]
        d.tcp_flags = w[_TCP_FLAGS]
        d.payload_offset = off + hdr
        d.payload_len = end - off - hdr
    elif protocol == PROTO_UDP:
        if off + _UDP_SIZE > limit:
            return _failed(d, "truncated_udp_header")
        w = _UDP_UNPACK(data, off)
        length = w[_UDP_LEN]
        if length < _UDP_SIZE:
            return _failed(d, "invalid_udp_length")
        if off + length > end:
            return _failed(d, "truncated_udp_payload")
        d.udp = True
        d.src_port = w[_UDP_SRC]
        d.dst_port = w[_UDP_DST]
        d.payload_offset = off + _UDP_SIZE
        d.payload_len = length - _UDP_SIZE
    return d
