"""Frame decoder: Ethernet/VLAN -> IPv4/IPv6 -> TCP/UDP (SPEC §7).

Publishes the facts that classification rules read (``decode.*``, ``ip.*``,
``tcp.*``, ``udp.*``).  The hot path, :func:`decode_fields`, is one function
returning a plain tuple (the generated evaluator unpacks it into locals); each
header is read with one ``struct`` unpack of just the fields used, its format,
positions, shifts and masks derived from the ``formats/`` schema.
:func:`decode` wraps the same tuple as a :class:`Decoded` for tests and tools.
"""

from __future__ import annotations

from typing import NamedTuple

from ..formats import ethernet, ip, transport
from ..formats.layout import Layout

_ETH = Layout(ethernet.ethernet_header)
_VLAN = Layout(ethernet.vlan_tag)
_IPV4 = Layout(ip.ipv4_header)
_IPV6 = Layout(ip.ipv6_header)
_TCP = Layout(transport.tcp_header)
_UDP = Layout(transport.udp_header)

_ETH_SIZE = _ETH.size
_VLAN_SIZE = _VLAN.size
# EtherTypes are read as two bytes at their schema offsets (cheaper than a
# struct call); the asserts keep this tied to the schemas.
_ETH_TYPE_AT = _ETH.fields["ethertype"].offset
_VLAN_TYPE_AT = _VLAN.fields["ethertype"].offset
assert _ETH.fields["ethertype"].code == _VLAN.fields["ethertype"].code == "H"
assert _ETH.byte_order == _VLAN.byte_order == ">"
_TAG_8021Q, _TAG_8021AD = ethernet.VLAN_ETHERTYPES
_TYPE_IPV4 = ethernet.ETHERTYPE_IPV4
_TYPE_IPV6 = ethernet.ETHERTYPE_IPV6

_V4_SIZE = _IPV4.size
_V4 = _IPV4.select("version", "ihl", "total_length", "flags_fragment", "protocol", "src", "dst")
_V4_UNPACK = _V4.unpack_from
_V4_VI, _V4_VERSION_SHIFT, _V4_VERSION_MASK = _V4.word("version")
_, _V4_IHL_SHIFT, _V4_IHL_MASK = _V4.word("ihl")
_V4_TOTAL = _V4.word("total_length")[0]
_V4_FRAG = _V4.word("flags_fragment")[0]  # MF bit + fragment offset live in this word
_V4_PROTO = _V4.word("protocol")[0]
_V4_SRC = _V4.word("src")[0]
_V4_DST = _V4.word("dst")[0]
_MF_OR_OFFSET = (_IPV4.fields["more_fragments"].mask << _IPV4.fields["more_fragments"].shift) | (
    _IPV4.fields["fragment_offset"].mask << _IPV4.fields["fragment_offset"].shift
)

_V6_SIZE = _IPV6.size
_V6 = _IPV6.select("version", "payload_length", "next_header", "src", "dst")
_V6_UNPACK = _V6.unpack_from
_V6_VCL, _V6_VERSION_SHIFT, _V6_VERSION_MASK = _V6.word("version")
_V6_PAYLOAD = _V6.word("payload_length")[0]
_V6_NEXT = _V6.word("next_header")[0]
_V6_SRC = _V6.word("src")[0]
_V6_DST = _V6.word("dst")[0]
_V6_EXTENSIONS = ip.IPV6_EXTENSION_HEADERS

_TCP_SIZE = _TCP.size
_TCPS = _TCP.select("src_port", "dst_port", "seq", "data_offset", "flags")
_TCP_UNPACK = _TCPS.unpack_from
_TCP_SRC = _TCPS.word("src_port")[0]
_TCP_DST = _TCPS.word("dst_port")[0]
_TCP_SEQ = _TCPS.word("seq")[0]
_TCP_OR, _TCP_DOFF_SHIFT, _TCP_DOFF_MASK = _TCPS.word("data_offset")
_TCP_FLAGS = _TCPS.word("flags")[0]

_UDP_SIZE = _UDP.size
_UDP_UNPACK = _UDP.struct.unpack_from
_UDP_SRC = _UDP.word("src_port")[0]
_UDP_DST = _UDP.word("dst_port")[0]
_UDP_LEN = _UDP.word("length")[0]

