"""Policy -> one generated Python function, compiled once per run.

The checked rules become straight-line ``if`` statements with config values
inlined as constants (~0.1 µs a decision instead of walking a closure tree).
``evaluate(data, orig_len, ts_ns)`` returns ``(output_len, decision_index)``;
the decision table says which rule decided, with which reason and counter.
The same rules are also emitted as ``evaluate_batch(frames, counts)``, a loop
over a list of frames with each decision inlined (``keep(len)``,
``counts[index] += 1``, next frame) returning ``(lengths, captured_bytes)``:
the hot path pays no call per packet.
"""

from __future__ import annotations

import operator

from pcapconstrictor.engine.analysis.decode import FIELDS
from pcapconstrictor.engine.analysis.facts import DECODE_FACTS, DECODED
from pcapconstrictor.engine.analysis.registry import ANALYZERS
from pcapconstrictor.engine.config import Config

from . import ast
from .checker import facts_for
from .errors import PolicyError
from .evaluator import CompiledPolicy, Decision, Evaluator, Trace, bind_evaluator

__all__ = ["CompiledPolicy", "Decision", "Evaluator", "Trace", "build_evaluator", "compile_policy"]

DECODE_NAMESPACES = {name.split(".", 1)[0] for name in DECODE_FACTS}


class Emitter:
    """Rule AST -> lines of Python; ``grammar/typed_codegen.py`` derives the typed module's
    emitter from it (config values as run-time names, analyzers and decoder as direct calls)."""

    def __init__(self, policy: ast.Policy, config: Config, traced: bool, batch: bool = False) -> None:
        self.policy, self.config, self.traced, self.batch = policy, config, traced, batch
        self.lines: list[str] = []
        self.constants: dict[str, object] = {}
        self.decisions: list[Decision] = []
        self.decoded = False

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def leave(self, depth: int, length: str, decision: int) -> None:
        """The packet is decided: ``length`` bytes kept, by ``decision``."""
        if self.batch:
            self.emit(depth, f"keep({length})")
            self.emit(depth, f"counts[{decision}] += 1")
            self.emit(depth, "continue")
        else:
            self.emit(depth, f"return {length}, {decision}")

    def decision(self, rule: ast.Rule, outcome: ast.Outcome, kind: str) -> int:
        self.decisions.append(Decision(rule, outcome.reason, outcome.counter, kind))
        return len(self.decisions) - 1

    # --- expressions
    def expr(self, e: ast.Expr, section: str, scope: dict[str, str]) -> str:
        if isinstance(e, ast.Number):
            return str(e.value)
        if isinstance(e, ast.Bool):
            return repr(e.value)
        if isinstance(e, ast.ConfigRef):
            return self.config_value(e.key)
        if isinstance(e, ast.FactRef):
            return facts_for(section)[e.name].source
        if isinstance(e, ast.NameRef):
            return scope[e.name]
        if isinstance(e, ast.Call):
            return _min_max(e.func, [self.expr(a, section, scope) for a in e.args])
        if isinstance(e, ast.Unary):
            inner = self.expr(e.operand, section, scope)
            if inner in _CONSTANTS:
                return repr(not _CONSTANTS[inner])
            return f"(not {inner})"
        if isinstance(e, ast.Binary):
            left, right = self.expr(e.left, section, scope), self.expr(e.right, section, scope)
            if e.op in ("and", "or"):
                return _bool_op(e.op, left, right)
            if e.op in _COMPARISONS and _is_int(left) and _is_int(right):
                # config against config or a number (`$flow.budget_bytes > 0`): decided now,
                # so a rule switched off by a value drops out like one switched off by a bool
                return repr(_COMPARISONS[e.op](int(left), int(right)))
            return f"({left} {e.op} {right})"
        raise AssertionError(e)

    def config_value(self, key: str) -> str:
        value = self.config[key]
        if isinstance(value, tuple):  # a port list: membership only
            name = "_cfg_" + key.replace(".", "_")
            self.constants[name] = frozenset(value)
            return name
        return repr(value)

    def decode_call(self) -> str:
        return "_decode(data, n)"

    def analyzer_call(self, name: str) -> str:
        return f"_analyze_{name}"

    # --- rules
    def function(self) -> None:
        p = self.policy
        if self.batch:
            self.emit(0, "def evaluate_batch(frames, counts):")
            self.emit(1, "kept = []")
            self.emit(1, "keep = kept.append")
            self.emit(1, "captured = 0")
            self.emit(1, "for ts_ns, data, orig_len in frames:")
            top = 2
        else:
            self.emit(0, "def evaluate(data, orig_len, ts_ns):")
            top = 1
        self.emit(top, "n = len(data)")
        if self.batch:
            self.emit(top, "captured += n")
        self.emit(top, "eff = n if n <= orig_len else orig_len")
        self.emit(top, "inconsistent = orig_len < n")
        baseline = self.expr(p.baseline, "packet", {}) if p.baseline else "eff"
        self.emit(top, f"baseline = {baseline}")
        if baseline != "eff" and not baseline.startswith("(eff if eff <= "):
            # a custom baseline may not exceed the bytes there are, nor go below 0
            self.emit(top, "baseline = eff if baseline > eff else (0 if baseline < 0 else baseline)")
        if self.traced:
            self.emit(top, "_trace.decoded = _trace.facts = _trace.analyzer = _trace.keep = None")
            self.emit(top, "_trace.tried = []")
        for index, rule in enumerate(p.sections["packet"]):
            self.rule(rule, index, top, None)
        if self.batch:
            self.emit(1, "return kept, captured")

    def rule(self, rule: ast.Rule, index: int, depth: int, fallback: int | None) -> None:
        self.emit(depth, f"# rule {rule.id} (line {rule.pos.line})")
        if rule.section == "packet" and not self.decoded and _needs_decode(rule):
            locals_ = ", ".join(DECODED + name for name in FIELDS)
            if self.traced:
                self.emit(depth, "_d = _decode(data, n)")
                self.emit(depth, f"{locals_} = _d")
                self.emit(depth, "_trace.decoded = _decoded(data, _d)")
            else:
                self.emit(depth, f"{locals_} = {self.decode_call()}")
            self.decoded = True
        scope: dict[str, str] = {}
        for name, expr, _ in rule.lets:
            var = f"_let{index}_{name}"
            self.emit(depth, f"{var} = {self.expr(expr, rule.section, scope)}")
            scope[name] = var
        body = depth
        live_lines = self.lines
        if rule.when is not None and not (isinstance(rule.when, ast.Bool) and rule.when.value):
            cond = self.expr(rule.when, rule.section, scope)
            if cond == "False" and not self.traced:  # never matches with this config:
                self.emit(depth, "# (never matches with this config)")
                self.lines = []  # its decisions are still declared, its code is dropped
            if self.traced:
                self.emit(depth, f"_matched = bool({cond})")
                self.emit(depth, f"_trace.tried.append(({rule.id!r}, _matched))")
                cond = "_matched"
            self.emit(depth, f"if {cond}:")
            body = depth + 1
        elif self.traced:
            self.emit(depth, f"_trace.tried.append(({rule.id!r}, True))")
        if rule.analyze:
            self.analyze(rule, body)
        elif rule.keep is not None:
            cut = self.decision(rule, rule.outcome, "cut")
            if rule.otherwise is not None:
                other = self.decision(rule, rule.otherwise, "below_min_saved")
            else:  # the analyzing rule's outcome: as if no cut had been proposed
                parent = self.decisions[fallback]
                other = self.decision(rule, ast.Outcome(parent.reason, parent.counter, rule.pos),
                                      "below_min_saved")  # fmt: skip
            keep = self.expr(rule.keep, rule.section, scope)
            self.emit(body, f"c = {keep}")
            self.emit(body, "if c < 0:")
            self.emit(body + 1, "c = 0")
            if self.traced:
                self.emit(body, "_trace.keep = c")
            test = "c < baseline"
            if rule.min_saved is not None:
                test += f" and baseline - c >= {self.expr(rule.min_saved, rule.section, scope)}"
            self.emit(body, f"if {test}:")
            self.leave(body + 1, "c", cut)
            self.leave(body, "baseline", other)
        else:
            self.leave(body, "baseline", self.decision(rule, rule.outcome, "matched"))
        self.lines = live_lines

    def analyze(self, rule: ast.Rule, depth: int) -> None:
        spec = ANALYZERS[rule.analyze]
        args = "".join(f", {DECODED}{name}" for name in spec.inputs)
        self.emit(depth, f"{spec.var} = {self.analyzer_call(spec.name)}(data, ts_ns{args})")
        if self.traced:
            self.emit(depth, f"_trace.facts = {spec.var}")
            self.emit(depth, f"_trace.analyzer = {spec.name!r}")
        fallback = self.decision(rule, rule.outcome, "no_rule_matched")
        for index, sub in enumerate(self.policy.sections.get(rule.analyze, [])):
            self.rule(sub, 1000 * (1 + list(ANALYZERS).index(spec.name)) + index, depth, fallback)
        self.leave(depth, "baseline", fallback)


