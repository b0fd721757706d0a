"""Static checks of a parsed policy: names, types and structure.

Everything a rule file can get wrong is reported here, before any packet is
seen, as ``file:line:col``: unknown facts, config keys, analyzers, reasons and
counters; type mismatches; rules that can never match.
"""

from __future__ import annotations

import dataclasses
import difflib

from pcapconstrictor.engine.analysis.facts import DECODE_FACTS, FRAME_FACTS, Fact
from pcapconstrictor.engine.analysis.reasons import UPSTREAM_COUNTERS, UPSTREAM_REASONS
from pcapconstrictor.engine.analysis.registry import ANALYZERS
from pcapconstrictor.engine.config import KEYS

from . import ast
from .errors import PolicyError

FUNCTIONS = {"min", "max"}
MAX_DEPTH = 64  # well past any readable rule, well below CPython's parser limits
PACKET_NAMESPACES = ("frame", "decode", "ip", "tcp", "udp")


def config_type(key: str) -> str:
    default = KEYS[key].default
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, tuple):
        return "ports"
    return "str"


def facts_for(section: str) -> dict[str, Fact]:
    facts = {**FRAME_FACTS, **DECODE_FACTS}
    if section in ANALYZERS:
        facts.update(ANALYZERS[section].facts)
    return facts


