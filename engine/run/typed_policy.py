"""The typed evaluators of the shipped policies (issue 21), when a run may use one.

engine/run/shipped_final_only.py, shipped_stream.py and shipped_bulk.py are generated from the
shipped rule files (grammar/typed_codegen.py) and compiled with mypyc: the same rules and
decision table as the interpreted evaluator, with the decoder, analyzers and rules in one
compiled unit.  A run uses one only when its rule file is that shipped file, read from the
shipped rules directory, and every rule file it reads has the text the module was generated
from; a traced run (decision log, explain), any other rule file, or
``PCAPCONSTRICTOR_INTERPRETED_POLICY=1`` keeps the interpreted path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

from pcapconstrictor.engine.analysis.registry import ANALYZERS
from pcapconstrictor.engine.config import Config
from pcapconstrictor.grammar import shipped_policy_path
from pcapconstrictor.grammar.evaluator import Decision, Evaluator, RuleRef

from . import shipped_bulk, shipped_final_only, shipped_stream
from .policy_cache import read_rule_text, text_digest

INTERPRETED_ENV = "PCAPCONSTRICTOR_INTERPRETED_POLICY"  # =1: always the interpreted evaluator


class TypedEvaluator(Evaluator):
    """An :class:`Evaluator` whose functions are a typed module's (a plain subclass: the run
    path imports no dataclasses)."""

    def __init__(self, typed, decisions: list[Decision], analyzers: dict[str, object], name: str) -> None:
        super().__init__(self.evaluate_one, decisions, analyzers, f"# typed: {name}", None,
                         typed.evaluate_batch, None)  # fmt: skip
        self.typed = typed  # the module's TypedPolicy
        self.evaluate_records = typed.evaluate_records
        self.evaluate_blocks = typed.evaluate_blocks

    def evaluate_one(self, data: bytes, orig_len: int, ts_ns: int) -> tuple[int, int]:
        """``evaluate`` for one frame (tools and tests; runs call ``evaluate_batch``)."""
        counts = [0] * len(self.decisions)
        kept = self.typed.decide(data, len(data), orig_len, ts_ns)
        self.typed.take_counts(counts)
        return kept, counts.index(1)

    def use_link_type(self, linktype: int) -> None:
        if linktype != self.linktype:
            self.typed.linktype = linktype
            self.linktype = linktype


MODULES = {m.POLICY: m for m in (shipped_final_only, shipped_stream, shipped_bulk)}


def matches(path: str, sources: dict[str, str] | None, module: ModuleType) -> bool:
    """Whether a policy read from ``path`` is the one ``module`` was generated from: ``sources``
    are the texts the parser read (path -> text), or None to read the files now."""
    shipped = os.path.dirname(shipped_policy_path("x"))
    main = os.path.join(shipped, module.POLICY + ".rules")
    # includes are looked for beside the rule file's own path first: it must be the shipped folder
    if os.path.abspath(os.path.dirname(path)) != os.path.abspath(shipped):
        return False
    if os.path.realpath(path) != os.path.realpath(main):
        return False
    wanted = {os.path.realpath(os.path.join(shipped, name)): digest
              for name, digest in module.SOURCES.items()}  # fmt: skip
    if sources is not None:
        texts = {os.path.realpath(p): text for p, text in sources.items()}
        if texts.keys() != wanted.keys():
            return False
        read: Callable[[str], str | None] = texts.get
    else:
        read = read_rule_text
    for real, digest in wanted.items():
        text = read(real)
        if text is None or text_digest(text) != digest:
            return False
    return True


def typed_evaluator(path: str, sources: dict[str, str] | None, config: Config) -> Evaluator | None:
    """A fresh typed evaluator for a run of the rule file ``path`` with ``config``; None when
    the run must take the interpreted path (see the module's docstring)."""
    module = MODULES.get(os.path.basename(path).removesuffix(".rules"))
    if module is None or os.environ.get(INTERPRETED_ENV, "") not in ("", "0"):
        return None
    if not matches(path, sources, module):
        return None
    options = module.analyzer_options(config.values)
    for name, values in options.items():
        for key, value in values.items():
            if isinstance(value, int) and value < ANALYZERS[name].options[key].minimum:
                return None  # the interpreted path says where the rule file sets it
    analyzers = {name: ANALYZERS[name].factory(**values) for name, values in options.items()}
    typed = module.TypedPolicy(config.values, analyzers)
    decisions = [Decision(RuleRef(rule, section, message), reason, counter, kind)
                 for rule, section, message, reason, counter, kind in module.DECISIONS]  # fmt: skip
    return TypedEvaluator(typed, decisions, analyzers, module.__name__)
