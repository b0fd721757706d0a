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

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, NamedTuple, TypeAlias

from pcapconstrictor.formats.derived import ethernet, ip, link, transport

if TYPE_CHECKING:  # mypyc's native integers; at run time (pure Python) plain annotations
    from mypy_extensions import i64

_ETH: Final = ethernet.ethernet_header
_VLAN: Final = ethernet.vlan_tag
_IPV4: Final = ip.ipv4_header
_IPV6: Final = ip.ipv6_header
_TCP: Final = transport.tcp_header
_UDP: Final = transport.udp_header

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
    """What the decoder learned about one frame: :func:`decode_fields`' tuple with the two
    addresses (``ip``: read from the IP header at ``network_offset``; else b"").  Fields a step
    did not reach keep their defaults (0, False, b"")."""

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


# the per-packet tuple's fields, in order: the addresses are not in it (compiled, two slices a
# frame were ~5 % of the mix's instructions); analyzers read them in place (flow_keys.py)
FIELDS = tuple(name for name in Decoded._fields if name not in ("src_addr", "dst_addr"))
_ADDRESSES_AFTER: Final = FIELDS.index("udp") + 1
assert Decoded._fields[_ADDRESSES_AFTER : _ADDRESSES_AFTER + 2] == ("src_addr", "dst_addr")
assert (FIELDS[3], FIELDS[4], FIELDS[6]) == ("ip", "ip_version", "network_offset")  # decoded()
assert _V4_DST_AT == _V4_SRC_AT + _V4_ADDR and _V6_DST_AT == _V6_SRC_AT + _V6_ADDR
# fields always within 0..65535 (16 bits on the wire, 0 where absent): a generated evaluator
# indexes a 64 KiB port map with them without a bounds test
U16_FIELDS: Final = tuple(name for name in ("src_port", "dst_port")
                          if _TCP.fields[name].size == _UDP.fields[name].size == 2)  # fmt: skip
assert U16_FIELDS == ("src_port", "dst_port")

# decode_fields' result, typed: compiled callers (engine/run/shipped_*.py) get it as a C
# struct of 16 fields in registers, not a tuple object per frame
DecodedFields: TypeAlias = tuple[
    str, int, int, bool, int, int, int, int, bool, bool, int, int, int, int, int, int
]


def decode(data: bytes, n: int, linktype: int = link.LINKTYPE_ETHERNET) -> Decoded:
    """Decode the first ``n`` bytes of ``data`` (the frame's safe length)."""
    return decoded(data, decoder_for(linktype)(data, n))


def decoded(data: bytes, fields: DecodedFields) -> Decoded:
    """``fields`` (a decoder's tuple for ``data``) as a :class:`Decoded`, addresses read."""
    src = dst = b""
    if fields[3]:  # ip (the indices asserted below FIELDS)
        at, size = (_V4_SRC_AT, _V4_ADDR) if fields[4] == 4 else (_V6_SRC_AT, _V6_ADDR)
        at += fields[6]  # the destination address follows the source in either header
        src, dst = data[at : at + size], data[at + size : at + 2 * size]
    return Decoded._make((*fields[:_ADDRESSES_AFTER], src, dst, *fields[_ADDRESSES_AFTER:]))


def decode_fields(data: bytes, n: int) -> DecodedFields:
    """:func:`decode` as a plain tuple in ``FIELDS`` order (the per-packet path:
    one call, locals only, no object to fill in)."""
    if n < _ETH_SIZE:
        return _net_error("truncated_ethernet_header", 0, 0, 0)
    return decode_after_link(data, n, _ETH_SIZE, data[_ETH_TYPE_AT] << 8 | data[_ETH_TYPE_AT + 1])


