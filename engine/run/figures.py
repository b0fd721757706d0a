"""A live run's figures at one moment (issue 18): what the metrics endpoint and systemd's
``STATUS=`` show.

The capture loop takes them about once a second (never per packet) and hands them on; the
scrape thread only reads the last copy.  It never calls into the backend itself: the kernel
resets PACKET_STATISTICS on each read and the backend adds the reads up, so two threads
reading it would lose counts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .stats import Stats


@dataclass
class RunFigures:
    """The stats block's figures and what the block does not show."""

    stats: Stats = field(default_factory=Stats)
    decisions: dict[tuple[str, str], int] = field(default_factory=dict)  # (rule id, reason) -> packets
    flow_entries: dict[str, int] = field(default_factory=dict)  # analyzer -> flows held now
    flow_evictions: dict[str, int] = field(default_factory=dict)  # analyzer -> evicted + expired
    socket_backlog_bytes: int | None = None  # bytes queued in the socket (recvmsg), None: unreadable
    files_rotated: int = 0
    write_errors: int = 0

    def merge(self, other: RunFigures) -> None:
        """Add another worker's figures (the ``worker="all"`` series)."""
        self.stats.merge(other.stats)
        for mine, theirs in ((self.decisions, other.decisions), (self.flow_entries, other.flow_entries),
                             (self.flow_evictions, other.flow_evictions)):  # fmt: skip
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value  # type: ignore[index]
        if other.socket_backlog_bytes is not None:
            self.socket_backlog_bytes = (self.socket_backlog_bytes or 0) + other.socket_backlog_bytes
        self.files_rotated += other.files_rotated
        self.write_errors += other.write_errors


def figures_of(stats: Stats, pipeline, backend, writer) -> RunFigures:
    """The figures of a run whose stats block would now be ``stats``."""
    figures = RunFigures(stats=stats)
    evaluator = pipeline.evaluator
    for decision, count in zip(evaluator.decisions, pipeline.counts, strict=True):
        if count:
            key = (decision.rule.id, decision.reason)
            figures.decisions[key] = figures.decisions.get(key, 0) + count
    for name, analyzer in evaluator.analyzers.items():
        flows = getattr(analyzer, "flows", None)
        if flows is not None:
            figures.flow_entries[name] = len(flows)
            figures.flow_evictions[name] = flows.evictions + flows.expirations
    if not hasattr(backend, "ring"):  # a ring's frames are not socket memory: nothing to read
        figures.socket_backlog_bytes = socket_backlog(backend.packet_socket.fileno())
    figures.files_rotated = getattr(writer, "rotations", 0)
    return figures


def socket_backlog(fd: int) -> int | None:
    """Bytes the kernel holds for this packet socket (the ``Rmem`` column of /proc/net/packet,
    the socket's sk_rmem_alloc), found by the socket's inode; None where it cannot be read."""
    try:
        inode = str(os.fstat(fd).st_ino)
        with open("/proc/net/packet") as table:
            header = table.readline().split()
            rmem, ino = header.index("Rmem"), header.index("Inode")
            for line in table:
                columns = line.split()
                if len(columns) > ino and columns[ino] == inode:
                    return int(columns[rmem])
    except (OSError, ValueError):
        pass
    return None
