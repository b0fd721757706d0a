"""The bounded flow table (DECISIONS.md #6): CLOCK eviction, idle expiry, counts."""

from __future__ import annotations

import gc
import time

import pytest

from pcapconstrictor.engine.analysis.flow_table import FlowState, FlowTable

# The states are bare FlowStates (compiled, a class defined here could not subclass it), told
# apart by identity.
State = FlowState


def filled(max_flows: int, keys: list[str], timeout_ns: int = 0) -> FlowTable[State]:
    table: FlowTable[State] = FlowTable(max_flows, timeout_ns)
    for now, key in enumerate(keys):
        table.put(key, State(), now)
    return table


def clock_order(table: FlowTable[State]) -> list[object]:
    """The live keys in the order the eviction hand will reach them."""
    order = zip(table.order_keys, table.order_states, strict=True)
    return [key for key, state in order if table.entries.get(key) is state]


def test_a_full_table_evicts_the_oldest_entry_not_used_since_and_counts_it():
    table = filled(3, ["a", "b", "c"])
    table.put("d", State(), 3)
    assert clock_order(table) == ["b", "c", "d"] and table.evictions == 1


def test_an_entry_used_since_it_was_stored_gets_a_second_chance():
    table = filled(3, ["a", "b", "c"])
    a = table.entries["a"]
    assert table.get("a", 3) is a and a.used
    table.put("d", State(), 4)
    assert clock_order(table) == ["c", "a", "d"]  # b, unused, went instead of a
    assert table.entries["a"].used is False  # the sweep spent a's mark
    table.put("e", State(), 5)
    assert clock_order(table) == ["a", "d", "e"]  # c was now the oldest unmarked
    assert table.evictions == 2


def test_when_every_entry_was_used_the_sweep_still_evicts_exactly_one():
    table = filled(3, ["a", "b", "c"])
    for key in "abc":
        table.get(key, 3)
    table.put("d", State(), 4)
    # one full sweep unmarks all three, then the oldest (a) goes
    assert clock_order(table) == ["b", "c", "d"] and table.evictions == 1


@pytest.mark.parametrize("max_flows", [1, 2, 10])
def test_the_table_never_holds_more_than_max_flows(max_flows):
    table: FlowTable[State] = FlowTable(max_flows)
    for i in range(100):
        table.get(f"k{i % 7}", i)
        table.put(f"k{i}", State(), i)
        assert len(table) <= max_flows
    assert table.evictions == 100 - max_flows


def test_replacing_a_key_is_not_an_eviction():
    table = filled(2, ["a", "b"])
    a2 = State()
    table.put("a", a2, 2)
    assert table.evictions == 0 and table.entries["a"] is a2 and len(table) == 2


def test_the_hand_passes_a_replaced_entry_and_evicts_the_next_live_one():
    table = filled(2, ["a", "b"])
    table.get("a", 2)  # the old state of a is marked used, then replaced: its mark is moot
    a2 = State()
    table.put("a", a2, 3)
    table.put("c", State(), 4)  # the hand meets a's old state first, then b
    assert clock_order(table) == ["a", "c"] and table.entries["a"] is a2
    assert table.evictions == 1
    table.put("d", State(), 5)
    assert clock_order(table) == ["c", "d"] and table.evictions == 2


def test_add_stores_a_key_a_lookup_just_missed_and_evicts_when_full():
    table = filled(2, ["a", "b"], timeout_ns=100)
    assert table.get("c", 2) is None
    table.add("c", State(), 2)
    assert clock_order(table) == ["b", "c"] and table.evictions == 1
    assert set(table.last_seen) == {"b", "c"}  # the evicted key's idle clock went with it


def test_idle_entries_expire_on_lookup_and_are_counted():
    table = filled(10, ["a"], timeout_ns=100)
    assert table.get("a", 100) is not None  # exactly the timeout: still alive
    assert table.get("a", 201) is None  # idle 101 ns since the last lookup
    assert table.expirations == 1 and len(table) == 0 and not table.last_seen


def test_a_lookup_refreshes_the_idle_clock():
    table = filled(10, ["a"], timeout_ns=100)
    for now in range(50, 1000, 50):
        assert table.get("a", now) is not None
    assert table.expirations == 0


def test_get_or_create_makes_one_state_per_key():
    table: FlowTable[State] = FlowTable(4)
    first = table.get_or_create("a", 0, State)
    assert table.get_or_create("a", 1, State) is first and len(table) == 1


def test_a_table_needs_room_for_one_flow():
    with pytest.raises(ValueError):
        FlowTable(0)


def test_a_deleted_then_recreated_flow_is_the_newest_not_evicted_in_its_old_place():
    table = filled(3, ["a", "b", "c"])
    table.delete("a")
    a2 = State()
    table.put("a", a2, 3)
    table.put("d", State(), 4)  # a's old place is stale: b, the oldest, goes
    assert clock_order(table) == ["c", "a", "d"] and table.entries["a"] is a2
    assert table.evictions == 1


def test_churn_of_deleted_flows_keeps_the_eviction_order_bounded():
    table: FlowTable[State] = FlowTable(100)
    for i in range(10_000):
        table.put(i, State(), i)
        table.delete(i)
    assert len(table) == 0 and len(table.order_keys) == len(table.order_states) <= 2 * table.max_flows


def _insert_seconds(table: FlowTable[State], first: int, count: int) -> float:
    """CPU seconds (other processes on the machine do not count), cyclic GC off (its passes
    over a large heap are not what is measured)."""
    gc.disable()
    try:
        start = time.process_time()
        for key in range(first, first + count):
            table.put(key, State(), key)
        return time.process_time() - start
    finally:
        gc.enable()


def test_inserting_into_a_full_table_costs_about_what_it_costs_in_an_empty_one():
    """Issue 13 #5: eviction walked the dict's emptied slots, O(n) per insert when full."""
    size, count = 200_000, 20_000
    empty = min(_insert_seconds(FlowTable(size), 0, count) for _ in range(3))
    table: FlowTable[State] = FlowTable(size)
    _insert_seconds(table, 0, size)
    full = min(_insert_seconds(table, size + i * count, count) for i in range(3))
    assert table.evictions == 3 * count
    assert full < 5 * empty, (full, empty)
