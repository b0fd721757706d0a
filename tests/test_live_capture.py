"""Issue 3: live capture with both backends, on real traffic in network namespaces.

tcpdump runs beside the recorder on the same interface and is the judge: every
frame it saw while the recorder ran must be in our output, in order (frames the kernel hands
over at the same moment may reach the two sockets in either order), with the same original
length and the same leading bytes.  The same frames run through
offline mode must be constricted exactly as live mode constricted them.
Without root or network namespaces these tests skip and say why.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import pty
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from netns import (
    CAP4,
    CAP6,
    CAP_IF,
    CAP_MAC,
    PEER4,
    PEER6,
    PEER_IF,
    TRAFFIC,
    Netns,
    Record,
    read_pcap,
    start_tcpdump,
    stats_block,
    stop,
    wait_for_line,
)  # fmt: skip

from conftest import run_cli, tshark_count

BACKENDS = ("recvmsg", "tpacket_v3")
RECORDER = (sys.executable, "-m", "pcapconstrictor.engine")
STATS_KEYS = [
    "packets_total", "packets_written", "bytes_input", "bytes_output", "bytes_saved", "receive_errors",
    "kernel_packets", "kernel_drops", "tls_appdata_constricted", "tls_fallback", "quic_long_header",
    "quic_short_matched", "quic_short_constricted", "quic_fallback",
]  # fmt: skip
SETTLE = 0.5  # after the last frame: longer than a tpacket block timeout, so every frame is handed over


def write_config(path: Path, backend: str, output: Path, interface: str = CAP_IF, extra: str = "") -> Path:
    path.write_text(f"[capture]\ninterface = {interface}\nbackend = {backend}\noutput = {output}\n{extra}")
    return path


def start_recorder(ns: Netns, config: Path, **kwargs) -> tuple[subprocess.Popen, str]:
    recorder = ns.start(ns.capture, *RECORDER, "--config", str(config), **kwargs)
    return recorder, wait_for_line(recorder, "stdout", "Press Ctrl+C to stop.\n")


def stop_tcpdump(tcpdump: subprocess.Popen) -> str:
    _, err = stop(tcpdump)
    assert "\n0 packets dropped by kernel" in err, err
    return err


SIMULTANEOUS_US = 10_000
"""Two frames this close in time may reach tcpdump's socket and ours in either order: the kernel
hands a received frame and a sent one to every packet socket from the CPU that carries each, and
two CPUs at once interleave their hand-overs differently per socket (seen in CI: an ACK coming in
and a segment going out on cap0, 2 us apart, in opposite orders).  The same bound as the
timestamp checks: both are the kernel's clock."""


def contiguous_match(ours: list[Record], theirs: list[Record]) -> list[int]:
    """The index in ``theirs`` of each of ``ours``: a contiguous run of tcpdump's frames, frame for
    frame, in order except for frames the kernel handed over at once; fails the test otherwise."""
    assert ours, "the recorder saved no frame"

    def same(a: Record, b: Record) -> bool:
        return a.orig_len == b.orig_len and a.incl_len <= b.incl_len and a.data == b.data[: a.incl_len]

    def matched(start: int) -> list[int] | None:
        left = list(range(start, start + len(ours)))  # tcpdump's frames not yet matched, in its order
        order = []
        for a in ours:
            at = next((i for i, index in enumerate(left) if same(a, theirs[index])), None)
            if at is None:
                return None
            index = left.pop(at)
            moment = theirs[index].ts_us
            if any(abs(theirs[skipped].ts_us - moment) >= SIMULTANEOUS_US for skipped in left[:at]):
                return None  # ahead of a frame by more than a simultaneous hand-over
            order.append(index)
        return order

    for start in range(len(theirs) - len(ours) + 1):
        if (order := matched(start)) is not None:
            return order
    raise AssertionError(f"our {len(ours)} frames are not a contiguous run of tcpdump's {len(theirs)}")


def is_test_traffic(frame: bytes) -> bool:
    """IPv4 or fd00::/8 IPv6 frames between the two test hosts (not the MLD/ND noise)."""
    ethertype = frame[12:14]
    if ethertype == b"\x08\x00":
        return True
    return ethertype == b"\x86\xdd" and frame[22] == 0xFD and frame[38] == 0xFD


