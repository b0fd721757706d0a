"""Issue 4: audit, decision log, explain, regress and rule-file errors as text."""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import GOLDEN, config_with_output, run_cli
from pcapconstrictor.engine.analysis.reasons import UPSTREAM_COUNTERS, UPSTREAM_REASONS
from pcapconstrictor.grammar import shipped_policy_path

RULES_DIR = Path(shipped_policy_path("final_only")).parent

# SPEC §14.3, ipv6_ipv4_test_1: 1-based packet -> (output length, reason); others are kept whole.
SPEC_IPV6_IPV4_CUTS = {
    8: 107, 14: 94, 16: 100, 17: 94, 18: 94, 19: 94, 20: 94, 21: 94, 23: 94, 24: 94, 26: 348,
    27: 1302, 29: 94, 30: 94, 32: 94, 33: 1302, 35: 1302, 37: 1667, 47: 94, 48: 94, 49: 94, 50: 94,
    51: 94, 92: 1324, 98: 68, 99: 62, 100: 62, 101: 62,
}  # fmt: skip
SPEC_IPV6_IPV4_QUIC_CUTS = {
    73: 166, 74: 74, 75: 74, 76: 74, 78: 74, 80: 74, 81: 74, 87: 74, 109: 94, 111: 170, 112: 94,
    113: 94, 114: 3790, 117: 94, 118: 94, 121: 94,
}  # fmt: skip
SPEC_IPV6_IPV4_KEPT = {
    "tls_no_record_fallback": [40, 41, 42, 44, 45, 52, 54, 56, 58, 59, 60, 63, 64, 65, 94],
    "quic_malformed_fallback": [68, 69, 102, 103, 104, 105, 107],
    "quic_long_header": [70, 71, 72, 106, 108, 110, 116],
    "quic_short_header_matched": [77, 79, 82, 84, 115],
}


def test_decision_log_agrees_with_spec_per_packet_list_for_ipv6_ipv4_test_1(tmp_path):
    out, log = tmp_path / "out.pcap", tmp_path / "log.csv"
    config = config_with_output(tmp_path, GOLDEN / "ipv6_ipv4_test_1" / "config.ini", out)
    result = run_cli("--config", str(config), "--offline-input",
                     str(GOLDEN / "ipv6_ipv4_test_1" / "input.pcap"), "--decision-log", str(log))  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(log.open()))
    assert len(rows) == 130
    by_index = {int(r["index"]): r for r in rows}
    for index, length in SPEC_IPV6_IPV4_CUTS.items():
        assert (int(by_index[index]["saved_len"]), by_index[index]["reason"]) == (
            length, "tls_application_data_constricted"), index
    for index, length in SPEC_IPV6_IPV4_QUIC_CUTS.items():
        assert (int(by_index[index]["saved_len"]), by_index[index]["reason"]) == (
            length, "quic_short_header_constricted"), index
    for reason, indexes in SPEC_IPV6_IPV4_KEPT.items():
        for index in indexes:
            row = by_index[index]
            assert row["reason"] == reason, index
            assert row["saved_len"] == row["captured_len"], index
    cut = set(SPEC_IPV6_IPV4_CUTS) | set(SPEC_IPV6_IPV4_QUIC_CUTS)
    for index, row in by_index.items():
        if index not in cut:
            assert row["saved_len"] == row["captured_len"], index
    reasons = [r["reason"] for r in rows]
    assert (reasons.count("non_ip"), reasons.count("udp"), reasons.count("default")) == (4, 8, 2)
    assert "tls.appdata_offset=" in by_index[92]["facts"]
    assert by_index[92]["rule"] == "tls.appdata_start"
    assert by_index[92]["src"] == "146.75.118.152" and by_index[92]["dst_port"] == "41746"


def test_audit_names_every_reason_counter_and_config_key_the_rules_use(tmp_path):
    config = GOLDEN / "tls_test_2" / "config.ini"
    result = run_cli("audit", "--config", str(config))
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    for reason in UPSTREAM_REASONS:
        assert reason in text, reason
    for counter in UPSTREAM_COUNTERS:
        assert f"count {counter}" in text, counter
    for key in ("tls.app_data_keep_record_bytes", "tls.app_data_continuation_keep_bytes",
                "general.min_saved_bytes_per_packet", "tls.ports", "quic.ports",
                "quic.short_header_keep_packet_bytes", "quic.require_dcid_match",
                "quic.allow_short_header_without_known_dcid", "capture.default_snaplen"):  # fmt: skip
        assert f"# {key}" in text or f", {key}" in text, key
    let_line = "let cut = tls.appdata_offset + min(8, tls.appdata_visible)   # tls.app_data_keep_record_bytes"
    assert let_line in text
    unread = text.split("config keys no rule reads:\n")[1].split("\n\n")[0]
    assert "capture.backend" in unread and "tls.app_data_keep_record_bytes" not in unread


