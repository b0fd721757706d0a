"""Frame decoding (SPEC §7): every success and every failure reason."""

from __future__ import annotations

import pytest
from packets import (
    CLIENT4,
    CLIENT6,
    SERVER4,
    SERVER6,
    SYN,
    ethernet,
    ipv4,
    ipv6,
    tcp,
    tcp4_frame,
    udp,
)

from pcapconstrictor.engine.analysis.decode import decode

IPV4, IPV6, ARP = 0x0800, 0x86DD, 0x0806
TCP, UDP, ICMP, ESP, ICMPV6, NO_NEXT = 6, 17, 1, 50, 58, 59
IPV6_EXTENSIONS = {  # SPEC §7.3
    0: "hop-by-hop", 43: "routing", 44: "fragment", 51: "AH",
    60: "destination options", 135: "mobility", 139: "HIP", 140: "shim6",
}  # fmt: skip


def decoded(frame: bytes, n: int | None = None):
    return decode(frame, len(frame) if n is None else n)


def tcp_over_ipv4(payload: bytes = b"", **ip_kwargs) -> bytes:
    return ethernet(IPV4, ipv4(TCP, tcp(50000, 443, payload), **ip_kwargs))


# --- §7.1 Ethernet / VLAN -------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 13])
def test_fewer_than_14_bytes_is_truncated_ethernet_header(size):
    assert decoded(ethernet(ARP, b"")[:size]).error == "truncated_ethernet_header"


def test_a_bare_14_byte_non_ip_frame_decodes_as_non_ip():
    d = decoded(ethernet(ARP, b""))
    assert d.ok and not d.ip and d.ethertype == ARP and d.vlan_tags == 0


@pytest.mark.parametrize("ethertype", [ARP, 0x88CC, 0x0000, 0xFFFF])
def test_other_ethertypes_decode_successfully_without_ip(ethertype):
    d = decoded(ethernet(ethertype, b"\x00" * 46))
    assert d.ok and not d.ip and not d.tcp and not d.udp
    assert d.ethertype == ethertype


def test_ethertype_is_read_big_endian_at_offset_12():
    frame = ethernet(IPV4, b"")
    assert frame[12:14] == b"\x08\x00"
    assert decoded(frame).ethertype == IPV4  # and so the IPv4 header is looked for...
    assert decoded(frame).error == "truncated_ipv4_header"  # ...and is missing


@pytest.mark.parametrize("tpid", [0x8100, 0x88A8])
def test_a_vlan_tag_is_skipped_and_counted(tpid):
    inner = ipv4(TCP, tcp(50000, 443, b"hello"))
    d = decoded(ethernet(IPV4, inner, vlans=((tpid, 100),)))
    assert d.ok and d.vlan_tags == 1 and d.ethertype == IPV4
    assert d.network_offset == 18
    assert d.payload_offset == 18 + 20 + 20 and d.payload_len == 5


def test_qinq_service_tag_then_customer_tag_are_both_skipped():
    inner = ipv6(UDP, udp(50000, 443, b"q" * 10))
    d = decoded(ethernet(IPV6, inner, vlans=((0x88A8, 10), (0x8100, 20))))
    assert d.ok and d.vlan_tags == 2 and d.network_offset == 22
    assert d.udp and d.payload_offset == 22 + 40 + 8 and d.payload_len == 10


def test_any_number_of_vlan_tags_is_skipped():
    tags = tuple((0x8100 if i % 2 else 0x88A8, i) for i in range(6))
    d = decoded(ethernet(IPV4, ipv4(TCP, tcp(1, 443)), vlans=tags))
    assert d.ok and d.vlan_tags == 6 and d.network_offset == 14 + 6 * 4 and d.tcp


def test_ethertype_0x9100_is_not_a_vlan_tag():
    # What follows 0x9100 would be a tag and a valid IPv4/TCP packet, were it a tag.
    frame = ethernet(IPV4, ipv4(TCP, tcp(50000, 443, b"x")), vlans=((0x9100, 5),))
    d = decoded(frame)
    assert d.ok and not d.ip and not d.tcp
    assert d.vlan_tags == 0 and d.ethertype == 0x9100