def tcp_ports(frame: bytes) -> tuple[int, ...]:
    """(source, destination) of an untagged IPv4/IPv6 TCP frame, else ()."""
    if frame[12:14] == b"\x08\x00" and frame[23] == 6:
        at = 14 + (frame[14] & 0x0F) * 4
    elif frame[12:14] == b"\x86\xdd" and frame[20] == 6:
        at = 54
    else:
        return ()
    return int.from_bytes(frame[at : at + 2], "big"), int.from_bytes(frame[at + 2 : at + 4], "big")


# --- one real capture per backend, judged by several tests --------------------------------


@dataclass
class LiveRun:
    backend: str
    returncode: int
    stdout: str
    stderr: str
    ours: list[Record]
    theirs: list[Record]
    output: Path
    tcpdump_file: Path
    config: Path
    tmp: Path


@pytest.fixture(scope="module", params=BACKENDS)
def live_run(request, tmp_path_factory, cert, namespaces_available) -> LiveRun:
    backend = request.param
    tmp = tmp_path_factory.mktemp(backend)
    pair = Netns()
    try:
        output, tcpdump_file = tmp / "live.pcap", tmp / "tcpdump.pcap"
        config = write_config(tmp / "live.ini", backend, output)
        server = pair.start(pair.capture, sys.executable, str(TRAFFIC), "serve", *map(str, cert),
                            stdin=subprocess.PIPE)  # fmt: skip
        wait_for_line(server, "stdout", "ready")
        # Frames on another interface (lo) while the recorder starts: none may reach the output.
        pair.start(pair.capture, sys.executable, str(TRAFFIC), "udp", "127.0.0.1", "9", "1500")
        tcpdump = start_tcpdump(pair, CAP_IF, tcpdump_file)
        recorder, banner = start_recorder(pair, config)
        pair.traffic(pair.peer, "client", CAP4, CAP6)
        time.sleep(SETTLE)
        stdout, stderr = stop(recorder)
        stdout = banner + stdout
        stop_tcpdump(tcpdump)
        _, ours = read_pcap(output)
        _, theirs = read_pcap(tcpdump_file)
        return LiveRun(backend, recorder.returncode, stdout, stderr, ours, theirs, output, tcpdump_file,
                       config, tmp)  # fmt: skip
    finally:
        pair.close()


def test_sigint_stops_with_exit_0_a_valid_file_and_the_final_stats(live_run):
    assert live_run.returncode == 0, live_run.stderr
    assert live_run.stderr == ""
    assert "Live capture stopped: signal received\nFinal stats:\n" in live_run.stdout
    stats = stats_block(live_run.stdout)
    assert list(stats) == STATS_KEYS
    assert stats["packets_total"] == stats["packets_written"] == len(live_run.ours)
    assert tshark_count(live_run.output) == len(live_run.ours)


def test_banner_is_upstreams(live_run):
    lines = live_run.stdout.split("Press Ctrl+C to stop.\n")[0].splitlines()
    expected = ["Starting live capture.", f"backend: {live_run.backend}", f"interface: {CAP_IF}",
                "promiscuous: false", f"output: {live_run.output}", "default_snaplen: 65535",
                "max_capture_len: 65535"]  # fmt: skip
    if live_run.backend == "tpacket_v3":
        expected += ["ring_block_size: 1048576", "ring_block_count: 64", "ring_frame_size: 2048",
                     "block_timeout_ms: 64"]  # fmt: skip
    assert lines == expected
    assert "\r" not in live_run.stdout  # no progress line when stdout is not a terminal


def test_every_frame_tcpdump_saw_is_recorded_in_order_with_its_original_length(live_run):
    order = contiguous_match(live_run.ours, live_run.theirs)
    window = live_run.theirs[min(order) : max(order) + 1]
    # The whole exchange happened while both ran: every test frame tcpdump saw is in the window.
    assert [r for r in window if is_test_traffic(r.data)] == [r for r in live_run.theirs
                                                              if is_test_traffic(r.data)]  # fmt: skip
    assert sum(is_test_traffic(r.data) for r in window) > 100


