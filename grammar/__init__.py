"""The policy language: lark grammar, static checks, code generation.

The parts load on first use (PEP 562): a run whose compiled policy comes from the
cache imports only ``evaluator`` — never lark, the checker or the code generator.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ast import Policy
    from .codegen import build_evaluator
    from .errors import PolicyError
    from .evaluator import Decision, Evaluator, Trace

__all__ = [
    "Decision", "Evaluator", "Policy", "PolicyError", "Trace", "build_evaluator",
    "load_policy", "shipped_policy_path",
]  # fmt: skip


def __getattr__(name: str) -> object:
    if name in ("Decision", "Evaluator", "Trace"):
        from . import evaluator as module
    elif name == "build_evaluator":
        from . import codegen as module
    elif name == "Policy":
        from . import ast as module
    elif name == "PolicyError":
        from . import errors as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)


def load_policy(path: str) -> Policy:
    """Read, parse and check a rule file; every problem is a :class:`PolicyError`."""
    from pathlib import Path

    from .checker import check_policy
    from .errors import PolicyError
    from .parser import parse_policy

    try:
        source = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise PolicyError(path, "", 0, 0, f"cannot read rule file: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise PolicyError(path, "", 0, 0, f"rule file is not UTF-8 text ({e.reason})") from None
    try:
        return check_policy(parse_policy(source, path))
    except RecursionError:
        raise PolicyError(path, source, 0, 0, "an expression nests too deeply") from None


def shipped_policy_path(name: str) -> str:
    """Path of a rule file shipped in ``pcapconstrictor.rules`` (e.g. ``final_only``)."""
    import importlib  # the rule files' package, as importlib.resources would find it (no zip installs)

    rules = importlib.import_module("pcapconstrictor.rules")
    return os.path.join(os.path.dirname(rules.__file__ or ""), f"{name}.rules")
