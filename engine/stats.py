"""Run statistics and the printed stats block (SPEC §3.2, §10)."""

from __future__ import annotations

from dataclasses import dataclass, field

# SPEC §10: every reason a decision can carry, and the protocol counters.
UPSTREAM_REASONS = (
    "default", "parse_error", "non_ip", "tcp", "udp", "tls_candidate",
    "tls_application_data_constricted", "tls_malformed_fallback", "tls_no_record_fallback",
    "quic_candidate", "quic_long_header", "quic_short_header_matched",
    "quic_short_header_constricted", "quic_short_header_unknown_cid_fallback",
    "quic_short_header_dcid_mismatch_fallback", "quic_malformed_fallback",
)  # fmt: skip
UPSTREAM_COUNTERS = (
    "tls_appdata_constricted", "tls_fallback", "quic_long_header", "quic_short_matched",
    "quic_short_constricted", "quic_fallback",
)  # fmt: skip


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
    link_down_events: int = 0  # issue 13 #7: the interface went down (and the capture went on)

    @property
    def bytes_saved(self) -> int:
        return self.bytes_input - self.bytes_output

    def merge(self, other: Stats) -> None:
        """Add another worker's figures (multi-process capture)."""
        self.packets_total += other.packets_total
        self.bytes_input += other.bytes_input
        self.bytes_output += other.bytes_output
        self.receive_errors += other.receive_errors
        self.flow_evictions += other.flow_evictions
        # every worker's socket sees the same link go down
        self.link_down_events = max(self.link_down_events, other.link_down_events)
        for name in ("kernel_packets", "kernel_drops"):
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
            f"packets_written: {self.packets_total}",
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
        if self.link_down_events:  # only then, so upstream's block stays
            out.append(f"link_down_events: {self.link_down_events}")
        return out

    def block(self) -> str:
        return "".join(line + "\n" for line in self.lines())