def test_timestamps_are_the_kernels(live_run):
    order = contiguous_match(live_run.ours, live_run.theirs)
    for ours, theirs in zip(live_run.ours, [live_run.theirs[i] for i in order], strict=True):
        assert abs(ours.ts_us - theirs.ts_us) < 10_000  # tcpdump's are kernel timestamps too


def test_no_frame_of_another_interface_is_recorded(live_run):
    loopback = bytes([127, 0, 0, 1])
    assert not [r for r in live_run.ours if r.data[12:14] == b"\x08\x00" and loopback in r.data[26:34]]


def test_kernel_reports_no_drops(live_run):
    stats = stats_block(live_run.stdout)
    assert stats["kernel_drops"] == 0
    assert stats["kernel_packets"] >= stats["packets_total"]
    assert stats["receive_errors"] == 0


def test_tls_and_quic_are_constricted_exactly_as_offline_mode_constricts_the_same_frames(live_run):
    offline = live_run.tmp / "offline.pcap"
    config = live_run.tmp / "offline.ini"
    config.write_text(live_run.config.read_text() + f"\n[capture]\noutput = {offline}\n")
    result = run_cli("--config", str(config), "--offline-input", str(live_run.tcpdump_file))
    assert result.returncode == 0, result.stderr
    _, constricted = read_pcap(offline)
    expected = [constricted[i] for i in contiguous_match(live_run.ours, live_run.theirs)]
    assert [(r.incl_len, r.orig_len, r.data) for r in live_run.ours] == [
        (r.incl_len, r.orig_len, r.data) for r in expected
    ]
    stats = stats_block(live_run.stdout)
    assert stats["tls_appdata_constricted"] > 0
    assert stats["quic_long_header"] > 0 and stats["quic_short_constricted"] > 0
    assert stats["bytes_saved"] > 50_000  # a good part of 2 x 96 KiB of TLS Application Data
    assert any(r.incl_len < r.orig_len for r in live_run.ours if 443 in tcp_ports(r.data))


# --- bounded capture and signals ----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_packets_stops_the_capture_with_exactly_that_many_records(ns, tmp_path, backend):
    output = tmp_path / "out.pcap"
    recorder, banner = start_recorder(ns, write_config(tmp_path / "c.ini", backend, output,
                                                       extra="max_packets = 15\n"))  # fmt: skip
    assert "max_packets: 15\n" in banner
    ns.traffic(ns.peer, "udp", CAP4, "9", "60")
    stdout, stderr = (s.decode() for s in recorder.communicate(timeout=15))
    assert recorder.returncode == 0, stderr
    assert "Live capture stopped: max_packets limit reached\nFinal stats:\n" in stdout
    assert stats_block(stdout)["packets_total"] == 15
    _, records = read_pcap(output)
    assert len(records) == 15 == tshark_count(output)


@pytest.mark.parametrize("backend", BACKENDS)
def test_duration_sec_stops_an_idle_capture_on_time(ns, tmp_path, backend):
    output = tmp_path / "out.pcap"
    started = time.monotonic()
    recorder, banner = start_recorder(ns, write_config(tmp_path / "c.ini", backend, output,
                                                       extra="duration_sec = 1\n"))  # fmt: skip
    stdout, stderr = (s.decode() for s in recorder.communicate(timeout=15))
    assert recorder.returncode == 0, stderr
    assert "duration_sec: 1\n" in banner
    assert "Live capture stopped: duration_sec limit reached\nFinal stats:\n" in stdout
    assert time.monotonic() - started < 8  # 1 s of capture plus start-up
    assert read_pcap(output)[0][5] == 65535  # a valid file, header written even if nothing came


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigterm_stops_like_sigint(ns, tmp_path, backend):
    output = tmp_path / "out.pcap"
    recorder, _ = start_recorder(ns, write_config(tmp_path / "c.ini", backend, output))
    ns.traffic(ns.peer, "udp", CAP4, "9", "10")
    time.sleep(SETTLE)
    started = time.monotonic()
    stdout, stderr = stop(recorder, signal.SIGTERM)
    assert time.monotonic() - started < 2.5
    assert recorder.returncode == 0, stderr
    assert "Live capture stopped: signal received\nFinal stats:\n" in stdout
    assert len(read_pcap(output)[1]) == stats_block(stdout)["packets_total"] >= 10


