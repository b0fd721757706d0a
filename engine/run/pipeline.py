"""The generic runner: frames -> compiled policy -> PCAP sink, with stats.

Sources (offline reader, live backends) only yield ``(ts_ns, data, orig_len)``;
the runner knows nothing of TLS or sockets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pcapconstrictor.engine.config import Config
from pcapconstrictor.formats.derived import link as link_format
from pcapconstrictor.grammar.evaluator import Evaluator

from .policy_select import CachedPolicy, evaluator_for
from .stats import Stats

if TYPE_CHECKING:
    from pcapconstrictor.grammar import Policy

BATCH = 4096  # frames per evaluate_batch call when the source gives them one by one


class Pipeline:
    """decide -> write -> count for each frame; one per run (it owns the flow state)."""

    def __init__(self, evaluator: Evaluator, writer: object, decision_log: object | None = None) -> None:
        self.evaluator = evaluator
        self.writer = writer  # a Sink: write_batch(frames, lengths), write(ts_ns, data, incl_len, orig_len)
        self.decision_log = decision_log  # DecisionLog-like: row(index, ts_ns, data, orig, out, did)
        self.counts = [0] * len(self.evaluator.decisions)
        self.packets = 0
        self.bytes_input = 0
        self.bytes_output = 0

    def run_batch(self, frames: list[tuple[int, bytes, int]]) -> None:
        """Constrict and write a list of ``(ts_ns, data, orig_len)`` frames; a list with a
        ``linktype`` attribute (a non-Ethernet source) is decoded as that link type."""
        linktype = getattr(frames, "linktype", link_format.LINKTYPE_ETHERNET)
        if linktype != self.evaluator.linktype:
            self.evaluator.use_link_type(linktype)
        if self.decision_log is not None:  # traced: one evaluation (and log row) per frame
            self._run_traced(frames)
            return
        lengths, captured = self.evaluator.evaluate_batch(frames, self.counts)
        self.packets += len(frames)  # decided and counted even if the write fails (disk full)
        self.bytes_input += captured
        self.bytes_output += sum(lengths)
        self.writer.write_batch(frames, lengths)

    def run(self, frames: Iterable[tuple[int, bytes, int]], limit: int = 0) -> int:
        """Process frames until the iterable ends (or ``limit`` packets, if > 0),
        in batches; frames taken before the iterable raises are processed first.
        Returns the number processed by this call."""
        done = 0
        batch: list[tuple[int, bytes, int]] = []
        size = BATCH if not limit else min(BATCH, limit)
        try:
            for frame in frames:
                batch.append(frame)
                if len(batch) == size:
                    todo, batch = batch, []
                    self.run_batch(todo)
                    done += len(todo)
                    if done == limit:
                        break
                    if limit:
                        size = min(BATCH, limit - done)
        finally:
            if batch:
                todo, batch = batch, []
                self.run_batch(todo)
                done += len(todo)
        return done

    def _run_traced(self, frames: list[tuple[int, bytes, int]]) -> None:
        evaluate = self.evaluator.evaluate
        write = self.writer.write
        counts = self.counts
        log = self.decision_log
        for ts_ns, data, orig_len in frames:
            out_len, did = evaluate(data, orig_len, ts_ns)
            write(ts_ns, data, out_len, orig_len)
            counts[did] += 1
            log.row(self.packets, ts_ns, data, orig_len, out_len, did)
            self.packets += 1
            self.bytes_input += len(data)
            self.bytes_output += out_len

    def stats(self) -> Stats:
        stats = Stats(self.packets, self.bytes_input, self.bytes_output)
        for decision, count in zip(self.evaluator.decisions, self.counts, strict=True):
            if decision.counter is not None and count:
                stats.counters[decision.counter] = stats.counters.get(decision.counter, 0) + count
        for analyzer in self.evaluator.analyzers.values():
            flows = getattr(analyzer, "flows", None)
            if flows is not None:
                stats.flow_evictions += flows.evictions + flows.expirations
        return stats

    def reason_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for decision, count in zip(self.evaluator.decisions, self.counts, strict=True):
            if count:
                out[decision.reason] = out.get(decision.reason, 0) + count
        return out


def make_pipeline(policy: Policy | CachedPolicy, config: Config, writer, decision_log=None) -> Pipeline:
    traced = decision_log is not None
    evaluator = evaluator_for(policy, config, traced=traced)
    if decision_log is not None:
        decision_log.bind(evaluator)
    return Pipeline(evaluator, writer, decision_log)
