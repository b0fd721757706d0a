"""Issue 16: SSH (RFC 4253), the key exchange kept whole up to NEWKEYS in each direction,
encrypted segments cut after ssh.keep_bytes; on a real OpenSSH session in namespaces.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from netns import CAP_IF, PEER4, start_tcpdump, wait_for_line
from packets import PSH_ACK, SYN, tcp4_frame
from protocol_captures import (
    assert_same_packets_and_wire_lengths,
    byte_ratio,
    constrict,
    need_tools,
    records,
    stop_tcpdump,
    tshark_fields,
)  # fmt: skip

from pcapconstrictor.engine.analysis.decode import decode
from pcapconstrictor.engine.analysis.registry import analyze_decoded
from pcapconstrictor.engine.analysis.ssh import SshAnalyzer

PORT = 2222
SSH_SECTION = f"[ssh]\nenabled = true\nports = {PORT}\n"
A, B = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])


def packet(code: int, payload_len: int) -> bytes:
    """An unencrypted binary packet (§6): the length with its field a multiple of 8."""
    padding = 4
    while (1 + payload_len + padding + 4) % 8:
        padding += 1
    body = bytes([padding, code]) + bytes(payload_len - 1) + bytes(padding)
    return len(body).to_bytes(4, "big") + body


def segment(analyzer: SshAnalyzer, payload: bytes, seq: int, flags: int, *, reply: bool = False):
    """The analyzer's facts for one Ethernet/IPv4/TCP segment from A:40000 to B:22 (or back)."""
    ends = dict(src=B, dst=A, sport=22, dport=40000) if reply else dict(src=A, dst=B, sport=40000, dport=22)
    frame = tcp4_frame(payload, seq=seq, flags=flags, **ends)
    return analyze_decoded(analyzer, decode(frame, len(frame)), frame, 0)


class Direction:
    """One direction of a connection, fed segment by segment."""

    def __init__(self, analyzer: SshAnalyzer | None = None, seq: int = 1000) -> None:
        self.analyzer = analyzer or SshAnalyzer()
        self.seq = seq

    def send(self, payload: bytes, seq: int | None = None):
        at = self.seq if seq is None else seq
        facts = segment(self.analyzer, payload, at, PSH_ACK)
        if seq is None:
            self.seq += len(payload)
        return facts


IDENT = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
KEXINIT, NEWKEYS = packet(20, 900), packet(21, 1)


def test_identification_and_packets_up_to_newkeys_are_key_exchange():
    d = Direction()
    first = d.send(IDENT + KEXINIT)
    assert first.key_exchange and not first.encrypted and first.packets == 1
    last = d.send(packet(31, 300) + NEWKEYS)
    assert last.key_exchange and last.newkeys and not last.encrypted


def test_bytes_after_newkeys_in_the_same_segment_are_encrypted_from_its_end():
    d = Direction()
    d.send(IDENT + KEXINIT)
    f = d.send(NEWKEYS + bytes(64))
    assert f.key_exchange and f.encrypted and f.encrypted_offset == len(NEWKEYS)
    later = d.send(bytes(1400))
    assert later.encrypted and later.encrypted_offset == 0 and not later.key_exchange


def test_a_packet_header_split_across_segments_is_still_walked():
    d = Direction()
    d.send(IDENT + KEXINIT + NEWKEYS[:3])
    f = d.send(NEWKEYS[3:] + bytes(10))
    assert f.newkeys and f.encrypted_offset == len(NEWKEYS) - 3


def test_identification_line_split_across_segments():
    d = Direction()
    assert d.send(IDENT[:10]).key_exchange
    assert d.send(IDENT[10:] + KEXINIT).packets == 1


def test_a_retransmitted_key_exchange_segment_after_newkeys_is_still_key_exchange():
    d = Direction()
    start = d.seq
    d.send(IDENT + KEXINIT)
    d.send(NEWKEYS + bytes(100))
    again = d.send(IDENT + KEXINIT, seq=start)
    assert again.key_exchange and not again.encrypted


def test_joining_mid_stream_is_no_identification():
    f = Direction().send(bytes(1400))
    assert f.no_identification and not f.encrypted


def test_a_gap_before_newkeys_loses_the_direction_for_good():
    d = Direction()
    d.send(IDENT + KEXINIT)
    assert d.send(NEWKEYS, seq=d.seq + 100).lost
    assert d.send(bytes(100)).lost


def test_bytes_that_are_no_binary_packet_lose_the_direction():
    d = Direction()
    assert d.send(IDENT + b"\x00\x00\x01\x01" + bytes(300)).lost  # length + 4 not a multiple of 8


