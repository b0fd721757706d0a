"""Issue 13 #7 and #9: a live capture keeps every frame the kernel received through a stop,
a link down/up and a deleted interface.  Run in network namespaces (tests/netns.py), as root.

Frames are UDP datagrams from the peer to a port per phase, so a test counts exactly its own
frames, whatever other noise (MLD, ND) the link carries.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from netns import CAP4, CAP_IF, Netns, read_pcap, stats_block, wait_for_line

BACKENDS = ("recvmsg", "tpacket_v3")
RECORDER = (sys.executable, "-m", "pcapconstrictor.engine")
SETTLE = 0.5  # longer than a tpacket block timeout
# N datagrams as fast as the sender goes, a short pause every 100 so the receiving CPU's
# backlog (net.core.netdev_max_backlog) never overflows before a tap sees them.
BURST = """
import socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    for i in range(count):
        sock.sendto(b"burst %d" % i, (host, port))
        if i % 100 == 99:
            time.sleep(0.001)
"""


def send(ns: Netns, port: int, count: int) -> None:
    ns.exec(ns.peer, sys.executable, "-c", BURST, CAP4, str(port), str(count))


def udp_ports(path: Path) -> Counter:
    """How many IPv4 UDP frames went to each destination port."""
    ports: Counter = Counter()
    for record in read_pcap(path)[1]:
        frame = record.data
        if frame[12:14] == b"\x08\x00" and frame[23] == 17:
            at = 14 + (frame[14] & 0x0F) * 4
            ports[int.from_bytes(frame[at + 2 : at + 4], "big")] += 1
    return ports


def start(ns: Netns, tmp: Path, backend: str, extra: str = ""):
    output = tmp / "out.pcap"
    config = tmp / "c.ini"
    config.write_text(f"[capture]\ninterface = {CAP_IF}\nbackend = {backend}\noutput = {output}\n{extra}")
    recorder = ns.start(ns.capture, *RECORDER, "--config", str(config))
    wait_for_line(recorder, "stdout", "Press Ctrl+C to stop.\n")
    return recorder, output


def finish(recorder, timeout: float = 15) -> tuple[str, str]:
    out, err = recorder.communicate(timeout=timeout)
    return out.decode(errors="replace"), err.decode(errors="replace")


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_queued_at_sigint_are_written_before_the_final_stats(ns, tmp_path, backend):
    # small blocks: the burst fills many, as a flood fills the default ones
    recorder, output = start(ns, tmp_path, backend, "ring_block_size = 65536\n")
    os.kill(recorder.pid, signal.SIGSTOP)  # the frames pile up in the socket / the ring
    try:
        send(ns, 9, 5000)
        time.sleep(SETTLE)
    finally:
        os.kill(recorder.pid, signal.SIGINT)
        os.kill(recorder.pid, signal.SIGCONT)
    stdout, stderr = finish(recorder)
    assert recorder.returncode == 0, stderr
    stats = stats_block(stdout)
    assert stats["kernel_drops"] == 0
    assert udp_ports(output)[9] == 5000
    assert len(read_pcap(output)[1]) == stats["packets_total"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_link_down_and_up_is_reported_and_the_capture_goes_on(ns, tmp_path, backend):
    recorder, output = start(ns, tmp_path, backend)
    send(ns, 9, 20)
    time.sleep(SETTLE)
    ns.exec(ns.capture, "ip", "link", "set", CAP_IF, "down")
    wait_for_line(recorder, "stderr", "went down", timeout=10)
    time.sleep(1)
    ns.exec(ns.capture, "ip", "link", "set", CAP_IF, "up")
    wait_for_line(recorder, "stderr", "is up again", timeout=10)
    time.sleep(SETTLE)  # the veth carrier comes back
    send(ns, 10, 20)
    time.sleep(SETTLE)
    recorder.send_signal(signal.SIGINT)
    stdout, stderr = finish(recorder)
    assert recorder.returncode == 0, stderr
    assert "Live capture stopped: signal received\n" in stdout
    assert stats_block(stdout)["link_down_events"] == 1
    ports = udp_ports(output)
    assert (ports[9], ports[10]) == (20, 20)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_deleted_interface_ends_the_run_with_every_received_frame_written(ns, tmp_path, backend):
    recorder, output = start(ns, tmp_path, backend)
    send(ns, 9, 300)  # no pause: the last frames are still in the socket or an open block
    ns.exec(ns.capture, "ip", "link", "del", CAP_IF)
    stdout, stderr = finish(recorder)
    assert recorder.returncode == 1 and stdout == ""
    assert f"Live capture error: interface '{CAP_IF}' was deleted\nPartial stats:\n" in stderr, stderr
    stats = stats_block(stderr.replace("Partial stats:", "Final stats:"))
    assert stats["link_down_events"] == 1
    assert stats["receive_errors"] == 0 and stats["kernel_drops"] == 0
    assert udp_ports(output)[9] == 300
    assert len(read_pcap(output)[1]) == stats["packets_total"]
