"""Issue 18 #3: each rotated file, once closed, is compressed (capture.compress), handed to
capture.post_rotate_command (as tcpdump -z does) and the set kept under capture.rotate_files and
capture.rotate_total_bytes, all off the capture path: a 50k frames/s flood loses nothing.
"""

from __future__ import annotations

import gzip
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from netns import CAP_IF, PEER_IF, read_pcap, stats_block, stop, wait_for_line

from conftest import GOLDEN, ROOT
from pcapconstrictor.engine.config import load_config
from pcapconstrictor.engine.sinks import closed_files, output

CASE = GOLDEN / "ipv6_ipv4_test_1"  # 130 packets, 83,730 bytes of records once constricted
RECORDER = (sys.executable, "-m", "pcapconstrictor.engine")
LOG_NAME = """#!/bin/sh
echo "$1" >> "$(dirname "$1")/handed.log"
"""


def run(tmp_path: Path, extra: str, *options: str) -> subprocess.CompletedProcess:
    config = tmp_path / "c.ini"
    text = (CASE / "config.ini").read_text()
    config.write_text(f"{text}\n[capture]\noutput = {tmp_path / 'r.pcap'}\n{extra}")
    return subprocess.run([*RECORDER, "--config", str(config), "--offline-input", str(CASE / "input.pcap"),
                           *options], capture_output=True, text=True, timeout=120)  # fmt: skip


def records_body(data: bytes) -> bytes:
    return data[24:]


def whole_capture(tmp_path: Path) -> bytes:
    where = tmp_path / "whole"
    where.mkdir()
    result = run(where, "")
    assert result.returncode == 0, result.stderr
    return (where / "r.pcap").read_bytes()


def stats_of(stdout: str) -> dict[str, int]:
    lines = stdout.split("bytes_input:", 1)[1].splitlines()[1:]
    return {key: int(value) for key, value in (line.split(": ") for line in lines)}


def script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hook.sh"
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_gzip_compresses_every_closed_file_and_the_last_one_and_loses_no_record(tmp_path):
    whole = whole_capture(tmp_path)
    result = run(tmp_path, "rotate_bytes = 8000\ncompress = gzip\n")
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("r_*"))
    assert len(files) > 5 and all(f.name.endswith(".pcap.gz") for f in files)  # no plain file left
    captures = [gzip.decompress(f.read_bytes()) for f in files]
    assert all(c[:24] == whole[:24] for c in captures)
    assert b"".join(records_body(c) for c in captures) == records_body(whole)
    assert stats_of(result.stdout)["files_compressed"] == len(files)
    assert f"output: {files[0]} .. {files[-1]} ({len(files)} files)" in result.stdout


def test_zstd_file_is_one_frame_holding_the_whole_capture(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    whole = whole_capture(tmp_path)
    result = run(tmp_path, "rotate_bytes = 20000\ncompress = zstd\n")
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("r_*"))
    assert files and all(f.name.endswith(".pcap.zst") for f in files)
    bodies = []
    for path in files:
        reader = zstandard.ZstdDecompressor().decompressobj()
        capture = reader.decompress(path.read_bytes())
        assert reader.eof and reader.unused_data == b"", f"{path}: more than one frame"
        bodies.append(records_body(capture))
    assert b"".join(bodies) == records_body(whole)
    if shutil.which("zstd"):  # the command-line tool reads them as well
        assert subprocess.run(["zstd", "-t", *map(str, files)], capture_output=True).returncode == 0


def test_post_rotate_command_gets_each_compressed_file_in_order(tmp_path):
    hook = script(tmp_path, LOG_NAME)
    result = run(tmp_path, f"rotate_bytes = 8000\ncompress = gzip\npost_rotate_command = {hook}\n")
    assert result.returncode == 0, result.stderr
    files = sorted(str(f) for f in tmp_path.glob("r_*"))
    assert (tmp_path / "handed.log").read_text().splitlines() == files
    assert stats_of(result.stdout)["post_rotate_failures"] == 0


def test_post_rotate_command_failures_are_reported_and_counted_and_the_run_goes_on(tmp_path):
    hook = script(tmp_path, LOG_NAME + 'case "$1" in *_00002.pcap) exit 3;; esac\n')
    result = run(tmp_path, f"rotate_bytes = 8000\npost_rotate_command = {hook} \n")
    assert result.returncode == 0, result.stderr
    failed = tmp_path / "r_00002.pcap"
    assert f"capture.post_rotate_command failed for '{failed}': exit status 3" in result.stderr
    stats = stats_of(result.stdout)
    assert stats["post_rotate_failures"] == 1 and "files_compressed" not in stats
    missing = run(tmp_path, "rotate_bytes = 8000\npost_rotate_command = /nonexistent/hook --flag\n")
    assert missing.returncode == 0 and stats_of(missing.stdout)["post_rotate_failures"] > 5


