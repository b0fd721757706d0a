"""Fuzzing the decoder, the TLS/QUIC analyzers and the shipped rules (issue 6, part 1a).

Whatever a frame holds, the policy must return a length in ``[0, baseline]`` (SPEC §6.1), a
protocol cut must keep every Ethernet/IP/TCP/UDP header and save at least
``min_saved_bytes_per_packet`` (§6.3), and the written record must be a prefix of the frame
with its orig_len untouched (§6.4, §11.2).  Frames here are built with plain ``struct``: an
encoding independent of the ``formats/`` schemas the engine reads through.

Example counts come from the Hypothesis profile (tests/conftest.py): "ci" by default,
``--hypothesis-profile=long`` for the long run (README "Fuzzing").
"""

from __future__ import annotations

import os
import struct
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import GOLDEN, GOLDEN_CASES
from pcapconstrictor.engine.analysis.reasons import UPSTREAM_REASONS
from pcapconstrictor.engine.config import Config, output_snaplen, parse_config_text
from pcapconstrictor.engine.run.pipeline import Pipeline
from pcapconstrictor.engine.run.policy_select import select_policy
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sources.pcap_reader import PcapReader
from pcapconstrictor.grammar import Evaluator, build_evaluator, load_policy, shipped_policy_path

# --- frames, built independently of formats/ -------------------------------------------------

MACS = bytes.fromhex("020000000002020000000001")
CLIENT4, SERVER4 = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7])
CLIENT6 = bytes.fromhex("20010db8000000000000000000000001")
SERVER6 = bytes.fromhex("20010db8000000000000000000000002")
VLAN_TPIDS = (0x8100, 0x88A8)
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ESP = 1, 6, 17, 50


def ethernet(ethertype: int, payload: bytes, vlans: tuple[int, ...] = ()) -> bytes:
    """Ethernet II; ``vlans`` are the TPIDs of the tags, outermost first (TCI = VLAN 100)."""
    types = [*vlans, ethertype]
    out = MACS + struct.pack(">H", types[0])
    for inner in types[1:]:
        out += struct.pack(">HH", 100, inner)
    return out + payload


def ipv4(proto: int, src: bytes, dst: bytes, payload: bytes) -> bytes:
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0,
                       src, dst) + payload  # fmt: skip


def ipv6(next_header: int, src: bytes, dst: bytes, payload: bytes) -> bytes:
    return struct.pack(">IHBB16s16s", 6 << 28, len(payload), next_header, 64, src, dst) + payload


