"""Fuzzing the analyzers that are off by default: SSH, DTLS, WireGuard, IPsec ESP, and flow
budgets (issues 16 and 17; field-ready: hostile traffic must not stop the recorder).

test_fuzz_policy feeds TLS and QUIC conversations and random bytes to every config, these
analyzers on in three of them.  Here those three meet the conversations the analyzers walk:
SSH, DTLS, WireGuard and ESP whose lengths, types, identification lines and sizes lie, and
other TCP, UDP and ICMP for the budgets, then mutated.  The oracle is test_fuzz_policy's
``check_decision``: a length within the baseline, and a cut keeps every header its rule
names (``header_floor``: the ESP SPI and sequence number, WireGuard's data header, ...).
"""

from __future__ import annotations

import random
import struct

from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_policy import (
    FRAME_MUTATIONS,
    IPPROTO_ESP,
    IPPROTO_ICMP,
    IPPROTO_UDP,
    ORIG_MODES,
    PROTOCOL_CONFIGS,
    RANDOMS,
    SEGMENT_MODES,
    SEGMENT_SIZES,
    VLANS,
    apply_mutations,
    body,
    check_decision,
    config,
    evaluator,
    ip_frame,
    run_frames,
    tcp_segments,
    udp,
    with_orig_lengths,
)

CONFIGS = st.sampled_from(PROTOCOL_CONFIGS)


# --- conversations whose fields lie -----------------------------------------------------------


def lie(rnd, true_value: int, bits: int) -> int:
    """Mostly the true length; else 0, the field's maximum, one off, or anything."""
    top = (1 << bits) - 1
    value = rnd.choice([true_value] * 4 + [0, top, true_value + 1, true_value - 1, rnd.randint(0, top)])
    return value & top


IDENTIFICATIONS = [b"SSH-2.0-OpenSSH_9.6\r\n", b"SSH-1.99-x\n", b"SSH-2.0-" + b"A" * 300 + b"\r\n",
                   b"SSH-2.0-no-line-end", b"GET / HTTP/1.1\r\n", b""]  # fmt: skip


def ssh_stream(rnd, honest: bool) -> bytes:
    """One direction: an identification line (or not), binary packets in clear whose lengths
    may lie, maybe NEWKEYS, then bytes that would be encrypted.  An ``honest`` one has the
    identification and true lengths, and ends its key exchange with NEWKEYS."""
    out = rnd.choice([b"", b"", b"a banner line\r\n"]) if not honest else b""
    out += IDENTIFICATIONS[0] if honest else rnd.choice(IDENTIFICATIONS)
    codes = [rnd.choice([20, 30, 31, 21, 21, 1, 50, rnd.randint(0, 255)]) for _ in range(rnd.randint(0, 5))]
    for code in [*codes, 21] if honest else codes:
        payload = bytes([code]) + body(rnd, 300)
        padding = 4 + (-(9 + len(payload)) % 8)  # 4 + packet_length: a multiple of 8
        if not honest and rnd.random() < 0.2:
            padding = rnd.choice([0, 4, 5, 8, 255])
        length = 1 + len(payload) + padding
        claimed = length if honest else lie(rnd, length, 32)
        out += struct.pack(">IB", claimed, padding) + payload + bytes(padding)[:length]
    return out + rnd.randbytes(rnd.choice([0, 16, 100, 2000]))