PROTO_TCP = ip.IPPROTO_TCP
PROTO_UDP = ip.IPPROTO_UDP


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
        w = _V4_UNPACK(data, off)
        vi = w[_V4_VI]
        ihl = ((vi >> _V4_IHL_SHIFT) & _V4_IHL_MASK) * 4
        if (vi >> _V4_VERSION_SHIFT) & _V4_VERSION_MASK != 4 or ihl < _V4_SIZE:
            return _net_error("invalid_ipv4_ihl", ethertype, tags, net)
        if off + ihl > n:
            return _net_error("truncated_ipv4_header", ethertype, tags, net)
        total = w[_V4_TOTAL]
        if total < ihl:
            return _net_error("invalid_ipv4_total_length", ethertype, tags, net)
        if off + total > n:
            return _net_error("truncated_ipv4_packet", ethertype, tags, net)
        version = 4
        protocol = w[_V4_PROTO]
        src = w[_V4_SRC]
        dst = w[_V4_DST]
        if w[_V4_FRAG] & _MF_OR_OFFSET:  # any fragment: IP, but no transport
            return ("", ethertype, tags, True, 4, protocol, net, 0, False, False, src, dst, 0, 0, 0, 0, 0, 0)
        off += ihl
        end = net + total
    elif ethertype == _TYPE_IPV6:
        if off + _V6_SIZE > n:
            return _net_error("truncated_ipv6_header", ethertype, tags, net)
        w = _V6_UNPACK(data, off)
        if (w[_V6_VCL] >> _V6_VERSION_SHIFT) & _V6_VERSION_MASK != 6:
            return _net_error("truncated_ipv6_header", ethertype, tags, net)
        end = off + _V6_SIZE + w[_V6_PAYLOAD]
        if end > n:
            return _net_error("truncated_ipv6_packet", ethertype, tags, net)
        protocol = w[_V6_NEXT]
        if protocol in _V6_EXTENSIONS:
            return _net_error("unsupported_ipv6_extension_headers", ethertype, tags, net)
        version = 6
        src = w[_V6_SRC]
        dst = w[_V6_DST]
        off += _V6_SIZE
    else:  # non-IP
        return ("", ethertype, tags, False, 0, 0, net, 0, False, False, b"", b"", 0, 0, 0, 0, 0, 0)
    # the transport header, inside the region [off, end) the IP header gives
    limit = n if n < end else end
    if protocol == PROTO_TCP:
        if off + _TCP_SIZE > limit:
            return ("truncated_tcp_header", ethertype, tags, True, version, protocol, net, off,
                    False, False, src, dst, 0, 0, 0, 0, 0, 0)  # fmt: skip
        w = _TCP_UNPACK(data, off)
        hdr = ((w[_TCP_OR] >> _TCP_DOFF_SHIFT) & _TCP_DOFF_MASK) * 4
        if hdr < _TCP_SIZE or off + hdr > limit:
            reason = "invalid_tcp_data_offset" if hdr < _TCP_SIZE else "truncated_tcp_header"
            return (reason, ethertype, tags, True, version, protocol, net, off,
                    False, False, src, dst, 0, 0, 0, 0, 0, 0)  # fmt: skip
        return ("", ethertype, tags, True, version, protocol, net, off, True, False, src, dst,
                w[_TCP_SRC], w[_TCP_DST], off + hdr, end - off - hdr, w[_TCP_SEQ], w[_TCP_FLAGS])  # fmt: skip
    if protocol == PROTO_UDP:
        if off + _UDP_SIZE > limit:
            return ("truncated_udp_header", ethertype, tags, True, version, protocol, net, off,
                    False, False, src, dst, 0, 0, 0, 0, 0, 0)  # fmt: skip
        w = _UDP_UNPACK(data, off)
        length = w[_UDP_LEN]
        if length < _UDP_SIZE or off + length > end:
            reason = "invalid_udp_length" if length < _UDP_SIZE else "truncated_udp_payload"
            return (reason, ethertype, tags, True, version, protocol, net, off,
                    False, False, src, dst, 0, 0, 0, 0, 0, 0)  # fmt: skip
        return ("", ethertype, tags, True, version, protocol, net, off, False, True, src, dst,
                w[_UDP_SRC], w[_UDP_DST], off + _UDP_SIZE, length - _UDP_SIZE, 0, 0)  # fmt: skip
    return ("", ethertype, tags, True, version, protocol, net, off, False, False, src, dst, 0, 0, 0, 0, 0, 0)


def _net_error(reason: str, ethertype: int, tags: int, net: int) -> tuple:
    """A frame that failed before its transport header: what was learned so far."""
    return (reason, ethertype, tags, False, 0, 0, net, 0, False, False, b"", b"", 0, 0, 0, 0, 0, 0)
