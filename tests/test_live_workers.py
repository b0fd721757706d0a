"""Issue 5: ``capture.workers`` = N capture processes joined by PACKET_FANOUT.

Real traffic of many flows (TLS, plain TCP, QUIC-shaped UDP, ICMP, over IPv4 and IPv6)
crosses a veth pair between two namespaces while the recorder runs with two workers and
tcpdump watches the same interface.  Together the two files must hold exactly the frames
tcpdump saw, constricted as offline mode constricts them, every TLS flow in one file, and
the printed stats must be the two workers' summed.  Without root or network namespaces these
tests skip and say why.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from netns import CAP4, CAP6, CAP_IF, TRAFFIC, Netns, Record, read_pcap, stats_block, stop, wait_for_line
from test_interfaces import nobody
from test_live_capture import (
    RECORDER,
    SETTLE,
    STATS_KEYS,
    is_test_traffic,
    start_recorder,
    start_tcpdump,
    stop_tcpdump,
    write_config,
)  # fmt: skip

from conftest import run_cli, tshark_count
from pcapconstrictor.engine.run.worker_process import FramesSinceStart, SharedBudget

BACKENDS = ("recvmsg", "tpacket_v3")
CLIENT_RUNS = 4  # each: a TLS, a TCP and a QUIC-shaped flow and pings, over IPv4 and IPv6

# From the peer: ``count`` datagrams from each of ``flows`` source ports (one flow each).
UDP_FLOWS = """
import socket, sys, time
flows, count = int(sys.argv[1]), int(sys.argv[2])
socks = []
for port in range(30000, 30000 + flows):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("198.18.0.2", port))
    socks.append(sock)
for index in range(count):
    for sock in socks:
        sock.sendto(b"pcapconstrictor flow %d" % index, ("198.18.0.1", 9))
    time.sleep(0.002)
"""


def worker_files(output: Path, count: int = 2) -> list[Path]:
    return [output.with_name(f"{output.name}.{index}") for index in range(count)]


def flow_key(frame: bytes) -> tuple | None:
    """Both directions of an untagged IPv4/IPv6 TCP or UDP flow give the same key."""
    if frame[12:14] == b"\x08\x00":
        ihl = (frame[14] & 0x0F) * 4
        proto, src, dst, at = frame[23], frame[26:30], frame[30:34], 14 + ihl
    elif frame[12:14] == b"\x86\xdd":
        proto, src, dst, at = frame[20], frame[22:38], frame[38:54], 54
    else:
        return None
    if proto not in (6, 17):
        return None
    ends = sorted([(src, frame[at : at + 2]), (dst, frame[at + 2 : at + 4])])
    return (proto, *ends)


def records_key(records: list[Record]) -> Counter:
    return Counter((r.incl_len, r.orig_len, r.data) for r in records)


# --- the pieces, without a network ----------------------------------------------------------


class QueuedFrames:
    """A backend whose receive() hands out prepared batches."""

    flush_each_batch = False

    def __init__(self, *batches: list) -> None:
        self.batches = list(batches)

    def receive(self, timeout_ms: int) -> list:
        return self.batches.pop(0) if self.batches else []


def test_frames_stamped_before_the_go_are_dropped_up_to_the_first_one_after_it():
    backend = QueuedFrames([(1, b"a", 1), (2, b"b", 1)], [(3, b"c", 1), (9, b"d", 1), (4, b"e", 1)],
                           [(5, b"f", 1)])  # fmt: skip
    frames = FramesSinceStart(backend, start_ns=5)
    assert frames.receive(0) == []
    assert frames.receive(0) == [(9, b"d", 1), (4, b"e", 1)]  # queued after the go: a worker's own
    assert frames.receive(0) == [(5, b"f", 1)]
    assert frames.flush_each_batch is False  # the rest is the backend's


def test_max_packets_is_a_budget_the_workers_share():
    class Counted:
        def __init__(self):
            self.runs = []

        def run_batch(self, frames):
            self.runs.append(len(frames))

    total = multiprocessing.get_context("fork").Value("Q", 0)
    first, second = Counted(), Counted()
    a, b = SharedBudget(first, total, 10), SharedBudget(second, total, 10)
    a.run_batch([(0, b"", 0)] * 6)
    b.run_batch([(0, b"", 0)] * 6)
    assert second.runs == [4]  # cut to what is left
    a.run_batch([(0, b"", 0)] * 3)
    assert first.runs == [6]  # nothing is left
    assert a.packets == b.packets == 10


FOREIGN_GROUPS = """
import socket, struct
from pcapconstrictor.engine.run.worker_process import FANOUT_MODE
from pcapconstrictor.engine.sources.packet_socket import PacketSocket
from pcapconstrictor.formats import linux_packet as lp

