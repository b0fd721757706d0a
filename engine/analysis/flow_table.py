"""Bounded per-flow state (DECISIONS.md #6).

Upstream's tables grow without limit; ours keep at most ``max_flows`` entries
and can drop entries idle longer than a timeout.  Both are counted, so a
capture never loses state silently.

Which entry goes when the table is full is decided by CLOCK (second chance),
the usual cheap approximation of least-recently-used: a hit only marks the
state ``used`` (one dict lookup), instead of moving the entry to the back of
the order (a delete and an insert per packet, the dearest part of a lookup in
a large table).  Eviction takes the oldest entry; one marked since it was last
looked at is unmarked and moved to the back instead.

The order is kept in deques beside the dict (the CLOCK's hand is their front),
not the dict's own order: taking a dict's first key walks every slot emptied by
earlier pops (CPython compacts only on resize), which made each eviction in a
full table of a million flows cost a scan of hundreds of thousands of slots
(issue 13 #5).  An entry deleted, expired or replaced stays in the deques, stale
(the dict holds another state or none for its key), and is skipped when the
hand reaches it; the stale entries are swept out when they could outnumber the
live ones, so every operation is O(1) amortised.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar


class FlowState:
    """What every state a flow table holds has: the eviction mark, set by lookups and cleared
    by the eviction sweep.  A base class, not a protocol: compiled, the mark is then a field
    at a fixed place in the object, set by one store instead of a generic attribute lookup
    by name on each hit (~2 % of the TLS+QUIC mix's instructions)."""

    __slots__ = ("used",)

    def __init__(self) -> None:
        self.used = False


S = TypeVar("S", bound=FlowState)


class FlowTable(Generic[S]):
    """dict of flow key -> state (a :class:`FlowState`)."""

    def __init__(self, max_flows: int, idle_timeout_ns: int = 0) -> None:
        if max_flows < 1:
            raise ValueError("a flow table needs room for at least one flow")
        self.max_flows = max_flows
        self.idle_timeout_ns = idle_timeout_ns
        self.entries: dict[object, S] = {}
        # the order, oldest first, as two deques side by side (no tuple per entry for the
        # cyclic GC to walk): key i was stored with state i; some are stale
        self.order_keys: deque[object] = deque()
        self.order_states: deque[S] = deque()
        self.last_seen: dict[object, int] = {}
        self.evictions = 0
        self.expirations = 0

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: object, now_ns: int) -> S | None:
        """The live entry for ``key`` (marked used), or None."""
        state = self.entries.get(key)
        if state is None:
            return None
        if self.idle_timeout_ns:  # last_seen is kept only when an idle timeout is set
            if now_ns - self.last_seen[key] > self.idle_timeout_ns:
                del self.entries[key]
                del self.last_seen[key]
                self.expirations += 1
                return None
            self.last_seen[key] = now_ns
        state.used = True
        return state

    def get_or_create(self, key: object, now_ns: int, factory: Callable[[], S]) -> S:
        state = self.get(key, now_ns)
        if state is None:
            state = self.add(key, factory(), now_ns)
        return state

    def put(self, key: object, state: S, now_ns: int) -> S:
        """Store ``state`` for ``key`` (replacing any), evicting one entry if full."""
        self.entries.pop(key, None)
        return self.add(key, state, now_ns)

    def add(self, key: object, state: S, now_ns: int) -> S:
        """:meth:`put` for a key the table does not hold (a :meth:`get` of it just missed):
        one dict operation fewer per new flow."""
        entries = self.entries
        if len(entries) >= self.max_flows:
            self._evict()
        if len(self.order_keys) >= 2 * self.max_flows:
            self._drop_stale()
        self.order_keys.append(key)
        self.order_states.append(state)
        entries[key] = state
        if self.idle_timeout_ns:
            self.last_seen[key] = now_ns
        return state

    def _drop_stale(self) -> None:
        entries = self.entries
        keys: deque[object] = deque()
        states: deque[S] = deque()
        for key, state in zip(self.order_keys, self.order_states, strict=True):
            if entries.get(key) is state:
                keys.append(key)
                states.append(state)
        self.order_keys, self.order_states = keys, states

    def _evict(self) -> None:
        entries = self.entries
        keys, states = self.order_keys, self.order_states
        while True:
            oldest = keys.popleft()
            state = states.popleft()
            if state.used:  # second chance, if still live: to the back, unmarked
                if entries.get(oldest) is state:
                    state.used = False
                    keys.append(oldest)
                    states.append(state)
                continue
            current = entries.pop(oldest, None)  # one dict operation for the usual case
            if current is state:
                if self.idle_timeout_ns:
                    self.last_seen.pop(oldest, None)
                self.evictions += 1
                return
            if current is not None:  # replaced since: the newer state stays
                entries[oldest] = current

    def delete(self, key: object) -> None:
        if self.entries.pop(key, None) is not None:
            self.last_seen.pop(key, None)