def test_a_syn_starts_the_connection_afresh():
    analyzer = SshAnalyzer()
    d = Direction(analyzer)
    d.send(IDENT + KEXINIT)
    d.send(NEWKEYS)
    segment(analyzer, b"", 5, SYN)
    assert Direction(analyzer, seq=6).send(bytes(100)).no_identification


# --- a real OpenSSH session ---------------------------------------------------------------------


@pytest.fixture
def sshd(ns, tmp_path):
    """sshd in the peer namespace on PORT, a generated host key, a generated client key."""
    need_tools("sshd", "ssh", "scp", "ssh-keygen", "tshark", "tcpdump")
    for name in ("host", "client"):
        key = str(tmp_path / name)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    authorized = tmp_path / "authorized_keys"
    authorized.write_text((tmp_path / "client.pub").read_text())
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    server = ns.start(ns.peer, "/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null", "-p", str(PORT),
                      "-o", f"ListenAddress={PEER4}", "-h", str(tmp_path / "host"),
                      "-o", f"AuthorizedKeysFile={authorized}", "-o", "StrictModes=no", "-o", "PidFile=none",
                      "-o", "UsePAM=no", "-o", "Subsystem=sftp internal-sftp")  # fmt: skip
    wait_for_line(server, "stderr", "Server listening")
    client = ["-i", str(tmp_path / "client"), "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=yes",
              "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]  # fmt: skip

    def run(*argv: str) -> None:
        result = ns.exec(ns.capture, *argv, timeout=60, check=False)
        assert result.returncode == 0, result.stderr.decode(errors="replace")

    def scp(source: Path, target: str) -> None:
        run("scp", *client, "-P", str(PORT), str(source), f"root@{PEER4}:{target}")

    def ssh(*command: str) -> None:
        run("ssh", *client, "-p", str(PORT), f"root@{PEER4}", *command)

    return scp, ssh


KEX_FILTER = "ssh.message_code or ssh.protocol"  # what tshark reads in clear
KEX_FIELDS = ("ssh.protocol", "ssh.message_code", "ssh.packet_length", "ssh.cookie",
              "ssh.kex.hassh", "ssh.kex.hasshserver", "ssh.host_key.type")  # fmt: skip


def test_scp_and_a_session_keep_every_key_exchange_message_and_save_85_percent(sshd, ns, tmp_path):
    scp, ssh = sshd
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(3 * 1024 * 1024))
    capture = tmp_path / "ssh.pcap"
    tcpdump = start_tcpdump(ns, CAP_IF, capture)
    try:
        scp(blob, str(tmp_path / "copy"))
        ssh("echo", "constricted")
    finally:
        stop_tcpdump(tcpdump)
    assert (tmp_path / "copy").read_bytes() == blob.read_bytes()
    output, stats = constrict(tmp_path, capture, SSH_SECTION)

    assert_same_packets_and_wire_lengths(capture, output)
    assert byte_ratio(capture, output) <= 0.15
    kex_in = tshark_fields(capture, KEX_FILTER, *KEX_FIELDS, extra=("-d", f"tcp.port=={PORT},ssh"))
    kex_out = tshark_fields(output, KEX_FILTER, *KEX_FIELDS, extra=("-d", f"tcp.port=={PORT},ssh"))
    assert kex_out == kex_in
    codes = " ".join(line.split("\t")[1] for line in kex_in)
    assert codes.count("21") >= 4  # NEWKEYS both ways, in both connections
    assert stats["ssh_encrypted_constricted"] > 100 and stats.get("ssh_fallback", 0) == 0


def test_keep_bytes_extends_what_an_encrypted_segment_keeps(sshd, ns, tmp_path):
    scp, _ = sshd
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(256 * 1024))
    capture = tmp_path / "ssh.pcap"
    tcpdump = start_tcpdump(ns, CAP_IF, capture)
    try:
        scp(blob, str(tmp_path / "copy"))
    finally:
        stop_tcpdump(tcpdump)
    output, _ = constrict(tmp_path, capture, SSH_SECTION + "keep_bytes = 40\n")
    headers = 14 + 20 + 32  # Ethernet, IPv4, TCP with timestamps
    kex = {int(n) for n in tshark_fields(capture, KEX_FILTER, extra=("-d", f"tcp.port=={PORT},ssh"))}
    pairs = list(enumerate(zip(records(capture), records(output), strict=True), 1))
    big = [o for number, (i, o) in pairs if i.incl_len > 1000 and number not in kex]
    assert len(big) >= 5 and all(o.incl_len == headers + 40 for o in big)
