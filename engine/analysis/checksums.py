"""Internet checksums of a reinflated frame: the IPv4 header checksum and the TCP/UDP checksum
over the IPv4 or IPv6 pseudo-header (RFC 1071, RFC 768, RFC 9293, RFC 8200 §8.1).

The main tool's ``reinflate`` with ``checksum_policy = recompute`` (SPEC §15.6) rewrites them in
every complete Ethernet frame and counts, by reason, the frames it leaves alone: another link
type, fragments, malformed or cut headers, lengths that disagree, other protocols, IPv4 total
length 0.  The checksum arithmetic lives here and nowhere else; every offset comes from the
``formats`` schemas.
"""

from __future__ import annotations

import struct

from pcapconstrictor.formats.derived import ethernet as ethernet_format
from pcapconstrictor.formats.derived import ip as ip_format
from pcapconstrictor.formats.derived import link as link_format
from pcapconstrictor.formats.derived import transport as transport_format

_ETH, _VLAN = ethernet_format.ethernet_header, ethernet_format.vlan_tag
_IP4, _IP6 = ip_format.ipv4_header, ip_format.ipv6_header
_TCP, _UDP = transport_format.tcp_header, transport_format.udp_header
_LINKTYPE_ETHERNET = link_format.LINKTYPE_ETHERNET
_ETHERTYPE_IPV4, _ETHERTYPE_IPV6 = ethernet_format.ETHERTYPE_IPV4, ethernet_format.ETHERTYPE_IPV6
_IPPROTO_TCP, _IPPROTO_UDP = ip_format.IPPROTO_TCP, ip_format.IPPROTO_UDP
_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)  # the main tool also walks 0x9100 tags (SPEC §15.3)
_IPV6_OPTION_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options: walked
_IPV6_FRAGMENT, _IPV6_AH = 44, 51
_IP4_CHECKSUM = _IP4.offset("header_checksum")
_IP4_SRC = _IP4.offset("src")
_IP6_SRC = _IP6.offset("src")
_TCP_CHECKSUM, _UDP_CHECKSUM = _TCP.offset("checksum"), _UDP.offset("checksum")

# why a frame's checksums were left as they are (the main tool's skip reasons)
SKIP_REASONS = ("unsupported_link_type", "decode_failed", "malformed", "fragment", "not_tcp_udp",
                "incomplete", "length_mismatch", "ipv4_total_length_zero")  # fmt: skip


class Skip(Exception):
    """The frame's checksums are not recomputed; ``str()`` is one of SKIP_REASONS."""


def ones_complement_sum(data: bytes | bytearray | memoryview, start: int = 0) -> int:
    """The 16-bit one's complement sum of ``data`` (an odd last byte padded with zero), folded."""
    total = start
    even = len(data) & ~1
    total += sum(struct.unpack_from(f"!{even // 2}H", data))
    if len(data) & 1:
        total += data[-1] << 8
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def internet_checksum(data: bytes | bytearray | memoryview, start: int = 0) -> int:
    return ~ones_complement_sum(data, start) & 0xFFFF


def _transport_checksum(pseudo: int, segment: memoryview) -> int:
    value = internet_checksum(segment, pseudo)
    return 0xFFFF if value == 0 else value  # 0 means "no checksum" to UDP (RFC 768)


def recompute_checksums(frame: bytearray, linktype: int) -> str:
    """Rewrite the checksums of one frame in place; return ``"tcp"`` or ``"udp"`` (an IPv4
    frame had its header checksum rewritten too: ``"ipv4/tcp"``), or raise :class:`Skip`."""
    if linktype != _LINKTYPE_ETHERNET:
        raise Skip("unsupported_link_type")
    net, ethertype = _network_offset(frame)
    if ethertype == _ETHERTYPE_IPV4:
        return _ipv4(frame, net)
    if ethertype == _ETHERTYPE_IPV6:
        return _ipv6(frame, net)
    raise Skip("decode_failed")