def test_a_command_that_moves_the_file_away_takes_it_out_of_the_set(tmp_path):
    (tmp_path / "done").mkdir()
    command = f"mv -t {tmp_path / 'done'}"
    result = run(tmp_path, f"rotate_bytes = 8000\nrotate_files = 2\npost_rotate_command = {command}\n")
    assert result.returncode == 0, result.stderr
    assert not list(tmp_path.glob("r_*")) and len(list((tmp_path / "done").glob("r_*"))) > 5


def test_rotate_files_counts_the_compressed_names(tmp_path):
    whole = whole_capture(tmp_path)
    result = run(tmp_path, "rotate_bytes = 8000\ncompress = gzip\nrotate_files = 3\n")
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("r_*"))
    assert [f.suffix for f in files] == [".gz"] * 3
    joined = b"".join(records_body(gzip.decompress(f.read_bytes())) for f in files)
    assert records_body(whole).endswith(joined)


def test_rotate_total_bytes_deletes_the_oldest_closed_files_to_stay_under_the_budget(tmp_path):
    whole = whole_capture(tmp_path)
    budget, limit = 30_000, 4000
    result = run(tmp_path, f"rotate_bytes = {limit}\nrotate_total_bytes = {budget}\n")
    assert result.returncode == 0, result.stderr
    files = sorted(tmp_path.glob("r_*"))
    assert int(files[0].stem.rsplit("_", 1)[1]) > 1  # the oldest went
    assert sum(f.stat().st_size for f in files) + limit <= budget
    assert sum(f.stat().st_size for f in files) + limit + files[0].stat().st_size > budget  # no more went
    assert records_body(whole).endswith(b"".join(records_body(f.read_bytes()) for f in files))


def test_the_byte_budget_counts_compressed_sizes(tmp_path):
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    plain.mkdir(), packed.mkdir()
    for where, extra in ((plain, ""), (packed, "compress = gzip\n")):
        assert run(where, f"rotate_bytes = 4000\nrotate_total_bytes = 30000\n{extra}").returncode == 0
    assert len(list(packed.glob("r_*"))) > len(list(plain.glob("r_*")))


@pytest.mark.parametrize(("extra", "message"), [
    ("compress = gzip\n", "capture.compress needs capture.rotate_bytes or capture.rotate_seconds"),
    ("post_rotate_command = true\n", "capture.post_rotate_command needs capture.rotate_bytes"),
    ("rotate_total_bytes = 100000\n", "capture.rotate_total_bytes needs capture.rotate_bytes"),
    ("rotate_bytes = 5000\nrotate_total_bytes = 5000\n", "must be larger than capture.rotate_bytes"),
    ("rotate_bytes = 5000\npost_rotate_command = gzip 'x\n", "cannot be split into words"),
    ("compress = lz4\n", "invalid value for capture.compress; expected none, gzip, or zstd"),
])  # fmt: skip
def test_settings_that_cannot_work_are_configuration_errors(tmp_path, extra, message):
    result = run(tmp_path, extra)
    assert result.returncode == 1 and message in result.stderr and "Configuration error" in result.stderr
    assert not list(tmp_path.glob("r*.pcap*"))


def test_zstd_without_the_zstandard_package_is_a_clear_configuration_error(tmp_path, monkeypatch):
    config_path = tmp_path / "c.ini"
    settings = "rotate_bytes = 5000\ncompress = zstd\n"
    config_path.write_text(f"[capture]\noutput = {tmp_path / 'r.pcap'}\n{settings}")
    monkeypatch.setattr(closed_files, "zstandard_module", lambda: None)
    message = r"needs the zstandard package \(pip install zstandard\)"
    with pytest.raises(output.OutputConfigError, match=message):
        output.check_output(load_config(str(config_path)))


def test_zstandard_is_a_dependency_of_every_install():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("zstandard") for dep in project["dependencies"])


def test_commands_run_and_compressed_files_belong_to_the_user_of_user_option():
    if os.geteuid() != 0:
        pytest.skip("--user needs the test to run as root")
    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this machine")
    where = Path(tempfile.mkdtemp(prefix="pcc-closed-"))  # not under pytest's 0700 directories
    try:
        where.chmod(0o777)
        hook = script(where, '#!/bin/sh\nid -u >> "$(dirname "$1")/uids.log"\n')
        settings = f"rotate_bytes = 8000\ncompress = gzip\npost_rotate_command = {hook}\n"
        result = run(where, settings, "--user", "nobody")
        assert result.returncode == 0, result.stderr
        files = sorted(where.glob("r_*"))
        assert files and all(f.stat().st_uid == user.pw_uid for f in files)
        assert set((where / "uids.log").read_text().split()) == {str(user.pw_uid)}
    finally:
        shutil.rmtree(where, ignore_errors=True)


