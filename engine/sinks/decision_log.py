"""``--decision-log``: one CSV row per packet saying what was kept and why.

Columns: index (1-based), timestamp, the 5-tuple, original, captured and saved
lengths, reason, the rule that decided, and the facts that rule read.
"""

from __future__ import annotations

import csv
import io
import sys

from .fact_values import fact_names, fact_values, facts_used, format_facts
from .output_file import create_output_file

HEADER = [
    "index", "timestamp", "src", "dst", "protocol", "src_port", "dst_port",
    "orig_len", "captured_len", "saved_len", "reason", "rule", "facts",
]  # fmt: skip


def address(raw: bytes) -> str:
    import ipaddress

    return str(ipaddress.ip_address(raw)) if len(raw) in (4, 16) else ""


class DecisionLog:
    def __init__(self, path: str) -> None:
        """``path`` '-' is standard output; any other is created, never through a link, and locked
        (issue 13); raises OSError."""
        self.output = None if path == "-" else create_output_file(path)
        raw = sys.stdout.buffer if self.output is None else io.BufferedWriter(self.output.file)
        self.file = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=self.output is None)
        self.writer = csv.writer(self.file)
        self.writer.writerow(HEADER)
        self.evaluator = None
        self.used: list[list[str]] = []

    def bind(self, evaluator) -> None:
        self.evaluator = evaluator
        self.used = [facts_used(d.rule) for d in evaluator.decisions]

    def row(self, index: int, ts_ns: int, data: bytes, orig_len: int, out_len: int, did: int) -> None:
        decision = self.evaluator.decisions[did]
        trace = self.evaluator.trace
        d = trace.decoded
        values = fact_values(self.used[did], decision.rule.section, data, orig_len, trace)
        if decision.kind == "below_min_saved":
            values["proposed_keep"] = trace.keep
        elif decision.kind == "no_rule_matched" and trace.facts is not None:
            # no analyzer rule fired: say what the analyzer did see
            for name in fact_names(trace.analyzer):
                value = getattr(trace.facts, name)
                if value is True:
                    values[f"{trace.analyzer}.{name}"] = value
        ok = d is not None and not d.error and d.ip
        self.writer.writerow([
            index + 1, f"{ts_ns // 10**9}.{ts_ns // 1000 % 10**6:06d}",
            address(d.src_addr) if ok else "", address(d.dst_addr) if ok else "",
            (d.protocol if ok else ""), (d.src_port if ok and (d.tcp or d.udp) else ""),
            (d.dst_port if ok and (d.tcp or d.udp) else ""),
            orig_len, len(data), out_len, decision.reason, decision.rule.id, format_facts(values),
        ])  # fmt: skip

    def close(self) -> None:
        if self.output is None:
            self.file.flush()
            self.file.detach()  # standard output stays open for what follows
        else:
            self.file.close()
