"""Issue 18 #2: systemd's notify protocol over a real AF_UNIX datagram socket, and the shipped
hardened unit file checked by systemd-analyze."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns import CAP4, CAP_IF, stats_block, stop, wait_for_line

from conftest import ROOT
from pcapconstrictor.engine.run.notify import ServiceNotifier

RECORDER = (sys.executable, "-m", "pcapconstrictor.engine")
UNIT = ROOT / "contrib" / "systemd" / "pcapconstrictor-afpacket.service"


def listener(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def messages(sock: socket.socket, seconds: float) -> list[list[str]]:
    """Every datagram for ``seconds``, each as its lines."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append(sock.recv(4096).decode().splitlines())
        except TimeoutError:
            break
    return out


def test_ready_reaches_a_socket_named_by_path(tmp_path):
    path = str(tmp_path / "notify")
    with listener(path) as sock:
        ServiceNotifier({"NOTIFY_SOCKET": path}).ready("capturing")
        lines = sock.recv(4096).decode().splitlines()
    assert lines[:2] == ["READY=1", "STATUS=capturing"]
    assert f"MAINPID={os.getpid()}" in lines


def test_an_abstract_socket_name_starts_with_at():
    name = f"pcapconstrictor-test-{os.getpid()}"
    with listener(b"\0" + name.encode()) as sock:
        ServiceNotifier({"NOTIFY_SOCKET": "@" + name}).stopping("stopping")
        assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping\n"


def test_watchdog_pings_at_half_the_period_and_not_more_often(tmp_path):
    path = str(tmp_path / "notify")
    with listener(path) as sock:
        notifier = ServiceNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
        for now in (100.0, 100.5, 100.9, 101.0, 101.5, 102.0):
            notifier.watchdog(now)
        sock.settimeout(0.2)
        assert [line for batch in messages(sock, 0.3) for line in batch] == ["WATCHDOG=1"] * 3


def test_a_watchdog_meant_for_another_process_is_not_pinged():
    notifier = ServiceNotifier({"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "1000000",
                                "WATCHDOG_PID": str(os.getpid() + 1)})  # fmt: skip
    assert notifier.watchdog_period is None


def test_without_notify_socket_nothing_is_sent():
    notifier = ServiceNotifier({})
    assert not notifier.enabled
    notifier.ready("capturing")  # no socket is even created
    assert notifier._socket is None


@pytest.mark.parametrize("workers", [1, 2])
def test_a_live_capture_says_ready_status_watchdog_and_stopping(ns, tmp_path, workers):
    path = str(tmp_path / "notify")
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\ninterface = {CAP_IF}\nbackend = tpacket_v3\n"
                      f"output = {tmp_path / 'o.pcap'}\nworkers = {workers}\n")  # fmt: skip
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
    with listener(path) as sock:
        recorder = ns.start(ns.capture, *RECORDER, "--config", str(config), env=env)
        wait_for_line(recorder, "stdout", "Press Ctrl+C to stop.\n")
        ns.traffic(ns.peer, "udp", CAP4, "9", "10")
        running = messages(sock, 3.2)
        stdout, stderr = stop(recorder, timeout=15)
        ending = messages(sock, 0.5)
    assert recorder.returncode == 0, stderr
    assert running[0][0] == "READY=1"
    flat = [line for batch in running for line in batch]
    assert flat.count("WATCHDOG=1") >= 3  # every 0.5 s from the loop (workers: all reported)
    statuses = [line for line in flat if line.startswith("STATUS=") and "written" in line]
    written = stats_block(stdout)["packets_total"]  # the traffic has ended: the figures are final
    assert written >= 10 and statuses and statuses[-1].split(", ")[1] == f"{written} written"
    assert ["STOPPING=1", "STATUS=stopping"] in ending


def test_a_stuck_loop_stops_the_watchdog_pings(tmp_path):
    """The ping comes from the loop iteration: a loop that does not turn sends nothing."""
    from pcapconstrictor.engine.run.monitor import RunMonitor

    path = str(tmp_path / "notify")
    with listener(path) as sock:
        notifier = ServiceNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        monitor = RunMonitor(lambda: None, None, notifier, time.monotonic())  # type: ignore[arg-type]
        monitor.tick(time.monotonic())
        assert messages(sock, 0.2) == [["WATCHDOG=1"]]
        time.sleep(0.5)  # the loop is "stuck": no tick
        assert messages(sock, 0.2) == []


# --- the unit file -------------------------------------------------------------------------


def test_the_unit_file_is_hardened():
    text = UNIT.read_text()
    for line in ("Type=notify", "User=pcapconstrictor", "AmbientCapabilities=CAP_NET_RAW",
                 "CapabilityBoundingSet=CAP_NET_RAW", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ReadWritePaths=/var/lib/pcapconstrictor", "WatchdogSec=30s", "Restart=on-failure",
                 "RestrictAddressFamilies=AF_PACKET AF_UNIX AF_NETLINK AF_INET AF_INET6"):  # fmt: skip
        assert f"\n{line}\n" in text, line


def test_systemd_analyze_verifies_the_unit_file(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    program = Path(sys.executable).parent / "pcapconstrictor-afpacket"
    if not program.exists():
        pytest.skip(f"{program} is not installed")
    unit = tmp_path / UNIT.name  # ExecStart must name an existing program
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/pcapconstrictor-afpacket", str(program)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert UNIT.name not in result.stderr  # no warning about our unit either
