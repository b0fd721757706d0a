"""engine/compiled.py: the list setup.py compiles, and what --version reports."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

from pcapconstrictor.engine import compiled

ROOT = Path(__file__).resolve().parent.parent


def test_every_listed_module_exists_and_is_read_by_setup_as_a_literal():
    for name in compiled.MYPYC_MODULES:
        importlib.import_module(f"pcapconstrictor.{name}")
    # setup.py reads the tuple without importing the package: it must stay a literal
    tree = ast.parse((ROOT / "engine" / "compiled.py").read_text())
    assigns = [node for node in tree.body if isinstance(node, ast.Assign)]
    found = [ast.literal_eval(node.value) for node in assigns
             if getattr(node.targets[0], "id", "") == "MYPYC_MODULES"]  # fmt: skip
    assert found == [compiled.MYPYC_MODULES]


def test_the_description_matches_what_is_compiled():
    done = compiled.compiled_modules()
    assert set(done) <= set(compiled.MYPYC_MODULES)
    text = compiled.build_description()
    if not done:
        assert text.startswith("pure Python")
    elif len(done) == len(compiled.MYPYC_MODULES):
        assert text == "per-packet modules compiled with mypyc"
    else:
        assert all(name in text for name in done)


def test_version_names_the_build():
    out = subprocess.run([sys.executable, "-m", "pcapconstrictor.engine", "--version"],
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    assert out == f"pcapconstrictor-afpacket 0.1.0 ({compiled.build_description()})\n"
