"""``audit``: the effective policy as stable text (or YAML) an auditor can diff.

Every rule in evaluation order with its condition and keep expression, config
values substituted and named; the effective config with where each value came
from; and the config keys no rule reads.
"""

from __future__ import annotations

import os
import sys

import yaml

from pcapconstrictor.engine.analysis.registry import ANALYZERS
from pcapconstrictor.engine.config import KEYS
from pcapconstrictor.grammar import ast

from .loading import Failure, load_run, run_options_of

_PRECEDENCE = {"or": 1, "and": 2, "not": 3, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
               "in": 4, "+": 5, "-": 5}  # fmt: skip


def render(e: ast.Expr, config, keys: list[str]) -> str:
    """Expression text with ``$key`` replaced by its value; the keys used are
    appended to ``keys``."""

    def r(e, parent=0, right=False):
        if isinstance(e, ast.Number):
            return str(e.value)
        if isinstance(e, ast.Bool):
            return "true" if e.value else "false"
        if isinstance(e, ast.ConfigRef):
            if e.key not in keys:
                keys.append(e.key)
            return _value_text(config[e.key])
        if isinstance(e, (ast.FactRef, ast.NameRef)):
            return e.name
        if isinstance(e, ast.Call):
            return f"{e.func}({', '.join(r(a) for a in e.args)})"
        prec = _PRECEDENCE["not" if isinstance(e, ast.Unary) else e.op]
        if isinstance(e, ast.Unary):
            text = f"not {r(e.operand, prec)}"
        else:
            text = f"{r(e.left, prec)} {e.op} {r(e.right, prec, True)}"
        return f"({text})" if prec < parent or (right and prec == parent) else text

    return r(e)


def _value_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def describe(policy: ast.Policy, config) -> dict:
    """The audit as data; text and YAML are two renderings of it."""
    read: list[str] = []

    def expr(e):
        keys: list[str] = []
        text = render(e, config, keys)
        read.extend(k for k in keys if k not in read)
        return text, keys

    out: dict = {"policy": policy.name, "description": policy.description,
                 "rule_file": os.path.basename(policy.path),
                 "includes": [os.path.basename(p) for p in policy.includes]}  # fmt: skip
    if policy.baseline is not None:
        text, keys = expr(policy.baseline)
        out["baseline"] = {"expr": text, "config": keys}
    analyzers = {}
    for name, spec in ANALYZERS.items():
        declared = policy.analyzers.get(name)
        opts = {}
        for key, option in spec.options.items():
            if declared and key in declared.options:
                e = declared.options[key][0]
                if isinstance(e, ast.NameRef):
                    opts[key] = {"value": e.name}
                else:
                    text, keys = expr(e)
                    opts[key] = {"value": text, "config": keys}
            else:
                opts[key] = {"value": _value_text(option.default), "default": True}
        analyzers[name] = opts
    out["analyzers"] = analyzers
    sections = {}
    for section, rules in policy.sections.items():
        items = []
        for rule in rules:
            item: dict = {"rule": rule.id, "message": rule.message,
                          "at": f"{os.path.basename(rule.path)}:{rule.pos.line}"}  # fmt: skip
            for name, e, _ in rule.lets:
                text, keys = expr(e)
                item.setdefault("let", []).append({"name": name, "expr": text, "config": keys})
            for label, e in (("when", rule.when), ("keep", rule.keep), ("min_saved", rule.min_saved)):
                if e is not None:
                    text, keys = expr(e)
                    item[label] = {"expr": text, "config": keys}
            if rule.analyze:
                item["analyze"] = rule.analyze
            item["reason"] = rule.outcome.reason
            item["counter"] = rule.outcome.counter
            if rule.keep is not None:
                other = rule.otherwise
                item["otherwise"] = {"reason": other.reason, "counter": other.counter} if other else \
                    "the analyzing rule's reason"  # fmt: skip
            items.append(item)
        sections[section] = items
    out["sections"] = sections
    out["config"] = {k: {"value": _value_text(config[k]), "from": config.origin[k]} for k in sorted(KEYS)}
    out["unread_config_keys"] = sorted(k for k in KEYS if k not in read)
    outcomes = [r.outcome for r in policy.rules()] + [r.otherwise for r in policy.rules() if r.otherwise]
    out["reasons"] = sorted({o.reason for o in outcomes})
    out["counters"] = sorted({o.counter for o in outcomes if o.counter})
    return out


