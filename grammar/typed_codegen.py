"""Policy -> a typed Python module: one evaluator class that mypyc compiles (issue 21).

The interpreted path (codegen.py) inlines the config values and execs the source, so
each decision runs as interpreted bytecode on an untyped tuple.  For a shipped policy
this module emits the same rules, in the same order and with the same decision table,
as a class whose config values are typed attributes read at run time (no rule is
dropped for a config value: a switched-off protocol is a test of a bool), whose
decoder and analyzers are direct calls, and whose frame fields are typed locals.  The
rules are the class's ``decide`` method; the frame loops around it are engine/run/typed_base.py.
Compiled with mypyc (engine/compiled.py) every call is native and the decoder's
18 fields come back as a C struct.  ``python -m pcapconstrictor.grammar.typed_codegen NAME``
prints the module for the shipped policy NAME (engine/run/shipped_NAME.py is that output for
final_only, stream and bulk; tests/test_typed_policy.py fails when one is stale).
"""

from __future__ import annotations

import hashlib
import os

from pcapconstrictor.engine.analysis.decode import U16_FIELDS
from pcapconstrictor.engine.analysis.facts import DECODED
from pcapconstrictor.engine.analysis.registry import ANALYZERS
from pcapconstrictor.engine.config import KEYS, Config

from . import ast, load_policy, shipped_policy_path
from .codegen import Emitter

DEFAULT_POLICY = "final_only"  # tls.app_data_continuation_policy's default
_KINDS = {"u32": "int", "u64": "int", "bool": "bool", "port list": "bytes",
          "string": "str", "enum": "str"}  # fmt: skip


_U16_LOCALS = frozenset(DECODED + name for name in U16_FIELDS)


def config_name(key: str) -> str:
    return "cfg_" + key.replace(".", "_")


class TypedEmitter(Emitter):
    """The interpreted emitter's rules as the body of ``decide(data, n, orig_len, ts_ns)``, a
    method: config values and analyzers are typed attributes of ``self``, each decision a
    native counter, the decoder and analyzers direct calls."""

    def __init__(self, policy: ast.Policy) -> None:
        super().__init__(policy, Config("(typed)", {}, {}), False)
        self.keys: dict[str, str] = {}  # config key -> attribute name, in order of first use

    def config_value(self, key: str) -> str:
        self.keys.setdefault(key, config_name(key))
        return "self." + self.keys[key]

    def decode_call(self) -> str:
        return "decode_link(data, n, self.linktype)"

    def analyzer_call(self, name: str) -> str:
        return f"self.a_{name}.analyze"

    def leave(self, depth: int, length: str, decision: int) -> None:
        self.emit(depth, f"self.n{decision} += 1")  # a native int; take_counts adds it to counts
        self.emit(depth, f"return {length}")

    def membership(self, e: ast.Binary, section: str, scope: dict[str, str]) -> str:
        """``x in $ports`` as an index into the port list's 64 KiB map: no int object, no hash
        (and for a decoded port no bounds test either: interpreted, ~40 % of the test)."""
        left, ports = self.expr(e.left, section, scope), self.expr(e.right, section, scope)
        if left in _U16_LOCALS:  # a decoded port is in range by construction: no bounds test
            return f"({ports}[{left}] != 0)"
        if not left.isidentifier():
            return f"port_in({left}, {ports})"
        return f"(0 <= {left} < 65536 and {ports}[{left}] != 0)"

    def expr(self, e: ast.Expr, section: str, scope: dict[str, str]) -> str:
        if isinstance(e, ast.Call):  # min/max as nested conditionals: no builtin call, typed int
            args = [self.expr(a, section, scope) for a in e.args]
            consts = [int(a) for a in args if a.lstrip("-").isdigit()]
            others = [a for a in args if not a.lstrip("-").isdigit()]
            if consts:
                others.append(str(min(consts) if e.func == "min" else max(consts)))
            op = "<=" if e.func == "min" else ">="
            out = others[-1]
            for a in reversed(others[:-1]):
                out = f"({a} if {a} {op} {out} else {out})"
            return out
        if isinstance(e, ast.Binary) and e.op == "in" and isinstance(e.right, ast.ConfigRef):
            return self.membership(e, section, scope)
        return super().expr(e, section, scope)

    def function(self) -> None:
        """The body of ``decide``; the method's head and the attributes it reads come from
        :func:`typed_module`, once every config key the rules read is known."""
        p = self.policy
        top = 2
        self.emit(top, "eff = n if n <= orig_len else orig_len")
        self.emit(top, "inconsistent = orig_len < n")
        baseline = self.expr(p.baseline, "packet", {}) if p.baseline else "eff"
        self.emit(top, f"baseline = {baseline}")
        if baseline != "eff":  # a no-op where the interpreted path leaves it out (min(eff, ...))
            self.emit(top, "baseline = eff if baseline > eff else (0 if baseline < 0 else baseline)")
        for index, rule in enumerate(p.sections["packet"]):
            self.rule(rule, index, top, None)


class _OptionEmitter(Emitter):
    """Analyzer option expressions over the run's config mapping (evaluated once per run)."""

    def config_value(self, key: str) -> str:
        return f"config[{key!r}]"


def rule_sources(policy: ast.Policy) -> dict[str, str]:
    """Each rule file the policy was read from, by name in the shipped rules directory: its
    text's sha256.  None of them may lie elsewhere (a shipped policy includes only its own)."""
    shipped = os.path.realpath(os.path.dirname(shipped_policy_path("x")))
    out = {}
    for path, text in sorted(policy.sources.items()):
        name = os.path.relpath(os.path.realpath(path), shipped)
        if name.startswith(".."):
            raise ValueError(f"{path}: not a shipped rule file")
        out[name] = hashlib.sha256(text.encode()).hexdigest()
    return out