# --- what upstream loses ------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_vlan_tags_the_kernel_strips_are_saved_in_the_frame(ns, tmp_path, backend):
    output, judged = tmp_path / "out.pcap", tmp_path / "tcpdump.pcap"
    tcpdump = start_tcpdump(ns, CAP_IF, judged)
    recorder, _ = start_recorder(ns, write_config(tmp_path / "c.ini", backend, output))
    ns.traffic(ns.peer, "vlan", PEER_IF, CAP_MAC, "10")
    time.sleep(SETTLE)
    stdout, stderr = stop(recorder)
    stop_tcpdump(tcpdump)
    assert recorder.returncode == 0, stderr
    _, ours = read_pcap(output)
    tags = [(r.data[12:16].hex(), r.orig_len) for r in ours if r.data[12:14] in (b"\x81\x00", b"\x88\xa8")]
    # 802.1Q PCP 5 VID 42 and 802.1ad VID 43; the original length counts the tag
    length = 14 + 4 + 20 + 8 + len("vlan 42 0")
    assert tags == [("8100a02a", length), ("88a8002b", length)] * 10
    contiguous_match(ours, read_pcap(judged)[1])  # libpcap puts the tags back the same way


QUEUED_BEFORE_BIND = """
import socket, time
from pcapconstrictor.engine.sources.packet_socket import PacketSocket
from pcapconstrictor.formats import linux_packet as lp

ours = PacketSocket("cap0")  # how both backends open their socket
upstreams = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(lp.ETH_P_ALL))
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as lo:
    for _ in range(50):
        lo.sendto(b"before bind", ("127.0.0.1", 9))
time.sleep(0.2)
ours.bind(False)
upstreams.bind(("cap0", lp.ETH_P_ALL))

def loopback_frames(sock):
    sock.setblocking(False)
    count = 0
    try:
        while True:
            count += b"before bind" in sock.recv(65535)
    except BlockingIOError:
        return count

print(loopback_frames(ours.sock), loopback_frames(upstreams))
"""


def test_no_frame_of_another_interface_can_be_queued_before_bind(ns):
    result = ns.exec(ns.capture, sys.executable, "-c", QUEUED_BEFORE_BIND)
    ours, upstreams = map(int, result.stdout.split())
    assert upstreams >= 50  # an ETH_P_ALL socket queues lo's frames until bind(): upstream reads them
    assert ours == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_loopback_frames_are_recorded_once(ns, tmp_path, backend):
    output, judged = tmp_path / "out.pcap", tmp_path / "tcpdump.pcap"
    tcpdump = start_tcpdump(ns, "lo", judged)
    recorder, _ = start_recorder(ns, write_config(tmp_path / "c.ini", backend, output, interface="lo"))
    ns.traffic(ns.capture, "loopback", "20")
    time.sleep(SETTLE)
    stdout, stderr = stop(recorder)
    stop_tcpdump(tcpdump)
    assert recorder.returncode == 0, stderr
    _, ours = read_pcap(output)
    datagrams = [r for r in ours if r.data[23] == 17 and b"pcapconstrictor " in r.data]  # UDP, not ICMP
    assert len(datagrams) == 20  # upstream records every loopback frame twice
    _, theirs = read_pcap(judged)
    contiguous_match(ours, theirs)
    assert len(theirs) - len(ours) <= 2  # the same frames (tcpdump started first, stopped last)