def decode_after_link(data: bytes, n: i64, off: i64, ethertype: i64) -> DecodedFields:
    """:func:`decode_fields` from the EtherType a link header gave and the offset where its
    payload starts: VLAN tags, then IP, then TCP/UDP.  Every link type ends here, so the
    facts are the same after any link header (:func:`decoder_for`).  Offsets, lengths and
    each byte a field is built from are native 64-bit integers (``i64``): compiled, the
    arithmetic is machine instructions, not calls on tagged integers (the ``b*`` locals
    exist for that: a byte read into an ``i64`` before it is shifted)."""
    tags: i64 = 0
    while ethertype == _TAG_8021Q or ethertype == _TAG_8021AD:
        if off + _VLAN_SIZE > n:
            return _net_error("truncated_vlan_tag", 0, tags, 0)
        tags += 1
        b0: i64 = data[off + _VLAN_TYPE_AT]
        b1: i64 = data[off + _VLAN_TYPE_AT + 1]
        ethertype = b0 << 8 | b1
        off += _VLAN_SIZE
    net = off
    version: i64
    protocol: i64
    end: i64
    if ethertype == _TYPE_IPV4:
        if off + _V4_SIZE > n:
            return _net_error("truncated_ipv4_header", ethertype, tags, net)
        b0 = data[off + _V4_IHL_AT]
        ihl = ((b0 >> _V4_IHL_SHIFT) & _V4_IHL_MASK) * 4
        b0 = data[off + _V4_VERSION_AT]
        if (b0 >> _V4_VERSION_SHIFT) & _V4_VERSION_MASK != 4 or ihl < _V4_SIZE:
            return _net_error("invalid_ipv4_ihl", ethertype, tags, net)
        if off + ihl > n:
            return _net_error("truncated_ipv4_header", ethertype, tags, net)
        b0 = data[off + _V4_TOTAL_AT]
        b1 = data[off + _V4_TOTAL_AT + 1]
        total = b0 << 8 | b1
        if total < ihl:
            return _net_error("invalid_ipv4_total_length", ethertype, tags, net)
        if off + total > n:
            return _net_error("truncated_ipv4_packet", ethertype, tags, net)
        version = 4
        protocol = data[off + _V4_PROTO_AT]
        b0 = data[off + _V4_FRAG_AT]
        b1 = data[off + _V4_FRAG_AT + 1]
        if (b0 << 8 | b1) & _MF_OR_OFFSET:  # any fragment: IP, but no transport
            return ("", ethertype, tags, True, 4, protocol, net, 0, False, False, 0, 0, 0, 0, 0, 0)
        off += ihl
        end = net + total
    elif ethertype == _TYPE_IPV6:
        if off + _V6_SIZE > n:
            return _net_error("truncated_ipv6_header", ethertype, tags, net)
        b0 = data[off + _V6_VERSION_AT]
        if (b0 >> _V6_VERSION_SHIFT) & _V6_VERSION_MASK != 6:
            return _net_error("truncated_ipv6_header", ethertype, tags, net)
        b0 = data[off + _V6_PAYLOAD_AT]
        b1 = data[off + _V6_PAYLOAD_AT + 1]
        end = off + _V6_SIZE + (b0 << 8 | b1)
        if end > n:
            return _net_error("truncated_ipv6_packet", ethertype, tags, net)
        protocol = data[off + _V6_NEXT_AT]
        if protocol != PROTO_TCP and protocol != PROTO_UDP and protocol in _V6_EXTENSIONS:
            return _net_error("unsupported_ipv6_extension_headers", ethertype, tags, net)
        version = 6
        off += _V6_SIZE
    else:  # non-IP
        return ("", ethertype, tags, False, 0, 0, net, 0, False, False, 0, 0, 0, 0, 0, 0)
    # the transport header, inside the region [off, end) the IP header gives
    limit = n if n < end else end
    if protocol == PROTO_TCP:
        if off + _TCP_SIZE > limit:
            return ("truncated_tcp_header", ethertype, tags, True, version, protocol, net, off,
                    False, False, 0, 0, 0, 0, 0, 0)  # fmt: skip
        b0 = data[off + _TCP_DOFF_AT]
        hdr = ((b0 >> _TCP_DOFF_SHIFT) & _TCP_DOFF_MASK) * 4
        if hdr < _TCP_SIZE or off + hdr > limit:
            reason = "invalid_tcp_data_offset" if hdr < _TCP_SIZE else "truncated_tcp_header"
            return (reason, ethertype, tags, True, version, protocol, net, off,
                    False, False, 0, 0, 0, 0, 0, 0)  # fmt: skip
        p = off + _TCP_SEQ_AT
        b0 = data[p]
        b1 = data[p + 1]
        b2: i64 = data[p + 2]
        b3: i64 = data[p + 3]
        seq = b0 << 24 | b1 << 16 | b2 << 8 | b3
        b0 = data[off + _TCP_SRC_AT]
        b1 = data[off + _TCP_SRC_AT + 1]
        b2 = data[off + _TCP_DST_AT]
        b3 = data[off + _TCP_DST_AT + 1]
        flags = data[off + _TCP_FLAGS_AT]
        return ("", ethertype, tags, True, version, protocol, net, off, True, False,
                b0 << 8 | b1, b2 << 8 | b3, off + hdr, end - off - hdr, seq, flags)  # fmt: skip
    if protocol == PROTO_UDP:
        if off + _UDP_SIZE > limit:
            return ("truncated_udp_header", ethertype, tags, True, version, protocol, net, off,
                    False, False, 0, 0, 0, 0, 0, 0)  # fmt: skip
        b0 = data[off + _UDP_LEN_AT]
        b1 = data[off + _UDP_LEN_AT + 1]
        length = b0 << 8 | b1
        if length < _UDP_SIZE or off + length > end:
            reason = "invalid_udp_length" if length < _UDP_SIZE else "truncated_udp_payload"
            return (reason, ethertype, tags, True, version, protocol, net, off,
                    False, False, 0, 0, 0, 0, 0, 0)  # fmt: skip
        b0 = data[off + _UDP_SRC_AT]
        b1 = data[off + _UDP_SRC_AT + 1]
        b2 = data[off + _UDP_DST_AT]
        b3 = data[off + _UDP_DST_AT + 1]
        return ("", ethertype, tags, True, version, protocol, net, off, False, True,
                b0 << 8 | b1, b2 << 8 | b3, off + _UDP_SIZE, length - _UDP_SIZE, 0, 0)  # fmt: skip
    return ("", ethertype, tags, True, version, protocol, net, off, False, False, 0, 0, 0, 0, 0, 0)


