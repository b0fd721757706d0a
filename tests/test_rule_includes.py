"""Issue 13 item 4: ``include`` names a rule file in the including file's directory (or below
it), else a shipped rule file.  An absolute path, ``..``, a link leading out of the directory
or a file that is not a ``*.rules`` file is refused at the include's file:line:col, and the
error never shows a line of the file it refused."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import GOLDEN, config_with_output, run_cli
from pcapconstrictor.grammar import PolicyError, load_policy, shipped_policy_path

SECRET = "root:SECRET-FIRST-LINE:0:0"
BODY = 'on packet\nrule any "every packet" reason default\n'


def refused(path: Path, include: str) -> PolicyError:
    path.write_text(f'# a rule file\ninclude "{include}"\n' + BODY)
    with pytest.raises(PolicyError) as info:
        load_policy(str(path))
    error = info.value
    assert (error.path, error.line, error.column) == (str(path), 2, 1)
    assert str(error).startswith(f"{path}:2:1: cannot include '{include}': ")
    assert "SECRET" not in str(error)
    return error


def test_an_absolute_include_path_is_refused_without_reading_the_file(tmp_path):
    secret = tmp_path / "secret.rules"
    secret.write_text(SECRET + "\n")
    error = refused(tmp_path / "main.rules", str(secret))
    assert "an absolute path" in error.message


def test_an_include_climbing_out_with_dotdot_is_refused(tmp_path):
    (tmp_path / "secret.rules").write_text(SECRET + "\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    assert "'..'" in refused(rules / "main.rules", "../secret.rules").message
    assert "'..'" in refused(rules / "main.rules", "sub/../../secret.rules").message


def test_a_file_that_is_not_a_rule_file_is_refused_and_its_content_not_shown(tmp_path):
    (tmp_path / "passwd").write_text(SECRET + "\n")
    assert "only rule files" in refused(tmp_path / "main.rules", "passwd").message


def test_a_link_in_the_directory_leading_out_of_it_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET + "\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "planted.rules").symlink_to(outside / "secret.txt")
    assert "link" in refused(rules / "main.rules", "planted.rules").message


def test_an_include_resolves_relative_to_the_including_files_own_directory(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "inner.rules").write_text(BODY)
    (sub / "middle.rules").write_text('include "inner.rules"\n')  # sub/inner.rules, not ./inner.rules
    main = tmp_path / "main.rules"
    main.write_text('include "sub/middle.rules"\n')
    policy = load_policy(str(main))
    assert policy.includes == [str(sub / "inner.rules"), str(sub / "middle.rules")]


def test_a_shipped_rule_file_can_be_included_from_any_directory(tmp_path):
    main = tmp_path / "main.rules"
    main.write_text('include "packet.rules"\n')
    policy = load_policy(str(main))
    # packet.rules and what it includes in turn, all from the shipped folder
    assert shipped_policy_path("packet") in policy.includes
    shipped = Path(shipped_policy_path("packet")).parent
    assert all(Path(path).parent == shipped for path in policy.includes)


def test_a_refused_include_fails_the_run_with_exit_1_and_no_output(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(Path(shipped_policy_path("final_only")).parent, rules,
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))  # fmt: skip
    (tmp_path / "secret.rules").write_text(SECRET + "\n")
    main = rules / "final_only.rules"
    main.write_text(main.read_text().replace('include "quic.rules"', 'include "../secret.rules"'))
    out = tmp_path / "out.pcap"
    config = config_with_output(tmp_path, GOLDEN / "tls_test_2" / "config.ini", out)
    result = run_cli("--config", str(config), "--offline-input", str(GOLDEN / "tls_test_2" / "input.pcap"),
                     "--rules", str(main))  # fmt: skip
    assert result.returncode == 1
    err = result.stderr.decode()
    assert re.match(rf"{re.escape(str(main))}:\d+:1: cannot include '\.\./secret\.rules': ", err), err
    assert "SECRET" not in err
    assert not out.exists()