_CONSTANTS = {"True": True, "False": False}
_COMPARISONS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
                ">": operator.gt, ">=": operator.ge}  # fmt: skip


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _bool_op(op: str, left: str, right: str) -> str:
    """``and``/``or`` with config booleans folded away (``x and True`` -> ``x``)."""
    for const, other in ((left, right), (right, left)):
        if const in _CONSTANTS:
            value = _CONSTANTS[const]
            if op == "and":
                return other if value else "False"
            return "True" if value else other
    return f"({left} {op} {right})"


def _min_max(func: str, args: list[str]) -> str:
    """min()/max() with the constant arguments folded into one, and the
    two-argument form written as a conditional (no builtin call per packet)."""
    consts = [int(a) for a in args if a.lstrip("-").isdigit()]
    others = [a for a in args if not a.lstrip("-").isdigit()]
    if consts:
        others.append(str(min(consts) if func == "min" else max(consts)))
    if len(others) == 1:
        return others[0]
    if len(others) == 2:
        a, b = others
        op = "<=" if func == "min" else ">="
        return f"({a} if {a} {op} {b} else {b})"
    return f"{func}({', '.join(others)})"


def _needs_decode(rule: ast.Rule) -> bool:
    if rule.analyze:
        return True
    exprs = [rule.when, rule.keep, rule.min_saved, *(e for _, e, _ in rule.lets)]
    return any(_uses_namespaces(e, DECODE_NAMESPACES) for e in exprs if e is not None)


