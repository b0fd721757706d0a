"""Frame decoder: Ethernet/VLAN -> IPv4/IPv6 -> TCP/UDP (SPEC §7).

Publishes the facts that classification rules read (``decode.*``, ``ip.*``,
``tcp.*``, ``udp.*``).  Reads go through Layouts derived from ``formats/``.
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

_ETH_TYPE = _ETH.reader("ethertype")
_ETH_TYPE_AT = _ETH.fields["ethertype"].offset
_VLAN_INNER_TYPE = _VLAN.reader("ethertype")
_VLAN_SIZE = _VLAN.size
_V4_VERSION = _IPV4.reader("version")
_V4_IHL = _IPV4.reader("ihl")
_V4_TOTAL = _IPV4.reader("total_length")
_V4_FRAG = _IPV4.reader("flags_fragment")  # whole 16-bit word: MF + offset
_V4_PROTO = _IPV4.fields["protocol"].offset
_V4_SRC = _IPV4.fields["src"].offset
_V4_DST = _IPV4.fields["dst"].offset
_V6_VERSION = _IPV6.reader("version")
_V6_PAYLOAD = _IPV6.reader("payload_length")
_V6_NEXT = _IPV6.fields["next_header"].offset
_V6_SRC = _IPV6.fields["src"].offset
_V6_DST = _IPV6.fields["dst"].offset
_TCP_SRC = _TCP.reader("src_port")
_TCP_DST = _TCP.reader("dst_port")
_TCP_SEQ = _TCP.reader("seq")
_TCP_DOFF = _TCP.reader("data_offset")
_TCP_FLAGS = _TCP.fields["flags"].offset
_UDP_SRC = _UDP.reader("src_port")
_UDP_DST = _UDP.reader("dst_port")
_UDP_LEN = _UDP.reader("length")
_MF_OR_OFFSET = 0x2000 | 0x1FFF  # more_fragments bit + fragment_offset (SPEC §7.2)

PROTO_TCP = ip.IPPROTO_TCP
PROTO_UDP = ip.IPPROTO_UDP


class Decoded:
    """What the decoder learned about one frame.  Fields a step did not reach
    keep their neutral values (0, False, b"")."""

    __slots__ = (
        "error", "ethertype", "vlan_tags", "ip", "ip_version", "protocol", "network_offset",
        "transport_offset", "tcp", "udp", "src_addr", "dst_addr", "src_port", "dst_port",
        "payload_offset", "payload_len", "tcp_seq", "tcp_flags",
    )  # fmt: skip

    def __init__(self) -> None:
        self.error = ""
        self.ethertype = 0
        self.vlan_tags = 0
        self.ip = False
        self.ip_version = 0
        self.protocol = 0
        self.network_offset = 0
        self.transport_offset = 0
        self.tcp = False
        self.udp = False
        self.src_addr = b""
        self.dst_addr = b""
        self.src_port = 0
        self.dst_port = 0
        self.payload_offset = 0
        self.payload_len = 0
        self.tcp_seq = 0
        self.tcp_flags = 0

    @property
    def ok(self) -> bool:
        return not self.error

    def failed(self, reason: str) -> Decoded:
        self.error = reason
        return self


def decode(data: bytes, n: int) -> Decoded:
    """Decode the first ``n`` bytes of ``data`` (the frame's safe length)."""
    d = Decoded()
    if n < _ETH.size:
        return d.failed("truncated_ethernet_header")
    ethertype = _ETH_TYPE(data)
    off = _ETH.size
    while ethertype in ethernet.VLAN_ETHERTYPES:
        if off + _VLAN_SIZE > n:
            return d.failed("truncated_vlan_tag")
        d.vlan_tags += 1
        ethertype = _VLAN_INNER_TYPE(data, off)
        off += _VLAN_SIZE
    d.ethertype = ethertype
    d.network_offset = off
    if ethertype == ethernet.ETHERTYPE_IPV4:
        return _ipv4(d, data, n, off)
    if ethertype == ethernet.ETHERTYPE_IPV6:
        return _ipv6(d, data, n, off)
    return d  # non-IP


def _ipv4(d: Decoded, data: bytes, n: int, off: int) -> Decoded:
    if off + _IPV4.size > n:
        return d.failed("truncated_ipv4_header")
    ihl = _V4_IHL(data, off) * 4
    if _V4_VERSION(data, off) != 4 or ihl < _IPV4.size:
        return d.failed("invalid_ipv4_ihl")
    if off + ihl > n:
        return d.failed("truncated_ipv4_header")
    total = _V4_TOTAL(data, off)
    if total < ihl:
        return d.failed("invalid_ipv4_total_length")
    if off + total > n:
        return d.failed("truncated_ipv4_packet")
    d.ip = True
    d.ip_version = 4
    d.protocol = data[off + _V4_PROTO]
    d.src_addr = data[off + _V4_SRC : off + _V4_SRC + 4]
    d.dst_addr = data[off + _V4_DST : off + _V4_DST + 4]
    if _V4_FRAG(data, off) & _MF_OR_OFFSET:
        return d  # any fragment: IP, but no transport
    return _transport(d, data, n, off + ihl, off + total)


def _ipv6(d: Decoded, data: bytes, n: int, off: int) -> Decoded:
    if off + _IPV6.size > n or _V6_VERSION(data, off) != 6:
        return d.failed("truncated_ipv6_header")
    end = off + _IPV6.size + _V6_PAYLOAD(data, off)
    if end > n:
        return d.failed("truncated_ipv6_packet")
    next_header = data[off + _V6_NEXT]
    if next_header in ip.IPV6_EXTENSION_HEADERS:
        return d.failed("unsupported_ipv6_extension_headers")
    d.ip = True
    d.ip_version = 6
    d.protocol = next_header
    d.src_addr = data[off + _V6_SRC : off + _V6_SRC + 16]
    d.dst_addr = data[off + _V6_DST : off + _V6_DST + 16]
    return _transport(d, data, n, off + _IPV6.size, end)


def _transport(d: Decoded, data: bytes, n: int, off: int, end: int) -> Decoded:
    """Transport header inside the region [off, end) given by the IP header."""
    d.transport_offset = off
    limit = min(n, end)
    if d.protocol == PROTO_TCP:
        if off + _TCP.size > limit:
            return d.failed("truncated_tcp_header")
        hdr = _TCP_DOFF(data, off) * 4
        if hdr < _TCP.size:
            return d.failed("invalid_tcp_data_offset")
        if off + hdr > limit:
            return d.failed("truncated_tcp_header")
        d.tcp = True
        d.src_port = _TCP_SRC(data, off)
        d.dst_port = _TCP_DST(data, off)
        d.tcp_seq = _TCP_SEQ(data, off)
        d.tcp_flags = data[off + _TCP_FLAGS]
        d.payload_offset = off + hdr
        d.payload_len = end - (off + hdr)
    elif d.protocol == PROTO_UDP:
        if off + _UDP.size > limit:
            return d.failed("truncated_udp_header")
        length = _UDP_LEN(data, off)
        if length < _UDP.size:
            return d.failed("invalid_udp_length")
        if off + length > end:
            return d.failed("truncated_udp_payload")
        d.udp = True
        d.src_port = _UDP_SRC(data, off)
        d.dst_port = _UDP_DST(data, off)
        d.payload_offset = off + _UDP.size
        d.payload_len = length - _UDP.size
    return d