def tcp(sport: int, dport: int, seq: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def ip_frame(v6: bool, proto: int, forward: bool, segment: bytes, vlans: tuple[int, ...] = ()) -> bytes:
    """An IP packet between the test client and server, client to server if ``forward``."""
    if v6:
        src, dst = (CLIENT6, SERVER6) if forward else (SERVER6, CLIENT6)
        return ethernet(0x86DD, ipv6(proto, src, dst, segment), vlans)
    src, dst = (CLIENT4, SERVER4) if forward else (SERVER4, CLIENT4)
    return ethernet(0x0800, ipv4(proto, src, dst, segment), vlans)


def varint(value: int, size: int) -> bytes:
    """RFC 9000 §16 variable-length integer in exactly ``size`` bytes (non-minimal allowed)."""
    prefix = {1: 0, 2: 1, 4: 2, 8: 3}[size]
    assert value < 1 << (8 * size - 2)
    return ((prefix << (8 * size - 2)) | value).to_bytes(size, "big")


def varint_size(value: int) -> int:
    return next(size for size in (1, 2, 4, 8) if value < 1 << (8 * size - 2))


# --- an independent reading of SPEC §7, for oracles and for aiming mutations ------------------


def _be16(b: bytes, off: int) -> int:
    return (b[off] << 8) | b[off + 1]


def network_header(frame: bytes) -> tuple[int, int] | None:
    """(the EtherType after any VLAN tags, the offset of the header it names); None for a frame
    shorter than an Ethernet header.  A VLAN tag cut short leaves its TPID as the EtherType."""
    n = len(frame)
    if n < 14:
        return None
    off, ethertype = 14, _be16(frame, 12)
    while ethertype in VLAN_TPIDS and off + 4 <= n:
        ethertype, off = _be16(frame, off + 2), off + 4
    return ethertype, off


def transport_payload(frame: bytes) -> tuple[str, int, int] | None:
    """("tcp"|"udp", payload offset, payload length) when SPEC §7 decodes the frame to TCP/UDP."""
    network = network_header(frame)
    if network is None:
        return None
    (ethertype, off), n = network, len(frame)
    if ethertype == 0x0800:
        if off + 20 > n:
            return None
        ihl = (frame[off] & 0x0F) * 4
        total = _be16(frame, off + 2)
        if frame[off] >> 4 != 4 or ihl < 20 or off + ihl > n or total < ihl or off + total > n:
            return None
        if _be16(frame, off + 6) & 0x3FFF:  # MF or a fragment offset
            return None
        proto, start, end = frame[off + 9], off + ihl, off + total
    elif ethertype == 0x86DD:
        if off + 40 > n or frame[off] >> 4 != 6 or off + 40 + _be16(frame, off + 4) > n:
            return None
        proto, start, end = frame[off + 6], off + 40, off + 40 + _be16(frame, off + 4)
    else:
        return None
    if proto == IPPROTO_TCP and start + 20 <= end:
        hdr = (frame[start + 12] >> 4) * 4
        if hdr >= 20 and start + hdr <= end:
            return "tcp", start + hdr, end - start - hdr
    if proto == IPPROTO_UDP and start + 8 <= end:
        length = _be16(frame, start + 4)
        if length >= 8 and start + length <= end:
            return "udp", start + 8, length - 8
    return None


def length_fields(frame: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the length-like fields a decoder trusts: IP version/IHL and total
    length, TCP data offset, UDP length, every TLS record length, QUIC CID lengths."""
    fields: list[tuple[int, int]] = []
    network = network_header(frame)
    if network is None:
        return fields
    (ethertype, off), n = network, len(frame)
    if ethertype == 0x0800 and off + 20 <= n:
        fields += [(off, 1), (off + 2, 2)]
        proto, start = frame[off + 9], off + (frame[off] & 0x0F) * 4
    elif ethertype == 0x86DD and off + 40 <= n:
        fields += [(off + 4, 2)]
        proto, start = frame[off + 6], off + 40
    else:
        return fields
    if proto == IPPROTO_TCP and start + 20 <= n:
        fields.append((start + 12, 1))
        p = start + (frame[start + 12] >> 4) * 4
        while p + 5 <= n:  # the TLS record walk
            fields.append((p + 3, 2))
            p += 5 + _be16(frame, p + 3)
    elif proto == IPPROTO_UDP and start + 8 <= n:
        fields.append((start + 4, 2))
        p = start + 8
        if p + 6 <= n and frame[p] & 0x80:  # QUIC long header: DCID length, then SCID length
            fields.append((p + 5, 1))
            if p + 6 + frame[p + 5] < n:
                fields.append((p + 6 + frame[p + 5], 1))
    return fields


# --- configurations and evaluators ------------------------------------------------------------


def protocols_config(general: str = "", flow: str = "", keep_bytes: int = 0) -> str:
    """SSH, DTLS, WireGuard and IPsec ESP on (issue 16), each keeping ``keep_bytes``."""
    sections = (
        f"[{name}]\nenabled = true\nkeep_bytes = {keep_bytes}\n"
        for name in ("ssh", "dtls", "wireguard", "ipsec")
    )
    return f"[general]\n{general}\n[flow]\n{flow}\n" + "".join(sections)


CONFIG_TEXTS = {
    "golden": (GOLDEN / "tls_test_2" / "config.ini").read_text(),
    "defaults": "",
    "tiny": (
        "[general]\nmin_saved_bytes_per_packet = 0\n"
        "[capture]\ndefault_snaplen = 60\nmax_capture_len = 100\n"
        "[tls]\nports = 443,0,8443\napp_data_keep_record_bytes = 0\napp_data_continuation_keep_bytes = 0\n"
        "[quic]\nports = 0,443\nshort_header_keep_packet_bytes = 0\n"
    ),
    "stream": "[general]\nmin_saved_bytes_per_packet = 1\n"
    "[tls]\napp_data_keep_record_bytes = 8\napp_data_continuation_policy = stream\n",
    "bulk": "[tls]\napp_data_continuation_keep_bytes = 0\napp_data_continuation_policy = bulk\n"
    "[quic]\nrequire_dcid_match = true\n",
    "evicting": "[general]\nmax_flows = 1\nflow_idle_timeout_sec = 1\nmin_saved_bytes_per_packet = 0\n"
    "[quic]\nallow_short_header_without_known_dcid = false\n",
    "disabled": "[tls]\nenabled = false\n[quic]\nenabled = false\n",
    "protocols": protocols_config(),
    "budget": protocols_config(flow="budget_bytes = 300\nbudget_keep_bytes = 4"),
    "keeping": protocols_config(
        general="min_saved_bytes_per_packet = 0\nmax_flows = 1\nflow_idle_timeout_sec = 1",
        flow="budget_bytes = 1\nbudget_keep_bytes = 0\nbudget_ports_exempt = 22", keep_bytes=8),
}  # fmt: skip
PROTOCOL_CONFIGS = ("protocols", "budget", "keeping")  # the analyzers that are off by default, on


@cache
def config(name: str) -> Config:
    return parse_config_text(CONFIG_TEXTS[name], f"{name}.ini")


@cache
def _policy(name: str):
    return select_policy(config(name))


def evaluator(name: str) -> Evaluator:
    """A fresh evaluator (empty flow tables) for one of CONFIG_TEXTS."""
    return build_evaluator(_policy(name), config(name))


CONFIGS = st.sampled_from(sorted(CONFIG_TEXTS))
# SPEC §10's reasons and the ones the shipped rules declare (DECISIONS #9: QUIC versions)
SHIPPED_REASONS = set(UPSTREAM_REASONS).union(
    *(load_policy(shipped_policy_path(name)).declared_reasons for name in ("final_only", "stream", "bulk"))
)


def ip_payload(frame: bytes) -> tuple[int, int, bool] | None:
    """(IP protocol or next header, offset of the IP payload, a fragment) of an Ethernet frame
    holding an IPv4/IPv6 header; None otherwise."""
    network = network_header(frame)
    if network is None:
        return None
    (ethertype, off), n = network, len(frame)
    if ethertype == 0x0800 and off + 20 <= n and frame[off] >> 4 == 4:
        fragment = (frame[off + 6] << 8 | frame[off + 7]) & 0x3FFF != 0
        return frame[off + 9], off + (frame[off] & 0x0F) * 4, fragment
    if ethertype == 0x86DD and off + 40 <= n and frame[off] >> 4 == 6:
        return frame[off + 6], off + 40, False
    return None


def header_floor(frame: bytes, rule: str, cfg: Config) -> int:
    """The least a cut by ``rule`` may keep of ``frame``: every header in front of the bytes
    the rule is allowed to drop."""
    ip = ip_payload(frame)
    assert ip is not None, f"{rule} cut a frame with no IP header"
    protocol, floor, fragment = ip
    transport = transport_payload(frame)  # SPEC §7: ("tcp"|"udp", payload offset, payload length)
    if transport is not None:
        floor = transport[1]
    family = rule.split(".")[0]
    if rule not in ("ipsec.esp", "flow.over_budget"):  # the two that cut other IP protocols too
        assert transport is not None, f"{rule} cut a frame without a TCP/UDP header"
        assert transport[0] == ("tcp" if family in ("ssh", "tls") else "udp"), rule
    if family == "wireguard":
        payload = frame[floor:]
        assert payload[:1] == b"\x04" and payload[1:4] == bytes(3), f"{rule} cut what is no transport data"
        floor += 16 + cfg["wireguard.keep_bytes"]
    elif rule == "ipsec.esp":
        assert not fragment, f"{rule} cut a fragment"
        over_udp = transport is not None and transport[0] == "udp"
        assert over_udp or (transport is None and protocol == IPPROTO_ESP), f"{rule} cut what is no ESP"
        if transport is not None:
            assert frame[floor : floor + 4] != bytes(4), f"{rule} cut IKE (the non-ESP marker)"
        floor += 8 + cfg["ipsec.keep_bytes"]
    elif rule == "flow.over_budget":
        floor += cfg["flow.budget_keep_bytes"]
    return floor


def check_decision(ev: Evaluator, cfg: Config, data: bytes, orig_len: int, out_len: int, did: int) -> None:
    """The SPEC §6 invariants of one decision."""
    assert type(out_len) is int and type(did) is int
    baseline = min(len(data), orig_len, cfg["capture.default_snaplen"], cfg["capture.max_capture_len"])
    assert 0 <= out_len <= baseline <= len(data)
    decision = ev.decisions[did]
    assert decision.reason in SHIPPED_REASONS
    if decision.kind != "cut":
        assert out_len == baseline, decision
        return
    assert baseline - out_len >= cfg["general.min_saved_bytes_per_packet"], decision
    rule = decision.rule.id
    assert out_len >= min(baseline, header_floor(data, rule, cfg)), f"{rule} cut into the headers"


def run_frames(name: str, frames: list[tuple[bytes, int]], ts_step: int = 1000) -> list[int]:
    """Evaluate ``(data, orig_len)`` frames in order with a fresh evaluator, checking each."""
    ev, cfg = evaluator(name), config(name)
    outs = []
    for i, (data, orig_len) in enumerate(frames):
        out_len, did = ev.evaluate(data, orig_len, 1_700_000_000 * 10**9 + i * ts_step)
        check_decision(ev, cfg, data, orig_len, out_len, did)
        outs.append(out_len)
    return outs


# --- strategies -------------------------------------------------------------------------------
# Hypothesis draws the shape of a conversation (which lengths lie and how, CID lengths, varint
# sizes, the order of segments); a seeded Random it also draws fills in sizes and bytes.  That
# keeps an example to a few dozen draws, so the long profile stays within its time budget.

U32_MAX = 0xFFFF_FFFF
VLANS = st.sampled_from([(), (), (0x8100,), (0x88A8, 0x8100)])
RANDOMS = st.randoms(use_true_random=True)  # one draw: a seeded random.Random
TLS_PORTS = st.sampled_from([443, 8443, 80, 40000])
QUIC_PORTS = st.sampled_from([443, 443, 53, 40001])
ORIG_MODES = st.sampled_from(["same", "same", "mixed", "longer", "shorter", "huge"])


def pick(rnd, weighted: dict) -> object:
    return rnd.choices(list(weighted), weights=list(weighted.values()))[0]


def with_orig_lengths(rnd, mode: str, frames: list[bytes]) -> list[tuple[bytes, int]]:
    """Mostly the true length; or a capture cut short, an orig_len below caplen, 4 GiB."""
    out = []
    for data in frames:
        kind = mode if mode != "mixed" else rnd.choice(["same", "same", "longer", "shorter", "huge"])
        orig = {"same": len(data), "longer": len(data) + rnd.randint(1, 70000),
                "shorter": rnd.randint(0, len(data)), "huge": U32_MAX}[kind]  # fmt: skip
        out.append((data, orig))
    return out


def body(rnd, max_size: int) -> bytes:
    """Random bytes, often ending in a run of one byte (cheap bulk, and record-like repeats)."""
    head = rnd.randbytes(rnd.randint(0, min(max_size, 48)))
    return head + bytes([rnd.choice([0, 0x17, 0x03, 0xFF, rnd.randint(0, 255)])]) * rnd.randint(0, max_size)


TLS_LENGTH_MODES = st.sampled_from(["true", "true", "zero", "max", "off_by_one", "random", "mixed"])
TLS_TYPE_MODES = st.sampled_from(["tls", "tls", "appdata", "handshake", "any"])
SEGMENT_MODES = st.sampled_from(["in_order", "in_order", "retransmit", "gap", "syn_rst", "chaos"])
SEGMENT_SIZES = st.sampled_from([1, 5, 64, 536, 1460, 20000])
SEGMENT_EVENTS = {  # relative weights of what the next segment is
    "in_order": {"data": 1},
    "retransmit": {"data": 4, "retransmit": 1},
    "gap": {"data": 4, "gap": 1},
    "syn_rst": {"data": 4, "syn": 1, "rst": 1, "ack": 1},
    "chaos": {"data": 3, "retransmit": 1, "gap": 1, "syn": 1, "rst": 1, "ack": 1},
}


def tls_stream(rnd, length_mode: str, type_mode: str) -> bytes:
    """What one direction sends: records whose length fields may lie, then maybe junk."""
    out = b""
    for _ in range(rnd.randint(0, 6)):
        ctype = {"tls": rnd.choice([0x14, 0x15, 0x16, 0x17, 0x17]), "appdata": 0x17, "handshake": 0x16,
                 "any": rnd.randint(0, 255)}[type_mode]  # fmt: skip
        content = body(rnd, 700)
        mode = length_mode if length_mode != "mixed" else rnd.choice(["true", "zero", "max", "random"])
        length = {"true": len(content), "zero": 0, "max": 0xFFFF, "random": rnd.randint(0, 0xFFFF),
                  "off_by_one": len(content) + rnd.choice([-1, 1])}[mode]  # fmt: skip
        major = 3 if rnd.random() < 0.9 else rnd.randint(0, 255)
        out += bytes([ctype, major, rnd.randint(0, 4)]) + struct.pack(">H", length % 0x10000) + content
    return out + (rnd.randbytes(rnd.randint(1, 40)) if rnd.random() < 0.2 else b"")


@st.composite
def tls_conversations(draw) -> list[tuple[bytes, int]]:
    """Segments of one TCP connection in both directions: in order, retransmitted, after a
    gap, SYN, RST and bare ACKs, cut from the two record streams."""
    rnd = draw(RANDOMS)
    v6, vlans = draw(st.booleans()), draw(VLANS)
    client_port, server_port = draw(st.sampled_from([40000, 443])), draw(TLS_PORTS)
    length_mode, type_mode = draw(TLS_LENGTH_MODES), draw(TLS_TYPE_MODES)
    segment_mode, max_segment = draw(SEGMENT_MODES), draw(SEGMENT_SIZES)
    streams = [tls_stream(rnd, length_mode, type_mode), tls_stream(rnd, length_mode, type_mode)]
    frames = tcp_segments(rnd, streams, (client_port, server_port), v6, vlans, segment_mode, max_segment,
                          draw(st.integers(1, 10)))  # fmt: skip
    return with_orig_lengths(rnd, draw(ORIG_MODES), frames)


def tcp_segments(rnd, streams: list[bytes], ports: tuple[int, int], v6: bool, vlans: tuple[int, ...],
                 segment_mode: str, max_segment: int, count: int) -> list[bytes]:  # fmt: skip
    """``count`` segments of one TCP connection cut from the client's and the server's byte
    ``streams``: in order, retransmitted, after a gap, SYN, RST and bare ACKs."""
    client_port, server_port = ports
    isn = [rnd.randint(0, U32_MAX), rnd.choice([0, U32_MAX - 10, rnd.randint(0, U32_MAX)])]
    pos = [0, 0]
    events = SEGMENT_EVENTS[segment_mode]
    frames = []
    for _ in range(count):
        d = rnd.randint(0, 1) if rnd.random() < 0.7 else 0
        event = pick(rnd, events)
        size = rnd.randint(0, max_segment)
        start = pos[d]
        if event == "retransmit":
            start = max(0, pos[d] - size)
        elif event == "gap":
            start += rnd.randint(1, 3000)
        payload = b"" if event in ("syn", "ack") else streams[d][start : start + size]
        flags = {"syn": 0x02, "rst": 0x14, "ack": 0x10}.get(event, 0x18)
        if event != "retransmit":
            pos[d] = start + len(payload)
        ports = (client_port, server_port) if d == 0 else (server_port, client_port)
        segment = tcp(*ports, (isn[d] + start) & U32_MAX, flags, payload)
        frames.append(ip_frame(v6, IPPROTO_TCP, d == 0, segment, vlans))
    return frames


CID_LENGTH_MODES = st.sampled_from(["true", "true", 0, 20, 21, 255, "random"])
VARINT_SIZES = st.sampled_from([1, 2, 4, 8, "mixed"])
VARINT_VALUES = st.sampled_from(["true", "true", "zero", "max", "off_by_one", "random"])


def quic_length_field(rnd, true_value: int, size_mode, value_mode: str) -> bytes:
    """A varint in 1, 2, 4 or 8 bytes holding the true length, or 0, the maximum, one off."""
    size = size_mode if size_mode != "mixed" else rnd.choice([1, 2, 4, 8])
    limit = (1 << (8 * size - 2)) - 1
    value = {"true": true_value, "zero": 0, "max": limit, "off_by_one": true_value + rnd.choice([-1, 1]),
             "random": rnd.randint(0, limit)}[value_mode]  # fmt: skip
    return varint(max(0, min(value, limit)), size)


def quic_long_header(rnd, cids: list[bytes], shape: dict) -> bytes:
    """One long-header packet (RFC 9000 §17.2) whose lengths may lie, as ``shape`` says."""
    ptype = rnd.choice([0, 0, 1, 2, 2, 3])
    version = rnd.choice([1, 1, 1, 0, 0x6B3343CF, rnd.randint(0, U32_MAX)])
    dcid, scid = (rnd.choice(cids) if rnd.random() < 0.8 else rnd.randbytes(rnd.randint(0, 20)) for _ in "ds")
    out = bytes([0xC0 | ptype << 4 | rnd.randint(0, 15)]) + version.to_bytes(4, "big")
    for cid in (dcid, scid):
        claimed = shape["cid_length"] if rnd.random() < 0.5 else "true"
        claimed = {"true": len(cid), "random": rnd.randint(0, 255)}.get(claimed, claimed)
        out += bytes([claimed]) + cid
    payload = body(rnd, 1200)
    if ptype == 0:
        token = rnd.randbytes(rnd.choice([0, 0, 1, 16, 64]))
        out += quic_length_field(rnd, len(token), shape["varint_size"], shape["token_value"]) + token
    if ptype != 3:
        out += quic_length_field(rnd, len(payload), shape["varint_size"], shape["length_value"])
    return out + payload


def quic_datagram(rnd, cids: list[bytes], shape: dict) -> bytes:
    """Coalesced long headers, then maybe a short header, then maybe padding."""
    out = b"".join(quic_long_header(rnd, cids, shape) for _ in range(rnd.choice([0, 1, 1, 2, 3])))
    if rnd.random() < 0.6:
        first = rnd.choice([0x40, 0x41, 0x7F, rnd.randint(0, 255)])
        dcid = rnd.choice(cids) if rnd.random() < 0.8 else rnd.randbytes(rnd.randint(0, 20))
        out += bytes([first]) + dcid[: rnd.choice([len(dcid), len(dcid), rnd.randint(0, len(dcid))])]
        out += body(rnd, 1200)
    padding = rnd.choice([b"", b"", bytes(rnd.randint(1, 400)), b"\xc0" * 8, rnd.randbytes(8)])
    return out + padding


@st.composite
def quic_conversations(draw) -> list[tuple[bytes, int]]:
    """Datagrams of one UDP flow in both directions sharing a few connection IDs (0 to 20
    bytes, so learned CIDs are matched, mismatched and cut short); CID length bytes of 0,
    20, 21 or 255 and length varints of every size."""
    rnd = draw(RANDOMS)
    v6, vlans = draw(st.booleans()), draw(VLANS)
    client_port, server_port = draw(st.sampled_from([40001, 443])), draw(QUIC_PORTS)
    shape = {"cid_length": draw(CID_LENGTH_MODES), "varint_size": draw(VARINT_SIZES),
             "token_value": draw(VARINT_VALUES), "length_value": draw(VARINT_VALUES)}  # fmt: skip
    cid_sizes = draw(st.sampled_from([(0,), (20,), (8, 8), (0, 20), (1, 20, 4)]))
    cids = [rnd.randbytes(size) for size in cid_sizes]
    frames = []
    for _ in range(draw(st.integers(1, 8))):
        forward = rnd.random() < 0.5
        ports = (client_port, server_port) if forward else (server_port, client_port)
        datagram = quic_datagram(rnd, cids, shape)
        frames.append(ip_frame(v6, IPPROTO_UDP, forward, udp(*ports, datagram), vlans))
    return with_orig_lengths(rnd, draw(ORIG_MODES), frames)


@st.composite
def arbitrary_payload_flows(draw) -> list[tuple[bytes, int]]:
    """Random bytes behind valid TCP or UDP headers on the TLS/QUIC ports, both directions."""
    rnd = draw(RANDOMS)
    v6, proto = draw(st.booleans()), draw(st.sampled_from([IPPROTO_TCP, IPPROTO_UDP]))
    ports = (draw(st.sampled_from([443, 8443, 0, 65535])), draw(st.sampled_from([443, 8443, 1])))
    first = draw(st.binary(max_size=1500))  # one payload straight from Hypothesis
    frames = []
    for i in range(draw(st.integers(1, 6))):
        forward = rnd.random() < 0.5
        sport, dport = ports if forward else ports[::-1]
        payload = first if i == 0 else rnd.randbytes(rnd.choice([0, 1, 5, 6, 100, rnd.randint(0, 1500)]))
        if proto == IPPROTO_TCP:
            flags = rnd.choice([0x18, 0x18, 0x10, 0x02, 0x04, 0x12])
            segment = tcp(sport, dport, rnd.randint(0, U32_MAX), flags, payload)
        else:
            segment = udp(sport, dport, payload)
        frames.append(ip_frame(v6, proto, forward, segment))
    return with_orig_lengths(rnd, draw(ORIG_MODES), frames)


# A mutation is (kind, position, value); positions and values are folded onto the frame.
MUTATIONS = st.tuples(
    st.sampled_from(["truncate", "flip", "length", "length", "delete", "insert"]),
    st.integers(0, 1 << 16),
    st.sampled_from([0, 1, 20, 21, 255, 0x50, 0xF0, 0x8000, 0xFFFF]) | st.integers(0, 0xFFFF),
)
FRAME_MUTATIONS = st.lists(st.tuples(st.integers(0, 1 << 10), MUTATIONS), max_size=3)


def mutate(data: bytes, mutation: tuple[str, int, int]) -> bytes:
    kind, position, value = mutation
    if kind == "truncate":
        return data[: position % (len(data) + 1)]
    if not data:
        return data
    at = position % len(data)
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ (value % 255 + 1)]) + data[at + 1 :]
    if kind == "delete":
        return data[:at] + data[at + 1 :]
    if kind == "insert":
        return data[:at] + bytes([value & 0xFF]) + data[at:]
    fields = [(o, size) for o, size in length_fields(data) if o + size <= len(data)]
    if not fields:
        return data
    off, size = fields[position % len(fields)]
    return data[:off] + (value & ((1 << 8 * size) - 1)).to_bytes(size, "big") + data[off + size :]


def apply_mutations(frames: list[tuple[bytes, int]], mutations, keep_orig: bool = True):
    frames = list(frames)
    for index, mutation in mutations:
        data, orig = frames[index % len(frames)]
        mutated = mutate(data, mutation)
        frames[index % len(frames)] = (mutated, orig if keep_orig else len(mutated))
    return frames


@cache
def golden_frames(case: str) -> list[tuple[int, bytes, int]]:
    with PcapReader(str(GOLDEN / case / "input.pcap")) as reader:
        return list(reader)


# --- the fuzz targets -------------------------------------------------------------------------


@given(data=st.binary(max_size=1600), orig_delta=st.integers(-1600, 70000), name=CONFIGS)
def test_arbitrary_bytes_get_a_length_within_the_baseline(data, orig_delta, name):
    run_frames(name, [(data, max(0, len(data) + orig_delta))])


@given(frames=arbitrary_payload_flows(), name=CONFIGS)
def test_arbitrary_payloads_behind_valid_headers_reach_the_analyzers_safely(frames, name):
    run_frames(name, frames)


@given(frames=tls_conversations(), name=CONFIGS, mutations=FRAME_MUTATIONS)
def test_tls_conversations_with_lying_record_lengths_are_decided_safely(frames, name, mutations):
    run_frames(name, apply_mutations(frames, mutations))


@given(frames=quic_conversations(), name=CONFIGS, mutations=FRAME_MUTATIONS)
def test_quic_conversations_with_any_cid_length_and_varint_size_are_decided_safely(frames, name, mutations):
    run_frames(name, apply_mutations(frames, mutations), ts_step=600 * 10**9)


@given(case=st.sampled_from(GOLDEN_CASES), name=CONFIGS, keep_orig=st.booleans(), start=st.integers(0, 200),
       mutations=st.lists(st.tuples(st.integers(0, 1 << 10), MUTATIONS), min_size=1, max_size=6))  # fmt: skip
def test_golden_captures_with_mutated_frames_are_decided_safely(case, name, start, mutations, keep_orig):
    """48 consecutive frames of a golden capture (handshakes and the data after them), a few
    of them truncated, with a byte flipped, inserted or deleted, or a length field rewritten."""
    frames = [(data, orig) for _, data, orig in golden_frames(case)]
    start %= max(1, len(frames) - 47)
    run_frames(name, apply_mutations(frames[start : start + 48], mutations, keep_orig))


class _RecordingWriter:
    """A PcapWriter that also remembers each incl_len it was asked to write."""

    def __init__(self, writer: PcapWriter) -> None:
        self.writer, self.lengths = writer, []

    def write_batch(self, frames, lengths):
        self.lengths.extend(lengths)
        self.writer.write_batch(frames, lengths)


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_policy")


ANY_FRAMES = st.one_of(tls_conversations(), quic_conversations(), arbitrary_payload_flows())


@given(frames=ANY_FRAMES, name=CONFIGS, mutations=FRAME_MUTATIONS,
       timestamps=st.lists(st.integers(0, (1 << 32) * 10**9 - 1), min_size=1, max_size=3))  # fmt: skip
def test_each_written_record_is_a_prefix_of_its_frame_with_orig_len_kept(out_dir, frames, name, mutations,
                                                                         timestamps):  # fmt: skip
    cfg = config(name)
    path = out_dir / "out.pcap"
    frames = apply_mutations(frames, mutations)
    records = [(timestamps[i % len(timestamps)], data, orig) for i, (data, orig) in enumerate(frames)]
    with PcapWriter(str(path), output_snaplen(cfg)) as writer:
        recorder = _RecordingWriter(writer)
        pipeline = Pipeline(evaluator(name), recorder)
        assert pipeline.run(iter(records)) == len(records)
    with PcapReader(str(path)) as reader:
        written = list(reader)
    assert len(written) == len(records) == pipeline.packets
    for (ts, data, orig), (out_ts, out_data, out_orig), incl in zip(records, written, recorder.lengths,
                                                                    strict=True):  # fmt: skip
        assert out_data == data[:incl] and len(out_data) == incl
        assert out_orig == orig  # incl <= min(caplen, orig): orig_len is written as it came
        assert out_ts == (ts // 1000) % ((1 << 32) * 10**6) * 1000  # whole µs, seconds mod 2^32
    assert pipeline.bytes_output == sum(recorder.lengths)
    assert pipeline.bytes_input == sum(len(data) for _, data, _ in records)
    os.unlink(path)


# --- exhaustive, deterministic mutations of the golden captures -------------------------------


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_every_truncation_of_every_golden_frame_is_decided_safely(case):
    """Each frame cut at every offset, as a short capture (orig_len kept) and as a frame that
    really is that short; one evaluator per case, so flow state sees all of them."""
    ev, cfg = evaluator("golden"), config("golden")
    checked = 0
    for ts, data, orig in golden_frames(case):
        for k in range(len(data) + 1):
            for claimed in (orig, k):
                out_len, did = ev.evaluate(data[:k], claimed, ts)
                check_decision(ev, cfg, data[:k], claimed, out_len, did)
                checked += 1
    assert checked == 2 * sum(len(data) + 1 for _, data, _ in golden_frames(case))


def _tls_record_length_offsets(data: bytes) -> list[int]:
    decoded = transport_payload(data)
    if decoded is None or decoded[0] != "tcp":
        return []
    return [off for off, size in length_fields(data) if size == 2 and off >= decoded[1]]


@pytest.mark.parametrize("length", [0, 0xFFFF])
@pytest.mark.parametrize("name", ["golden", "defaults", "stream", "bulk"])
def test_every_tls_record_length_set_to_0_or_0xffff_is_decided_safely(length, name):
    frames = []
    for case in GOLDEN_CASES:
        for _, data, orig in golden_frames(case):
            frames.append((data, orig))
            for off in _tls_record_length_offsets(data):
                frames.append((data[:off] + struct.pack(">H", length) + data[off + 2 :], orig))
    assert len(frames) > 200  # the captures hold TLS records to rewrite
    run_frames(name, frames)


def _quic_cid_length_offsets(data: bytes) -> list[int]:
    decoded = transport_payload(data)
    if decoded is None or decoded[0] != "udp":
        return []
    return [off for off, size in length_fields(data) if size == 1 and off >= decoded[1]]


@pytest.mark.parametrize("cid_length", [0, 20, 21, 255])
def test_every_quic_cid_length_set_to_0_20_21_or_255_is_decided_safely(cid_length):
    frames = []
    for case in GOLDEN_CASES:
        for _, data, orig in golden_frames(case):
            frames.append((data, orig))
            for off in _quic_cid_length_offsets(data):
                frames.append((data[:off] + bytes([cid_length]) + data[off + 1 :], orig))
    assert len(frames) > 200
    run_frames("golden", frames)
    run_frames("defaults", frames)


def reencode_quic_varints(frame: bytes, size: int) -> bytes | None:
    """The frame with every long header's token-length and length varint re-encoded in at
    least ``size`` bytes (RFC 9000 §16 allows any encoding); IP and UDP lengths follow.
    None if the frame is not an IPv4/IPv6 UDP datagram of well-formed long headers."""
    decoded = transport_payload(frame)
    if decoded is None or decoded[0] != "udp":
        return None
    start, n = decoded[1], decoded[2]
    payload, out, off = frame[start : start + n], b"", 0
    while off < n and payload[off] & 0x80:
        if off + 7 > n:
            return None
        p = off + 6 + payload[off + 5]
        if p >= n:
            return None
        p += 1 + payload[p]
        ptype = (payload[off] >> 4) & 3
        if ptype == 3 or p > n:
            return None
        head, fields = payload[off:p], []
        for _ in range(2 if ptype == 0 else 1):
            if p >= n:
                return None
            width = 1 << (payload[p] >> 6)
            if p + width > n:
                return None
            value = int.from_bytes(payload[p : p + width], "big") & ((1 << (8 * width - 2)) - 1)
            fields.append(varint(value, max(size, varint_size(value))))
            p += width
            if len(fields) == 1 and ptype == 0:  # the token follows its length
                fields.append(payload[p : p + value])
                p += value
        if p + value > n:
            return None
        out += head + b"".join(fields) + payload[p : p + value]
        off = p + value
    if not out:
        return None
    new_payload = out + payload[off:]
    grow = len(new_payload) - n
    udp_at = start - 8
    rebuilt = bytearray(frame[:start] + new_payload + frame[start + n :])
    struct.pack_into(">H", rebuilt, udp_at + 4, n + 8 + grow)
    ip_at = 14
    while _be16(rebuilt, ip_at - 2) in VLAN_TPIDS:
        ip_at += 4
    if rebuilt[ip_at] >> 4 == 4:
        struct.pack_into(">H", rebuilt, ip_at + 2, _be16(rebuilt, ip_at + 2) + grow)
    else:
        struct.pack_into(">H", rebuilt, ip_at + 4, _be16(rebuilt, ip_at + 4) + grow)
    return bytes(rebuilt)


@pytest.mark.parametrize("size", [1, 2, 4, 8])
@pytest.mark.parametrize("case", ["quic_test_2", "ipv6_ipv4_test_1"])
def test_quic_varints_of_every_size_decide_like_the_minimal_encoding(case, size):
    """A non-minimal varint is the same integer (RFC 9000 §16): re-encoding every long header's
    lengths in 1, 2, 4 or 8 bytes must leave every packet's decision unchanged."""
    frames = [(data, orig) for _, data, orig in golden_frames(case)]
    changed = []
    for i, (data, orig) in enumerate(frames):
        rebuilt = reencode_quic_varints(data, size)
        if rebuilt is not None and rebuilt != data:
            frames[i] = (rebuilt, orig + len(rebuilt) - len(data))
            changed.append(i)
    if size > 1:
        assert changed, "no QUIC long header to re-encode"
    reference, rewritten = evaluator("golden"), evaluator("golden")
    for i, (_, data, orig) in enumerate(golden_frames(case)):
        _, did = reference.evaluate(data, orig, i)
        new_data, new_orig = frames[i]
        out_len, new_did = rewritten.evaluate(new_data, new_orig, i)
        check_decision(rewritten, config("golden"), new_data, new_orig, out_len, new_did)
        assert rewritten.decisions[new_did].reason == reference.decisions[did].reason, i