def _comment(keys: list[str]) -> str:
    return f"   # {', '.join(keys)}" if keys else ""


def text(doc: dict) -> str:
    lines = [f"policy {doc['policy']}: {doc['description']}",
             f"rule file: {doc['rule_file']}"
             + (f" (includes {', '.join(doc['includes'])})" if doc["includes"] else ""), ""]  # fmt: skip
    if "baseline" in doc:
        b = doc["baseline"]
        lines += [f"baseline = {b['expr']}{_comment(b['config'])}", ""]
    for name, opts in doc["analyzers"].items():
        parts = [f"{k} = {v['value']}" for k, v in opts.items()]
        keys = [k for v in opts.values() for k in v.get("config", [])]
        lines.append(f"analyzer {name}: {', '.join(parts)}{_comment(keys)}")
    for section, items in doc["sections"].items():
        lines += ["", f"on {section}"]
        for i, item in enumerate(items, 1):
            lines.append(f"  {i}. rule {item['rule']}  ({item['at']})")
            if item["message"]:
                lines.append(f"     \"{item['message']}\"")
            for let in item.get("let", []):
                lines.append(f"     let {let['name']} = {let['expr']}{_comment(let['config'])}")
            if "when" in item:
                lines.append(f"     when {item['when']['expr']}{_comment(item['when']['config'])}")
            if "analyze" in item:
                lines.append(f"     analyze {item['analyze']} (then the 'on {item['analyze']}' rules)")
            if "keep" in item:
                lines.append(f"     keep = {item['keep']['expr']}{_comment(item['keep']['config'])}")
                if "min_saved" in item:
                    m = item["min_saved"]
                    lines.append(f"       only if it saves at least {m['expr']} bytes{_comment(m['config'])}")
            counter = f", count {item['counter']}" if item["counter"] else ""
            lead = "if no rule matches: reason" if "analyze" in item else "reason"
            lines.append(f"     {lead} {item['reason']}{counter}")
            if "otherwise" in item:
                o = item["otherwise"]
                o = f"{o['reason']}" + (f", count {o['counter']}" if o["counter"] else "") \
                    if isinstance(o, dict) else o  # fmt: skip
                lines.append(f"     otherwise (no cut): {o}")
    lines += ["", "config (value, from):"]
    width = max(len(k) for k in doc["config"])
    for key, v in doc["config"].items():
        lines.append(f"  {key.ljust(width)} = {v['value']}   ({v['from']})")
    lines += ["", "config keys no rule reads:"] + [f"  {k}" for k in doc["unread_config_keys"]]
    lines += ["", "reasons: " + ", ".join(doc["reasons"]), "counters: " + ", ".join(doc["counters"])]
    return "\n".join(lines) + "\n"


def compare(config) -> str:
    """The shipped TLS continuation policies side by side."""
    from pcapconstrictor.grammar import load_policy, shipped_policy_path

    names = ("final_only", "stream", "bulk")
    docs = {n: describe(load_policy(shipped_policy_path(n)), config) for n in names}
    rule_ids: list[str] = []
    for n in names:
        rule_ids += [i["rule"] for i in docs[n]["sections"]["tls"] if i["rule"] not in rule_ids]
    lines = ["TLS continuation policies side by side (what each keeps):", ""]
    for rule_id in rule_ids:
        lines.append(f"  {rule_id}")
        for n in names:
            item = next((i for i in docs[n]["sections"]["tls"] if i["rule"] == rule_id), None)
            if item is None:
                what = "-- (no such rule: the segment falls through)"
            elif "keep" in item:
                what = f"keep = {item['keep']['expr']}"
            else:
                what = f"kept whole ({item['reason']})"
            lines.append(f"    {n:<10} {what}")
        opts = {n: docs[n]["analyzers"]["tls"]["boundary"]["value"] for n in names}
    lines += ["", "  analyzer tls boundary: " + ", ".join(f"{n} = {v}" for n, v in opts.items())]
    return "\n".join(lines) + "\n"


def run(args) -> int:
    try:
        config, policy = load_run(run_options_of(args))
    except Failure as e:
        sys.stderr.write(f"{e}\n")
        return 1
    doc = describe(policy, config)
    if args.format == "yaml":
        sys.stdout.write(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    else:
        sys.stdout.write(text(doc))
        if args.compare:
            sys.stdout.write("\n" + compare(config))
    return 0