def test_audit_prints_the_changed_config_value(tmp_path):
    config = tmp_path / "c.ini"
    config.write_text((GOLDEN / "tls_test_2" / "config.ini").read_text()
                      + "\n[tls]\napp_data_keep_record_bytes = 77\n")  # fmt: skip
    text = run_cli("audit", "--config", str(config)).stdout.decode()
    assert "min(77, tls.appdata_visible)" in text
    assert re.search(r"tls\.app_data_keep_record_bytes\s+= 77\s+\(file\)", text)


def test_audit_is_stable_and_has_a_yaml_form():
    config = str(GOLDEN / "quic_test_2" / "config.ini")
    first = run_cli("audit", "--config", config).stdout
    assert first == run_cli("audit", "--config", config).stdout
    doc = yaml.safe_load(run_cli("audit", "--config", config, "--format", "yaml").stdout)
    assert [r["rule"] for r in doc["sections"]["packet"]][0] == "packet.inconsistent_lengths"
    assert doc["config"]["quic.short_header_keep_packet_bytes"] == {"value": "32", "from": "file"}


def test_audit_compare_shows_the_three_tls_policies_side_by_side():
    text = run_cli("audit", "--config", str(GOLDEN / "tls_test_2" / "config.ini"), "--compare").stdout
    side = text.decode().split("side by side")[1]
    assert "tls.bulk_continuation" in side and "tls.stream_continuation" in side
    assert "final_only = reset, stream = parse, bulk = parse" in side


def test_explain_tells_the_story_of_one_packet():
    result = run_cli("explain", "--config", str(GOLDEN / "ipv6_ipv4_test_1" / "config.ini"),
                     "--offline-input", str(GOLDEN / "ipv6_ipv4_test_1" / "input.pcap"),
                     "--packet", "92")  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert "TCP 443 -> 41746" in text
    assert "state before:" in text and "state after:" in text
    assert re.search(r"no +tls\.middle_continuation", text)
    assert re.search(r"MATCH tls\.appdata_start .*tls\.appdata_offset=1262", text)
    assert "output 1324 of 2854 captured bytes" in text
    assert re.search(r"tls this direction: .*active_remaining=1077", text)  # the state found by its key


def test_explain_shows_the_quic_connection_state_from_either_end():
    for number, ports in (("20", "UDP 62697 -> 443"), ("40", "UDP 443 -> 62697")):
        case = GOLDEN / "quic_test_2"
        result = run_cli("explain", "--config", str(case / "config.ini"),
                         "--offline-input", str(case / "input.pcap"), "--packet", number)  # fmt: skip
        text = result.stdout.decode()
        assert result.returncode == 0 and ports in text
        assert "quic flow: scid_a=f3aae56f5b5ccef6 scid_b=5150b9" in text


def _rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(RULES_DIR, target, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target


def test_regress_fails_on_an_edited_keep_value_and_update_makes_it_pass(tmp_path):
    rules = _rules_copy(tmp_path)
    records = rules / "tls_records.rules"
    records.write_text(records.read_text().replace(
        "keep tcp.payload_offset + $tls.app_data_continuation_keep_bytes",
        "keep tcp.payload_offset + $tls.app_data_continuation_keep_bytes + 1"))
    case = tmp_path / "case"
    case.mkdir()
    for name in ("input.pcap", "constricted.pcap", "config.ini"):
        shutil.copy(GOLDEN / "tls_test_2" / name, case / name)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"cases": [{
        "name": "tls_test_2", "input": "case/input.pcap", "config": "case/config.ini",
        "expected": "case/constricted.pcap", "rules": "rules/final_only.rules",
        "stats": {"bytes_output": 2111, "tls_appdata_constricted": 6}}]}))
    failed = run_cli("regress", str(manifest))
    text = failed.stdout.decode()
    assert failed.returncode == 1
    assert "FAIL tls_test_2" in text
    # packet 7 is the first exact final continuation of tls_test_2 (SPEC §14.3: 332 -> 66)
    assert "first difference: packet 7 (1-based): ours incl_len 67 orig_len 332, " \
           "expected incl_len 66 orig_len 332" in text
    updated = run_cli("regress", str(manifest), "--update")
    lines = updated.stdout.decode().splitlines()
    assert updated.returncode == 0 and lines[0].startswith("UPDATED tls_test_2:")
    assert lines[-1] == "regress: 0 passed, 1 updated, 0 failed" and "FAIL" not in updated.stdout.decode()
    # the manifest's stats follow the new output (one more byte kept in each cut continuation)
    stats = yaml.safe_load(manifest.read_text())["cases"][0]["stats"]
    assert stats["bytes_output"] > 2111 and stats["tls_appdata_constricted"] == 6
    again = run_cli("regress", str(manifest))
    assert again.returncode == 0 and again.stdout.decode().splitlines()[-1] == "regress: 1 passed, 0 failed"


