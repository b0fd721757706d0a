"""Issue 8, rotation: by size (capture.rotate_bytes, like tcpdump -C), by time
(capture.rotate_seconds, like -G but on the wall clock's boundaries), a ring of at most
capture.rotate_files files (like -W), names numbered or from a strftime pattern.

Each file must be a whole capture (capinfos reads it), and the files one after the other must
be the unrotated capture: nothing lost, nothing twice, same order, byte for byte.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns import CAP4, CAP_IF, read_pcap, stop, wait_for_line

from conftest import GOLDEN, ROOT, run_cli
from pcapconstrictor.engine.sinks.rotation import FileNames, RotatingSink

CASE = GOLDEN / "ipv6_ipv4_test_1"  # 130 packets over 94 seconds
RECORDER = (sys.executable, "-m", "pcapconstrictor.engine")


def capinfos_count(path: Path) -> int:
    if shutil.which("capinfos") is None:
        pytest.skip("capinfos is not installed (Debian package tshark)")
    result = subprocess.run(["capinfos", "-M", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{path}: {result.stderr}"
    return int(re.search(r"Number of packets:\s+(\d+)", result.stdout)[1])


def run(tmp_path: Path, output: str, extra: str = "", source: Path = CASE / "input.pcap", tz: str = "UTC"):
    config = tmp_path / "rotate.ini"
    config.write_text((CASE / "config.ini").read_text() + f"\n[capture]\noutput = {output}\n{extra}")
    env = {**os.environ, "TZ": tz}
    return subprocess.run([*RECORDER, "--config", str(config), "--offline-input", str(source)],
                          capture_output=True, env=env, timeout=300)  # fmt: skip


def unrotated(tmp_path: Path, extension: str) -> bytes:
    path = tmp_path / f"whole{extension}"
    result = run(tmp_path, str(path))
    assert result.returncode == 0, result.stderr
    return path.read_bytes()


def header_size(whole: bytes) -> int:
    """The file header: 24 bytes, or a pcapng SHB + IDB (each starts with its total length)."""
    if whole[:4] == b"\xd4\xc3\xb2\xa1":
        return 24
    shb = int.from_bytes(whole[4:8], "little")
    return shb + int.from_bytes(whole[shb + 4 : shb + 8], "little")


def assert_concatenation_is(files: list[Path], whole: bytes, tail_only: bool = False) -> None:
    """Every file starts with the unrotated file's header and holds whole records; their
    records one after the other are the unrotated file's records (or its last ones)."""
    size = header_size(whole)
    bodies = []
    for path in files:
        data = path.read_bytes()
        assert data[:size] == whole[:size], path
        bodies.append(data[size:])
    joined = b"".join(bodies)
    if tail_only:
        assert whole.endswith(joined) and joined
    else:
        assert joined == whole[size:]
    total = sum(capinfos_count(path) for path in files)
    assert total == capinfos_count_of_bytes(whole, files[0].parent) or tail_only


def capinfos_count_of_bytes(data: bytes, where: Path) -> int:
    path = where / "whole-for-count"
    path.write_bytes(data)
    return capinfos_count(path)


@pytest.mark.parametrize("extension", [".pcap", ".pcapng"])
def test_size_rotation_keeps_every_file_under_the_limit_and_loses_nothing(tmp_path, extension):
    whole = unrotated(tmp_path, extension)
    result = run(tmp_path, str(tmp_path / f"cap{extension}"), "rotate_bytes = 12000\n")
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob(f"cap_*{extension}"))
    assert [f.name for f in files] == [f"cap_{n:05d}{extension}" for n in range(1, len(files) + 1)]
    assert len(files) >= len(whole) // 12000
    assert all(f.stat().st_size <= 12000 for f in files)
    assert_concatenation_is(files, whole)


def test_a_record_larger_than_the_limit_gets_a_file_of_its_own(tmp_path):
    whole = unrotated(tmp_path, ".pcap")
    result = run(tmp_path, str(tmp_path / "cap.pcap"), "rotate_bytes = 100\n")
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("cap_*.pcap"))
    assert len(files) == 130 and {capinfos_count(f) for f in files} == {1}
    assert_concatenation_is(files, whole)


