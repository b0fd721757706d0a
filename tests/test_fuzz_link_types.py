"""Fuzzing the link-layer decoders differentially (the "every capture" link types).

The link header only says where the IP packet starts: the same IP packets, behind an Ethernet
header or a Linux cooked one (SLL, SLL2), bare (RAW, IPV4/IPV6), behind BSD loopback's family
word (NULL, LOOP) or PPP's protocol field (with or without HDLC framing), must be decided
alike, a cut keeping the same bytes after the link header.  The packets are test_fuzz_policy's
and test_fuzz_protocols' conversations, mutated; a packet whose version nibble a mutation made
disagree with its EtherType is left out (the bare link types read IP's version from the
nibble, Ethernet from the EtherType: the two may rightly differ).
"""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_policy import (
    ANY_FRAMES,
    CONFIG_TEXTS,
    FRAME_MUTATIONS,
    MACS,
    apply_mutations,
    check_decision,
    config,
    evaluator,
    network_header,
)
from test_fuzz_protocols import protocol_conversations

from pcapconstrictor.formats import link

IPV4, IPV6 = 0x0800, 0x86DD


def link_header(linktype: int, ethertype: int) -> bytes:
    """The header of ``linktype`` in front of an IP packet of ``ethertype`` (IPv4 or IPv6)."""
    v6 = ethertype == IPV6
    if linktype == link.LINKTYPE_ETHERNET:
        return MACS + struct.pack(">H", ethertype)
    if linktype == link.LINKTYPE_LINUX_SLL:  # packet type, ARPHRD_ETHER, address length, address, protocol
        return struct.pack(">HHH8sH", 0, 1, 6, MACS[:6], ethertype)
    if linktype == link.LINKTYPE_LINUX_SLL2:  # protocol, reserved, ifindex, ARPHRD, type, address
        return struct.pack(">HHIHBB8s", ethertype, 0, 3, 1, 0, 6, MACS[:6])
    if linktype == link.LINKTYPE_NULL:  # AF_INET or BSD's AF_INET6 (24), the writer's byte order
        return struct.pack("<I", 24 if v6 else 2)
    if linktype == link.LINKTYPE_LOOP:
        return struct.pack(">I", 24 if v6 else 2)
    if linktype == link.LINKTYPE_PPP:  # RFC 1332 / 5072 protocol numbers
        return struct.pack(">H", 0x57 if v6 else 0x21)
    if linktype == link.LINKTYPE_PPP_HDLC:
        return b"\xff\x03" + struct.pack(">H", 0x57 if v6 else 0x21)
    return b""  # RAW, IPV4, IPV6: bare IP


LINK_TYPES = st.sampled_from([link.LINKTYPE_LINUX_SLL, link.LINKTYPE_LINUX_SLL2, link.LINKTYPE_RAW,
                              "bare", link.LINKTYPE_NULL, link.LINKTYPE_LOOP, link.LINKTYPE_PPP,
                              link.LINKTYPE_PPP_HDLC])  # fmt: skip
# every config but "tiny", whose snap length of 60 counts the link header too
SNAP_FREE_CONFIGS = st.sampled_from(sorted(name for name in CONFIG_TEXTS if name != "tiny"))


Packets = list[tuple[int, bytes, int]]  # (EtherType, IP packet, orig_len)


def ip_packets(frames: list[tuple[bytes, int]]) -> Packets:
    """(EtherType, IP packet, orig_len less the Ethernet header) of each frame whose EtherType
    is IPv4 or IPv6 and agrees with the packet's version nibble."""
    out = []
    for frame, orig in frames:
        network = network_header(frame)
        if network is None:
            continue
        ethertype, off = network
        if off < len(frame) and (ethertype, frame[off] >> 4) in ((IPV4, 4), (IPV6, 6)):
            out.append((ethertype, frame[off:], max(0, orig - off)))
    return out


def decisions(name: str, linktype: int, packets: Packets) -> list[tuple[int, str] | None]:
    """Per packet behind ``linktype``'s header: (bytes kept after the header, rule) of a cut,
    None when kept whole; each decision checked as test_fuzz_policy checks one."""
    ev, cfg = evaluator(name), config(name)
    ev.use_link_type(linktype)
    out = []
    for i, (ethertype, packet, orig) in enumerate(packets):
        head = link_header(linktype, ethertype)
        data = head + packet
        out_len, did = ev.evaluate(data, orig + len(head), 1_700_000_000 * 10**9 + i * 1000)
        decision = ev.decisions[did]
        if linktype == link.LINKTYPE_ETHERNET:
            check_decision(ev, cfg, data, orig + len(head), out_len, did)
        out.append((out_len - len(head), decision.rule.id) if decision.kind == "cut" else None)
    return out


@given(frames=st.one_of(ANY_FRAMES, protocol_conversations()), name=SNAP_FREE_CONFIGS,
       mutations=FRAME_MUTATIONS, linktype=LINK_TYPES)  # fmt: skip
def test_the_same_ip_packets_are_decided_alike_behind_every_link_header(frames, name, mutations, linktype):
    packets = ip_packets(apply_mutations(frames, mutations))
    if linktype == "bare":  # LINKTYPE_IPV4 or LINKTYPE_IPV6: one version only
        if not packets:
            return
        version = packets[0][0]
        packets = [p for p in packets if p[0] == version]
        linktype = link.LINKTYPE_IPV6 if version == IPV6 else link.LINKTYPE_IPV4
    assert decisions(name, linktype, packets) == decisions(name, link.LINKTYPE_ETHERNET, packets)
