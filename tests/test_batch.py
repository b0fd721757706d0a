"""The batch command (issue 19) on local processes: the same bytes as one offline run per file,
resuming, a bad file among good ones, compressed inputs, and idempotence."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from conftest import FIXTURES, GOLDEN, GOLDEN_CASES, ROOT, run_cli

CONFIG = ROOT / "examples" / "config.ini"


def single_run(config: Path, input_path: Path, output: Path) -> bytes:
    """What the offline command writes for one file: the reference for every batch output."""
    result = run_cli("--config", str(config), "--offline-input", str(input_path), "--output", str(output))
    assert result.returncode == 0, result.stderr
    return output.read_bytes()


def batch(*args: str) -> tuple[int, dict, str]:
    result = run_cli("batch", "--json", *args)
    return result.returncode, json.loads(result.stdout), result.stderr.decode()


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A folder as archives hold them: plain, gzip and zstd captures, nested, with a note."""
    root = tmp_path / "archive"
    (root / "day1" / "eth0").mkdir(parents=True)
    plain = {name: (GOLDEN / name / "input.pcap").read_bytes() for name in GOLDEN_CASES}
    (root / "tls.pcap").write_bytes(plain["tls_test_2"])
    (root / "day1" / "quic.pcap.gz").write_bytes(gzip.compress(plain["quic_test_2"]))
    (root / "day1" / "eth0" / "mixed.pcap.zst").write_bytes(
        zstandard.ZstdCompressor().compress(plain["ipv6_ipv4_test_1"]))  # fmt: skip
    (root / "day1" / "no-extension").write_bytes(plain["tls_test_2"])  # found by its magic number
    (root / "day1" / "NOTES.txt").write_text("not a capture, no capture name: ignored\n")
    return root


EXPECTED = {"tls.pcap": "tls_test_2", "day1/quic.pcap": "quic_test_2",
            "day1/eth0/mixed.pcap": "ipv6_ipv4_test_1", "day1/no-extension": "tls_test_2"}  # fmt: skip


def test_local_batch_writes_each_file_as_a_single_offline_run_would(archive, tmp_path):
    code, summary, stderr = batch("--config", str(CONFIG), "--output-dir", str(tmp_path / "out"),
                                  "--jobs", "2", str(archive))  # fmt: skip
    assert code == 0, stderr
    assert (summary["files"], summary["done"], summary["failed"]) == (4, 4, 0)
    out = tmp_path / "out"
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(EXPECTED)
    for relative, case in EXPECTED.items():
        reference = single_run(CONFIG, GOLDEN / case / "input.pcap", tmp_path / "reference.pcap")
        assert (tmp_path / "out" / relative).read_bytes() == reference, relative
        (tmp_path / "reference.pcap").unlink()
    assert summary["packets"] == 14 + 41 + 130 + 14


def test_offline_command_reads_gzip_and_zstd_captures_as_the_plain_ones(archive, tmp_path):
    reference = single_run(CONFIG, GOLDEN / "quic_test_2" / "input.pcap", tmp_path / "reference.pcap")
    assert single_run(CONFIG, archive / "day1" / "quic.pcap.gz", tmp_path / "gz.pcap") == reference
    reference = single_run(CONFIG, GOLDEN / "ipv6_ipv4_test_1" / "input.pcap", tmp_path / "reference2.pcap")
    zst = archive / "day1" / "eth0" / "mixed.pcap.zst"
    assert single_run(CONFIG, zst, tmp_path / "zst.pcap") == reference


def test_a_zstd_capture_cut_short_is_an_error_not_a_short_capture(tmp_path):
    data = zstandard.ZstdCompressor().compress((GOLDEN / "tls_test_2" / "input.pcap").read_bytes())
    (tmp_path / "cut.pcap.zst").write_bytes(data[:-40])
    result = run_cli("--config", str(CONFIG), "--offline-input", str(tmp_path / "cut.pcap.zst"),
                     "--output", str(tmp_path / "out.pcap"))  # fmt: skip
    assert result.returncode == 1
    assert "zstd data: compressed file ended before its end marker" in result.stderr.decode()


def test_a_bad_file_among_good_ones_is_reported_counted_and_the_others_done(archive, tmp_path):
    (archive / "day1" / "broken.pcap").write_text("a note saved under a capture name\n")
    truncated = (GOLDEN / "tls_test_2" / "input.pcap").read_bytes()[:-10]
    (archive / "cut.pcap.gz").write_bytes(gzip.compress(truncated)[:-20])  # archive cut short too
    code, summary, stderr = batch("--config", str(CONFIG), "--output-dir", str(tmp_path / "out"),
                                  "--jobs", "2", str(archive))  # fmt: skip
    assert code == 1
    assert (summary["files"], summary["done"], summary["failed"]) == (6, 4, 2)
    failed = {Path(f["input"]).name: f["error"] for f in summary["failures"]}
    assert "unsupported classic PCAP magic number" in failed["broken.pcap"]
    assert "gzip data" in failed["cut.pcap.gz"]
    assert "broken.pcap" in stderr and "cut.pcap.gz" in stderr
    assert not (tmp_path / "out" / "day1" / "broken.pcap").exists()
    assert not (tmp_path / "out" / "cut.pcap").exists()
    assert not [p for p in (tmp_path / "out").rglob(".*")], "a temporary file was left behind"