class Checker:
    def __init__(self, policy: ast.Policy) -> None:
        self.policy = policy

    def error(self, pos: ast.Pos, message: str) -> PolicyError:
        path = pos.path or self.policy.path
        source = self.policy.sources.get(path, self.policy.source)
        return PolicyError(path, source, pos.line, pos.column, message)

    def check(self) -> None:
        p = self.policy
        if "packet" not in p.sections:
            raise self.error(ast.Pos(1, 1), "no 'on packet' section: nothing decides a packet")
        for opts in p.analyzers.values():
            self._analyzer_options(opts)
        if p.baseline is not None:
            self._expect(p.baseline, "int", FRAME_FACTS, {}, "the baseline")
        analyzed: dict[str, ast.Rule] = {}
        ids: dict[str, ast.Rule] = {}
        for section, rules in p.sections.items():
            if section != "packet" and section not in ANALYZERS:
                raise self.error(rules[0].pos if rules else ast.Pos(1, 1),
                                 f"unknown section 'on {section}'; sections are packet, "
                                 + ", ".join(ANALYZERS))  # fmt: skip
            always: ast.Rule | None = None
            for rule in rules:
                if rule.id in ids:
                    raise self.error(rule.pos, f"rule id '{rule.id}' is already used at line "
                                     f"{ids[rule.id].pos.line}")  # fmt: skip
                ids[rule.id] = rule
                if always is not None:
                    raise self.error(rule.pos, f"rule '{rule.id}' can never match: rule "
                                     f"'{always.id}' (line {always.pos.line}) matches every "
                                     "packet before it")  # fmt: skip
                self._rule(rule, facts_for(section))
                if rule.when is not None and never_true(rule.when):
                    raise self.error(rule.when.pos, f"rule '{rule.id}' can never match: its condition "
                                     "is false for every packet")  # fmt: skip
                if rule.analyze:
                    analyzed.setdefault(rule.analyze, rule)
                if rule.when is None or (isinstance(rule.when, ast.Bool) and rule.when.value):
                    always = rule
            if section == "packet" and always is None:
                last = rules[-1].pos if rules else ast.Pos(1, 1)
                raise self.error(last, "the 'on packet' rules must end with a rule without "
                                 "'when' that decides every remaining packet")  # fmt: skip
        for section, rules in p.sections.items():
            if section in ANALYZERS and section not in analyzed and rules:
                raise self.error(rules[0].pos, f"rules in 'on {section}' can never run: no "
                                 f"'on packet' rule says 'analyze {section}'")  # fmt: skip

    def _analyzer_options(self, opts: ast.AnalyzerOptions) -> None:
        spec = ANALYZERS.get(opts.analyzer)
        if spec is None:
            raise self.error(opts.pos, f"unknown analyzer '{opts.analyzer}'"
                             + _suggest(opts.analyzer, ANALYZERS))  # fmt: skip
        for key, (expr, pos) in opts.options.items():
            option = spec.options.get(key)
            if option is None:
                raise self.error(pos, f"analyzer '{spec.name}' has no option '{key}'; options: "
                                 + ", ".join(spec.options))  # fmt: skip
            if option.type == "symbol":
                if not isinstance(expr, ast.NameRef) or expr.name not in option.choices:
                    raise self.error(expr.pos, f"option '{key}' takes one of: "
                                     + ", ".join(option.choices))  # fmt: skip
            else:
                self._expect(expr, option.type, {}, {}, f"option '{key}'")
                if isinstance(expr, ast.Number) and expr.value < option.minimum:
                    raise self.error(expr.pos, f"option '{key}' must be at least {option.minimum}")

    def _rule(self, rule: ast.Rule, facts: dict[str, Fact]) -> None:
        if rule.outcome is None:
            raise self.error(rule.pos, f"rule '{rule.id}' has no 'reason' clause")
        scope: dict[str, str] = {}
        for name, expr, pos in rule.lets:
            if name in scope:
                raise self.error(pos, f"'{name}' is already defined in this rule")
            scope[name] = self.type_of(expr, facts, scope)
        if rule.when is not None:
            self._expect(rule.when, "bool", facts, scope, "'when'")
        if rule.analyze is not None:
            if rule.section != "packet":
                raise self.error(rule.analyze_pos, "'analyze' is only allowed in 'on packet' rules")
            if rule.analyze not in ANALYZERS:
                raise self.error(rule.analyze_pos, f"unknown analyzer '{rule.analyze}'"
                                 + _suggest(rule.analyze, ANALYZERS))  # fmt: skip
            if rule.keep is not None:
                raise self.error(rule.keep.pos, "a rule that analyzes cannot also keep; "
                                 f"put the cut in 'on {rule.analyze}'")  # fmt: skip
        if rule.keep is not None:
            self._expect(rule.keep, "int", facts, scope, "'keep'")
            if rule.min_saved is not None:
                self._expect(rule.min_saved, "int", facts, scope, "'min_saved'")
            if rule.section == "packet" and rule.otherwise is None:
                raise self.error(rule.keep.pos, "a 'keep' in 'on packet' needs an 'otherwise' reason: "
                                 "no analyzing rule gives one when the cut saves too little")  # fmt: skip
        elif rule.otherwise is not None:
            raise self.error(rule.otherwise.pos, "'otherwise' needs a 'keep' clause")
        for outcome in (rule.outcome, rule.otherwise):
            if outcome is not None:
                self._outcome(outcome)

    def _outcome(self, outcome: ast.Outcome) -> None:
        p = self.policy
        reasons = set(UPSTREAM_REASONS) | p.declared_reasons
        if outcome.reason not in reasons:
            raise self.error(outcome.pos, f"unknown reason '{outcome.reason}'"
                             + _suggest(outcome.reason, reasons)
                             + " (a new one needs 'declare reason')")  # fmt: skip
        counters = set(UPSTREAM_COUNTERS) | p.declared_counters
        if outcome.counter is not None and outcome.counter not in counters:
            raise self.error(outcome.pos, f"unknown counter '{outcome.counter}'"
                             + _suggest(outcome.counter, counters)
                             + " (a new one needs 'declare counter')")  # fmt: skip

    def _expect(self, expr: ast.Expr, want: str, facts, scope, what: str) -> None:
        got = self.type_of(expr, facts, scope)
        if got != want:
            raise self.error(expr.pos, f"{what} must be {_TYPE_NAMES[want]}, not {_TYPE_NAMES[got]}")

    def type_of(self, e: ast.Expr, facts: dict[str, Fact], scope: dict[str, str]) -> str:
        if _depth(e) > MAX_DEPTH:
            raise self.error(e.pos, f"expression nests more than {MAX_DEPTH} levels deep")
        return self._type_of(e, facts, scope)

    def _type_of(self, e: ast.Expr, facts: dict[str, Fact], scope: dict[str, str]) -> str:
        if isinstance(e, ast.Number):
            return "int"
        if isinstance(e, ast.Bool):
            return "bool"
        if isinstance(e, ast.ConfigRef):
            if e.key not in KEYS:
                raise self.error(e.pos, f"unknown config key '${e.key}'" + _suggest(e.key, KEYS))
            return config_type(e.key)
        if isinstance(e, ast.FactRef):
            fact = facts.get(e.name)
            if fact is None:
                namespace = e.name.split(".", 1)[0]
                if namespace in ANALYZERS:
                    for name in ANALYZERS:
                        if e.name in ANALYZERS[name].facts:
                            raise self.error(e.pos, f"fact '{e.name}' is only available in "
                                             f"'on {name}' rules")  # fmt: skip
                raise self.error(e.pos, f"unknown fact '{e.name}'" + _suggest(e.name, facts))
            return fact.type
        if isinstance(e, ast.NameRef):
            if e.name not in scope:
                hint = " (config values start with '$', facts with a namespace like 'tcp.')"
                raise self.error(e.pos, f"unknown name '{e.name}'{hint}")
            return scope[e.name]
        if isinstance(e, ast.Call):
            if e.func not in FUNCTIONS:
                raise self.error(e.pos, f"unknown function '{e.func}'; functions: min, max")
            if len(e.args) < 2:
                raise self.error(e.pos, f"{e.func}() takes at least two values")
            for arg in e.args:
                self._expect(arg, "int", facts, scope, f"an argument of {e.func}()")
            return "int"
        if isinstance(e, ast.Unary):
            self._expect(e.operand, "bool", facts, scope, "the operand of 'not'")
            return "bool"
        if isinstance(e, ast.Binary):
            return self._binary(e, facts, scope)
        raise AssertionError(e)

    def _binary(self, e: ast.Binary, facts, scope) -> str:
        if e.op in ("and", "or"):
            self._expect(e.left, "bool", facts, scope, f"the left side of '{e.op}'")
            self._expect(e.right, "bool", facts, scope, f"the right side of '{e.op}'")
            return "bool"
        if e.op == "in":
            self._expect(e.left, "int", facts, scope, "the left side of 'in'")
            self._expect(e.right, "ports", facts, scope, "the right side of 'in'")
            return "bool"
        left = self.type_of(e.left, facts, scope)
        right = self.type_of(e.right, facts, scope)
        if e.op in ("+", "-"):
            for side, t in ((e.left, left), (e.right, right)):
                if t != "int":
                    raise self.error(side.pos, f"'{e.op}' needs numbers, not {_TYPE_NAMES[t]}")
            return "int"
        if left != right or left not in ("int", "bool") or (left == "bool" and e.op not in "==!="):
            raise self.error(e.pos, f"cannot compare {_TYPE_NAMES[left]} {e.op} "
                             f"{_TYPE_NAMES[right]}")  # fmt: skip
        return "bool"


