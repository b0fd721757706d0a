"""Issue 13 (items 1, 6, 8), DECISIONS.md #13: output files are never written through a planted
link, never written by two recorders at once, and a full disk leaves whole records and stats."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns import CAP4, CAP_IF, read_pcap, stop, wait_for_line

from conftest import GOLDEN, config_with_output, run_cli
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sources.pcap_reader import PcapReader

CASE = GOLDEN / "ipv6_ipv4_test_1"
INPUT, CONFIG, EXPECTED = CASE / "input.pcap", CASE / "config.ini", CASE / "constricted.pcap"
RECORDER = (sys.executable, "-m", "pcapconstrictor.engine")
LINK_REFUSED = "it is a symbolic link (refused, not followed)"
LOCKED = "another recorder is writing it (the file is locked)"


def as_nobody() -> list[str]:
    """``--user nobody`` when root (to show a refused file is not chowned either)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return []
    return ["--user", "nobody"]


def offline(tmp_path: Path, output: Path, *args: str, extra: str = "", source: Path = INPUT):
    config = config_with_output(tmp_path, CONFIG, output, extra)
    return run_cli("--config", str(config), "--offline-input", str(source), *args)


def planted_target(tmp_path: Path) -> tuple[Path, bytes, tuple[int, int]]:
    target = tmp_path / "precious"
    target.write_bytes(b"not yours to overwrite\n")
    st = target.stat()
    return target, target.read_bytes(), (st.st_uid, st.st_gid)


def assert_untouched(target: Path, content: bytes, owner: tuple[int, int]) -> None:
    st = target.stat()
    assert target.read_bytes() == content
    assert (st.st_uid, st.st_gid) == owner


