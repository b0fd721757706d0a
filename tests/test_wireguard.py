"""Issue 16: WireGuard on a real tunnel (wireguard-go and wg in network namespaces).

The handshake is kept whole, transport data keeps its 16-byte header and
wireguard.keep_bytes; tshark must dissect the same WireGuard messages before and after.
"""

from __future__ import annotations

import os
import struct
import subprocess
import time
from pathlib import Path

import pytest
from netns import CAP4, CAP_IF, PEER4, start_tcpdump
from protocol_captures import (
    assert_same_packets_and_wire_lengths,
    bulk_tcp,
    byte_ratio,
    constrict,
    need_tools,
    records,
    stop_tcpdump,
    tshark_fields,
)  # fmt: skip

from conftest import run_cli
from pcapconstrictor.engine.analysis.wireguard import WireguardAnalyzer

WG_SECTION = "[wireguard]\nenabled = true\n"
TUNNEL_CAP, TUNNEL_PEER = "198.19.0.1", "198.19.0.2"  # inside the tunnel, still 198.18.0.0/15
PORT = 51820


# --- recognition, message by message ------------------------------------------------------


def classify(payload: bytes):
    return WireguardAnalyzer().analyze(payload, 0, 0, len(payload))


@pytest.mark.parametrize("kind, size", [(1, 148), (2, 92), (3, 64)])
def test_handshake_messages_are_recognised_only_at_their_exact_size(kind, size):
    assert classify(bytes([kind, 0, 0, 0]) + bytes(size - 4)).handshake
    assert not classify(bytes([kind, 0, 0, 0]) + bytes(size - 3)).handshake
    assert not classify(bytes([kind, 0, 0, 0]) + bytes(size - 5)).handshake


def test_transport_data_needs_three_zero_bytes_and_at_least_header_and_tag():
    header = bytes([4, 0, 0, 0]) + struct.pack("<IQ", 7, 1)
    assert classify(header + bytes(16)).transport_data  # a keepalive: 32 bytes
    assert not classify(header + bytes(15)).transport_data
    assert not classify(bytes([4, 0, 1, 0]) + header[4:] + bytes(100)).transport_data
    assert classify(header + bytes(1400)).data_header_len == 16


# --- a real tunnel ----------------------------------------------------------------------------


def _keypair(ns) -> tuple[str, str]:
    private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    public = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    return private, public


@pytest.fixture
def tunnel(ns, tmp_path):
    """The tunnel of ``_tunnel``; its control sockets, which a killed wireguard-go leaves
    behind, are removed afterwards (wireguard-go then stops by itself)."""
    need_tools("wireguard-go", "wg", "tshark")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("/dev/net/tun is missing: wireguard-go needs a TUN device")
    names: list[str] = []
    try:
        yield lambda: names.extend(_tunnel(ns, tmp_path))
    finally:
        for name in names:
            Path(f"/var/run/wireguard/{name}.sock").unlink(missing_ok=True)


