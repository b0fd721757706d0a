"""The command line (issue 20): per-command --help, usage errors that say what is wrong, the man
page generated from the same parsers, shell completion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import GOLDEN, ROOT, run_cli
from pcapconstrictor.engine.commands.parsers import SUBCOMMANDS

MAN_PAGE = ROOT / "docs" / "man" / "pcapconstrictor-afpacket.1"
CONFIG = str(GOLDEN / "tls_test_2" / "config.ini")
INPUT = str(GOLDEN / "tls_test_2" / "input.pcap")


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_command_has_its_own_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    out = result.stdout.decode()
    assert out.startswith(f"usage: pcapconstrictor-afpacket {command}")
    assert SUBCOMMANDS[command][0] in out


@pytest.mark.parametrize(("args", "problem"), [
    (["--config", CONFIG, "--offline-input", INPUT, "--bogus"], "error: unrecognized arguments: --bogus"),
    (["--config", CONFIG, "--filter", "tcp", "--filter", "udp"], "error: argument --filter: given twice"),
    (["--offline-input", INPUT], "error: --config is required"),
    (["--config", CONFIG, "--filter", "tcp", "udp"],
     "error: a filter expression after the options and --filter: give one"),
])  # fmt: skip
def test_a_usage_error_prints_the_upstream_usage_then_what_is_wrong(args, problem):
    result = run_cli(*args)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1
    assert lines[:4] == run_cli("--help").stdout.decode().splitlines()[:4]
    assert lines[4:] == [problem]


def test_a_command_usage_error_names_the_missing_option_and_shows_that_commands_usage():
    result = run_cli("explain", "--config", CONFIG, "--offline-input", INPUT)
    err = result.stderr.decode()
    assert result.returncode == 1
    assert err.startswith("usage: pcapconstrictor-afpacket explain")
    assert err.endswith("error: the following arguments are required: --packet\n")
    bad = run_cli("explain", "--config", CONFIG, "--offline-input", INPUT, "--packet", "0")
    assert bad.stderr.decode().endswith("error: argument --packet: takes a packet number from 1, not '0'\n")


def test_the_shipped_man_page_is_the_one_the_parsers_generate(tmp_path):
    pytest.importorskip("argparse_manpage", reason="argparse-manpage is a test dependency ('.[test]')")
    fresh = tmp_path / "fresh.1"
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["sh", str(ROOT / "docs" / "man" / "build.sh"), str(fresh)], check=True, env=env)
    assert fresh.read_text() == MAN_PAGE.read_text(), "regenerate it: docs/man/build.sh"
    for name in SUBCOMMANDS:
        assert f".SH COMMAND \\fI\\,'pcapconstrictor\\-afpacket {name}'" in MAN_PAGE.read_text()


def test_man_renders_the_shipped_page():
    if shutil.which("man") is None:
        pytest.skip("man is not installed (Debian package man-db)")
    result = subprocess.run(["man", "-l", str(MAN_PAGE)], capture_output=True, text=True,
                            env={**os.environ, "MANPAGER": "cat", "MANWIDTH": "100"})  # fmt: skip
    assert result.returncode == 0
    assert "pcapconstrictor-afpacket" in result.stdout and "--offline-input" in result.stdout


def test_shell_completion_offers_the_commands_and_their_options(tmp_path):
    def complete(line: str) -> list[str]:
        out = tmp_path / "completions"
        env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
               "_ARGCOMPLETE_STDOUT_FILENAME": str(out), "_ARGCOMPLETE_IFS": "\n"}  # fmt: skip
        subprocess.run([sys.executable, "-m", "pcapconstrictor.engine"], env=env, timeout=60)
        return [word.strip() for word in out.read_text().split("\n")]

    assert {"audit", "explain", "regress"} <= set(complete("pcapconstrictor-afpacket "))
    assert "--packet" in complete("pcapconstrictor-afpacket explain --pa")
