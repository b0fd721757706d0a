"""The generic runner: frames -> compiled policy -> PCAP sink, with stats.

Sources (offline reader, live backends) only yield ``(ts_ns, data, orig_len)``, or
(a classic PCAP input, when the pipeline :attr:`Pipeline.takes_records`) runs of records
left in the read buffer; the runner knows nothing of TLS or sockets.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from pcapconstrictor.engine.compiled import is_compiled
from pcapconstrictor.engine.config import Config
from pcapconstrictor.engine.sources import pcap_records, pcapng_packets
from pcapconstrictor.engine.sources.pcap_reader import PcapReader
from pcapconstrictor.engine.sources.pcap_records import PcapRecords
from pcapconstrictor.engine.sources.pcapng_packets import PcapngRecords
from pcapconstrictor.engine.sources.pcapng_reader import PcapngReader
from pcapconstrictor.formats.derived import link as link_format
from pcapconstrictor.grammar.evaluator import Evaluator

from .policy_select import CachedPolicy, evaluator_for
from .stats import Stats

if TYPE_CHECKING:
    from pcapconstrictor.grammar import Policy

BATCH = 4096  # frames per evaluate_batch call when the source gives them one by one
# Runs of records in place pay off compiled only: interpreted, reading a header byte by byte
# costs more than the struct call and the tuple of the frame-by-frame path.
RECORD_RUNS = is_compiled(pcap_records)
BLOCK_RUNS = is_compiled(pcapng_packets)  # the same for runs of pcapng packet blocks


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
        # a run of PCAP records (PcapRecords) is decided and written in place: a typed
        # evaluator, untraced, and a sink that copies records (PcapWriter.write_records)
        self.takes_records = (RECORD_RUNS and decision_log is None and evaluator.evaluate_records is not None
                              and getattr(writer, "takes_records", False))  # fmt: skip
        # the same for a run of pcapng blocks (PcapngRecords) and a sink that writes them from
        # the buffer (PcapngSectionWriter.write_blocks, or PcapWriter.write_blocks as records)
        self.takes_blocks = (BLOCK_RUNS and decision_log is None and evaluator.evaluate_blocks is not None
                             and getattr(writer, "takes_blocks", False))  # fmt: skip

    def run_batch(self, frames: list[tuple[int, bytes, int]]) -> None:
        """Constrict and write a list of ``(ts_ns, data, orig_len)`` frames; a list with a
        ``linktype`` attribute (a non-Ethernet source) is decoded as that link type.  A
        :class:`PcapRecords` run is taken as it is when :attr:`takes_records`."""
        linktype = getattr(frames, "linktype", link_format.LINKTYPE_ETHERNET)
        if linktype != self.evaluator.linktype:
            self.evaluator.use_link_type(linktype)
        if frames.__class__ is PcapRecords:
            if self.takes_records:
                self._run_in_place(frames, self.evaluator.evaluate_records, self.writer.write_records)
                return
            frames = frames.frames()
        elif frames.__class__ is PcapngRecords:
            if self.takes_blocks:
                self._run_in_place(frames, self.evaluator.evaluate_blocks, self.writer.write_blocks)
                return
            frames = frames.frames()
        if self.decision_log is not None:  # traced: one evaluation (and log row) per frame
            self._run_traced(frames)
            return
        lengths, captured = self.evaluator.evaluate_batch(frames, self.counts)
        self.packets += len(frames)  # decided and counted even if the write fails (disk full)
        self.bytes_input += captured
        self.bytes_output += sum(lengths)
        self.writer.write_batch(frames, lengths)

    def _run_in_place(self, run: PcapRecords | PcapngRecords, evaluate, write) -> None:
        """A run of input records or blocks decided (``evaluate``: the typed evaluator's
        evaluate_records or evaluate_blocks) and written (``write``: the writer's
        write_records or write_blocks) where it lies in the read buffer."""
        cuts: list[int] = []  # offset and bytes kept of each record or block cut
        captured, kept = evaluate(run, self.counts, cuts)
        self.packets += run.count
        self.bytes_input += captured
        self.bytes_output += kept
        write(run, cuts)

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


def batches_for(pipeline: Pipeline, reader: object) -> Iterable:
    """``reader.batches()`` as ``pipeline`` takes them best: a classic PCAP reader hands on
    runs of records in place when they are read compiled; the pipeline decides and writes
    them in place when it :attr:`~Pipeline.takes_records`, else makes their frames
    (compiled too: faster than the reader's frame-by-frame loop).  A pcapng reader hands on
    runs of blocks when the pipeline :attr:`~Pipeline.takes_blocks`."""
    if RECORD_RUNS and isinstance(reader, PcapReader):
        return reader.batches(records=True)
    if pipeline.takes_blocks and isinstance(reader, PcapngReader):  # its writer writes them back
        return reader.batches(records=True)
    return reader.batches()