def _network_offset(frame: bytearray) -> tuple[int, int]:
    if len(frame) < _ETH.size:
        raise Skip("incomplete")
    offset, ethertype = _ETH.size, int.from_bytes(frame[_ETH.offset("ethertype"):_ETH.size], "big")
    while ethertype in _VLAN_TPIDS:
        if len(frame) < offset + _VLAN.size:
            raise Skip("incomplete")
        at = offset + _VLAN.offset("ethertype")
        ethertype = int.from_bytes(frame[at:at + 2], "big")
        offset += _VLAN.size
    return offset, ethertype


def _ipv4(frame: bytearray, net: int) -> str:
    if len(frame) < net + _IP4.size:
        raise Skip("incomplete")
    version, ihl = frame[net] >> 4, (frame[net] & 0x0F) * 4
    if version != 4:
        raise Skip("decode_failed")
    if ihl < _IP4.size:
        raise Skip("malformed")
    if len(frame) < net + ihl:
        raise Skip("incomplete")
    fields = _IP4.parse_fast(frame, net)
    total = fields["total_length"]
    if total == 0:
        raise Skip("ipv4_total_length_zero")
    if total < ihl:
        raise Skip("length_mismatch")
    if len(frame) < net + total:
        raise Skip("incomplete")
    if fields["more_fragments"] or fields["fragment_offset"]:
        raise Skip("fragment")
    protocol = fields["protocol"]
    transport, end = net + ihl, net + total
    pseudo = ones_complement_sum(frame[net + _IP4_SRC:net + _IP4_SRC + 8], protocol + (end - transport))
    kind = _transport(frame, protocol, transport, end, pseudo)
    frame[net + _IP4_CHECKSUM:net + _IP4_CHECKSUM + 2] = b"\0\0"
    frame[net + _IP4_CHECKSUM:net + _IP4_CHECKSUM + 2] = (
        internet_checksum(frame[net:net + ihl]).to_bytes(2, "big"))
    return "ipv4/" + kind


def _ipv6(frame: bytearray, net: int) -> str:
    if len(frame) < net + _IP6.size:
        raise Skip("incomplete")
    if frame[net] >> 4 != 6:
        raise Skip("decode_failed")
    fields = _IP6.parse_fast(frame, net)
    end = net + _IP6.size + fields["payload_length"]
    if len(frame) < end:
        raise Skip("incomplete")
    protocol, transport = fields["next_header"], net + _IP6.size
    while protocol in _IPV6_OPTION_HEADERS:  # RFC 8200 §4.3-§4.6: (length + 1) * 8 bytes each
        if transport + 2 > end:
            raise Skip("incomplete")
        size = (frame[transport + 1] + 1) * 8
        if transport + size > end:
            raise Skip("incomplete")
        protocol, transport = frame[transport], transport + size
    if protocol == _IPV6_FRAGMENT:
        raise Skip("fragment")
    if protocol == _IPV6_AH:
        raise Skip("decode_failed")
    length = end - transport
    addresses = frame[net + _IP6_SRC:net + _IP6_SRC + 32]
    pseudo = ones_complement_sum(addresses, (length >> 16) + (length & 0xFFFF) + protocol)
    return _transport(frame, protocol, transport, end, pseudo)


def _transport(frame: bytearray, protocol: int, start: int, end: int, pseudo: int) -> str:
    """Rewrite the TCP or UDP checksum of the segment ``frame[start:end]``."""
    if protocol == _IPPROTO_TCP:
        if end - start < _TCP.size:
            raise Skip("incomplete")
        header = (frame[start + _TCP.offset("offset_reserved")] >> 4) * 4
        if header < _TCP.size or end - start < header:
            raise Skip("incomplete")
        at = start + _TCP_CHECKSUM
    elif protocol == _IPPROTO_UDP:
        if end - start < _UDP.size:
            raise Skip("length_mismatch")
        if _UDP.parse_fast(frame, start)["length"] != end - start:
            raise Skip("length_mismatch")
        at = start + _UDP_CHECKSUM
    else:
        raise Skip("not_tcp_udp")
    frame[at:at + 2] = b"\0\0"
    frame[at:at + 2] = _transport_checksum(pseudo, memoryview(frame)[start:end]).to_bytes(2, "big")
    return "tcp" if protocol == _IPPROTO_TCP else "udp"
