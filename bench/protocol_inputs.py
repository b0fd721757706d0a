"""Synthetic inputs of the protocols beyond TLS/QUIC, for bench/compare.py (issue 21, target 5).

``wireguard``: transport data messages on UDP 51820; ``esp``: ESP in IP; ``ssh``: SSH
connections on TCP 22, each direction's identification line and key exchange up to NEWKEYS,
then encrypted segments; ``dtls``: DTLS 1.2 connections on UDP 4433, a ClientHello and a
ServerHello, then Application Data records.  Payloads of 1000 bytes; 256 flows at a time, a
new set of 256 every 64 packets per flow for SSH and DTLS.  ``pcapng``: an existing PCAP
rewritten as pcapng by our own writer (nanosecond timestamps), for the pcapng reader's row.
Each kind needs its config section (SECTIONS): the analyzers are off by default.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sinks.pcapng_writer import PcapngWriter
from pcapconstrictor.engine.sources.pcap_reader import PcapReader

SECTIONS = {
    "wireguard": "\n[wireguard]\nenabled = true\n",
    "esp": "\n[ipsec]\nenabled = true\n",
    "ssh": "\n[ssh]\nenabled = true\n",
    "dtls": "\n[dtls]\nenabled = true\n",
}
KINDS = tuple(SECTIONS)
FLOWS = 256
PACKETS_PER_FLOW = 64  # SSH and DTLS: then a new connection takes the flow's place
_ETH_IPV4 = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
_SERVER = bytes((198, 18, 0, 1))

Frame = tuple[int, bytes, int]


def _ipv4(proto: int, payload: bytes, flow: int, to_server: bool = True) -> bytes:
    client = bytes((198, 19, flow >> 8 & 255, flow & 255))
    src, dst = (client, _SERVER) if to_server else (_SERVER, client)
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0, src, dst)
    return _ETH_IPV4 + header + payload


def _tcp(flow: int, port: int, client_port: int, seq: int, payload: bytes, to_server: bool) -> bytes:
    ports = (client_port, port) if to_server else (port, client_port)
    header = struct.pack(">HHIIBBHHH", *ports, seq, 1, 5 << 4, 0x18, 65535, 0, 0)
    return _ipv4(6, header + payload, flow, to_server)


def _udp(flow: int, port: int, client_port: int, payload: bytes, to_server: bool) -> bytes:
    ports = (client_port, port) if to_server else (port, client_port)
    return _ipv4(17, struct.pack(">HHHH", *ports, 8 + len(payload), 0) + payload, flow, to_server)


def _ssh_packet(code: int, payload_len: int) -> bytes:
    """An unencrypted SSH binary packet (RFC 4253 §6): padding to a multiple of 8."""
    padding = 4
    while (1 + payload_len + padding + 4) % 8:
        padding += 1
    body = bytes([padding, code]) + bytes(payload_len - 1) + bytes(padding)
    return len(body).to_bytes(4, "big") + body


def _ssh_connection(size: int) -> list[tuple[bool, bytes]]:
    """(to the server?, payload) of one connection: identification and key exchange in each
    direction up to NEWKEYS, then encrypted segments, most from the server."""
    ident_c, ident_s = b"SSH-2.0-OpenSSH_9.2p1 bench\r\n", b"SSH-2.0-OpenSSH_9.6 bench\r\n"
    newkeys = _ssh_packet(21, 1)
    opening = [
        (True, ident_c + _ssh_packet(20, 900)),
        (False, ident_s + _ssh_packet(20, 900)),
        (True, _ssh_packet(30, 36)),
        (False, _ssh_packet(31, 600) + newkeys),
        (True, newkeys),
    ]
    data = bytes(range(256)) * (size // 256 + 1)
    rest = [(n % 8 == 7, data[: 96 if n % 8 == 7 else size]) for n in range(PACKETS_PER_FLOW - len(opening))]
    return opening + rest


def _dtls_record(content_type: int, body: bytes, epoch: int, seq: int) -> bytes:
    return struct.pack(">BHH", content_type, 0xFEFD, epoch) + seq.to_bytes(6, "big") + struct.pack(
        ">H", len(body)) + body  # fmt: skip


def _dtls_hello(msg_type: int) -> bytes:
    body = b"\xfe\xfd" + bytes(32) + b"\x00"  # version, random, empty session id
    body += b"\x00\x00\x02\xc0\x2b\x01\x00" if msg_type == 1 else b"\xc0\x2b\x00"
    body += b"\x00\x00"  # no extensions
    length = len(body).to_bytes(3, "big")
    return bytes([msg_type]) + length + b"\x00\x00" + b"\x00\x00\x00" + length + body


def _dtls_connection(size: int) -> list[tuple[bool, bytes]]:
    data = bytes(range(256)) * (size // 256 + 1)
    out = [(True, _dtls_record(22, _dtls_hello(1), 0, 0)), (False, _dtls_record(22, _dtls_hello(2), 0, 0))]
    for n in range(PACKETS_PER_FLOW - 2):
        to_server = n % 8 == 7
        out.append((to_server, _dtls_record(23, data[: 96 if to_server else size], 1, n + 1)))
    return out


def protocol_frames(kind: str, count: int, size: int = 1000) -> Iterator[Frame]:
    """``count`` frames ``(ts_ns, data, orig_len)`` of ``kind`` (see the module docstring)."""
    body = bytes(range(256)) * (size // 256 + 1)
    if kind in ("ssh", "dtls"):
        connection = _ssh_connection(size) if kind == "ssh" else _dtls_connection(size)
        seqs, sent = [], {True: 1, False: 1}  # each direction's stream position before a step
        for to_server, payload in connection:
            seqs.append(sent[to_server])
            sent[to_server] += len(payload)
    for n in range(count):
        flow = n % FLOWS
        if kind == "wireguard":
            wg = struct.pack("<BxxxIQ", 4, flow, n) + body[:size]
            frame = _ipv4(17, struct.pack(">HHHH", 40000 + flow, 51820, 8 + len(wg), 0) + wg, flow, False)
        elif kind == "esp":
            frame = _ipv4(50, struct.pack(">II", 0x1000 + flow, n + 1) + body[:size], flow, False)
        else:
            generation, step = divmod(n // FLOWS, PACKETS_PER_FLOW)
            client_port = 20000 + generation % 40000
            to_server, payload = connection[step]
            if kind == "ssh":
                frame = _tcp(flow, 22, client_port, seqs[step], payload, to_server)
            else:
                frame = _udp(flow, 4433, client_port, payload, to_server)
        yield 1_700_000_000 * 10**9 + n * 1000, frame, len(frame)


def build_protocol(kind: str, count: int, out: str) -> None:
    with PcapWriter(out, 262144) as w:
        for ts, frame, orig in protocol_frames(kind, count):
            w.write(ts, frame, len(frame), orig)


def to_pcapng(pcap: str, out: str) -> None:
    """The records of ``pcap`` as a one-interface pcapng section, written by our own writer."""
    with PcapReader(pcap) as reader, PcapngWriter(out, 262144, comment="bench", application="bench") as w:
        for ts, data, orig in reader:
            w.write(ts, data, len(data), orig)