def _depth(e: ast.Expr) -> int:
    """Nesting depth, iteratively (a deep tree must not exhaust our own stack)."""
    deepest, stack = 0, [(e, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(node, ast.Call):
            stack.extend((a, level + 1) for a in node.args)
        elif isinstance(node, ast.Unary):
            stack.append((node.operand, level + 1))
        elif isinstance(node, ast.Binary):
            stack.extend(((node.left, level + 1), (node.right, level + 1)))
    return deepest


_TYPE_NAMES = {"int": "a number", "bool": "true/false", "ports": "a port list", "str": "text"}


def _suggest(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def check_policy(policy: ast.Policy) -> ast.Policy:
    Checker(policy).check()
    return policy


def never_true(e: ast.Expr) -> bool:
    """A condition false whatever the packet and the config: ``false``, ``not true``, an ``and``
    with such a side, an ``or`` of two such, or ``x and not x`` (the same expression negated)."""
    if isinstance(e, ast.Bool):
        return not e.value
    if isinstance(e, ast.Unary) and e.op == "not" and isinstance(e.operand, ast.Bool):
        return e.operand.value
    if isinstance(e, ast.Binary) and e.op == "or":
        return never_true(e.left) and never_true(e.right)
    if isinstance(e, ast.Binary) and e.op == "and":
        if never_true(e.left) or never_true(e.right):
            return True
        terms = _conjuncts(e)
        negated = [t.operand for t in terms if isinstance(t, ast.Unary) and t.op == "not"]
        return any(_same(n, t) for n in negated for t in terms)
    return False


def _conjuncts(e: ast.Expr) -> list[ast.Expr]:
    if isinstance(e, ast.Binary) and e.op == "and":
        return _conjuncts(e.left) + _conjuncts(e.right)
    return [e]


def _same(a: object, b: object) -> bool:
    """The same expression, wherever it was written (positions ignored)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if not dataclasses.is_dataclass(a):
        return a == b
    fields = [f.name for f in dataclasses.fields(a) if f.name != "pos"]
    return all(_same(getattr(a, name), getattr(b, name)) for name in fields)
