"""The bounded flow table (DECISIONS.md #6): CLOCK eviction, idle expiry, counts."""

from __future__ import annotations

import pytest

from pcapconstrictor.engine.analysis.flow_table import FlowTable


class State:
    __slots__ = ("name", "used")

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.used = False


def filled(max_flows: int, keys: list[str], timeout_ns: int = 0) -> FlowTable[State]:
    table: FlowTable[State] = FlowTable(max_flows, timeout_ns)
    for now, key in enumerate(keys):
        table.put(key, State(key), now)
    return table


def test_a_full_table_evicts_the_oldest_entry_not_used_since_and_counts_it():
    table = filled(3, ["a", "b", "c"])
    table.put("d", State("d"), 3)
    assert list(table.entries) == ["b", "c", "d"] and table.evictions == 1


def test_an_entry_used_since_it_was_stored_gets_a_second_chance():
    table = filled(3, ["a", "b", "c"])
    assert table.get("a", 3).name == "a"
    table.put("d", State("d"), 4)
    assert list(table.entries) == ["c", "a", "d"]  # b, unused, went instead of a
    assert table.entries["a"].used is False  # the sweep spent a's mark
    table.put("e", State("e"), 5)
    assert list(table.entries) == ["a", "d", "e"]  # c was now the oldest unmarked
    assert table.evictions == 2


def test_when_every_entry_was_used_the_sweep_still_evicts_exactly_one():
    table = filled(3, ["a", "b", "c"])
    for key in "abc":
        table.get(key, 3)
    table.put("d", State("d"), 4)
    # one full sweep unmarks all three, then the oldest (a) goes
    assert list(table.entries) == ["b", "c", "d"] and table.evictions == 1


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
    table.put("a", State("a2"), 2)
    assert table.evictions == 0 and table.entries["a"].name == "a2" and len(table) == 2


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