@pytest.mark.parametrize("present", [0, 1, 3])
def test_a_vlan_tag_without_its_4_bytes_is_truncated_vlan_tag(present):
    frame = ethernet(ARP, b"", vlans=((0x8100, 7),))
    assert len(frame) == 18
    assert decoded(frame[: 14 + present]).error == "truncated_vlan_tag"


def test_a_second_tag_cut_short_is_truncated_vlan_tag():
    frame = ethernet(ARP, b"", vlans=((0x88A8, 1), (0x8100, 2)))
    assert decoded(frame[:21]).error == "truncated_vlan_tag"
    assert decoded(frame).ok


# --- §7.2 IPv4 ------------------------------------------------------------------------------


def test_ipv4_tcp_fields_are_decoded():
    frame = tcp4_frame(b"abcdef", sport=50123, dport=443, seq=0xDEADBEEF, flags=0x18)
    d = decoded(frame)
    assert d.ok and d.ip and d.tcp and not d.udp
    assert (d.ip_version, d.protocol) == (4, TCP)
    assert (d.src_addr, d.dst_addr) == (CLIENT4, SERVER4)
    assert (d.src_port, d.dst_port) == (50123, 443)
    assert (d.tcp_seq, d.tcp_flags) == (0xDEADBEEF, 0x18)
    assert (d.network_offset, d.transport_offset, d.payload_offset, d.payload_len) == (14, 34, 54, 6)


@pytest.mark.parametrize("size", [0, 10, 19])
def test_fewer_than_20_ip_bytes_is_truncated_ipv4_header(size):
    frame = tcp_over_ipv4()
    assert decoded(frame[: 14 + size]).error == "truncated_ipv4_header"


@pytest.mark.parametrize("version", [0, 5, 6, 15])
def test_ipv4_ethertype_with_another_version_nibble_is_invalid_ipv4_ihl(version):
    assert decoded(tcp_over_ipv4(version=version)).error == "invalid_ipv4_ihl"


@pytest.mark.parametrize("ihl", [0, 1, 4])
def test_ihl_below_5_words_is_invalid_ipv4_ihl(ihl):
    assert decoded(tcp_over_ipv4(ihl=ihl)).error == "invalid_ipv4_ihl"


def test_ihl_bytes_not_all_captured_is_truncated_ipv4_header():
    # IHL 15 announces 60 header bytes; only 20 + 20 (TCP) + 5 are there.
    frame = tcp_over_ipv4(b"hello", ihl=15, total_length=60)
    assert len(frame) - 14 < 60
    assert decoded(frame).error == "truncated_ipv4_header"


def test_ipv4_options_are_skipped():
    options = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    frame = ethernet(IPV4, ipv4(TCP, tcp(50000, 443, b"data"), options=options))
    d = decoded(frame)
    assert d.ok and d.tcp
    assert d.transport_offset == 14 + 24 and d.payload_offset == 14 + 24 + 20 and d.payload_len == 4


@pytest.mark.parametrize("total_length", [0, 1, 19])
def test_total_length_below_the_header_length_is_invalid_ipv4_total_length(total_length):
    # total_length 0 is what TSO captures carry (SPEC §7.2)
    assert decoded(tcp_over_ipv4(b"x", total_length=total_length)).error == "invalid_ipv4_total_length"


def test_total_length_below_a_header_with_options_is_invalid_ipv4_total_length():
    frame = ethernet(IPV4, ipv4(TCP, tcp(1, 443), options=b"\x01" * 8, total_length=24))
    assert decoded(frame).error == "invalid_ipv4_total_length"


def test_total_length_beyond_the_captured_bytes_is_truncated_ipv4_packet():
    frame = tcp_over_ipv4(b"0123456789")
    assert decoded(frame).ok
    assert decoded(frame[:-1]).error == "truncated_ipv4_packet"
    assert decoded(frame, len(frame) - 1).error == "truncated_ipv4_packet"  # only n bytes count


def test_a_tcp_header_cut_by_the_capture_is_reported_by_the_ip_layer_first():
    # The TCP "captured" bound can only bite after the IPv4 total length check passed,
    # which already needs every IP byte: a capture cut inside TCP is an IPv4 error.
    frame = tcp_over_ipv4()
    assert decoded(frame[: 14 + 20 + 10]).error == "truncated_ipv4_packet"


