"""Issue 18 #4: ``--log-format json`` prints every message as one JSON object per line."""

from __future__ import annotations

import json
import sys

from netns import CAP_IF, stop, wait_for_line

from conftest import GOLDEN, run_cli
from pcapconstrictor.engine.run.json_log import message_object

INPUT = GOLDEN / "tls_test_2" / "input.pcap"


def json_lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines()]  # every line parses alone


def test_an_offline_run_gives_one_object_per_message_with_the_stats_as_numbers(tmp_path):
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\noutput = {tmp_path / 'o.pcap'}\n")
    text = run_cli("--config", str(config), "--offline-input", str(INPUT))
    result = run_cli("--config", str(config), "--offline-input", str(INPUT), "--log-format", "json")
    assert result.returncode == 0 and result.stderr == b""
    completed, stats = json_lines(result.stdout)
    assert completed["event"] == "message" and completed["message"].startswith("Offline feed completed.\n")
    assert stats["event"] == "stats" and stats["level"] == "info"
    block = dict(line.split(": ") for line in text.stdout.decode().splitlines()[3:])
    assert stats["stats"] == {key: int(value) for key, value in block.items()}


def test_the_text_format_is_the_default_and_unchanged(tmp_path):
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\noutput = {tmp_path / 'o.pcap'}\n")
    default = run_cli("--config", str(config), "--offline-input", str(INPUT))
    text = run_cli("--config", str(config), "--offline-input", str(INPUT), "--log-format", "text")
    assert default.stdout == text.stdout and default.stdout.startswith(b"Offline feed completed.\n")


def test_an_error_is_one_object_at_level_error(tmp_path):
    config = tmp_path / "c.ini"
    config.write_text("[capture]\nmax_packets = many\n")
    result = run_cli("--config", str(config), "--offline-input", str(INPUT), "--log-format", "json")
    assert result.returncode == 1
    (error,) = json_lines(result.stderr)
    assert error["level"] == "error" and error["message"].startswith("Configuration error: ")


def test_partial_stats_after_an_error_are_fields_of_the_error():
    record = message_object("Live capture error: link gone\nPartial stats:\npackets_total: 3\n", "warning")
    assert record["level"] == "error" and record["message"] == "Live capture error: link gone"
    assert record["stats"] == {"packets_total": 3}


def test_a_live_banner_and_final_stats_are_objects(ns, tmp_path):
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\ninterface = {CAP_IF}\noutput = {tmp_path / 'o.pcap'}\n")
    recorder = ns.start(ns.capture, sys.executable, "-m", "pcapconstrictor.engine", "--config", str(config),
                        "--log-format", "json")  # fmt: skip
    first = wait_for_line(recorder, "stdout", "}\n")
    stdout, stderr = stop(recorder)
    banner, final = json_lines((first + stdout).encode())
    assert banner["event"] == "banner" and banner["settings"]["interface"] == CAP_IF
    assert final["message"] == "Live capture stopped: signal received"
    assert final["stats"]["packets_total"] >= 0 and "kernel_drops" in final["stats"]
