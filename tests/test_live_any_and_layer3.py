"""Issue 15 item 5: ``capture.interface = any`` and layer-3 interfaces, live, in namespaces.

``any`` is captured as ``tcpdump -i any`` captures it: one socket on every interface, each
packet behind a LINUX_SLL2 header holding its interface index and packet type; tcpdump runs
beside the recorder and is the judge, header bytes included.  A TUN device (the layer-3 kind
the test machine can create: ipip, ip6tnl and wireguard have the same path) is captured as raw
IP, again judged by tcpdump on the same interface.  tshark reads every output.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns import CAP4, CAP6, PEER4, TRAFFIC, Netns, Record, read_pcap, stats_block, stop, wait_for_line
from test_live_capture import (
    BACKENDS,
    RECORDER,
    SETTLE,
    contiguous_match,
    start_recorder,
    start_tcpdump,
    stop_tcpdump,
    write_config,
)  # fmt: skip

from conftest import run_cli, tshark_count
from pcapconstrictor.engine.sources import cooked_capture, interfaces
from pcapconstrictor.engine.sources.capture_filter import compile_filter
from pcapconstrictor.formats import bpf as fb
from pcapconstrictor.formats.link import LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW

HERE = Path(__file__).resolve().parent
TUN, TUN4, TUN_PEER4 = "tun5", "198.19.5.1", "198.19.5.2"
TUN6, TUN_PEER6 = "fd00:198:19:5::1", "fd00:198:19:5::2"
PACKET_HOST, PACKET_OUTGOING = 0, 4
LOOPBACK_DATAGRAMS = 10


def sll2(record: Record) -> tuple[int, int, int]:
    """(protocol, interface index, packet type) of a LINUX_SLL2 record."""
    data = record.data
    return int.from_bytes(data[0:2], "big"), int.from_bytes(data[4:8], "big"), data[10]


def is_udp_datagram(record: Record) -> bool:
    """An IPv4 UDP datagram of live_traffic.py behind a LINUX_SLL2 header (not an ICMP error quoting one)."""
    return sll2(record)[0] == 0x0800 and record.data[29] == 17 and b"pcapconstrictor " in record.data


def same_packets(ours: list[Record], theirs: list[Record]) -> None:
    """tcpdump's frames, each whole, in its order (as ``contiguous_match`` allows), at its times."""
    assert len(ours) == len(theirs)
    for a, i in zip(ours, contiguous_match(ours, theirs), strict=True):
        assert a.incl_len == theirs[i].incl_len
        assert abs(a.ts_us - theirs[i].ts_us) < 10_000  # both are the kernel's receive times