def typed_module(name: str = DEFAULT_POLICY) -> str:
    """The typed module's source for the shipped policy ``name``."""
    policy = load_policy(shipped_policy_path(name))
    rules = TypedEmitter(policy)
    rules.function()
    used = [n for n in ANALYZERS if any(f"a_{n}.analyze(" in line for line in rules.lines)]
    lines = _head(name, used) + _tables(policy, rules) + _options(policy)
    lines += _evaluator(dict(sorted(rules.keys.items())), used, rules.lines, len(rules.decisions))
    return "\n".join(lines)


def _head(name: str, used: list[str]) -> list[str]:
    w = [f'"""The shipped policy {name!r} as a typed evaluator (issue 21): GENERATED by',
         f"``python -m pcapconstrictor.grammar.typed_codegen {name}`` from the rule files below;",
         "do not edit.  engine/run/typed_policy.py uses it when a run's rule files are these, byte",
         'for byte; engine/compiled.py compiles it with mypyc."""', "",
         "# ruff: noqa: E501", "", "from __future__ import annotations", "",
         "from collections.abc import Mapping", "from typing import Final, cast", "",
         "from pcapconstrictor.engine.analysis.decode import decode_link"]  # fmt: skip
    factories = [ANALYZERS[n].factory for n in used]
    w += sorted(f"from {f.__module__} import {f.__name__}" for f in factories)
    w.append("from pcapconstrictor.engine.run.typed_base import TypedPolicyBase")
    return w + ["", f"POLICY: Final = {name!r}", "", "", *_HELPERS.splitlines()]


_HELPERS = '''def port_map(ports: object) -> bytes:
    """A port list as 65536 bytes, 1 where a port is listed: membership is one index."""
    out = bytearray(65536)
    for port in cast(tuple, ports):
        if 0 <= port < 65536:
            out[port] = 1
    return bytes(out)


def port_in(value: int, ports: bytes) -> bool:
    return 0 <= value < 65536 and ports[value] != 0


'''


def _tables(policy: ast.Policy, emitter: TypedEmitter) -> list[str]:
    w = ["# rule file (in the shipped rules directory) -> sha256 of its text", "SOURCES: Final = {"]
    w += [f"    {k!r}: {v!r}," for k, v in rule_sources(policy).items()]
    w += ["}", "# (rule id, section, message, reason, counter, kind) of each decision, by index",
          "DECISIONS: Final = ("]  # fmt: skip
    for d in emitter.decisions:
        w.append(f"    ({d.rule.id!r}, {d.rule.section!r}, {d.rule.message!r}, {d.reason!r}, "
                 f"{d.counter!r}, {d.kind!r}),")  # fmt: skip
    return w + [")"]


def _options(policy: ast.Policy) -> list[str]:
    w = ["", "", "def analyzer_options(config: Mapping[str, object]) -> dict[str, dict[str, object]]:",
         '    """Each analyzer\'s options: its defaults, then the rule files\' values."""', "    return {"]
    for n, spec in ANALYZERS.items():
        values = {key: repr(opt.default) for key, opt in spec.options.items()}
        declared = policy.analyzers.get(n)
        for key, (expr, _) in declared.options.items() if declared else ():
            if isinstance(expr, ast.NameRef):  # a symbol: boundary = reset
                values[key] = repr(expr.name)
            else:
                emitter = _OptionEmitter(policy, Config("(typed)", {}, {}), False)
                values[key] = emitter.expr(expr, "packet", {})
        w.append(f"        {n!r}: {{" + ", ".join(f"{k!r}: {v}" for k, v in values.items()) + "},")
    return w + ["    }"]


def _evaluator(keys: dict[str, str], used: list[str], body: list[str], decisions: int) -> list[str]:
    w = ["", "", "class TypedPolicy(TypedPolicyBase):",
         '    """The policy\'s rules; config values and analyzers are typed attributes bound per run."""',
         "",
         "    def __init__(self, config: Mapping[str, object], analyzers: Mapping[str, object]) -> None:",
         "        super().__init__()"]  # fmt: skip
    for key, var in keys.items():
        w.append(f"        self.{var}: {_KINDS[KEYS[key].kind]} = " + _config_read(key))
    for n in used:
        cls = ANALYZERS[n].factory.__name__
        w.append(f"        self.a_{n}: {cls} = cast({cls}, analyzers[{n!r}])")
    names = [f"self.n{k}" for k in range(decisions)]
    w.append("        " + " = ".join(names) + " = 0")
    w += ["", "    def take_counts(self, counts: list[int]) -> None:",
          "        totals = (" + ", ".join(names) + ",)",
          "        for k, total in enumerate(totals):", "            if total:",
          "                counts[k] += total", "        " + " = ".join(names) + " = 0", "",
          "    def decide(self, data: bytes, n: int, orig_len: int, ts_ns: int) -> int:",
          '        """Bytes kept of one frame; its decision counted."""']  # fmt: skip
    return w + body + [""]


def _config_read(key: str) -> str:
    kind = KEYS[key].kind
    if kind == "port list":
        return f"port_map(config[{key!r}])"
    return f"cast({_KINDS[kind]}, config[{key!r}])"


if __name__ == "__main__":
    import sys

    print(typed_module(*sys.argv[1:2]), end="")
