"""Issue 6 (offline side): signals, disk faults and bad output paths lose nothing
silently and never show a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import GOLDEN, config_with_output, run_cli, tshark_count
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sources.pcap_reader import PcapReader

INPUT = GOLDEN / "ipv6_ipv4_test_1" / "input.pcap"
CONFIG = GOLDEN / "ipv6_ipv4_test_1" / "config.ini"


@pytest.fixture(scope="module")
def big_input(tmp_path_factory):
    """~260k packets (~210 MB): long enough to be interrupted mid-run."""
    path = tmp_path_factory.mktemp("big") / "big.pcap"
    frames = list(PcapReader(str(INPUT)))
    with PcapWriter(str(path), 262144) as w:
        for i in range(2000):
            for ts, data, orig in frames:
                w.write(ts + i * 10**9, data, len(data), orig)
    return path


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_long_offline_run_leaves_whole_records_and_prints_stats(
    tmp_path, big_input, signum
):
    out = tmp_path / "out.pcap"
    config = config_with_output(tmp_path, CONFIG, out)
    proc = subprocess.Popen([sys.executable, "-m", "pcapconstrictor.engine", "--config", str(config),
                             "--offline-input", str(big_input)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while (not out.exists() or out.stat().st_size < 2_000_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, stderr
    assert b"Traceback" not in stderr
    text = stdout.decode()
    assert "Offline feed interrupted after" in text
    stats = dict(line.split(": ") for line in text.splitlines()[1:])
    written = list(PcapReader(str(out)))  # our reader: raises on any cut record
    assert len(written) == int(stats["packets_total"]) > 0
    assert tshark_count(out) == len(written)


def test_disk_full_names_the_file_and_exits_1(tmp_path):
    config = config_with_output(tmp_path, CONFIG, "/dev/full")
    result = run_cli("--config", str(config), "--offline-input", str(INPUT))
    assert result.returncode == 1
    err = result.stderr.decode()
    assert err == "Offline feed error: failed to write output file '/dev/full': No space left on device\n"


def test_an_output_path_that_is_a_directory_is_refused_before_reading(tmp_path):
    config = config_with_output(tmp_path, CONFIG, tmp_path)
    result = run_cli("--config", str(config), "--offline-input", str(INPUT))
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"Offline feed error: failed to open output file '{tmp_path}'")
    assert b"Traceback" not in result.stderr


def test_an_output_path_that_is_the_input_is_refused_and_the_input_is_untouched(tmp_path):
    copy = tmp_path / "in.pcap"
    copy.write_bytes(INPUT.read_bytes())
    config = config_with_output(tmp_path, CONFIG, copy)
    result = run_cli("--config", str(config), "--offline-input", str(copy))
    assert result.returncode == 1
    assert result.stderr.decode() == f"Offline feed error: output file '{copy}' is the input file\n"
    assert copy.read_bytes() == INPUT.read_bytes()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; permissions cannot be tested")
def test_an_unwritable_output_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    config = config_with_output(tmp_path, CONFIG, locked / "out.pcap")
    result = run_cli("--config", str(config), "--offline-input", str(INPUT))
    assert result.returncode == 1 and b"Permission denied" in result.stderr


def test_an_unexpected_error_shows_no_traceback_unless_debug(tmp_path, monkeypatch):
    from pcapconstrictor.engine.commands import cli, offline

    def boom(opts):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(offline, "run_offline", boom)
    args = ["--config", str(CONFIG), "--offline-input", str(INPUT)]
    assert cli.main(args) == 1
    with pytest.raises(RuntimeError):
        cli.main([*args, "--debug"])


def test_the_truncated_tail_fixture_writes_3_records_then_the_exact_error_and_exit_1(tmp_path):
    out = tmp_path / "out.pcap"
    config = config_with_output(tmp_path, CONFIG, out)
    truncated = GOLDEN.parent / "upstream_extra" / "truncated_tail_test_1.pcap"
    result = run_cli("--config", str(config), "--offline-input", str(truncated))
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "Offline feed error: packet 4 at file offset 2750: unexpected EOF while reading packet payload; "
        "expected 4438 byte(s), available 1774 byte(s), missing 2664 byte(s)\n"
    )
    assert result.stdout == b""  # no stats after a reader error (SPEC §12.2)
    assert len(list(PcapReader(str(out)))) == 3
    assert tshark_count(out) == 3