def _uses_namespaces(e: ast.Expr, namespaces: set[str]) -> bool:
    if isinstance(e, ast.FactRef):
        return e.name.split(".", 1)[0] in namespaces
    children = []
    if isinstance(e, ast.Call):
        children = e.args
    elif isinstance(e, ast.Unary):
        children = [e.operand]
    elif isinstance(e, ast.Binary):
        children = [e.left, e.right]
    return any(_uses_namespaces(c, namespaces) for c in children)


def analyzer_options(policy: ast.Policy, name: str, config: Config) -> dict[str, object]:
    """Effective options for one analyzer: defaults, then the rule file's values."""
    spec = ANALYZERS[name]
    values = {key: opt.default for key, opt in spec.options.items()}
    declared = policy.analyzers.get(name)
    for key, (expr, pos) in declared.options.items() if declared else ():
        if isinstance(expr, ast.NameRef):
            values[key] = expr.name
            continue
        value = eval(Emitter(policy, config, False).expr(expr, "packet", {}))  # noqa: S307
        minimum = spec.options[key].minimum
        if value < minimum:
            path = pos.path or policy.path
            raise PolicyError(path, policy.sources.get(path, policy.source), pos.line, pos.column,
                              f"option '{key}' is {value} here; it must be at least {minimum}")  # fmt: skip
        values[key] = value
    return values


def compile_policy(policy: ast.Policy, config: Config, traced: bool = False) -> CompiledPolicy:
    """The generated source (the batch loop too unless traced), its decisions and what it reads."""
    emitter = Emitter(policy, config, traced)
    emitter.function()
    source = "\n".join(emitter.lines) + "\n"
    if not traced:  # the same rules as a loop over a list of frames
        batch = Emitter(policy, config, False, batch=True)
        batch.function()
        assert batch.decisions == emitter.decisions
        source += "\n\n" + "\n".join(batch.lines) + "\n"
    options = {name: analyzer_options(policy, name, config) for name in ANALYZERS}
    return CompiledPolicy(policy.path, source, emitter.decisions, emitter.constants, options, traced)


def build_evaluator(policy: ast.Policy, config: Config, traced: bool = False) -> Evaluator:
    return bind_evaluator(compile_policy(policy, config, traced))
