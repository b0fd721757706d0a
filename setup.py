"""Build hook: compile the per-packet modules with mypyc (engine/compiled.py).

The package's parts are root folders mapped to ``pcapconstrictor.*`` in
pyproject.toml, but mypyc names a module after its path; so it compiles them
from ``build/mypyc-src/pcapconstrictor/``, a tree of symlinks to those
folders.  ``PCAPCONSTRICTOR_PURE_PYTHON=1`` installs without compiling.
"""

import ast
import os
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
PARTS = ("engine", "formats", "grammar", "rules")


def mypyc_modules() -> tuple[str, ...]:
    tree = ast.parse((ROOT / "engine" / "compiled.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "MYPYC_MODULES":
            return tuple(ast.literal_eval(node.value))
    raise RuntimeError("engine/compiled.py: MYPYC_MODULES not found")


def ext_modules() -> list:
    if os.environ.get("PCAPCONSTRICTOR_PURE_PYTHON", "") not in ("", "0"):
        return []
    from mypyc.build import mypycify

    stage = Path("build", "mypyc-src", "pcapconstrictor")
    stage.mkdir(parents=True, exist_ok=True)
    (stage / "__init__.py").touch()
    for part in PARTS:
        link = stage / part
        if not link.is_symlink():
            link.symlink_to(Path("..", "..", "..", part), target_is_directory=True)
    paths = [str(stage / f"{name.replace('.', '/')}.py") for name in mypyc_modules()]
    return mypycify(paths, group_name="pcapconstrictor.engine._compiled", opt_level="3")


os.chdir(ROOT)  # mypyc runs mypy on relative paths and reads its config from pyproject.toml
setup(ext_modules=ext_modules())
