"""The policy language: lark grammar, static checks, code generation."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .ast import Policy
from .checker import check_policy
from .codegen import Decision, Evaluator, Trace, build_evaluator
from .errors import PolicyError
from .parser import parse_policy

__all__ = [
    "Decision", "Evaluator", "Policy", "PolicyError", "Trace", "build_evaluator",
    "load_policy", "shipped_policy_path",
]  # fmt: skip


def load_policy(path: str) -> Policy:
    """Read, parse and check a rule file; every problem is a :class:`PolicyError`."""
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
    return str(resources.files("pcapconstrictor.rules").joinpath(f"{name}.rules"))
