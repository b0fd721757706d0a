"""The engine as a library: what a notebook or another tool needs, without the command line.

    from pcapconstrictor.engine import api

    config = api.load_config("examples/config.ini")      # or api.default_config()
    constrictor = api.Constrictor(config)                 # the shipped policy the config selects
    with api.read_capture("in.pcap") as frames, api.write_capture("out.pcap", config) as out:
        for ts_ns, kept, wire_len in constrictor.constrict(frames):
            out.write(ts_ns, kept, len(kept), wire_len)
    print(constrictor.stats().block())

Frames are ``(timestamp_ns, frame bytes, wire length)`` tuples, as every source yields them.
A :class:`Constrictor` keeps flow state across calls: give it the frames of one capture in order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pcapconstrictor.engine.config import Config, load_config, output_snaplen, parse_config_text
from pcapconstrictor.engine.run.pipeline import BATCH, make_pipeline
from pcapconstrictor.engine.run.policy_select import select_policy
from pcapconstrictor.engine.run.stats import Stats
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sources.pcap_reader import PcapReader
from pcapconstrictor.grammar import Policy

Frame = tuple[int, bytes, int]

__all__ = ["Constrictor", "Frame", "default_config", "load_config", "load_policy", "open_live",
           "read_capture", "write_capture"]  # fmt: skip


def default_config() -> Config:
    """Every key at its default (upstream's behaviour)."""
    return parse_config_text("", "<defaults>")


def load_policy(config: Config, rules: str | None = None) -> Policy:
    """The rule file ``rules``, else the shipped policy the config selects; checked."""
    return select_policy(config, rules)


class Constrictor:
    """Decides how many bytes of each frame to keep; counts what it did (a pipeline whose sink
    hands the kept frames back)."""

    def __init__(self, config: Config, policy: Policy | None = None) -> None:
        self.config = config
        self.pipeline = make_pipeline(policy or load_policy(config), config, self)
        self._kept: list[Frame] = []

    def constrict(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        """Each frame with its kept prefix (the wire length unchanged), in order, lazily."""
        batch: list[Frame] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == BATCH:
                yield from self._run(batch)
                batch = []
        if batch:
            yield from self._run(batch)

    def _run(self, frames: list[Frame]) -> list[Frame]:
        self.pipeline.run_batch(frames)
        kept, self._kept = self._kept, []
        return kept

    def write_batch(self, frames: list[Frame], lengths: list[int]) -> None:
        """The pipeline's sink side: keep each frame's prefix for :meth:`constrict` to give back."""
        pairs = zip(frames, lengths, strict=True)
        self._kept = [(ts_ns, data[:keep], wire_len) for (ts_ns, data, wire_len), keep in pairs]

    def stats(self) -> Stats:
        """The figures of the stats block so far (packets, bytes, protocol counters)."""
        return self.pipeline.stats()


def read_capture(path: str) -> PcapReader:
    """A capture file's frames (iterate it; use it as a context manager to close the file)."""
    return PcapReader(path)


def write_capture(path: str, config: Config | None = None) -> PcapWriter:
    """A classic PCAP writer with the config's snap length: ``write(ts_ns, data, incl_len, wire_len)``."""
    return PcapWriter(path, output_snaplen(config or default_config()))


def open_live(config: Config):
    """The configured live backend (needs CAP_NET_RAW): ``receive(timeout_ms)`` gives frames."""
    from pcapconstrictor.engine.run.live import open_backend

    return open_backend(config)
