"""Run statistics and the printed stats block (SPEC §3.2, §10)."""

from __future__ import annotations

from pcapconstrictor.engine.analysis.reasons import UPSTREAM_COUNTERS


class Stats:
    """A run's figures (a plain class, not a dataclass: importing dataclasses costs a run ~8 ms)."""

    def __init__(self, packets_total: int = 0, bytes_input: int = 0, bytes_output: int = 0,
                 receive_errors: int = 0, kernel_packets: int | None = None, kernel_drops: int | None = None,
                 counters: dict[str, int] | None = None, flow_evictions: int = 0,
                 packets_written: int | None = None, filtered_out: int | None = None,
                 link_down_events: int = 0, files_compressed: int | None = None,
                 post_rotate_failures: int | None = None) -> None:  # fmt: skip
        self.packets_total = packets_total
        self.bytes_input = bytes_input
        self.bytes_output = bytes_output
        self.receive_errors = receive_errors
        self.kernel_packets = kernel_packets
        self.kernel_drops = kernel_drops
        self.counters: dict[str, int] = {} if counters is None else counters
        self.flow_evictions = flow_evictions
        self.packets_written = packets_written  # None: every packet; less after a failed write (issue 13)
        self.filtered_out = filtered_out  # offline with a capture filter: input frames it rejected
        self.link_down_events = link_down_events  # issue 13 #7: the interface went down (the capture went on)
        self.files_compressed = files_compressed  # issue 18 #3: None = capture.compress is off
        self.post_rotate_failures = post_rotate_failures  # None = no capture.post_rotate_command

    def __repr__(self) -> str:
        return "Stats(" + ", ".join(f"{k}={v!r}" for k, v in vars(self).items()) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stats) and vars(self) == vars(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    @property
    def written(self) -> int:
        return self.packets_total if self.packets_written is None else self.packets_written

    @property
    def bytes_saved(self) -> int:
        return self.bytes_input - self.bytes_output

    def merge(self, other: Stats) -> None:
        """Add another worker's figures (multi-process capture)."""
        if self.packets_written is not None or other.packets_written is not None:
            self.packets_written = self.written + other.written
        self.packets_total += other.packets_total
        self.bytes_input += other.bytes_input
        self.bytes_output += other.bytes_output
        self.receive_errors += other.receive_errors
        self.flow_evictions += other.flow_evictions
        # every worker's socket sees the same link go down
        self.link_down_events = max(self.link_down_events, other.link_down_events)
        for name in ("kernel_packets", "kernel_drops", "files_compressed", "post_rotate_failures"):
            theirs = getattr(other, name)
            if theirs is not None:
                setattr(self, name, (getattr(self, name) or 0) + theirs)
        for name, value in other.counters.items():
            self.counters[name] = self.counters.get(name, 0) + value

    def lines(self) -> list[str]:
        """The stats block, one ``key: value`` per line, in SPEC §3.2 order;
        counters a custom policy adds follow the upstream ones."""
        out = [
            f"packets_total: {self.packets_total}",
            f"packets_written: {self.written}",
            f"bytes_input: {self.bytes_input}",
            f"bytes_output: {self.bytes_output}",
            f"bytes_saved: {self.bytes_saved}",
            f"receive_errors: {self.receive_errors}",
        ]
        if self.kernel_packets is not None:
            out.append(f"kernel_packets: {self.kernel_packets}")
            out.append(f"kernel_drops: {self.kernel_drops}")
        out += [f"{name}: {self.counters.get(name, 0)}" for name in UPSTREAM_COUNTERS]
        out += [f"{k}: {v}" for k, v in self.counters.items() if k not in UPSTREAM_COUNTERS]
        if self.flow_evictions:
            out.append(f"flow_evictions: {self.flow_evictions}")
        if self.filtered_out is not None:
            out.append(f"filtered_out: {self.filtered_out}")
        if self.link_down_events:  # only then, so upstream's block stays
            out.append(f"link_down_events: {self.link_down_events}")
        for name in ("files_compressed", "post_rotate_failures"):  # only with the feature on
            if getattr(self, name) is not None:
                out.append(f"{name}: {getattr(self, name)}")
        return out

    def block(self) -> str:
        return "".join(line + "\n" for line in self.lines())