@pytest.mark.parametrize(("mf", "offset"), [(1, 0), (0, 1), (1, 185), (0, 0x1FFF)])
def test_ipv4_fragments_decode_as_ip_without_transport(mf, offset):
    frame = tcp_over_ipv4(b"first fragment bytes", more_fragments=mf, fragment_offset=offset)
    d = decoded(frame)
    assert d.ok and d.ip and d.ip_version == 4 and d.protocol == TCP
    assert not d.tcp and not d.udp and d.payload_len == 0
    assert (d.src_addr, d.dst_addr) == (CLIENT4, SERVER4)


def test_a_first_fragment_too_short_for_its_transport_header_still_decodes():
    # No transport is looked at for any fragment, so a 4-byte "UDP header" is no error.
    frame = ethernet(IPV4, ipv4(UDP, b"\x01\xbb\x01\xbb", more_fragments=1))
    d = decoded(frame)
    assert d.ok and d.ip and not d.udp


def test_dont_fragment_alone_is_not_a_fragment():
    d = decoded(tcp_over_ipv4(b"x", dont_fragment=1))
    assert d.tcp


def test_ethernet_trailer_after_the_ipv4_total_length_is_ignored():
    frame = tcp4_frame(b"abc") + b"\x00" * 9  # minimum-size frame padding
    d = decoded(frame)
    assert d.ok and d.payload_offset == 54 and d.payload_len == 3


# --- §7.3 IPv6 ------------------------------------------------------------------------------


def test_ipv6_udp_fields_are_decoded():
    d = decoded(ethernet(IPV6, ipv6(UDP, udp(443, 61000, b"p" * 7))))
    assert d.ok and d.ip and d.udp and (d.ip_version, d.protocol) == (6, UDP)
    assert (d.src_addr, d.dst_addr) == (CLIENT6, SERVER6)
    assert (d.src_port, d.dst_port) == (443, 61000)
    assert (d.transport_offset, d.payload_offset, d.payload_len) == (54, 62, 7)


@pytest.mark.parametrize("size", [0, 20, 39])
def test_fewer_than_40_ip_bytes_is_truncated_ipv6_header(size):
    frame = ethernet(IPV6, ipv6(TCP, tcp(1, 443)))
    assert decoded(frame[: 14 + size]).error == "truncated_ipv6_header"


@pytest.mark.parametrize("version", [4, 0, 7])
def test_ipv6_ethertype_with_another_version_nibble_is_truncated_ipv6_header(version):
    frame = ethernet(IPV6, ipv6(TCP, tcp(1, 443), version=version))
    assert decoded(frame).error == "truncated_ipv6_header"


def test_payload_length_beyond_the_captured_bytes_is_truncated_ipv6_packet():
    frame = ethernet(IPV6, ipv6(TCP, tcp(1, 443, b"abc")))
    assert decoded(frame).ok
    assert decoded(frame[:-1]).error == "truncated_ipv6_packet"


@pytest.mark.parametrize("next_header", sorted(IPV6_EXTENSIONS))
def test_every_ipv6_extension_header_is_unsupported(next_header):
    frame = ethernet(IPV6, ipv6(next_header, b"\x06\x00" + b"\x00" * 6 + tcp(1, 443)))
    assert decoded(frame).error == "unsupported_ipv6_extension_headers"


def test_the_ipv6_payload_length_is_checked_before_the_next_header():
    frame = ethernet(IPV6, ipv6(0, b"\x00" * 8, payload_length=100))
    assert decoded(frame).error == "truncated_ipv6_packet"


def test_bytes_after_the_ipv6_payload_length_are_ignored():
    frame = ethernet(IPV6, ipv6(TCP, tcp(1, 443, b"abcd"))) + b"\xee" * 6
    d = decoded(frame)
    assert d.ok and d.payload_offset == 14 + 40 + 20 and d.payload_len == 4


# --- §7.4 TCP -------------------------------------------------------------------------------


def test_tcp_header_running_past_the_ip_region_is_truncated_tcp_header():
    # The IP region holds only 10 TCP bytes; the captured frame has 20 more after it.
    segment = tcp(50000, 443, b"")
    frame = ethernet(IPV4, ipv4(TCP, segment, total_length=20 + 10))
    assert len(frame) >= 14 + 20 + 20
    assert decoded(frame).error == "truncated_tcp_header"


