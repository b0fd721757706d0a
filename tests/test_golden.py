"""The upstream golden cases, byte for byte (SPEC §14.3), through the real CLI."""

from __future__ import annotations

import pytest
import yaml

from conftest import GOLDEN, GOLDEN_CASES, config_with_output, run_cli, tshark_count


def manifest_stats(case: str) -> dict[str, int]:
    doc = yaml.safe_load((GOLDEN / "manifest.yaml").read_text())
    return next(c["stats"] for c in doc["cases"] if c["name"] == case)


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_upstream_form_reproduces_golden_output_byte_for_byte(case, tmp_path):
    out = tmp_path / "out.pcap"
    config = config_with_output(tmp_path, GOLDEN / case / "config.ini", out)
    result = run_cli("--config", str(config), "--offline-input", str(GOLDEN / case / "input.pcap"))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (GOLDEN / case / "constricted.pcap").read_bytes()
    lines = result.stdout.decode().splitlines()
    assert lines[:3] == [
        "Offline feed completed.",
        f"input: {GOLDEN / case / 'input.pcap'}",
        f"output: {out}",
    ]
    printed = dict(line.split(": ") for line in lines[3:])
    for key, value in manifest_stats(case).items():
        assert int(printed[key]) == value, key
    assert printed["packets_written"] == printed["packets_total"]
    assert printed["receive_errors"] == "0"
    assert "kernel_packets" not in printed  # offline: never
    assert tshark_count(out) == manifest_stats(case)["packets_total"]


def test_stats_block_is_omitted_when_stats_disabled(tmp_path):
    out = tmp_path / "out.pcap"
    config = config_with_output(tmp_path, GOLDEN / "tls_test_2" / "config.ini", out,
                                "[stats]\nenabled = false\n")  # fmt: skip
    result = run_cli("--config", str(config), "--offline-input",
                     str(GOLDEN / "tls_test_2" / "input.pcap"))  # fmt: skip
    assert result.returncode == 0
    assert len(result.stdout.decode().splitlines()) == 3


def test_regress_passes_on_the_shipped_manifest():
    result = run_cli("regress", str(GOLDEN / "manifest.yaml"))
    text = result.stdout.decode()
    assert result.returncode == 0, text + result.stderr.decode()
    for case in GOLDEN_CASES:
        assert f"PASS {case}:" in text
    for case in GOLDEN_CASES:  # the main tool's workflow, SPEC §14.4
        for stage in ("constrict", "reinflate_preserve", "reinflate_recompute"):
            assert f"PASS {case}.main.{stage}:" in text
    assert "23 passed, 0 failed" in text
    for policy in ("stream", "bulk"):
        assert f"PASS tls_test_1_lossy.{policy}:" in text