def test_a_rerun_skips_finished_files_and_force_redoes_them(archive, tmp_path):
    args = ("--config", str(CONFIG), "--output-dir", str(tmp_path / "out"), "--jobs", "1", str(archive))
    assert batch(*args)[0] == 0
    first = tmp_path / "out" / "tls.pcap"
    os.utime(first, (1, 1))
    code, summary, _ = batch(*args)
    assert (code, summary["skipped"], summary["done"]) == (0, 4, 0)
    assert first.stat().st_mtime == 1
    code, summary, _ = batch(*args, "--force")
    assert (code, summary["skipped"], summary["done"]) == (0, 0, 4)
    assert first.stat().st_mtime != 1


def _big_archive(folder: Path, files: int, packets: int) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from make_mix import build

    folder.mkdir()
    build("mix", packets, str(folder / "f0.pcap"))
    data = (folder / "f0.pcap").read_bytes()
    for i in range(1, files):
        (folder / f"f{i}.pcap").write_bytes(data)


def test_a_run_killed_midway_leaves_no_half_file_and_a_rerun_finishes_the_rest(tmp_path):
    _big_archive(tmp_path / "in", files=4, packets=60_000)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pcapconstrictor.engine", "batch", "--config", str(CONFIG),
           "--output-dir", str(out), "--jobs", "1", str(tmp_path / "in")]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "f0.pcap").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    finished = {p.name for p in out.glob("f*.pcap")}
    assert "f0.pcap" in finished and len(finished) < 4, "the kill came too late to test anything"
    reference = single_run(CONFIG, tmp_path / "in" / "f0.pcap", tmp_path / "reference.pcap")
    for name in finished:  # every file under a final name is whole
        assert (out / name).read_bytes() == reference, name
    code, summary, stderr = batch("--config", str(CONFIG), "--output-dir", str(out), "--jobs", "1",
                                  str(tmp_path / "in"))  # fmt: skip
    assert code == 0, stderr
    assert (summary["skipped"], summary["done"]) == (len(finished), 4 - len(finished))
    assert sorted(p.name for p in out.iterdir()) == ["f0.pcap", "f1.pcap", "f2.pcap", "f3.pcap"]
    for name in ("f0.pcap", "f1.pcap", "f2.pcap", "f3.pcap"):
        assert (out / name).read_bytes() == reference, name


POLICY_CASES = [(GOLDEN / case / "input.pcap", GOLDEN / case / "config.ini") for case in GOLDEN_CASES] + [
    (FIXTURES / "policies" / case / "input.pcap", FIXTURES / "policies" / case / f"{policy}.ini")
    for case in ("tls_test_1", "tls_test_1_lossy") for policy in ("stream", "bulk")
] + [(GOLDEN / "ipv6_ipv4_test_1" / "input.pcap", CONFIG)]  # fmt: skip


@pytest.mark.parametrize("input_path,config", POLICY_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_constricting_a_constricted_file_again_changes_nothing(tmp_path, input_path, config):
    once = single_run(config, input_path, tmp_path / "once.pcap")
    twice = single_run(config, tmp_path / "once.pcap", tmp_path / "twice.pcap")
    assert twice == once


def test_an_output_that_is_its_input_is_a_failure_not_a_finished_file(archive):
    before = (archive / "tls.pcap").read_bytes()
    code, summary, _ = batch("--config", str(CONFIG), "--output-dir", str(archive), str(archive / "tls.pcap"))
    assert (code, summary["failed"], summary["skipped"]) == (1, 1, 0)
    assert "is the input file" in summary["failures"][0]["error"]
    assert (archive / "tls.pcap").read_bytes() == before


def test_batch_refuses_a_rotating_config_before_touching_any_file(archive, tmp_path):
    config = tmp_path / "rotate.ini"
    config.write_text(CONFIG.read_text() + "\n[capture]\nrotate_bytes = 1000000\n")
    code, stderr = (r := run_cli("batch", "--config", str(config), "--output-dir", str(tmp_path / "out"),
                                 str(archive))).returncode, r.stderr.decode()  # fmt: skip
    assert code == 1 and "one output per input" in stderr
    assert not (tmp_path / "out").exists()


def test_the_table_names_files_packets_bytes_and_failures(archive, tmp_path):
    result = run_cli("batch", "--config", str(CONFIG), "--output-dir", str(tmp_path / "out"), str(archive))
    table = result.stdout.decode()
    assert result.returncode == 0, result.stderr
    for line in ("files                   4", "failed                  0", "packets                 199"):
        assert line in table
    assert "bytes saved" in table and "files/s" in table


def test_a_compressed_pcapng_input_is_read_like_the_plain_one(tmp_path):
    import gzip

    source = ROOT / "fixtures" / "external" / "zeek_merlinc2_Zeek_example.pcapng"
    packed = tmp_path / "in.pcapng.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    config = ROOT / "examples" / "config.ini"
    outs = []
    for name, path in (("plain", source), ("packed", packed)):
        out = tmp_path / f"{name}.pcapng"
        result = run_cli("--config", str(config), "--offline-input", str(path), "--output", str(out))
        assert result.returncode == 0, result.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0][:4] == b"\x0a\x0d\x0d\x0a"
