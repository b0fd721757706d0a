"""The rule files, not the engine, decide: edit the rules and the output follows."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from conftest import GOLDEN, config_with_output, run_cli
from pcapconstrictor.grammar import shipped_policy_path

RULES_DIR = Path(shipped_policy_path("final_only")).parent


def copy_rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    target.mkdir()
    for f in RULES_DIR.glob("*.rules"):
        shutil.copy(f, target / f.name)
    return target


def run_case(tmp_path, case, rules=None):
    out = tmp_path / f"{case}.out.pcap"
    config = config_with_output(tmp_path, GOLDEN / case / "config.ini", out)
    args = ["--config", str(config), "--offline-input", str(GOLDEN / case / "input.pcap")]
    if rules:
        args += ["--rules", str(rules)]
    result = run_cli(*args)
    stats = dict(line.split(": ") for line in result.stdout.decode().splitlines()[3:])
    return result, out, stats


def test_removing_the_tls_rules_turns_tls_constriction_off(tmp_path):
    rules = copy_rules(tmp_path)
    text = (rules / "final_only.rules").read_text()
    (rules / "final_only.rules").write_text(text.split("\non tls\n")[0])
    result, out, stats = run_case(tmp_path, "tls_test_2", rules / "final_only.rules")
    assert result.returncode == 0, result.stderr
    assert stats["tls_appdata_constricted"] == "0"
    assert stats["bytes_saved"] == "0"
    assert out.read_bytes() == (GOLDEN / "tls_test_2" / "input.pcap").read_bytes()


def test_changing_a_keep_expression_in_the_rules_changes_the_output(tmp_path):
    rules = copy_rules(tmp_path)
    path = rules / "tls_records.rules"
    text = path.read_text()
    # Keep 4 more bytes of every Application Data record start than the config says.
    edited = text.replace("let cut = tls.appdata_offset + min(", "let cut = 4 + tls.appdata_offset + min(")
    assert edited != text
    path.write_text(edited)
    result, out, stats = run_case(tmp_path, "tls_test_2", rules / "final_only.rules")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() != (GOLDEN / "tls_test_2" / "constricted.pcap").read_bytes()
    assert int(stats["bytes_output"]) > 2111


def test_a_typo_in_a_rule_file_reports_file_line_column_and_exits_1(tmp_path):
    rules = copy_rules(tmp_path)
    path = rules / "tls_records.rules"
    text = path.read_text().replace("when tls.malformed", "when tls.malfromed")
    path.write_text(text)
    result, _, _ = run_case(tmp_path, "tls_test_2", rules / "final_only.rules")
    assert result.returncode == 1
    err = result.stderr.decode()
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "tls.malfromed" in s)
    assert re.match(rf"{re.escape(str(path))}:{line}:10: unknown fact 'tls.malfromed'; "
                    r"did you mean 'tls.malformed'\?", err), err  # fmt: skip
    assert "Traceback" not in err


def test_a_syntax_error_in_an_included_file_names_that_file(tmp_path):
    rules = copy_rules(tmp_path)
    quic = rules / "quic.rules"
    quic.write_text(quic.read_text().replace("rule quic.long_headers", "rule quic.long_headers when"))
    result, _, _ = run_case(tmp_path, "quic_test_2", rules / "final_only.rules")
    assert result.returncode == 1
    assert result.stderr.decode().startswith(f"{quic}:")