@pytest.mark.parametrize("backend", BACKENDS)
def test_orig_len_is_the_wire_length_even_past_the_receive_buffer(ns, tmp_path, backend):
    # DECISIONS #3: a 65549-byte frame (65535-byte IP datagram) does not fit recvmsg's
    # 65535-byte buffer; upstream would report the cut size as the original length.
    for namespace, interface in ((ns.capture, CAP_IF), (ns.peer, PEER_IF)):
        ns.exec(namespace, "ip", "link", "set", interface, "mtu", "65535")
    output = tmp_path / "out.pcap"
    recorder, _ = start_recorder(ns, write_config(tmp_path / "c.ini", backend, output))
    ns.traffic(ns.peer, "udp", CAP4, "9", "1", str(65535 - 20 - 8))
    time.sleep(SETTLE)
    stdout, stderr = stop(recorder)
    assert recorder.returncode == 0, stderr
    big = [r for r in read_pcap(output)[1] if r.data[23] == 17]
    assert [(r.incl_len, r.orig_len) for r in big] == [(65535, 14 + 65535)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_output_is_flushed_within_the_flush_interval_and_survives_a_kill(ns, tmp_path, backend):
    output = tmp_path / "out.pcap"
    config = write_config(tmp_path / "c.ini", backend, output, extra="flush_interval_ms = 200\n")
    recorder, _ = start_recorder(ns, config)
    ns.traffic(ns.peer, "udp", CAP4, "9", "10")
    time.sleep(0.6)
    recorder.kill()  # no chance to flush on the way out
    recorder.wait(timeout=10)
    _, records = read_pcap(output)
    assert len([r for r in records if r.data[23] == 17]) == 10
    assert tshark_count(output) == len(records)


@pytest.mark.parametrize("backend", BACKENDS)
def test_promiscuous_mode_is_requested_while_capturing_and_dropped_after(ns, tmp_path, backend):
    def promiscuity() -> int:
        shown = ns.exec(ns.capture, "ip", "-d", "link", "show", CAP_IF).stdout.decode()
        return int(shown.split("promiscuity ")[1].split()[0])

    output = tmp_path / "out.pcap"
    recorder, banner = start_recorder(ns, write_config(tmp_path / "c.ini", backend, output,
                                                       extra="promiscuous = true\n"))  # fmt: skip
    assert "promiscuous: true\n" in banner
    assert promiscuity() == 1
    stdout, stderr = stop(recorder)
    assert recorder.returncode == 0, stderr
    assert promiscuity() == 0


# --- the progress line --------------------------------------------------------------------


def test_progress_line_is_shown_on_a_terminal(ns, tmp_path):
    output = tmp_path / "out.pcap"
    config = write_config(tmp_path / "c.ini", "tpacket_v3", output, extra="duration_sec = 3\n")
    controller, terminal = pty.openpty()
    recorder = ns.start(ns.capture, *RECORDER, "--config", str(config), stdout=terminal)
    os.close(terminal)
    time.sleep(1.0)
    ns.traffic(ns.peer, "udp", CAP4, "9", "20")
    seen = b""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and select.select([controller], [], [], deadline - time.monotonic())[0]:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO: the recorder closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    recorder.wait(timeout=10)
    text = seen.decode()
    assert recorder.returncode == 0
    assert " written, " in text and " bytes saved, " in text and " kernel drops" in text
    progress = [line for line in text.split("\r") if line.endswith("kernel drops\x1b[K")]
    assert progress, text
    assert "Live capture stopped: duration_sec limit reached" in text


# --- errors: a clear message and exit 1 ---------------------------------------------------


def test_missing_interface_is_a_configuration_error(tmp_path):
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\noutput = {tmp_path / 'out.pcap'}\n")
    result = run_cli("--config", str(config))
    assert result.returncode == 1
    assert result.stderr.decode() == "Configuration error: capture.interface is required for live capture.\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_interface_is_an_error_and_creates_no_output(tmp_path, backend):
    output = tmp_path / "out.pcap"
    result = run_cli("--config", str(write_config(tmp_path / "c.ini", backend, output, interface="nosuch0")))
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "Live capture error: if_nametoindex failed for interface 'nosuch0': No such device\n"
    )
    assert result.stdout == b""
    assert not output.exists()