def member():
    sock = PacketSocket("cap0")
    sock.bind(False)
    return sock

# another program's groups on the same interface, in our very mode, ids 0..15
foreign = [member() for _ in range(16)]
for group, sock in enumerate(foreign):
    sock.join_fanout(group, FANOUT_MODE)
first, second = member(), member()
group = first.create_fanout(FANOUT_MODE)
second.join_fanout(group, FANOUT_MODE)
raw = second.sock.getsockopt(lp.SOL_PACKET, lp.PACKET_FANOUT, 4)
print(group, struct.unpack("=I", raw)[0] & 0xFFFF)
"""


def test_the_workers_group_id_is_one_the_kernel_knows_to_be_unused(ns):
    # a group id we picked could be another program's group in the same mode: joining it
    # would split the frames with that program without a word
    result = ns.exec(ns.capture, sys.executable, "-c", FOREIGN_GROUPS)
    group, joined = map(int, result.stdout.split())
    assert group not in range(16) and joined == group


# --- one capture with two workers per backend, judged by several tests ----------------------


@dataclass
class WorkersRun:
    backend: str
    returncode: int
    stdout: str
    stderr: str
    files: list[list[Record]]
    theirs: list[Record]
    output: Path
    tcpdump_file: Path
    config: Path
    tmp: Path


@pytest.fixture(scope="module", params=BACKENDS)
def workers_run(request, tmp_path_factory, cert, namespaces_available) -> WorkersRun:
    backend = request.param
    tmp = tmp_path_factory.mktemp(f"workers-{backend}")
    pair = Netns()
    try:
        output, tcpdump_file = tmp / "live.pcap", tmp / "tcpdump.pcap"
        config = write_config(tmp / "live.ini", backend, output, extra="workers = 2\n")
        server = pair.start(pair.capture, sys.executable, str(TRAFFIC), "serve", *map(str, cert),
                            stdin=subprocess.PIPE)  # fmt: skip
        wait_for_line(server, "stdout", "ready")
        tcpdump = start_tcpdump(pair, CAP_IF, tcpdump_file)
        recorder, banner = start_recorder(pair, config)
        for _ in range(CLIENT_RUNS):
            pair.traffic(pair.peer, "client", CAP4, CAP6)
        pair.exec(pair.peer, sys.executable, "-c", UDP_FLOWS, "32", "5")
        time.sleep(SETTLE)
        stdout, stderr = stop(recorder)
        stop_tcpdump(tcpdump)
        files = [read_pcap(path)[1] for path in worker_files(output)]
        return WorkersRun(backend, recorder.returncode, banner + stdout, stderr, files,
                          read_pcap(tcpdump_file)[1], output, tcpdump_file, config, tmp)  # fmt: skip
    finally:
        pair.close()


def test_two_workers_stop_with_exit_0_and_one_final_stats_block(workers_run):
    assert workers_run.returncode == 0, workers_run.stderr
    assert workers_run.stderr == ""
    assert workers_run.stdout.count("Final stats:\n") == 1
    assert "Live capture stopped: signal received\nFinal stats:\n" in workers_run.stdout
    assert list(stats_block(workers_run.stdout)) == STATS_KEYS
    assert "workers: 2\nPress Ctrl+C to stop.\n" in workers_run.stdout


def test_each_worker_writes_its_own_valid_file(workers_run):
    assert not workers_run.output.exists()  # <output>.0 and <output>.1 only
    for path, records in zip(worker_files(workers_run.output), workers_run.files, strict=True):
        assert records, f"{path.name} is empty: fanout sent every flow to one worker"
        assert tshark_count(path) == len(records)
        assert read_pcap(path)[0][5] == 65535


def test_the_two_files_hold_exactly_the_frames_tcpdump_saw(workers_run):
    def seen(records: list[Record]) -> Counter:
        return Counter((r.orig_len, r.data[:64]) for r in records)  # 64 bytes: never cut, and unique

    ours = [r for records in workers_run.files for r in records]
    # tcpdump started first and stopped last; the test traffic all ran while both were capturing
    assert seen(ours) <= seen(workers_run.theirs)
    tested = [r for r in ours if is_test_traffic(r.data)]
    assert seen(tested) == seen([r for r in workers_run.theirs if is_test_traffic(r.data)])
    assert len(tested) > 300


def test_every_flow_is_in_one_file_so_tls_state_stays_whole(workers_run):
    homes: dict[tuple, set[int]] = {}
    for index, records in enumerate(workers_run.files):
        for record in records:
            key = flow_key(record.data)
            if key is not None:
                homes.setdefault(key, set()).add(index)
    tls = [key for key in homes if key[0] == 6 and b"\x01\xbb" in (key[1][1], key[2][1])]
    assert len(tls) == 2 * CLIENT_RUNS
    assert len(homes) >= 4 * 2 * CLIENT_RUNS
    split = {key: where for key, where in homes.items() if len(where) > 1}
    assert not split
    assert {index for where in homes.values() for index in where} == {0, 1}


def test_frames_are_constricted_exactly_as_offline_mode_constricts_them(workers_run):
    offline = workers_run.tmp / "offline.pcap"
    config = workers_run.tmp / "offline.ini"
    config.write_text(workers_run.config.read_text() + f"\n[capture]\noutput = {offline}\n")
    result = run_cli("--config", str(config), "--offline-input", str(workers_run.tcpdump_file))
    assert result.returncode == 0, result.stderr
    expected = [r for r in read_pcap(offline)[1] if is_test_traffic(r.data)]
    ours = [r for records in workers_run.files for r in records if is_test_traffic(r.data)]
    assert records_key(ours) == records_key(expected)
    assert any(r.incl_len < r.orig_len for r in ours)


def test_final_stats_are_the_workers_summed(workers_run):
    stats = stats_block(workers_run.stdout)
    ours = [r for records in workers_run.files for r in records]
    assert stats["packets_total"] == stats["packets_written"] == len(ours)
    assert stats["bytes_output"] == sum(r.incl_len for r in ours)
    full = {(r.orig_len, r.data[:64]): r.incl_len for r in workers_run.theirs}  # tcpdump kept every byte
    assert stats["bytes_input"] == sum(full[(r.orig_len, r.data[:64])] for r in ours)
    assert stats["bytes_saved"] == stats["bytes_input"] - stats["bytes_output"] > 50_000
    assert stats["kernel_drops"] == 0 and stats["receive_errors"] == 0
    assert stats["kernel_packets"] >= stats["packets_total"]
    assert stats["tls_appdata_constricted"] > 0
    assert stats["quic_long_header"] > 0 and stats["quic_short_constricted"] > 0


# --- bounds, signals, failures --------------------------------------------------------------


def test_no_frame_is_in_two_files_when_traffic_flows_while_the_workers_start(ns, tmp_path):
    # Until every worker's socket has joined the group, each one gets every frame.
    sender = ns.start(ns.peer, sys.executable, "-c", UDP_FLOWS, "32", "600")  # ~1.5 s of traffic
    time.sleep(0.2)
    output = tmp_path / "out.pcap"
    recorder, _ = start_recorder(ns, write_config(tmp_path / "c.ini", "tpacket_v3", output,
                                                  extra="workers = 2\n"))  # fmt: skip
    sender.wait(timeout=30)
    time.sleep(SETTLE)
    stdout, stderr = stop(recorder)
    assert recorder.returncode == 0, stderr
    files = [read_pcap(path)[1] for path in worker_files(output)]
    assert sum(map(len, files)) == stats_block(stdout)["packets_total"]
    ours = Counter(r.data for records in files for r in records if b"pcapconstrictor flow" in r.data)
    assert sum(ours.values()) > 1000
    assert max(ours.values()) == 1  # each datagram is unique (port, index): none was saved twice


def test_max_packets_counts_the_records_of_all_workers(ns, tmp_path):
    output = tmp_path / "out.pcap"
    config = write_config(tmp_path / "c.ini", "tpacket_v3", output, extra="workers = 2\nmax_packets = 40\n")
    recorder, banner = start_recorder(ns, config)
    assert "max_packets: 40\n" in banner
    ns.exec(ns.peer, sys.executable, "-c", UDP_FLOWS, "32", "4")  # 128 datagrams in 32 flows
    stdout, stderr = (s.decode() for s in recorder.communicate(timeout=15))
    assert recorder.returncode == 0, stderr
    assert "Live capture stopped: max_packets limit reached\nFinal stats:\n" in stdout
    counts = [len(read_pcap(path)[1]) for path in worker_files(output)]
    assert sum(counts) == stats_block(stdout)["packets_total"] == 40


def test_duration_sec_stops_every_worker_on_time(ns, tmp_path):
    output = tmp_path / "out.pcap"
    started = time.monotonic()
    recorder, _ = start_recorder(ns, write_config(tmp_path / "c.ini", "recvmsg", output,
                                                  extra="workers = 2\nduration_sec = 1\n"))  # fmt: skip
    stdout, stderr = (s.decode() for s in recorder.communicate(timeout=15))
    assert recorder.returncode == 0, stderr
    assert "Live capture stopped: duration_sec limit reached\nFinal stats:\n" in stdout
    assert time.monotonic() - started < 8
    assert all(read_pcap(path)[0][5] == 65535 for path in worker_files(output))


def test_sigterm_to_the_parent_alone_stops_every_worker(ns, tmp_path):
    output = tmp_path / "out.pcap"
    recorder, _ = start_recorder(ns, write_config(tmp_path / "c.ini", "tpacket_v3", output,
                                                  extra="workers = 2\n"))  # fmt: skip
    ns.exec(ns.peer, sys.executable, "-c", UDP_FLOWS, "16", "2")
    time.sleep(SETTLE)
    started = time.monotonic()
    stdout, stderr = stop(recorder, signal.SIGTERM)  # to the parent's pid only, not the group
    assert time.monotonic() - started < 3
    assert recorder.returncode == 0, stderr
    assert "Live capture stopped: signal received\nFinal stats:\n" in stdout
    records = sum(len(read_pcap(path)[1]) for path in worker_files(output))
    assert records == stats_block(stdout)["packets_total"] >= 32
    workers = subprocess.run(["pgrep", "-f", str(tmp_path / "c.ini")], capture_output=True)
    assert workers.stdout == b""  # the parent waited for its workers


def test_workers_1_is_the_single_process_capture(ns, tmp_path):
    output = tmp_path / "out.pcap"
    recorder, banner = start_recorder(ns, write_config(tmp_path / "c.ini", "tpacket_v3", output,
                                                       extra="workers = 1\n"))  # fmt: skip
    assert "\nworkers: " not in banner
    ns.exec(ns.peer, sys.executable, "-c", UDP_FLOWS, "8", "2")
    time.sleep(SETTLE)
    stdout, stderr = stop(recorder)
    assert recorder.returncode == 0, stderr
    assert len(read_pcap(output)[1]) == stats_block(stdout)["packets_total"] >= 16
    assert not any(path.exists() for path in worker_files(output))


def test_a_setup_failure_is_reported_once_as_with_one_worker_and_creates_no_file(tmp_path):
    output = tmp_path / "out.pcap"
    single = run_cli("--config", str(write_config(tmp_path / "1.ini", "tpacket_v3", output, "nosuch0")))
    assert single.returncode == 1
    several = run_cli("--config", str(write_config(tmp_path / "2.ini", "tpacket_v3", output, "nosuch0",
                                                   extra="workers = 3\n")))  # fmt: skip
    assert several.returncode == 1
    assert several.stderr == single.stderr and several.stderr.startswith(b"Live capture error: ")
    assert several.stdout == b""
    assert list(tmp_path.glob("out.pcap*")) == []


def test_standard_output_cannot_take_several_workers(tmp_path):
    config = write_config(tmp_path / "c.ini", "tpacket_v3", Path("-"), "lo", extra="workers = 2\n")
    result = run_cli("--config", str(config))
    assert result.returncode == 1
    assert result.stderr.decode() == ("Live capture error: capture.workers > 1 needs an output file "
                                      "(each worker writes <output>.<i>), not standard output\n")  # fmt: skip


def test_interface_vanishing_is_one_error_with_the_summed_partial_stats(ns, tmp_path):
    output = tmp_path / "out.pcap"
    recorder, _ = start_recorder(ns, write_config(tmp_path / "c.ini", "recvmsg", output,
                                                  extra="workers = 2\n"))  # fmt: skip
    ns.exec(ns.peer, sys.executable, "-c", UDP_FLOWS, "16", "2")
    time.sleep(SETTLE)
    ns.exec(ns.capture, "ip", "link", "del", CAP_IF)
    stdout, stderr = (s.decode() for s in recorder.communicate(timeout=15))
    assert recorder.returncode == 1
    assert stdout == ""
    assert stderr.startswith(f"Live capture: interface '{CAP_IF}' went down; waiting for it to come back\n"
                             f"Live capture error: interface '{CAP_IF}' was deleted\n"
                             "Partial stats:\n")  # fmt: skip
    assert stderr.count("Live capture") == 2
    stats = stats_block(stderr.replace("Partial stats:", "Final stats:"))
    assert sum(len(read_pcap(path)[1]) for path in worker_files(output)) == stats["packets_total"] >= 32


def test_ipv4_fragments_reach_a_worker_reassembled(ns, tmp_path):
    # PACKET_FANOUT_FLAG_DEFRAG: the kernel reassembles before hashing, and the worker gets
    # the reassembled datagram, not the fragments tcpdump sees.
    output = tmp_path / "out.pcap"
    recorder, _ = start_recorder(ns, write_config(tmp_path / "c.ini", "tpacket_v3", output,
                                                  extra="workers = 2\n"))  # fmt: skip
    ns.traffic(ns.peer, "udp", CAP4, "9", "3", "3000")
    time.sleep(SETTLE)
    stdout, stderr = stop(recorder)
    assert recorder.returncode == 0, stderr
    incoming = [r for path in worker_files(output) for r in read_pcap(path)[1]
                if r.data[12:14] == b"\x08\x00" and r.data[23] == 17]  # fmt: skip
    assert [(r.incl_len, r.orig_len) for r in incoming] == [(14 + 20 + 8 + 3000,) * 2] * 3


# --- --user: no process stays root (issue 13) -------------------------------------------------


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.split(":", 1) for line in f.read().splitlines())


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(child) for child in f.read().split()]


def start_as_nobody(ns, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    output = tmp_path / "out.pcap"
    config = write_config(tmp_path / "c.ini", "tpacket_v3", output, extra="workers = 2\n")
    recorder = ns.start(ns.capture, *RECORDER, "--config", str(config), "--user", "nobody", "udp")
    wait_for_line(recorder, "stdout", "Press Ctrl+C to stop.\n")  # printed once the parent is nobody too
    return recorder, output


def test_with_user_the_parent_drops_root_too_and_every_frame_is_still_written(ns, tmp_path):
    user = nobody()
    recorder, output = start_as_nobody(ns, tmp_path)
    workers = children(recorder.pid)
    assert len(workers) == 2
    for pid in (recorder.pid, *workers):
        status = proc_status(pid)
        assert status["Uid"].split() == [str(user.pw_uid)] * 4, pid  # real, effective, saved, filesystem
        assert status["Gid"].split() == [str(user.pw_gid)] * 4, pid
        assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, pid
    ns.traffic(ns.peer, "udp", CAP4, "9", "10")
    time.sleep(SETTLE)
    stdout, stderr = stop(recorder)  # the parent, now nobody, can still stop its workers
    assert recorder.returncode == 0, stderr
    files = worker_files(output)
    assert sum(len(read_pcap(path)[1]) for path in files) == stats_block(stdout)["packets_total"] == 10
    assert all((path.stat().st_uid, path.stat().st_gid) == (user.pw_uid, user.pw_gid) for path in files)


def test_with_user_the_workers_still_stop_when_the_parent_is_killed(ns, tmp_path):
    # the kernel clears a process's parent-death signal when its uid changes: it is set again
    nobody()
    recorder, _ = start_as_nobody(ns, tmp_path)
    workers = children(recorder.pid)
    os.kill(recorder.pid, signal.SIGKILL)
    recorder.wait(timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)


def alive(pid: int) -> bool:
    """Running (not ended, nor a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