def capinfos_encapsulation(path: Path) -> str:
    if shutil.which("capinfos") is None:
        pytest.skip("capinfos is not installed (Debian package tshark)")
    result = subprocess.run(["capinfos", "-E", "-M", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("File encapsulation:", 1)[1].splitlines()[0].strip()


# --- any ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_any_records_every_interface_as_tcpdump_any_does_in_linux_sll2(ns, tmp_path, cert, backend):
    output, judged = tmp_path / "any.pcap", tmp_path / "tcpdump.pcap"
    config = write_config(tmp_path / "any.ini", backend, output, interface="any")
    server = ns.start(ns.capture, sys.executable, str(TRAFFIC), "serve", *map(str, cert),
                      stdin=subprocess.PIPE)  # fmt: skip
    wait_for_line(server, "stdout", "ready")
    tcpdump = start_tcpdump(ns, "any", judged)
    recorder, _ = start_recorder(ns, config)
    ns.traffic(ns.peer, "client", CAP4, CAP6)  # TLS, TCP, QUIC-shaped UDP in on cap0, replies out
    ns.traffic(ns.capture, "loopback", str(LOOPBACK_DATAGRAMS))  # lo
    time.sleep(SETTLE)
    stdout, stderr = stop(recorder)
    stop_tcpdump(tcpdump)
    assert recorder.returncode == 0, stderr
    header, ours = read_pcap(output)
    their_header, theirs = read_pcap(judged)
    assert header[6] == their_header[6] == LINKTYPE_LINUX_SLL2
    assert capinfos_encapsulation(output) == capinfos_encapsulation(judged) == "linux-sll2"
    assert tshark_count(output) == len(ours) == stats_block(stdout)["packets_written"]

    # Every packet tcpdump saw while the recorder ran, SLL2 header and all, is ours, in order.
    order = contiguous_match(ours, theirs)
    window = theirs[min(order) : max(order) + 1]
    kinds = {sll2(r)[1:] for r in ours}
    indexes = {index for index, _ in kinds}
    assert len(indexes) == 2 and 1 in indexes  # lo (always 1) and cap0
    assert {(i, PACKET_HOST) for i in indexes} | {(i, PACKET_OUTGOING) for i in indexes - {1}} <= kinds
    loopback_datagrams = [r for r in ours if sll2(r)[1] == 1 and is_udp_datagram(r)]
    assert len(loopback_datagrams) == LOOPBACK_DATAGRAMS  # one record each: lo's outgoing copy skipped
    assert [r for r in window if sll2(r)[1] == 1] == [r for r in theirs if sll2(r)[1] == 1]

    # Decoded through the SLL2 header: constricted exactly as offline mode constricts tcpdump's file.
    offline = tmp_path / "offline.pcap"
    offline_config = tmp_path / "offline.ini"
    offline_config.write_text(config.read_text() + f"\n[capture]\noutput = {offline}\n")
    result = run_cli("--config", str(offline_config), "--offline-input", str(judged))
    assert result.returncode == 0, result.stderr
    constricted = read_pcap(offline)[1]
    expected = [constricted[i] for i in order]
    assert [(r.incl_len, r.orig_len, r.data) for r in ours] == [
        (r.incl_len, r.orig_len, r.data) for r in expected
    ]
    assert stats_block(stdout)["tls_appdata_constricted"] > 0
    for a, i in zip(ours, order, strict=True):
        assert abs(a.ts_us - theirs[i].ts_us) < 10_000


@pytest.mark.parametrize(("backend", "expression"), [
    ("tpacket_v3", "inbound and udp"),  # the kernel runs it: the packet type is an ancillary load
    ("recvmsg", "link[12] == 2 and udp"),  # the link-layer address: run in user space
])  # fmt: skip
def test_a_capture_filter_on_any_selects_what_tcpdump_selects(ns, tmp_path, backend, expression):
    output, judged = tmp_path / "any.pcap", tmp_path / "tcpdump.pcap"
    config = write_config(tmp_path / "any.ini", backend, output, "any", extra=f"filter = {expression}\n")
    tcpdump = start_tcpdump(ns, "any", judged, expression)
    recorder, _ = start_recorder(ns, config)
    ns.traffic(ns.peer, "udp", CAP4, "9", "10")  # in on cap0
    ns.traffic(ns.capture, "udp", PEER4, "9", "10")  # out on cap0
    ns.traffic(ns.capture, "loopback", "5")  # lo: address 00:..., never inbound
    time.sleep(SETTLE)
    _, stderr = stop(recorder)
    stop_tcpdump(tcpdump)
    assert recorder.returncode == 0, stderr
    ours, theirs = read_pcap(output)[1], read_pcap(judged)[1]
    same_packets(ours, theirs)
    datagrams = [sll2(r)[1:] for r in ours if is_udp_datagram(r)]
    cap0 = [pkttype for index, pkttype in datagrams if index != 1]
    loopback = [pkttype for index, pkttype in datagrams if index == 1]
    if expression.startswith("inbound"):
        assert (cap0, loopback) == ([PACKET_HOST] * 10, [PACKET_HOST] * 5)
    else:  # lo's link-layer address is all zeros
        assert (cap0, loopback) == ([PACKET_HOST] * 10 + [PACKET_OUTGOING] * 10, [])


def test_promiscuous_any_says_once_that_it_captures_without_promiscuous_mode(ns, tmp_path):
    output = tmp_path / "any.pcap"
    extra = "promiscuous = true\nduration_sec = 1\nworkers = 2\n"
    config = write_config(tmp_path / "any.ini", "tpacket_v3", output, "any", extra=extra)
    result = ns.exec(ns.capture, *RECORDER, "--config", str(config), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode() == ("Live capture: promiscuous mode is not supported on the 'any' device; "
                                      "capturing without it\n")  # fmt: skip


# --- layer-3 interfaces -----------------------------------------------------------------------


def add_tun(ns: Netns) -> None:
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("no /dev/net/tun to make a layer-3 interface with")
    for args in (("tuntap", "add", TUN, "mode", "tun"), ("addr", "add", f"{TUN4}/24", "dev", TUN),
                 ("addr", "add", f"{TUN6}/64", "dev", TUN, "nodad"), ("link", "set", TUN, "up")):  # fmt: skip
        ns.exec(ns.capture, "ip", *args)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tun_interface_is_captured_as_raw_ip_as_tcpdump_captures_it(ns, tmp_path, backend):
    add_tun(ns)
    output, judged = tmp_path / "tun.pcapng", tmp_path / "tcpdump.pcap"
    config = write_config(tmp_path / "tun.ini", backend, output, interface=TUN)
    tcpdump = start_tcpdump(ns, TUN, judged)
    recorder, _ = start_recorder(ns, config)
    result = ns.exec(ns.capture, sys.executable, str(HERE / "tun_traffic.py"), TUN, TUN4, TUN_PEER4, TUN6,
                     TUN_PEER6, "10")  # fmt: skip
    assert int(result.stdout) >= 20  # the outgoing IPv4 and IPv6 datagrams came out of the device
    time.sleep(SETTLE)
    _, stderr = stop(recorder)
    stop_tcpdump(tcpdump)
    assert recorder.returncode == 0, stderr
    assert capinfos_encapsulation(judged) == "rawip"
    assert capinfos_encapsulation(output) == "rawip"  # the pcapng IDB's link type
    pcap = tmp_path / "tun.pcap"  # the same run as classic PCAP, for the byte comparison
    converted = subprocess.run(["editcap", "-F", "pcap", str(output), str(pcap)], capture_output=True,
                               timeout=60)  # fmt: skip
    assert converted.returncode == 0, converted.stderr
    header, ours = read_pcap(pcap)
    assert header[6] == LINKTYPE_RAW
    theirs = read_pcap(judged)[1]
    same_packets(ours, theirs)
    udp = [r.data[0] >> 4 for r in ours if r.data[9 if r.data[0] >> 4 == 4 else 6] == 17]
    assert udp.count(4) == 20 and udp.count(6) == 10  # in and out over IPv4, out over IPv6
    assert any(r.data[9] == 1 for r in ours if r.data[0] >> 4 == 4)  # and the port unreachable errors
    assert tshark_count(output) == len(ours)


# --- how an interface is captured --------------------------------------------------------------


@pytest.mark.parametrize(("arphrd", "linktype"), [
    (1, LINKTYPE_ETHERNET), (772, LINKTYPE_ETHERNET), (0xFFFE, LINKTYPE_RAW), (768, LINKTYPE_RAW),
    (769, LINKTYPE_RAW), (776, LINKTYPE_RAW), (778, LINKTYPE_RAW), (823, LINKTYPE_RAW),
])  # fmt: skip
def test_ethernet_framed_interfaces_are_ethernet_and_layer3_ones_raw_ip(monkeypatch, arphrd, linktype):
    found = interfaces.Interface(9, "x0", arphrd, True, True, 1500)
    monkeypatch.setattr(cooked_capture, "describe", lambda name: found)
    link = cooked_capture.capture_link("x0")
    assert link.linktype == linktype
    assert link.socket_type == (socket.SOCK_RAW if linktype == LINKTYPE_ETHERNET else socket.SOCK_DGRAM)


def test_any_is_every_interface_in_linux_sll2():
    link = cooked_capture.capture_link("any")
    assert (link.linktype, link.socket_type, link.cooked) == (LINKTYPE_LINUX_SLL2, socket.SOCK_DGRAM, True)
    assert interfaces.link_type_problem("any") is None


def test_an_interface_of_another_link_type_is_refused_with_a_clear_message(monkeypatch):
    can = interfaces.Interface(9, "can0", 280, True, True, 16)
    monkeypatch.setattr(interfaces, "describe", lambda name: can)
    assert interfaces.link_type_problem("can0") == (
        "interface 'can0' has link type CAN_SOCKETCAN (ARPHRD 280); only Ethernet, loopback and layer-3 "
        "(raw IP) interfaces, or 'any', can be captured")  # fmt: skip


def test_sll2_header_is_libpcaps_with_the_address_cut_to_8_bytes():
    header = cooked_capture.sll2_header(0x0800, 3, 1, PACKET_OUTGOING, 6, bytes.fromhex("0200c6120001"))
    assert header == bytes.fromhex("0800 0000 00000003 0001 04 06 0200c6120001 0000")
    long = cooked_capture.sll2_header(0x86DD, 7, 32, 0, 20, bytes(range(20)))  # InfiniBand: 20 bytes
    assert long[11] == 20 and long[12:] == bytes(range(8))


def test_a_filter_for_any_is_moved_past_the_sll2_header_for_the_kernel():
    program = compile_filter("inbound and ifindex 2 and ip", 65535, linktype=LINKTYPE_LINUX_SLL2)
    fixed = cooked_capture.kernel_program(program)
    assert fixed is not None and len(fixed) == len(program)
    loads = [(code, k) for code, _, _, k in fixed if fb.bpf_class(code) == fb.BPF_LD]
    ancillary = {k - fb.SKF_AD_OFF for _, k in loads if k >= fb.SKF_AD_OFF}
    assert ancillary == {fb.SKF_AD_PKTTYPE, fb.SKF_AD_IFINDEX, fb.SKF_AD_PROTOCOL}
    moved = [(a, b) for a, b in zip(program, fixed, strict=True) if a != b]
    assert all(b[3] in (a[3] - 20, fb.SKF_AD_OFF + fb.SKF_AD_PKTTYPE, fb.SKF_AD_OFF + fb.SKF_AD_IFINDEX,
                        fb.SKF_AD_OFF + fb.SKF_AD_PROTOCOL) for a, b in moved)  # fmt: skip


def test_a_filter_reading_the_link_layer_address_is_left_to_user_space():
    program = compile_filter("link[12] == 2", 65535, linktype=LINKTYPE_LINUX_SLL2)
    assert cooked_capture.kernel_program(program) is None
