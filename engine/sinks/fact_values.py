"""Read back the facts a rule used, for decision logs and explanations."""

from __future__ import annotations

from pcapconstrictor.engine.analysis.facts import DECODED
from pcapconstrictor.engine.analysis.registry import ANALYZERS
from pcapconstrictor.grammar import ast
from pcapconstrictor.grammar.checker import facts_for


def facts_used(rule: ast.Rule) -> list[str]:
    """Fact names a rule reads, in first-use order."""
    names: list[str] = []
    exprs = [e for _, e, _ in rule.lets] + [rule.when, rule.keep, rule.min_saved]

    def walk(e):
        if isinstance(e, ast.FactRef):
            if e.name not in names:
                names.append(e.name)
        elif isinstance(e, ast.Call):
            for a in e.args:
                walk(a)
        elif isinstance(e, ast.Unary):
            walk(e.operand)
        elif isinstance(e, ast.Binary):
            walk(e.left)
            walk(e.right)

    for e in exprs:
        if e is not None:
            walk(e)
    return names


def fact_values(names: list[str], section: str, data: bytes, orig_len: int, trace) -> dict[str, object]:
    """Current values of ``names`` from a traced evaluation of ``data``."""
    n = len(data)
    env = {
        "n": n, "orig_len": orig_len, "eff": min(n, orig_len), "inconsistent": orig_len < n,
        "data": data,  # udp.first_byte reads it
    }  # fmt: skip
    env.update((spec.var, trace.facts) for spec in ANALYZERS.values())  # each analyzer's facts variable
    if trace.decoded is not None:
        env.update((DECODED + name, value) for name, value in trace.decoded._asdict().items())
    table = facts_for(section)
    out: dict[str, object] = {}
    for name in names:
        fact = table.get(name)
        if fact is None:
            continue
        try:
            out[name] = eval(fact.source, {}, env)  # noqa: S307 - a declared fact accessor
        except (AttributeError, NameError):  # not decoded or analyzed this far
            out[name] = None
    return out


def fact_names(analyzer: str) -> list[str]:
    """Attribute names of an analyzer's facts object, in declaration order."""
    return [f.source.split(".", 1)[1] for f in ANALYZERS[analyzer].facts.values()]


def format_facts(values: dict[str, object]) -> str:
    return " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in values.items())
