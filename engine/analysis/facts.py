"""Declarations of the facts rules may read, per namespace.

Each analyzer declares what it publishes; the rule compiler checks every name
a rule uses against these tables and turns it into the Python expression that
reads it.  ``frame``/``decode``/``ip``/``tcp``/``udp`` come from the runner and
the decoder; ``tls``/``quic`` from the analyzers.
"""

from __future__ import annotations

from typing import NamedTuple


class Fact(NamedTuple):
    name: str  # dotted, as written in rule files
    type: str  # "bool" or "int"
    source: str  # Python expression in the generated evaluator
    doc: str


def table(namespace: str, prefix: str, rows: list[tuple[str, str, str, str]]) -> dict[str, Fact]:
    """Fact table for one namespace; ``rows`` are (name, type, attribute, doc).
    A fact's source is ``prefix + attribute``: ``"t."`` reads an analyzer's facts
    object, ``"d_"`` a decoder field the evaluator holds in a local."""
    return {
        f"{namespace}.{name}": Fact(f"{namespace}.{name}", typ, f"{prefix}{attr}", doc)
        for name, typ, attr, doc in rows
    }


FRAME_FACTS = {
    "frame.caplen": Fact("frame.caplen", "int", "n", "bytes captured"),
    "frame.orig_len": Fact("frame.orig_len", "int", "orig_len", "length on the wire"),
    "frame.effective_len": Fact(
        "frame.effective_len", "int", "eff", "min(caplen, orig_len): bytes that may be written"
    ),
    "frame.inconsistent": Fact("frame.inconsistent", "bool", "inconsistent", "orig_len < caplen (SPEC §6.1)"),
}

DECODED = "d_"  # decoder fields are locals of the evaluator: d_src_port, d_payload_len, ...

DECODE_FACTS = {
    "decode.ok": Fact("decode.ok", "bool", "(not d_error)", "Ethernet/IP/TCP/UDP decoded (SPEC §7)"),
    "decode.link_type_known": Fact(
        "decode.link_type_known", "bool", "(d_error != 'unknown_link_type')",
        "the decoder knows the frame's link type (Ethernet, Linux cooked, raw IP, loopback, PPP)",
    ),
    **table("decode", DECODED, [
        ("ip", "bool", "ip", "an IPv4 or IPv6 header was decoded"),
        ("tcp", "bool", "tcp", "a TCP header was decoded"),
        ("udp", "bool", "udp", "a UDP header was decoded"),
        ("vlan_tags", "int", "vlan_tags", "802.1Q/802.1ad tags before the EtherType"),
        ("ethertype", "int", "ethertype", "EtherType after the VLAN tags"),
    ]),
    **table("ip", DECODED, [
        ("version", "int", "ip_version", "4 or 6"),
        ("protocol", "int", "protocol", "IPv4 protocol / IPv6 next header"),
    ]),
    **table("tcp", DECODED, [
        ("src_port", "int", "src_port", "TCP source port"),
        ("dst_port", "int", "dst_port", "TCP destination port"),
        ("seq", "int", "tcp_seq", "sequence number"),
        ("flags", "int", "tcp_flags", "flags byte (offset 13)"),
        ("payload_offset", "int", "payload_offset", "frame offset of the TCP payload"),
        ("payload_len", "int", "payload_len", "TCP payload bytes inside the IP packet"),
    ]),
    **table("udp", DECODED, [
        ("src_port", "int", "src_port", "UDP source port"),
        ("dst_port", "int", "dst_port", "UDP destination port"),
        ("payload_offset", "int", "payload_offset", "frame offset of the UDP payload"),
        ("payload_len", "int", "payload_len", "UDP length - 8"),
    ]),
    # RFC 9443 §7 demultiplexes DTLS, QUIC, STUN, ... on one port by this byte (issue 16)
    "udp.first_byte": Fact(
        "udp.first_byte", "int",
        f"(data[{DECODED}payload_offset] if {DECODED}udp and {DECODED}payload_len > 0"
        f" and {DECODED}payload_offset < n else -1)",
        "first byte of the UDP payload (-1 if none)",
    ),
}  # fmt: skip