BAD_RULES = [
    ("syntax", "rule x.y when reason z",
     "unexpected 'reason'; expected '$', '(', 'false', 'not', 'true', a dotted name, a name, a number"),
    ("unknown fact", "rule x.y when tls.nope reason tcp", "unknown fact 'tls.nope'"),
    ("fact outside its section", "rule x.y when tls.malformed reason tcp",
     "fact 'tls.malformed' is only available in 'on tls' rules"),
    ("unknown config key", "rule x.y when tcp.src_port in $tls.portz reason tcp",
     "unknown config key '$tls.portz'; did you mean 'tls.ports'?"),
    ("type mismatch", "rule x.y when tcp.src_port reason tcp", "'when' must be true/false, not a number"),
    ("type mismatch in", "rule x.y when tcp.src_port in 443 reason tcp",
     "the right side of 'in' must be a port list, not a number"),
    ("unknown reason", "rule x.y when decode.tcp reason tls_candidat",
     "unknown reason 'tls_candidat'; did you mean 'tls_candidate'? (a new one needs 'declare reason')"),
    ("shadowed rule", "rule x.y reason tcp\nrule x.z reason udp",
     "rule 'x.z' can never match: rule 'x.y' (line 2) matches every packet before it"),
    ("never true", "rule x.y when false reason tcp",
     "rule 'x.y' can never match: its condition is false for every packet"),
    ("contradiction", "rule x.y when decode.tcp and tcp.dst_port == 443 and not decode.tcp reason tcp",
     "rule 'x.y' can never match: its condition is false for every packet"),
    ("negated truth", "rule x.y when decode.udp and not true reason udp",
     "rule 'x.y' can never match: its condition is false for every packet"),
]


@pytest.mark.parametrize("label,body,message", BAD_RULES, ids=[b[0] for b in BAD_RULES])
def test_rule_file_errors_name_file_line_col_and_show_the_line_with_a_caret(tmp_path, label, body, message):
    path = tmp_path / "bad.rules"
    path.write_text("on packet\n" + body + "\nrule last reason default\n")
    out = tmp_path / "o.pcap"
    config = config_with_output(tmp_path, GOLDEN / "tls_test_2" / "config.ini", out)
    result = run_cli("--config", str(config), "--offline-input", str(GOLDEN / "tls_test_2" / "input.pcap"),
                     "--rules", str(path))  # fmt: skip
    assert result.returncode == 1
    err = result.stderr.decode().splitlines()
    head = re.match(rf"{re.escape(str(path))}:(\d+):(\d+): (.*)", err[0])
    assert head, err
    line, col = int(head[1]), int(head[2])
    assert head[3] == message
    source_line = path.read_text().splitlines()[line - 1]
    assert err[1] == "    " + source_line
    assert err[2] == "    " + " " * (col - 1) + "^"
    assert not out.exists()


def test_decision_log_dash_writes_the_csv_to_standard_output_and_the_summary_to_stderr(tmp_path):
    out = tmp_path / "o.pcap"
    config = config_with_output(tmp_path, GOLDEN / "tls_test_2" / "config.ini", out)
    result = run_cli("--config", str(config), "--offline-input", str(GOLDEN / "tls_test_2" / "input.pcap"),
                     "--decision-log", "-", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0
    rows = list(csv.reader(io.StringIO(result.stdout.decode())))
    assert rows[0][0] == "index" and len(rows) == 1 + 14
    assert not (tmp_path / "-").exists()
    assert "Offline feed completed." in result.stderr.decode()
    both = run_cli("--config", str(config), "--offline-input", str(GOLDEN / "tls_test_2" / "input.pcap"),
                   "--decision-log", "-", "--output", "-")  # fmt: skip
    assert both.returncode == 1 and b"both ask for standard output" in both.stderr


@pytest.mark.parametrize("name", ["zeek_merlinc2_Zeek_example.pcapng", "zeek_ml-dsa-44-cert.pcap"])
def test_explain_reads_pcapng_and_other_link_types_as_the_offline_feed_does(name):
    source = GOLDEN.parent / "external" / name
    result = run_cli("explain", "--config", str(GOLDEN.parent.parent / "examples" / "config.ini"),
                     "--offline-input", str(source), "--packet", "3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert out.startswith("packet 3: ") and "  IPv" in out and "decision: rule " in out