def dtls_record(rnd, epoch: int, cid: bytes) -> bytes:
    """A DTLS 1.2 record (RFC 6347 §4.1; type 25 carries a connection ID, RFC 9146), a DTLS 1.3
    unified header (RFC 9147 §4), or a hello whose connection_id extension may lie."""
    content = body(rnd, 600)
    shape = rnd.choice(["plain", "plain", "hello", "cid", "unified"])
    if shape == "unified":
        flags = rnd.choice([0, 0x10]) | rnd.choice([0, 0x08]) | rnd.choice([0, 0x04]) | epoch & 3
        out = bytes([0x20 | flags]) + (cid if flags & 0x10 else b"")
        out += rnd.randbytes(2 if flags & 0x08 else 1)
        if flags & 0x04:
            out += struct.pack(">H", lie(rnd, len(content), 16))
        return out + content
    version = rnd.choice([0xFEFD, 0xFEFD, 0xFEFF, 0xFEFC, rnd.randint(0, 0xFFFF)])
    if shape == "hello":
        extension = struct.pack(">HHB", 54, lie(rnd, len(cid) + 1, 16), lie(rnd, len(cid), 8)) + cid
        hello = struct.pack(">H32sB", version, bytes(32), 0) + b"\x00\x02\xc0\x2b\x01\x00"
        hello += struct.pack(">H", lie(rnd, len(extension), 16)) + extension
        length = lie(rnd, len(hello), 24).to_bytes(3, "big")
        content = bytes([rnd.choice([1, 2])]) + length + b"\x00\x00" + bytes(3) + length + hello
        return struct.pack(">BHH6sH", 22, version, 0, bytes(6), lie(rnd, len(content), 16)) + content
    ctype = 25 if shape == "cid" else rnd.choice([20, 21, 22, 23, 23, rnd.randint(0, 255)])
    head = struct.pack(">BHH", ctype, version, epoch) + rnd.randbytes(6) + (cid if shape == "cid" else b"")
    return head + struct.pack(">H", lie(rnd, len(content), 16)) + content


def wireguard_message(rnd) -> bytes:
    """A handshake initiation (148 bytes), response (92), cookie reply (64) or transport data
    (16-byte header, then at least 16), sized right or not, reserved bytes zero or not."""
    kind = rnd.choice([1, 2, 3, 4, 4, 4, rnd.randint(0, 255)])
    size = {1: 148, 2: 92, 3: 64}.get(kind, 32 + rnd.randint(0, 1400))
    size = rnd.choice([size, size, size + 1, size - 1, rnd.randint(0, 200)])
    reserved = bytes(3) if rnd.random() < 0.9 else rnd.randbytes(3)
    return (bytes([kind]) + reserved + rnd.randbytes(max(0, size - 4)))[: max(0, size)]


def esp_payload(rnd) -> bytes:
    """What follows an IP header of protocol 50, or a UDP header on the NAT-T port: ESP
    (an SPI, a sequence number, ciphertext), too short for that, IKE behind the non-ESP
    marker, or a NAT-keepalive."""
    shape = rnd.choice(["esp", "esp", "short", "ike", "keepalive"])
    if shape == "ike":
        return bytes(4) + body(rnd, 300)
    if shape == "keepalive":
        return b"\xff"
    if shape == "short":
        return rnd.randbytes(rnd.randint(0, 8))
    return rnd.randbytes(8) + body(rnd, 1000)


def datagrams(rnd, count: int, port: int, make) -> list[tuple[bool, bytes]]:
    """(to the server?, UDP datagram) x ``count`` between a client port and ``port``."""
    client = rnd.choice([40000, port, 53])
    out = []
    for _ in range(count):
        forward = rnd.random() < 0.6
        out.append((forward, udp(*((client, port) if forward else (port, client)), make())))
    return out


KINDS = ("ssh", "dtls", "wireguard", "esp", "esp_udp", "tcp", "udp", "icmp")


