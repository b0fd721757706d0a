"""Run statistics and the printed stats block (SPEC §3.2, §10)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pcapconstrictor.engine.analysis.reasons import UPSTREAM_COUNTERS


@dataclass
class Stats:
    packets_total: int = 0
    bytes_input: int = 0
    bytes_output: int = 0
    receive_errors: int = 0
    kernel_packets: int | None = None
    kernel_drops: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    flow_evictions: int = 0
    packets_written: int | None = None  # None: every packet; less after a failed write (issue 13)
    filtered_out: int | None = None  # offline with a capture filter: input frames it rejected
    link_down_events: int = 0  # issue 13 #7: the interface went down (and the capture went on)
    files_compressed: int | None = None  # issue 18 #3: None = capture.compress is off
    post_rotate_failures: int | None = None  # None = no capture.post_rotate_command

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