def test_time_rotation_splits_on_the_clocks_boundaries_named_by_strftime(tmp_path):
    whole = unrotated(tmp_path, ".pcap")
    result = run(tmp_path, str(tmp_path / "cap-%Y%m%d-%H%M%S.pcap"), "rotate_seconds = 10\n")
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("cap-*.pcap"))
    assert_concatenation_is(files, whole)
    for path in files:
        start = time.mktime(time.strptime(path.name, "cap-%Y%m%d-%H%M%S.pcap")) - time.timezone
        assert start % 10 == 0, path.name  # aligned: on the 10-second marks of the clock
        stamps = [r.ts_us / 1e6 for r in read_pcap(path)[1]]
        assert stamps and all(start <= ts < start + 10 for ts in stamps), path.name
    records = read_pcap(CASE / "input.pcap")[1]
    first, last = records[0].ts_us // 10_000_000, records[-1].ts_us // 10_000_000
    assert len(files) <= last - first + 1


def test_time_rotation_with_a_plain_name_numbers_the_files(tmp_path):
    whole = unrotated(tmp_path, ".pcapng")
    result = run(tmp_path, str(tmp_path / "cap.pcapng"), "rotate_seconds = 30\n")
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("cap_*.pcapng"))
    assert len(files) >= 3
    assert_concatenation_is(files, whole)


def test_size_and_time_together(tmp_path):
    whole = unrotated(tmp_path, ".pcap")
    result = run(tmp_path, str(tmp_path / "cap-%H%M.pcap"), "rotate_seconds = 60\nrotate_bytes = 20000\n")
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("cap-*.pcap"), key=lambda f: int(f.stem.rsplit("_", 1)[1]))
    assert all(re.fullmatch(r"cap-\d{4}_\d{5}\.pcap", f.name) for f in files)  # numbered: sizes rotate too
    assert all(f.stat().st_size <= 20000 for f in files)
    assert_concatenation_is(files, whole)


def test_a_ring_keeps_only_the_newest_files(tmp_path):
    whole = unrotated(tmp_path, ".pcap")
    result = run(tmp_path, str(tmp_path / "ring.pcap"), "rotate_bytes = 10000\nrotate_files = 3\n")
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("ring_*.pcap"))
    assert len(files) == 3
    numbers = [int(f.stem.split("_")[1]) for f in files]
    assert numbers[0] > 3 and numbers == list(range(numbers[0], numbers[0] + 3))
    assert_concatenation_is(files, whole, tail_only=True)