def conversation(rnd, kind: str, v6: bool, vlans: tuple[int, ...], count: int, segment_mode: str = "in_order",
                 max_segment: int = 1460) -> list[bytes]:  # fmt: skip
    """``count`` frames of one conversation of ``kind``: SSH, DTLS, WireGuard, ESP (IP protocol
    50 or UDP 4500), or other traffic a budget counts (TCP, UDP, ICMP); both directions."""
    if kind in ("ssh", "tcp"):
        ports = (rnd.choice([40000, 22]), 22 if kind == "ssh" else rnd.choice([80, 5000, 53]))
        if kind == "ssh":
            honest = rnd.random() < 0.5
            streams = [ssh_stream(rnd, honest), ssh_stream(rnd, honest)]
        else:
            streams = [body(rnd, 4000), body(rnd, 4000)]
        return tcp_segments(rnd, streams, ports, v6, vlans, segment_mode, max_segment, count)
    if kind == "dtls":
        epoch, cid = rnd.choice([0, 1, 2, 0xFFFF]), rnd.randbytes(rnd.choice([0, 4, 8, 20]))
        make = lambda: b"".join(dtls_record(rnd, epoch, cid) for _ in range(rnd.randint(1, 3)))  # noqa: E731
        sent = datagrams(rnd, count, rnd.choice([443, 4433, 5684]), make)
    elif kind == "wireguard":
        sent = datagrams(rnd, count, 51820, lambda: wireguard_message(rnd))
    elif kind == "esp_udp":
        sent = datagrams(rnd, count, 4500, lambda: esp_payload(rnd))
    elif kind == "udp":
        sent = datagrams(rnd, count, rnd.choice([5000, 53, 443]), lambda: body(rnd, 1200))
    else:  # ESP or ICMP straight over IP
        make = (lambda: esp_payload(rnd)) if kind == "esp" else (lambda: body(rnd, 1200))
        sent = [(rnd.random() < 0.6, make()) for _ in range(count)]
    proto = {"esp": IPPROTO_ESP, "icmp": IPPROTO_ICMP}.get(kind, IPPROTO_UDP)
    frames = [ip_frame(v6, proto, forward, payload, vlans) for forward, payload in sent]
    if not v6 and rnd.random() < 0.1:  # IPv4 fragments: MF set, or an offset
        at = 14 + 4 * len(vlans) + 6
        frames = [f[:at] + rnd.choice([b"\x20\x00", b"\x00\x10"]) + f[at + 2 :] for f in frames]
    return frames


@st.composite
def protocol_conversations(draw) -> list[tuple[bytes, int]]:
    rnd = draw(RANDOMS)
    frames = conversation(rnd, draw(st.sampled_from(KINDS)), draw(st.booleans()), draw(VLANS),
                          draw(st.integers(1, 12)), draw(SEGMENT_MODES), draw(SEGMENT_SIZES))  # fmt: skip
    return with_orig_lengths(rnd, draw(ORIG_MODES), frames)


@given(frames=protocol_conversations(), name=CONFIGS, mutations=FRAME_MUTATIONS,
       ts_step=st.sampled_from([1000, 10**9, 3 * 10**9]))  # fmt: skip
def test_protocol_conversations_with_lying_fields_are_decided_safely(frames, name, mutations, ts_step):
    run_frames(name, apply_mutations(frames, mutations), ts_step)


CUTTING_RULES = {"ssh.encrypted", "dtls.application_data", "wireguard.transport_data", "ipsec.esp",
                 "flow.over_budget"}  # fmt: skip


def test_the_conversations_reach_every_rule_that_cuts():
    """Unmutated, the conversations above make each protocol's cut (and keep its handshakes
    whole): else the floors checked above would check nothing."""
    cut, kept = set(), set()
    for name in PROTOCOL_CONFIGS:
        ev, cfg = evaluator(name), config(name)
        for seed in range(40):
            rnd = random.Random(seed)
            for kind in KINDS:
                for i, data in enumerate(conversation(rnd, kind, seed % 2 == 1, (), 12)):
                    out_len, did = ev.evaluate(data, len(data), i * 1000)
                    check_decision(ev, cfg, data, len(data), out_len, did)
                    decision = ev.decisions[did]
                    (cut if decision.kind == "cut" else kept).add(decision.rule.id)
    assert CUTTING_RULES <= cut, CUTTING_RULES - cut
    assert {"ssh.key_exchange", "wireguard.handshake", "ipsec.ike", "ipsec.nat_keepalive"} <= kept, kept