def test_files_still_queued_at_the_end_are_named_not_lost(tmp_path):
    """The wait at the end is bounded: a command that hangs leaves the later files as they are."""
    report = tmp_path / "report.txt"
    hook = script(tmp_path, "#!/bin/sh\nsleep 3\n")
    settings = closed_files.ClosedFileSettings(compress="gzip", command=(str(hook),))
    names = []
    for index in range(3):
        names.append(tmp_path / f"f{index}.pcap")
        names[-1].write_bytes(b"x" * 1000)
    with report.open("w") as stream:
        handler = closed_files.ClosedFiles(settings, report=stream)
        for name in names:
            handler.hand_on(str(name))
        started = time.monotonic()
        handler.close(timeout=0.5)
        assert time.monotonic() - started < 8
    assert (tmp_path / "f0.pcap.gz").exists()  # handled first; its command was still running
    assert names[1].exists() and names[2].exists()  # left as they were, and said so
    assert "2 closed files were not compressed" in report.read_text()


# --- live: a flood while files are compressed and handed on ------------------------------------------

OTHER_MAC = "02:00:c6:12:00:99"  # not the recorder's: the frames stop at the tap (bench/live.py)
RATE, SECONDS = 50_000, 2
# A 4 MiB ring holds ~0.7 s of the flood: a capture loop that waited for one command (1 s) or
# compressed in line would overflow it.


def blaster(tmp_path: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (it builds bench/blaster.c, the 50k frames/s sender)")
    binary = tmp_path / "blaster"
    source = ROOT / "bench" / "blaster.c"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True, timeout=60)
    return binary


def test_a_50k_frames_per_second_flood_loses_nothing_while_files_are_compressed_and_handed_on(ns, tmp_path):
    sender = blaster(tmp_path)
    hook = script(tmp_path, LOG_NAME + "sleep 1\n")  # a slow command: it must not hold the capture up
    out = tmp_path / "cap.pcap"
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\ninterface = {CAP_IF}\nbackend = tpacket_v3\noutput = {out}\n"
                      "ring_block_count = 4\nrotate_bytes = 1000000\ncompress = gzip\n"
                      f"post_rotate_command = {hook}\n")  # fmt: skip
    recorder = ns.start(ns.capture, *RECORDER, "--config", str(config))
    wait_for_line(recorder, "stdout", "Press Ctrl+C to stop.\n")
    sent = ns.exec(ns.peer, str(sender), PEER_IF, OTHER_MAC, str(RATE), str(RATE * SECONDS), str(SECONDS),
                   "256", "0", timeout=SECONDS * 3 + 30)  # fmt: skip
    count = int(sent.stdout.split()[0])
    time.sleep(0.5)
    stdout, stderr = stop(recorder, signal.SIGINT, timeout=60)
    assert recorder.returncode == 0, stderr
    stats = stats_block(stdout)
    assert stats["kernel_drops"] == 0 and stats["receive_errors"] == 0
    files = sorted(tmp_path.glob("cap_*"))
    assert len(files) >= 5 and all(f.name.endswith(".pcap.gz") for f in files)
    assert stats["files_compressed"] == len(files) and stats["post_rotate_failures"] == 0
    assert (tmp_path / "handed.log").read_text().splitlines() == [str(f) for f in files]
    flood = bytes.fromhex(OTHER_MAC.replace(":", ""))
    records = []
    for path in files:
        plain = tmp_path / "plain.pcap"
        plain.write_bytes(gzip.decompress(path.read_bytes()))
        records += read_pcap(plain)[1]
    assert len(records) == stats["packets_total"]  # every frame received is in the files
    assert sum(1 for r in records if r.data[:6] == flood) == count  # and every frame sent


def test_a_workers_closed_file_figures_reach_the_parent_and_add_up():
    from pcapconstrictor.engine.run.stats import Stats
    from pcapconstrictor.engine.run.worker_reports import WorkerReport, decode_report, encode_report

    sent = Stats(packets_total=5, files_compressed=3, post_rotate_failures=1)
    got = decode_report(encode_report(WorkerReport("stopped", "signal received", stats=sent))).stats
    assert (got.files_compressed, got.post_rotate_failures) == (3, 1)
    total = Stats()
    total.merge(got)
    total.merge(Stats(files_compressed=2, post_rotate_failures=0))
    assert (total.files_compressed, total.post_rotate_failures) == (5, 1)
    assert "files_compressed" not in Stats().block()  # off: the stats block stays upstream's