def _net_error(reason: str, ethertype: int, tags: int, net: int) -> DecodedFields:
    """A frame that failed before its transport header: what was learned so far."""
    return (reason, ethertype, tags, False, 0, 0, net, 0, False, False, 0, 0, 0, 0, 0, 0)


# --- link types other than Ethernet (issue 15): find the IP layer, then decode_after_link
_SLL: Final = link.linux_sll_header
_SLL_SIZE: Final = _SLL.size
_SLL_TYPE_AT: Final = _SLL.big_endian_at("protocol_type", 2)
_SLL2: Final = link.linux_sll2_header
_SLL2_SIZE: Final = _SLL2.size
_SLL2_TYPE_AT: Final = _SLL2.big_endian_at("protocol_type", 2)
_NULL_SIZE: Final = link.null_header.size
_PPP_SIZE: Final = link.ppp_protocol.size
_PPP_AC: Final = link.PPP_ADDRESS_CONTROL
_AF_INET: Final = link.AF_INET
_AF_INET6: Final = link.AF_INET6_VALUES
UNKNOWN_LINK_TYPE: Final = "unknown_link_type"
_LINKTYPE_ETHERNET: Final = link.LINKTYPE_ETHERNET


def decode_linux_sll(data: bytes, n: int) -> DecodedFields:
    if n < _SLL_SIZE:
        return _net_error("truncated_link_header", 0, 0, 0)
    return decode_after_link(data, n, _SLL_SIZE, data[_SLL_TYPE_AT] << 8 | data[_SLL_TYPE_AT + 1])


def decode_linux_sll2(data: bytes, n: int) -> DecodedFields:
    if n < _SLL2_SIZE:
        return _net_error("truncated_link_header", 0, 0, 0)
    return decode_after_link(data, n, _SLL2_SIZE, data[_SLL2_TYPE_AT] << 8 | data[_SLL2_TYPE_AT + 1])


def _ip_at(data: bytes, n: int, off: int) -> DecodedFields:
    """Bare IP at ``off``: the version nibble names it (LINKTYPE_RAW, and after PPP/NULL)."""
    if off >= n:
        return _net_error("truncated_ipv4_header", 0, 0, off)
    version = data[off] >> 4
    if version == 4:
        return decode_after_link(data, n, off, _TYPE_IPV4)
    if version == 6:
        return decode_after_link(data, n, off, _TYPE_IPV6)
    return ("", 0, 0, False, 0, 0, off, 0, False, False, 0, 0, 0, 0, 0, 0)