def test_an_empty_input_still_gives_one_valid_file(tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes((CASE / "input.pcap").read_bytes()[:24])
    result = run(tmp_path, str(tmp_path / "cap.pcap"), "rotate_bytes = 1000\n", source=empty)
    assert result.returncode == 0, result.stderr
    files = list(tmp_path.glob("cap_*.pcap"))
    assert [f.name for f in files] == ["cap_00001.pcap"] and capinfos_count(files[0]) == 0


@pytest.mark.parametrize(
    ("output", "extra", "message"),
    [("-", "rotate_bytes = 1000\n",
      "capture.rotate_bytes and capture.rotate_seconds need a file output, not standard output"),
     ("out.pcap", "rotate_files = 4\n",
      "capture.rotate_files needs capture.rotate_bytes or capture.rotate_seconds")],
)  # fmt: skip
def test_settings_that_do_not_go_together_are_configuration_errors(tmp_path, output, extra, message):
    result = run(tmp_path, output, extra)
    assert result.returncode == 1
    assert result.stderr.decode() == f"Configuration error: {message}\n"
    assert not list(tmp_path.glob("out*"))


def test_rotation_keys_reject_bad_numbers(tmp_path):
    config = tmp_path / "c.ini"
    config.write_text("[capture]\nrotate_seconds = -1\n")
    result = run_cli("--config", str(config), "--offline-input", str(ROOT / "x.pcap"))
    message = "invalid unsigned integer for capture option: rotate_seconds = -1"
    assert result.stderr.decode() == f"Configuration error: {config}:2: {message}\n"


# --- live ----------------------------------------------------------------------------------------


def test_live_rotated_files_concatenate_to_what_an_unrotated_recorder_beside_it_wrote(ns, tmp_path):
    outputs = {}
    recorders = []
    for name, extra in (("whole", ""), ("cap", "rotate_bytes = 2500\n")):
        output = tmp_path / f"{name}.pcap"
        config = tmp_path / f"{name}.ini"
        settings = f"interface = {CAP_IF}\nbackend = tpacket_v3\noutput = {output}\n{extra}"
        config.write_text(f"[capture]\n{settings}")
        recorder = ns.start(ns.capture, *RECORDER, "--config", str(config), "udp", "port", "9")
        wait_for_line(recorder, "stdout", "Press Ctrl+C to stop.\n")
        recorders.append(recorder)
        outputs[name] = output
    ns.traffic(ns.peer, "udp", CAP4, "9", "40", "200")
    time.sleep(0.5)
    for recorder in recorders:
        _, stderr = stop(recorder)
        assert recorder.returncode == 0, stderr
    files = sorted(tmp_path.glob("cap_*.pcap"))
    assert len(files) >= 4 and all(f.stat().st_size <= 2500 for f in files)
    # Each socket stamps frames itself (µs apart): compare everything but the timestamps.
    rotated = [(r.incl_len, r.orig_len, r.data) for f in files for r in read_pcap(f)[1]]
    assert rotated == [(r.incl_len, r.orig_len, r.data) for r in read_pcap(outputs["whole"])[1]]
    assert len(rotated) == 40 == sum(capinfos_count(f) for f in files)


def test_a_rotated_offline_run_names_the_files_it_wrote_not_the_pattern(tmp_path):
    out = tmp_path / "r.pcap"
    config = tmp_path / "c.ini"
    text = (CASE / "config.ini").read_text() + f"\n[capture]\noutput = {out}\nrotate_bytes = 2000\n"
    config.write_text(text)
    result = run_cli("--config", str(config), "--offline-input", str(CASE / "input.pcap"))
    assert result.returncode == 0
    named = result.stdout.decode().splitlines()[2].removeprefix("output: ")
    files = sorted(str(p) for p in tmp_path.glob("r*.pcap"))
    assert len(files) > 1 and named == f"{files[0]} .. {files[-1]} ({len(files)} files)"
    assert not out.exists()


class CountingFile:
    """A rotated file that only counts what reaches it, and how."""

    def __init__(self, path: str) -> None:
        self.path, self.records, self.bytes_written, self.batches = path, 0, 24, 0

    def record_size(self, incl_len: int) -> int:
        return 16 + incl_len

    @property
    def records_saved(self) -> int:
        return self.records

    def write(self, ts_ns, data, incl_len, orig_len) -> None:
        self.write_batch([(ts_ns, data, orig_len)], [incl_len])

    def write_batch(self, frames, lengths) -> None:
        self.batches += 1
        self.records += len(lengths)
        self.bytes_written += sum(16 + n for n in lengths)

    def close(self) -> None:
        pass


def test_a_batch_reaches_each_rotated_file_in_one_write_not_record_by_record(tmp_path):
    """Issue 13 #9: record by record, rotation cost enough to drop frames at 50k/s."""
    opened: list[CountingFile] = []

    def open_file(path: str) -> CountingFile:
        opened.append(CountingFile(path))
        return opened[-1]

    names = FileNames(str(tmp_path / "r.pcap"), by_size=True)
    sink = RotatingSink(open_file, names, rotate_bytes=24 + 10 * 116)  # 10 records of 116 bytes
    frames = [(i, b"x" * 100, 100) for i in range(25)]
    sink.write_batch(frames, [100] * 25)
    assert [(f.records, f.batches) for f in opened] == [(10, 1), (10, 1), (5, 1)]
    assert sink.records == 25
