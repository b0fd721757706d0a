"""Issue 21 item 3: the compiled policy is cached between runs.  A warm run never imports
lark (nor construct); an entry that another user could have written, a link or a corrupt file is ignored
(and rewritten); a changed rule file or config value is a miss, never a stale policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GOLDEN, config_with_output

# Runs the CLI, then reports which of the heavy libraries the run imported (last line).
WRAPPER = ("import sys\nfrom pcapconstrictor.engine.commands.cli import main\nrc = main(sys.argv[1:])\n"
           "print(sorted(m for m in ('lark', 'construct', 'dataclasses') if m in sys.modules))\n"
           "sys.exit(rc)\n")  # fmt: skip
RULES = ('declare reason cut_here "cut for the test"\non packet\n'
         'rule cut "keep a header" keep {keep} min_saved 0 reason cut_here otherwise default\n')  # fmt: skip


class Run:
    """One CLI run on the golden TLS input with its own cache directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.cache = tmp_path / "cache"
        self.output = tmp_path / "out.pcap"
        self.config = config_with_output(tmp_path, GOLDEN / "tls_test_2" / "config.ini", self.output)

    def __call__(self, *extra: str, env: dict | None = None) -> tuple[list[str], bytes]:
        self.output.unlink(missing_ok=True)
        args = ["--config", str(self.config), "--offline-input", str(GOLDEN / "tls_test_2" / "input.pcap")]
        out = subprocess.run([sys.executable, "-c", WRAPPER, *args, *extra], capture_output=True, text=True,
                             env={**os.environ, "XDG_CACHE_HOME": str(self.cache), **(env or {})},
                             timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr
        written = self.output.read_bytes() if self.output.exists() else b""
        return json.loads(out.stdout.splitlines()[-1].replace("'", '"')), written

    def entry(self) -> Path:
        (entry,) = (self.cache / "pcapconstrictor-afpacket").glob("*.json")
        return entry

    def plant(self, path: Path) -> None:
        """A valid-looking entry whose code would end the run with status 42 if it were used."""
        entry = json.loads(self.entry().read_text())
        for variant in entry["variants"]:
            variant["source"] = "raise SystemExit(42)\n" + variant["source"]
        path.write_text(json.dumps(entry))


@pytest.fixture
def run(tmp_path):
    return Run(tmp_path)


def test_a_warm_run_imports_neither_lark_nor_construct_nor_dataclasses_and_writes_the_same_bytes(run):
    cold_imports, cold = run()
    warm_imports, warm = run()
    assert "lark" in cold_imports
    assert warm_imports == []  # start-up: derived readers (formats/derived.py), no dataclasses
    assert warm == cold == (GOLDEN / "tls_test_2" / "constricted.pcap").read_bytes()


def test_the_cache_directory_and_entry_are_private_to_the_user(run):
    run()
    assert (run.cache / "pcapconstrictor-afpacket").stat().st_mode & 0o777 == 0o700
    assert run.entry().stat().st_mode & 0o077 == 0
    assert run.entry().stat().st_uid == os.geteuid()


def test_no_cache_environment_variable_turns_the_cache_off(run):
    run(env={"PCAPCONSTRICTOR_NO_CACHE": "1"})
    imports, _ = run(env={"PCAPCONSTRICTOR_NO_CACHE": "1"})
    assert "lark" in imports
    assert not (run.cache / "pcapconstrictor-afpacket").exists()


def test_a_group_writable_entry_is_ignored_and_rewritten(run):
    run()
    run.plant(run.entry())
    run.entry().chmod(0o664)
    imports, _ = run()  # exit status 0: the planted code did not run
    assert "lark" in imports
    assert run.entry().stat().st_mode & 0o077 == 0
    assert "SystemExit(42)" not in run.entry().read_text()


def test_an_entry_owned_by_another_user_is_ignored(run):
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    run()
    run.plant(run.entry())
    os.chown(run.entry(), 65534, 65534)
    imports, _ = run()
    assert "lark" in imports
    assert run.entry().stat().st_uid == os.geteuid()


def test_an_entry_that_is_a_symlink_is_ignored(run):
    run()
    planted = run.tmp / "planted.json"
    run.plant(planted)
    entry = run.entry()
    entry.unlink()
    entry.symlink_to(planted)
    imports, _ = run()
    assert "lark" in imports
    assert not run.entry().is_symlink()


def test_a_group_writable_cache_directory_is_not_used(run):
    run()
    run.plant(run.entry())
    (run.cache / "pcapconstrictor-afpacket").chmod(0o775)
    imports, _ = run()
    assert "lark" in imports


def test_a_corrupt_entry_is_ignored_and_rewritten(run):
    run()
    run.entry().write_text('{"source": ')
    imports, _ = run()
    assert "lark" in imports
    assert json.loads(run.entry().read_text())["variants"][0]["source"]
    assert "lark" not in run()[0]


def test_changing_an_included_rule_file_changes_the_output(run):
    rules = run.tmp / "rules"
    rules.mkdir()
    (rules / "main.rules").write_text('include "cut.rules"\n')
    (rules / "cut.rules").write_text(RULES.format(keep=20))
    _, first = run("--rules", str(rules / "main.rules"))
    (rules / "cut.rules").write_text(RULES.format(keep=30))
    imports, second = run("--rules", str(rules / "main.rules"))
    assert "lark" in imports  # a miss: the included file changed
    assert first != second
    assert "lark" not in run("--rules", str(rules / "main.rules"))[0]


def test_changing_a_config_value_the_rules_read_is_a_miss(run):
    _, first = run()
    run.config.write_text(run.config.read_text() + "\n[tls]\napp_data_keep_record_bytes = 300\n")
    imports, second = run()
    assert "lark" in imports
    assert first != second


def test_changing_only_the_output_keeps_the_cache_warm(run):
    run()
    run.config.write_text(run.config.read_text() + "\n[general]\n")  # same values, other text
    other = run.tmp / "other.pcap"
    imports, _ = run("--output", str(other))
    assert "lark" not in imports
    assert other.exists()


def test_runs_with_different_configs_each_find_their_compiled_policy(run):
    """Two configs used in turn on one host (two interfaces, a benchmark's variants) each stay
    warm: the entry keeps a variant per set of config values, not only the last one."""
    base = run.config.read_text()
    _, first = run()
    run.config.write_text(base + "\n[tls]\napp_data_keep_record_bytes = 300\n")
    assert "lark" in run()[0]  # a miss the first time
    imports, second = run()
    assert "lark" not in imports and second != first
    run.config.write_text(base)
    imports, again = run()
    assert "lark" not in imports  # the first config's variant is still there
    assert again == first
    assert len(json.loads(run.entry().read_text())["variants"]) == 2


def test_an_entry_keeps_at_most_a_bounded_number_of_variants(run):
    from pcapconstrictor.engine.run.policy_cache import MAX_VARIANTS

    base = run.config.read_text()
    for keep in range(MAX_VARIANTS + 2):
        run.config.write_text(base + f"\n[tls]\napp_data_keep_record_bytes = {100 + keep}\n")
        assert "lark" in run()[0]
    variants = json.loads(run.entry().read_text())["variants"]
    assert len(variants) == MAX_VARIANTS
    assert variants[0]["config"]["tls.app_data_keep_record_bytes"] == 100 + MAX_VARIANTS + 1  # newest first