def test_tcp_options_running_past_the_ip_region_is_truncated_tcp_header():
    segment = tcp(50000, 443, b"\x00" * 40, data_offset=15)  # 60-byte header announced
    frame = ethernet(IPV4, ipv4(TCP, segment, total_length=20 + 40))
    assert len(frame) == 14 + 20 + 60
    assert decoded(frame).error == "truncated_tcp_header"


@pytest.mark.parametrize("words", [0, 1, 4])
def test_data_offset_below_5_words_is_invalid_tcp_data_offset(words):
    frame = ethernet(IPV4, ipv4(TCP, tcp(50000, 443, b"\x00" * 30, data_offset=words)))
    assert decoded(frame).error == "invalid_tcp_data_offset"


def test_tcp_options_are_skipped_never_parsed():
    options = b"\x01\x01\x08\x0a" + b"\xff" * 8  # NOP NOP timestamps (garbage values)
    d = decoded(tcp4_frame(b"payload", options=options))
    assert d.ok and d.tcp and d.payload_offset == 54 + 12 and d.payload_len == 7


def test_a_tcp_segment_without_payload_decodes_with_payload_length_0():
    d = decoded(tcp4_frame(b"", flags=SYN))
    assert d.ok and d.tcp and d.payload_len == 0 and d.tcp_flags == SYN


def test_tcp_payload_ends_at_the_ip_region_end():
    frame = tcp4_frame(b"12345") + b"\x17\x03\x03\x00\x10"  # trailer that looks like TLS
    d = decoded(frame)
    assert d.payload_len == 5


# --- §7.5 UDP -------------------------------------------------------------------------------


def test_udp_header_running_past_the_ip_region_is_truncated_udp_header():
    frame = ethernet(IPV4, ipv4(UDP, udp(50000, 443, b""), total_length=20 + 7))
    assert decoded(frame).error == "truncated_udp_header"


@pytest.mark.parametrize("length", [0, 1, 7])
def test_udp_length_below_8_is_invalid_udp_length(length):
    frame = ethernet(IPV4, ipv4(UDP, udp(50000, 443, b"data", length=length)))
    assert decoded(frame).error == "invalid_udp_length"


def test_udp_length_past_the_ip_region_is_truncated_udp_payload():
    frame = ethernet(IPV4, ipv4(UDP, udp(50000, 443, b"data", length=8 + 5)))
    assert decoded(frame).error == "truncated_udp_payload"


def test_udp_length_past_the_ipv6_region_is_truncated_udp_payload():
    frame = ethernet(IPV6, ipv6(UDP, udp(50000, 443, b"data", length=8 + 5)))
    assert decoded(frame).error == "truncated_udp_payload"


def test_udp_payload_is_udp_length_minus_8_and_ip_bytes_beyond_it_are_ignored():
    frame = ethernet(IPV4, ipv4(UDP, udp(50000, 443, b"data" + b"\x00" * 6, length=8 + 4)))
    d = decoded(frame)
    assert d.ok and d.udp and d.payload_offset == 42 and d.payload_len == 4


def test_empty_udp_payload_decodes():
    d = decoded(ethernet(IPV4, ipv4(UDP, udp(53, 53))))
    assert d.ok and d.udp and d.payload_len == 0 and (d.src_port, d.dst_port) == (53, 53)


# --- §7.6 other protocols -------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [ICMP, ESP, 47, 132])
def test_ipv4_other_protocols_decode_as_ip_without_transport(protocol):
    d = decoded(ethernet(IPV4, ipv4(protocol, b"\x08\x00" + b"\x00" * 30)))
    assert d.ok and d.ip and d.protocol == protocol and not d.tcp and not d.udp


@pytest.mark.parametrize("next_header", [ICMPV6, NO_NEXT, ESP])
def test_ipv6_other_next_headers_decode_as_ip_without_transport(next_header):
    d = decoded(ethernet(IPV6, ipv6(next_header, b"\x80\x00" + b"\x00" * 30)))
    assert d.ok and d.ip and d.ip_version == 6 and d.protocol == next_header
    assert not d.tcp and not d.udp