def decode_raw(data: bytes, n: int) -> DecodedFields:
    return _ip_at(data, n, 0)


def decode_null(data: bytes, n: int) -> DecodedFields:
    """NULL/LOOP: the family word only says IP or not; the version nibble says which."""
    if n < _NULL_SIZE:
        return _net_error("truncated_link_header", 0, 0, 0)
    little = data[0] | data[1] << 8 | data[2] << 16 | data[3] << 24
    big = data[3] | data[2] << 8 | data[1] << 16 | data[0] << 24
    family = little if little < 0x10000 else big  # the writer's byte order is not recorded
    if family == _AF_INET or family in _AF_INET6:
        return _ip_at(data, n, _NULL_SIZE)
    return ("", 0, 0, False, 0, 0, _NULL_SIZE, 0, False, False, 0, 0, 0, 0, 0, 0)


def decode_ppp(data: bytes, n: int) -> DecodedFields:
    off = 2 if n >= 2 and data[:2] == _PPP_AC else 0
    if off >= n:
        return _net_error("truncated_link_header", 0, 0, 0)
    if data[off] & 1:  # RFC 1661 §6.5 protocol field compression: one byte
        protocol = data[off]
        off += 1
    elif off + _PPP_SIZE > n:
        return _net_error("truncated_link_header", 0, 0, 0)
    else:
        protocol = data[off] << 8 | data[off + 1]
        off += _PPP_SIZE
    if protocol == link.PPP_IPV4:
        return decode_after_link(data, n, off, _TYPE_IPV4)
    if protocol == link.PPP_IPV6:
        return decode_after_link(data, n, off, _TYPE_IPV6)
    return ("", 0, 0, False, 0, 0, off, 0, False, False, 0, 0, 0, 0, 0, 0)


def decode_ipv4(data: bytes, n: int) -> DecodedFields:
    return decode_after_link(data, n, 0, _TYPE_IPV4)


def decode_ipv6(data: bytes, n: int) -> DecodedFields:
    return decode_after_link(data, n, 0, _TYPE_IPV6)


def decode_unknown_link(data: bytes, n: int) -> DecodedFields:
    """A link type we cannot look into: no facts but the reason (kept to the snap length)."""
    return _net_error(UNKNOWN_LINK_TYPE, 0, 0, 0)


def decoder_for(linktype: int) -> Callable[[bytes, int], DecodedFields]:
    """The ``decode_fields``-like function for frames of ``linktype`` (a LINKTYPE_* value)."""
    if linktype == link.LINKTYPE_ETHERNET:
        return decode_fields
    if linktype == link.LINKTYPE_LINUX_SLL:
        return decode_linux_sll
    if linktype == link.LINKTYPE_LINUX_SLL2:
        return decode_linux_sll2
    if linktype == link.LINKTYPE_RAW:
        return decode_raw
    if linktype == link.LINKTYPE_IPV4:
        return decode_ipv4
    if linktype == link.LINKTYPE_IPV6:
        return decode_ipv6
    if linktype == link.LINKTYPE_NULL or linktype == link.LINKTYPE_LOOP:
        return decode_null
    if linktype == link.LINKTYPE_PPP or linktype == link.LINKTYPE_PPP_HDLC:
        return decode_ppp
    return decode_unknown_link


def decode_link(data: bytes, n: int, linktype: int) -> DecodedFields:
    """``decoder_for(linktype)(data, n)``, with Ethernet a direct (compiled: native) call: what
    the typed evaluator of a shipped policy calls for each frame."""
    if linktype == _LINKTYPE_ETHERNET:  # a Final: no attribute lookup on the (Python) link module
        return decode_fields(data, n)
    return decoder_for(linktype)(data, n)


KNOWN_LINK_TYPES: Final = frozenset({
    link.LINKTYPE_ETHERNET, link.LINKTYPE_LINUX_SLL, link.LINKTYPE_LINUX_SLL2, link.LINKTYPE_RAW,
    link.LINKTYPE_IPV4, link.LINKTYPE_IPV6, link.LINKTYPE_NULL, link.LINKTYPE_LOOP, link.LINKTYPE_PPP,
    link.LINKTYPE_PPP_HDLC,
})  # fmt: skip
