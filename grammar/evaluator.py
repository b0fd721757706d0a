"""Generated policy source -> a running evaluator (fresh analyzer state, compiled functions).

Split from codegen so that a run whose compiled policy comes from the cache
(engine/run/policy_cache.py) imports neither the parser (lark) nor the checker:
this module needs only the decoder and the analyzer registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from pcapconstrictor.engine.analysis.decode import decode_fields, decoded, decoder_for
from pcapconstrictor.engine.analysis.registry import ANALYZERS
from pcapconstrictor.formats.derived import link as link_format

if TYPE_CHECKING:
    from .ast import Rule


class RuleRef(NamedTuple):
    """What a decision says of its rule when the rule file was not parsed (a cached policy)."""

    id: str
    section: str
    message: str


class Decision(NamedTuple):
    """One way a packet can leave the policy."""

    rule: Rule | RuleRef
    reason: str
    counter: str | None
    kind: str  # "matched", "cut", "below_min_saved" or "no_rule_matched"


class Trace:
    """What a traced evaluation saw, for decision logs and explanations."""

    __slots__ = ("decoded", "facts", "analyzer", "tried", "keep")

    def __init__(self) -> None:
        self.decoded = None
        self.facts = None
        self.analyzer: str | None = None
        self.tried: list[tuple[str, bool]] = []  # (rule id, condition) in evaluation order
        self.keep: int | None = None  # the last keep length a matching rule proposed


class CompiledPolicy:
    """A policy bound to the config values it reads: everything an evaluator is made of,
    as plain data (what the policy cache stores)."""

    def __init__(self, path: str, source: str, decisions: list[Decision], constants: dict[str, object],
                 analyzer_options: dict[str, dict[str, object]], traced: bool = False) -> None:  # fmt: skip
        self.path = path
        self.source = source
        self.decisions = decisions
        self.constants = constants  # names the source reads: port sets
        self.analyzer_options = analyzer_options
        self.traced = traced


class Evaluator:
    """A policy bound to a config: fresh analyzer state and the compiled functions
    (``evaluate_batch`` is None for a traced evaluator: tracing is per packet)."""

    def __init__(self, evaluate: object, decisions: list[Decision], analyzers: dict[str, object], source: str,
                 trace: Trace | None, evaluate_batch: object | None = None, namespace: dict | None = None,
                 linktype: int = link_format.LINKTYPE_ETHERNET) -> None:  # fmt: skip
        self.evaluate = evaluate
        self.decisions = decisions
        self.analyzers = analyzers
        self.source = source
        self.trace = trace
        self.evaluate_batch = evaluate_batch
        self.namespace = namespace  # the generated functions' globals
        self.linktype = linktype
        # evaluate_records(records, counts, cuts) over engine/sources/pcap_records.PcapRecords,
        # evaluate_blocks(run, counts, cuts) over engine/sources/pcapng_packets.PcapngRecords:
        # the typed evaluators of the shipped policies only (engine/run/typed_base.py)
        self.evaluate_records: object | None = None
        self.evaluate_blocks: object | None = None

    def use_link_type(self, linktype: int) -> None:
        """Decode the frames that follow as ``linktype`` (a LINKTYPE_* value): the rules stay
        the same, only the decoder that finds the IP layer changes (issue 15)."""
        if linktype != self.linktype and self.namespace is not None:
            self.namespace["_decode"] = decoder_for(linktype)
            self.linktype = linktype


def bind_evaluator(compiled: CompiledPolicy, code: object = None) -> Evaluator:
    """Run the generated source with new analyzers; ``code`` is its compiled form if known."""
    options = compiled.analyzer_options
    analyzers = {name: ANALYZERS[name].factory(**values) for name, values in options.items()}
    trace = Trace() if compiled.traced else None
    namespace: dict[str, object] = {"_decode": decode_fields, "_decoded": decoded, "_trace": trace,
                                    **compiled.constants}  # fmt: skip
    for name, analyzer in analyzers.items():
        namespace[f"_analyze_{name}"] = analyzer.analyze
    if code is None:
        code = compile(compiled.source, f"<policy {compiled.path}>", "exec")
    exec(code, namespace)  # noqa: S102 - our own generated source
    return Evaluator(namespace["evaluate"], compiled.decisions, analyzers, compiled.source, trace,
                     namespace.get("evaluate_batch"), namespace)  # fmt: skip