def _tunnel(ns, tmp_path) -> list[str]:
    """wg0 in both namespaces, over the veth pair, with wireguard-go as the userspace device."""
    env = {**os.environ, "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}
    keys = {side: _keypair(ns) for side in ("cap", "peer")}
    # wireguard-go's control socket is /var/run/wireguard/<name>.sock, shared by every
    # namespace: each device needs a name of its own.
    tag = ns.capture.rsplit("-", 2)[-2:]
    names = []
    for side, other, netns, addr, endpoint in (
        ("cap", "peer", ns.capture, TUNNEL_CAP, PEER4),
        ("peer", "cap", ns.peer, TUNNEL_PEER, CAP4),
    ):
        name = f"wg{side[0]}{tag[0][-5:]}{tag[1]}"
        device = ns.start(netns, "wireguard-go", "-f", name, env=env)
        for _ in range(100):  # the device appears once wireguard-go has opened /dev/net/tun
            if ns.exec(netns, "ip", "link", "show", name, check=False).returncode == 0:
                break
            assert device.poll() is None, device.stderr.read().decode(errors="replace")
            time.sleep(0.05)
        else:
            raise AssertionError(f"wireguard-go made no {name} within 5 s")
        key_file = tmp_path / f"{side}.key"
        key_file.write_text(keys[side][0])
        ns.exec(netns, "wg", "set", name, "listen-port", str(PORT), "private-key", str(key_file),
                "peer", keys[other][1], "endpoint", f"{endpoint}:{PORT}", "allowed-ips", "198.19.0.0/24")
        ns.exec(netns, "ip", "addr", "add", f"{addr}/24", "dev", name)
        ns.exec(netns, "ip", "link", "set", name, "up")
        names.append(name)
    return names


def test_wireguard_bulk_transfer_keeps_handshake_and_headers_and_saves_85_percent(ns, tunnel, tmp_path):
    capture = tmp_path / "wireguard.pcap"
    tcpdump = start_tcpdump(ns, CAP_IF, capture)
    try:
        tunnel()
        bulk_tcp(ns, TUNNEL_PEER, 5001, 3 * 1024 * 1024)
    finally:
        stop_tcpdump(tcpdump)
    output, stats = constrict(tmp_path, capture, WG_SECTION)

    assert_same_packets_and_wire_lengths(capture, output)
    assert byte_ratio(capture, output) <= 0.15
    for message in ("wg.type == 1", "wg.type == 2", "wg.type == 4"):
        fields = ("wg.type", "wg.receiver", "wg.counter", "wg.sender", "wg.ephemeral", "wg.mac1")
        assert tshark_fields(output, message, *fields) == tshark_fields(capture, message, *fields), message
    handshakes = len(tshark_fields(capture, "wg.type == 1 or wg.type == 2"))
    assert handshakes >= 2
    assert stats["wireguard_handshake"] == handshakes
    bulk = tshark_fields(capture, "wg.type == 4 and frame.len > 100")
    assert stats["wireguard_data_constricted"] == len(bulk)
    data = [r for r in records(output) if len(r.data) > 42 and r.data[42] == 4]
    assert data and all(len(r.data) <= 14 + 20 + 8 + 16 for r in data)


def test_keep_bytes_extends_what_transport_data_keeps(ns, tunnel, tmp_path):
    capture = tmp_path / "wireguard.pcap"
    tcpdump = start_tcpdump(ns, CAP_IF, capture)
    try:
        tunnel()
        bulk_tcp(ns, TUNNEL_PEER, 5002, 256 * 1024)
    finally:
        stop_tcpdump(tcpdump)
    output, _ = constrict(tmp_path, capture, WG_SECTION + "keep_bytes = 40\n")
    big = [(i, o) for i, o in zip(records(capture), records(output), strict=True) if i.incl_len > 200
           and i.data[42] == 4]  # fmt: skip
    assert big and all(o.incl_len == 14 + 20 + 8 + 16 + 40 for _, o in big)


def test_without_a_wireguard_section_the_capture_is_not_cut(ns, tunnel, tmp_path):
    capture = tmp_path / "wireguard.pcap"
    tcpdump = start_tcpdump(ns, CAP_IF, capture)
    try:
        tunnel()
        bulk_tcp(ns, TUNNEL_PEER, 5003, 64 * 1024)
    finally:
        stop_tcpdump(tcpdump)
    output, _ = constrict(tmp_path, capture, "")
    assert [r.data for r in records(output)] == [r.data for r in records(capture)]


def test_explain_shows_the_wireguard_rule_and_its_facts(tmp_path):
    scapy = pytest.importorskip("scapy.all", reason="scapy (the [test] extra) writes the capture")
    payload = bytes([4, 0, 0, 0]) + struct.pack("<IQ", 1, 2) + bytes(1000)
    frame = scapy.Ether() / scapy.IP(src=CAP4, dst=PEER4) / scapy.UDP(sport=PORT, dport=PORT) / payload
    capture = tmp_path / "one.pcap"
    scapy.wrpcap(str(capture), [frame])
    config = tmp_path / "wg.ini"
    config.write_text(f"[capture]\noutput = {tmp_path / 'out.pcap'}\n{WG_SECTION}")
    result = run_cli("explain", "--config", str(config), "--offline-input", str(capture), "--packet", "1")
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert "MATCH wireguard.transport_data" in text and "wireguard.data_header_len=16" in text
    assert "reason wireguard_transport_data_constricted" in text