def _drop_cap_net_raw() -> None:
    PR_CAPBSET_DROP, CAP_NET_RAW = 24, 13  # linux/prctl.h, linux/capability.h
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAPBSET_DROP, CAP_NET_RAW, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_cap_net_raw_is_a_clear_error(tmp_path, backend):
    output = tmp_path / "out.pcap"
    config = write_config(tmp_path / "c.ini", backend, output, interface="lo")
    # As root, drop CAP_NET_RAW from the bounding set before exec; otherwise we lack it already.
    result = subprocess.run([*RECORDER, "--config", str(config)], capture_output=True, timeout=60,
                            preexec_fn=_drop_cap_net_raw if os.geteuid() == 0 else None)  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert lines[0] == "Live capture error: failed to create AF_PACKET socket: Operation not permitted"
    assert "CAP_NET_RAW" in lines[1]
    assert not output.exists()


@pytest.mark.parametrize(
    ("ring", "message"),
    [
        (f"ring_block_size = {mmap.PAGESIZE * 3 // 2}\nring_frame_size = 2048\n",
         "capture.ring_block_size must be aligned to the system page size"),
        (f"ring_frame_size = 1032\nring_block_size = {1032 * mmap.PAGESIZE}\n",
         "capture.ring_frame_size must be aligned to TPACKET_ALIGNMENT"),
        ("ring_frame_size = 64\n", "capture.ring_frame_size is too small for TPACKET_V3 metadata"),
    ],
)  # fmt: skip
def test_ring_parameters_are_validated_before_any_socket_call(tmp_path, ring, message):
    output = tmp_path / "out.pcap"
    result = run_cli("--config", str(write_config(tmp_path / "c.ini", "tpacket_v3", output, extra=ring)))
    assert result.returncode == 1
    assert result.stderr.decode() == f"Live capture error: {message}\n"


def test_ring_the_kernel_refuses_is_a_clear_error(ns, tmp_path):
    output = tmp_path / "out.pcap"
    # The kernel takes tp_block_size as an int: 2 GiB is negative, EINVAL before any allocation.
    # max_ring_bytes lets it past our own bound on any host: the kernel is the judge here.
    config = write_config(tmp_path / "c.ini", "tpacket_v3", output,
                          extra="ring_block_size = 2147483648\nring_block_count = 1\n"
                                "max_ring_bytes = 2147483648\n")  # fmt: skip
    result = ns.exec(ns.capture, *RECORDER, "--config", str(config), check=False)
    assert result.returncode == 1
    refused = "Live capture error: failed to configure PACKET_RX_RING: Invalid argument\n"
    assert result.stderr.decode() == refused
    assert not output.exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_unwritable_output_is_a_clear_error(ns, tmp_path, backend):
    output = tmp_path / "missing" / "out.pcap"
    config = write_config(tmp_path / "c.ini", backend, output)
    result = ns.exec(ns.capture, *RECORDER, "--config", str(config), check=False)
    assert result.returncode == 1
    assert result.stderr.decode() == f"Live capture error: failed to open output file '{output}'.\n"


# A deleted interface: tests/test_live_robustness.py (issue 13 #7).


def test_addresses_are_from_the_benchmarking_and_ula_ranges():
    import ipaddress

    for address in (CAP4, PEER4):
        assert ipaddress.ip_address(address) in ipaddress.ip_network("198.18.0.0/15")
    for address in (CAP6, PEER6):
        assert ipaddress.ip_address(address) in ipaddress.ip_network("fd00::/8")


def test_the_banner_names_a_policy_other_than_upstreams_and_the_user():
    from pcapconstrictor.engine.config import parse_config_text
    from pcapconstrictor.engine.run.live import banner

    upstream = parse_config_text("[capture]\ninterface = eth0\n", "c.ini")
    assert "policy:" not in banner(upstream, {}) and "user:" not in banner(upstream, {})
    text = "[capture]\ninterface = eth0\n[tls]\napp_data_continuation_policy = bulk\n"
    bulk = parse_config_text(text, "c.ini")
    lines = banner(bulk, {"--user": "nobody"}).splitlines()
    assert lines[-3:] == ["policy: bulk (shipped)", "user: nobody", "Press Ctrl+C to stop."]
