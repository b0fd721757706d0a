"""Bounded per-flow state (DECISIONS.md #6).

Upstream's tables grow without limit; ours keep at most ``max_flows`` entries
(least recently used evicted first) and can drop entries idle longer than a
timeout.  Both are counted, so a capture never loses state silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

S = TypeVar("S")


class FlowTable(Generic[S]):
    """dict of flow key -> state, in least-recently-used order."""

    def __init__(self, max_flows: int, idle_timeout_ns: int = 0) -> None:
        if max_flows < 1:
            raise ValueError("a flow table needs room for at least one flow")
        self.max_flows = max_flows
        self.idle_timeout_ns = idle_timeout_ns
        self.entries: dict[object, S] = {}
        self.last_seen: dict[object, int] = {}
        self.evictions = 0
        self.expirations = 0

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: object, now_ns: int) -> S | None:
        """The live entry for ``key`` (refreshed as most recently used), or None."""
        entries = self.entries
        state = entries.pop(key, None)
        if state is None:
            return None
        if self.idle_timeout_ns:  # last_seen is kept only when an idle timeout is set
            if now_ns - self.last_seen[key] > self.idle_timeout_ns:
                del self.last_seen[key]
                self.expirations += 1
                return None
            self.last_seen[key] = now_ns
        entries[key] = state  # re-inserted last: most recently used
        return state

    def get_or_create(self, key: object, now_ns: int, factory: Callable[[], S]) -> S:
        state = self.get(key, now_ns)
        if state is None:
            state = self.put(key, factory(), now_ns)
        return state

    def put(self, key: object, state: S, now_ns: int) -> S:
        entries = self.entries
        entries.pop(key, None)
        if len(entries) >= self.max_flows:
            oldest = next(iter(entries))
            del entries[oldest]
            self.last_seen.pop(oldest, None)
            self.evictions += 1
        entries[key] = state
        if self.idle_timeout_ns:
            self.last_seen[key] = now_ns
        return state

    def delete(self, key: object) -> None:
        if self.entries.pop(key, None) is not None:
            self.last_seen.pop(key, None)
