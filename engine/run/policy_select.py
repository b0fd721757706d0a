"""Which rule file a run uses: ``--rules``, else the shipped policy named by
``tls.app_data_continuation_policy``; and the compiled form of it, from the cache
(engine/run/policy_cache.py) when the rule files and config values are unchanged."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pcapconstrictor.engine.config import Config
from pcapconstrictor.grammar import load_policy, shipped_policy_path
from pcapconstrictor.grammar.evaluator import CompiledPolicy, bind_evaluator

from . import policy_cache
from .policy_cache import read_rule_text, text_digest
from .typed_policy import typed_evaluator

if TYPE_CHECKING:
    from pcapconstrictor.grammar import Evaluator, Policy


def policy_path(config: Config, rules: str | None = None) -> str:
    if rules:
        return rules
    return shipped_policy_path(str(config["tls.app_data_continuation_policy"]))


def select_policy(config: Config, rules: str | None = None) -> Policy:
    return load_policy(policy_path(config, rules))


class CachedPolicy:
    """A policy compiled for one config, perhaps read from the cache; the rule file
    is parsed only if something needs more than the untraced evaluator."""

    def __init__(self, path: str, compiled: CompiledPolicy, config: Config, policy: Policy | None) -> None:
        self.path, self.compiled, self.config, self.policy = path, compiled, config, policy
        self.code: object = None

    def parsed(self) -> Policy:
        if self.policy is None:
            self.policy = load_policy(self.path)
        return self.policy


def prepare_policy(config: Config, rules: str | None = None, traced: bool = False) -> Policy | CachedPolicy:
    """The run's policy: compiled from the cache when it is warm, else parsed (and cached)."""
    path = policy_path(config, rules)
    if traced or not policy_cache.enabled():
        return load_policy(path)
    text = read_rule_text(path)
    if text is None:
        return load_policy(path)  # the parser says what is wrong with the file
    name = policy_cache.entry_name(path, text.encode())
    entry = policy_cache.read_entry(name)
    for variant in policy_cache.variants(entry):
        try:
            if policy_cache.still_valid(variant, config):
                return CachedPolicy(path, policy_cache.from_variant(variant), config, None)
        except (KeyError, TypeError, ValueError, AttributeError):  # a variant of another shape: a miss
            pass
    policy = load_policy(path)
    compiled, read = _compile_recording(policy, config)
    includes = _includes(policy, text)
    if includes is not None:  # None: a file changed while it was parsed; store nothing
        variant = policy_cache.to_variant(compiled, includes, read)
        policy_cache.write_entry(name, policy_cache.with_variant(entry, variant))
    return CachedPolicy(path, compiled, config, policy)


def evaluator_for(policy: Policy | CachedPolicy, config: Config, traced: bool = False) -> Evaluator:
    """A fresh evaluator: the typed one of a shipped policy (engine/run/typed_policy.py) unless
    traced or the rule files differ, else the policy's generated source, bound to ``config``."""
    if not traced:
        sources = None if isinstance(policy, CachedPolicy) else policy.sources
        typed = typed_evaluator(policy.path, sources, config)
        if typed is not None:
            return typed
    if isinstance(policy, CachedPolicy):
        if traced or config is not policy.config:
            policy = policy.parsed()
        else:
            if policy.code is None:
                policy.code = compile(policy.compiled.source, f"<policy {policy.path}>", "exec")
            return bind_evaluator(policy.compiled, policy.code)
    from pcapconstrictor.grammar import build_evaluator

    return build_evaluator(policy, config, traced=traced)


class _ReadValues(dict):
    """Config values that remember which keys the code generator read."""

    def __init__(self, values: dict) -> None:
        super().__init__(values)
        self.read: dict[str, object] = {}

    def __getitem__(self, key: str) -> object:
        value = super().__getitem__(key)
        self.read[key] = value
        return value


def _compile_recording(policy: Policy, config: Config) -> tuple[CompiledPolicy, dict[str, object]]:
    from pcapconstrictor.grammar.codegen import compile_policy

    values = _ReadValues(config.values)
    compiled = compile_policy(policy, Config(config.path, values, config.origin))
    return compiled, values.read


def _includes(policy: Policy, text: str) -> list[dict] | None:
    """Each included file's path, real path and digest; and, for one found among the shipped
    rule files, the directories where a file of its name would have been taken instead."""
    if policy.source != text:
        return None
    shipped = os.path.dirname(shipped_policy_path("x"))
    own_dirs = sorted({os.path.abspath(os.path.dirname(p) or ".") for p in policy.sources}
                      - {os.path.abspath(shipped)})  # fmt: skip
    out = []
    for target in dict.fromkeys(policy.includes):
        source = policy.sources.get(target)
        if source is None or read_rule_text(target) != source:
            return None
        item = {"path": os.path.abspath(target), "real": os.path.realpath(target),
                "sha256": text_digest(source)}  # fmt: skip
        if os.path.abspath(os.path.dirname(target)) == os.path.abspath(shipped):
            item["name"] = os.path.relpath(target, shipped)
            item["absent_from"] = own_dirs
        out.append(item)
    return out