def capinfos_count(path: Path) -> int:
    """Packets capinfos reads; fails if capinfos rejects the file or finds a record cut short."""
    if shutil.which("capinfos") is None:
        pytest.skip("capinfos is not installed (Debian package tshark)")
    result = subprocess.run(["capinfos", "-M", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "cut short" not in result.stderr, f"{path}: {result.stderr}"
    return int(re.search(r"Number of packets:\s+(\d+)", result.stdout)[1])


# --- symbolic links ---------------------------------------------------------------------------


def test_a_symlink_at_the_output_is_refused_and_its_target_untouched(tmp_path):
    target, content, owner = planted_target(tmp_path)
    output = tmp_path / "out.pcap"
    output.symlink_to(target)
    result = offline(tmp_path, output, *as_nobody())
    assert result.returncode == 1
    refused = f"Offline feed error: failed to open output file '{output}': {LINK_REFUSED}\n"
    assert result.stderr.decode() == refused
    assert output.is_symlink()
    assert_untouched(target, content, owner)


def test_a_dangling_symlink_at_the_output_is_refused_and_creates_nothing(tmp_path):
    output, target = tmp_path / "out.pcap", tmp_path / "would-be-created"
    output.symlink_to(target)
    result = offline(tmp_path, output)
    assert result.returncode == 1 and LINK_REFUSED in result.stderr.decode()
    assert not target.exists()


def test_a_symlink_at_a_rotated_name_is_refused_the_files_before_it_valid(tmp_path):
    target, content, owner = planted_target(tmp_path)
    (tmp_path / "rot_00002.pcap").symlink_to(target)
    result = offline(tmp_path, tmp_path / "rot.pcap", extra="rotate_bytes = 20000\n")
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err.startswith(f"Offline feed error: failed to open output file '{tmp_path}/rot_00002.pcap': "
                          f"{LINK_REFUSED}\nPartial stats:\n")  # fmt: skip
    assert_untouched(target, content, owner)
    first = read_pcap(tmp_path / "rot_00001.pcap")[1]
    assert first and capinfos_count(tmp_path / "rot_00001.pcap") == len(first)
    assert f"packets_written: {len(first)}\n" in err


def test_a_symlink_at_the_decision_log_is_refused_and_its_target_untouched(tmp_path):
    target, content, owner = planted_target(tmp_path)
    log = tmp_path / "log.csv"
    log.symlink_to(target)
    result = offline(tmp_path, tmp_path / "out.pcap", "--decision-log", str(log), *as_nobody())
    assert result.returncode == 1
    assert result.stderr.decode() == f"cannot write decision log '{log}': {LINK_REFUSED}\n"
    assert_untouched(target, content, owner)


@pytest.mark.skipif(os.geteuid() != 0, reason="--user needs the test to run as root")
def test_user_gets_the_files_the_run_created_and_nothing_else(tmp_path):
    user = pwd.getpwnam("nobody")
    output, log = tmp_path / "out.pcap", tmp_path / "log.csv"
    result = offline(tmp_path, output, "--decision-log", str(log), "--user", "nobody")
    assert result.returncode == 0, result.stderr
    for path in (output, log):
        assert (path.stat().st_uid, path.stat().st_gid) == (user.pw_uid, user.pw_gid)
    assert tmp_path.stat().st_uid == 0


# --- existing files, FIFOs, devices --------------------------------------------------------------


def test_an_existing_regular_file_is_replaced_by_a_new_file_never_written_in_place(tmp_path):
    output, hard_link = tmp_path / "out.pcap", tmp_path / "other-name"
    output.write_bytes(b"old capture " * 10_000)
    os.link(output, hard_link)  # another name for the old file: it must keep its bytes
    old_inode = output.stat().st_ino
    result = offline(tmp_path, output)
    assert result.returncode == 0, result.stderr
    assert output.stat().st_ino != old_inode
    assert output.read_bytes() == EXPECTED.read_bytes()
    assert hard_link.read_bytes() == b"old capture " * 10_000


def test_a_fifo_is_written_as_a_stream_like_a_pipe(tmp_path):
    fifo, copy = tmp_path / "out.fifo", tmp_path / "copy.pcap"
    os.mkfifo(fifo)
    with open(copy, "wb") as sink:
        reader = subprocess.Popen(["cat", str(fifo)], stdout=sink)
        try:
            result = offline(tmp_path, fifo)
        finally:
            reader.wait(timeout=60)
    assert result.returncode == 0, result.stderr
    assert copy.read_bytes() == EXPECTED.read_bytes()
    assert fifo.exists() and not fifo.is_file()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to plant a FIFO owned by another user")
def test_a_fifo_another_user_planted_in_a_shared_directory_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    fifo = shared / "out.pcap"
    os.mkfifo(fifo)
    nobody = pwd.getpwnam("nobody")
    os.chown(fifo, nobody.pw_uid, nobody.pw_gid)
    result = offline(tmp_path, fifo)
    assert result.returncode == 1
    assert result.stderr.decode() == (f"Offline feed error: failed to open output file '{fifo}': "
                                      "it is a FIFO another user owns in a shared directory\n")  # fmt: skip


def test_a_character_device_is_written_as_it_is(tmp_path):
    result = offline(tmp_path, Path("/dev/null"))
    assert result.returncode == 0, result.stderr
    assert Path("/dev/null").is_char_device()


# --- a second recorder ---------------------------------------------------------------------------


class FirstRecorder:
    """A recorder reading standard input that is kept open: it holds its output until released."""

    def __init__(self, tmp_path: Path, output: Path, extra: str = "") -> None:
        config = config_with_output(tmp_path, CONFIG, output, extra)
        self.process = subprocess.Popen([*RECORDER, "--config", str(config), "--offline-input", "-"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE)  # fmt: skip
        self.process.stdin.write(INPUT.read_bytes()[:24])  # the header: the output opens now
        self.process.stdin.flush()

    def wait_for(self, path: Path) -> None:
        deadline = time.monotonic() + 30
        while not (path.exists() and path.stat().st_size >= 24):
            assert time.monotonic() < deadline and self.process.poll() is None, "first recorder did not start"
            time.sleep(0.05)

    def finish(self) -> tuple[int, str]:
        _, err = self.process.communicate(INPUT.read_bytes()[24:], timeout=60)
        return self.process.returncode, err.decode()


def test_a_second_recorder_on_the_same_output_is_refused_while_the_first_runs(tmp_path):
    output = tmp_path / "out.pcap"
    (tmp_path / "first").mkdir()
    first = FirstRecorder(tmp_path / "first", output)
    first.wait_for(output)
    second = offline(tmp_path, output)
    assert second.returncode == 1
    assert second.stderr.decode() == f"Offline feed error: failed to open output file '{output}': {LOCKED}\n"
    code, err = first.finish()
    assert code == 0, err
    assert output.read_bytes() == EXPECTED.read_bytes()  # the second left the first's file alone


def test_a_second_recorder_on_the_same_rotated_set_is_refused(tmp_path):
    (tmp_path / "first").mkdir()
    pattern = tmp_path / "rot.pcap"
    first = FirstRecorder(tmp_path / "first", pattern, extra="rotate_bytes = 20000\n")
    first.wait_for(tmp_path / "rot_00001.pcap")
    second = offline(tmp_path, pattern, extra="rotate_bytes = 20000\n")
    assert second.returncode == 1
    lock = tmp_path / ".rot.pcap.lock"
    assert second.stderr.decode() == (f"Offline feed error: failed to open output file '{pattern}': "
                                      f"lock file '{lock}': {LOCKED}\n")  # fmt: skip
    code, err = first.finish()
    assert code == 0, err
    files = sorted(tmp_path.glob("rot_*.pcap"))
    assert len(files) > 1 and not lock.exists()  # the lock goes with the run
    assert sum(len(read_pcap(f)[1]) for f in files) == len(read_pcap(EXPECTED)[1])


def test_a_lock_left_by_a_killed_recorder_does_not_block_the_next_run(tmp_path):
    (tmp_path / ".rot.pcap.lock").write_bytes(b"")  # a run killed with SIGKILL leaves this
    result = offline(tmp_path, tmp_path / "rot.pcap", extra="rotate_bytes = 20000\n")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / ".rot.pcap.lock").exists()


# --- disk full -----------------------------------------------------------------------------------


def small_disk(size: str, directory: Path, command: str, keep: Path) -> list[str]:
    """argv: ``command`` (a shell line) with a ``size`` tmpfs mounted on ``directory`` in a
    mount namespace of its own (the host's disks are never filled); what the run left there is
    copied to ``keep``, and the command's exit status kept."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a private tmpfs needs root and unshare(1) (util-linux)")
    script = (f"mount -t tmpfs -o size={size} tmpfs '{directory}' || exit 99; {command}; rc=$?; "
              f"cp -a '{directory}/.' '{keep}/'; exit $rc")  # fmt: skip
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script]


def assert_cut_back_to_whole_records(files: list[Path], stderr: str) -> None:
    """Every file valid for our reader and for capinfos; together they hold packets_written."""
    records = 0
    for path in files:
        records += len(read_pcap(path)[1])  # an independent reader: fails on a cut record
        assert capinfos_count(path) == len(read_pcap(path)[1])
    stats = dict(line.split(": ") for line in stderr.split("Partial stats:\n", 1)[1].splitlines())
    assert int(stats["packets_written"]) == records > 0
    assert int(stats["packets_total"]) > records


@pytest.fixture(scope="module")
def long_input(tmp_path_factory) -> Path:
    """The golden input 40 times over (~4 MB): its output (~3.4 MB) outgrows a 2.5 MB disk."""
    path = tmp_path_factory.mktemp("long") / "long.pcap"
    frames = list(PcapReader(str(INPUT)))
    with PcapWriter(str(path), 262144) as writer:
        for i in range(40):
            for ts, data, orig in frames:
                writer.write(ts + i * 100 * 10**9, data, len(data), orig)
    return path


@pytest.mark.parametrize("rotate", ["", "rotate_bytes = 200000\n"], ids=["one file", "rotated"])
def test_disk_full_offline_cuts_back_to_whole_records_prints_stats_and_exits_1(tmp_path, long_input, rotate):
    disk, keep = tmp_path / "disk", tmp_path / "keep"
    disk.mkdir(), keep.mkdir()
    config = config_with_output(tmp_path, CONFIG, disk / "out.pcap", rotate)
    run = " ".join([*RECORDER, "--config", str(config), "--offline-input", str(long_input)])
    result = subprocess.run(small_disk("2560k", disk, run, keep), capture_output=True, timeout=300)
    err = result.stderr.decode()
    assert result.returncode == 1, err
    name = r"out_\d{5}" if rotate else "out"
    assert re.match(rf"Offline feed error: failed to write output file '{disk}/{name}.pcap': "
                    r"No space left on device\nPartial stats:\n", err), err  # fmt: skip
    files = sorted(keep.glob("out*.pcap"))
    assert len(files) > (1 if rotate else 0)
    assert_cut_back_to_whole_records(files, err)


def test_disk_full_live_cuts_back_to_whole_records_prints_stats_and_exits_1(ns, tmp_path):
    disk, keep = tmp_path / "disk", tmp_path / "keep"
    disk.mkdir(), keep.mkdir()
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\ninterface = {CAP_IF}\noutput = {disk}/out.pcap\nduration_sec = 20\n"
                      "flush_interval_ms = 0\n")  # fmt: skip
    run = " ".join([*RECORDER, "--config", str(config), "udp"])
    recorder = ns.start(ns.capture, *small_disk("128k", disk, run, keep))
    wait_for_line(recorder, "stdout", "Press Ctrl+C to stop.\n")
    ns.traffic(ns.peer, "udp", CAP4, "9", "400", "1000")  # ~430 kB of frames for a 128 kB disk
    _, err = recorder.communicate(timeout=60)
    err = err.decode()
    assert recorder.returncode == 1, err
    assert err.startswith(f"Live capture error: failed to write output file '{disk}/out.pcap': "
                          "No space left on device\nPartial stats:\n"), err  # fmt: skip
    assert_cut_back_to_whole_records([keep / "out.pcap"], err)


def test_a_second_live_recorder_on_the_same_output_is_refused_and_the_first_goes_on(ns, tmp_path):
    output = tmp_path / "out.pcap"
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\ninterface = {CAP_IF}\noutput = {output}\nduration_sec = 30\n")
    first = ns.start(ns.capture, *RECORDER, "--config", str(config), "udp")
    wait_for_line(first, "stdout", "Press Ctrl+C to stop.\n")
    second = ns.exec(ns.capture, *RECORDER, "--config", str(config), "udp", check=False)
    assert second.returncode == 1
    assert second.stderr.decode() == f"Live capture error: failed to open output file '{output}': {LOCKED}\n"
    ns.traffic(ns.peer, "udp", CAP4, "9", "10")
    time.sleep(0.5)
    _, err = stop(first)
    assert first.returncode == 0, err
    assert len(read_pcap(output)[1]) == 10


def _race_for(path: str, start, results) -> None:
    from pcapconstrictor.engine.sinks.output_file import OutputFileRefused, create_output_file

    start.wait()
    try:
        output = create_output_file(path)
    except OutputFileRefused:
        results.put("refused")
        start.wait()
        return
    output.file.write(f"{os.getpid()}\n".encode())
    results.put(f"won {os.getpid()}")
    start.wait()  # hold the file until every contender has tried
    output.close()


@pytest.mark.parametrize("existing", [False, True], ids=["new name", "existing file"])
def test_recorders_started_at_the_same_moment_leave_exactly_one_writer(tmp_path, existing):
    import multiprocessing

    path = tmp_path / "out.pcap"
    if existing:
        path.write_bytes(b"old")
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(8), context.Queue()
    racers = [context.Process(target=_race_for, args=(str(path), start, results)) for _ in range(8)]
    for racer in racers:
        racer.start()
    outcomes = sorted(results.get(timeout=30) for _ in racers)
    for racer in racers:
        racer.join(30)
    assert outcomes[:7] == ["refused"] * 7 and outcomes[7].startswith("won ")
    assert path.read_bytes().decode() == f"{outcomes[7].split()[1]}\n"  # the winner's file is at the name
