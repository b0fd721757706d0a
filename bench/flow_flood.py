"""Flow-table flood (issue 13 #5): the rate of new flows into an empty, a half-full
and a full table of ``max_flows`` (default 1,048,576), and the cost of a hit.

A new flow is what a SYN/ClientHello flood costs the TLS analyzer: a miss, then a
``get_or_create`` that stores a new ``TlsDirectionState`` (evicting one when full).
The three rates must stay within 2x of each other: eviction is O(1) amortised.

    python bench/flow_flood.py [--max-flows N] [--count N]
"""

from __future__ import annotations

import argparse
import time

from pcapconstrictor.engine.compiled import build_description
from pcapconstrictor.engine.flow_table import FlowTable
from pcapconstrictor.engine.tls_analyzer import TlsDirectionState

SRC, DST = b"\xc6\x12\x00\x01", b"\xc6\x13\x00\x01"  # 198.18.0.1 -> 198.19.0.1


def key(i: int) -> tuple[bytes, bytes, int, int]:
    """A TCP 4-tuple as the TLS analyzer keys its flows: a new one per ``i``."""
    return (SRC, DST, 1024 + i % 60_000, 443 + i // 60_000)


def insert_rate(table: FlowTable[TlsDirectionState], first: int, count: int) -> float:
    """New flows per second, keys made beforehand so only the table is timed."""
    keys = [key(i) for i in range(first, first + count)]
    start = time.perf_counter()
    for k in keys:
        table.get_or_create(k, 0, TlsDirectionState)
    return count / (time.perf_counter() - start)


def hit_ns(table: FlowTable[TlsDirectionState], first: int, count: int) -> float:
    keys = [key(i) for i in range(first, first + count)]
    start = time.perf_counter()
    for k in keys:
        table.get(k, 0)
    return (time.perf_counter() - start) / count * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-flows", type=int, default=1_048_576)
    parser.add_argument("--count", type=int, default=200_000, help="new flows timed at each fill level")
    args = parser.parse_args()
    size, count = args.max_flows, args.count
    print(f"flow table, max_flows {size}, {count} new flows per figure ({build_description()})")
    table: FlowTable[TlsDirectionState] = FlowTable(size)
    rates = {"empty": insert_rate(table, 0, count)}
    insert_rate(table, count, size // 2 - count)
    rates["half full"] = insert_rate(table, size // 2, count)
    insert_rate(table, size // 2 + count, size - size // 2 - count)
    rates["full (evicting)"] = insert_rate(table, size, count)
    rates["full, again"] = insert_rate(table, size + count, count)
    for name, rate in rates.items():
        print(f"  {name:16s} {rate / 1000:8.1f} k new flows/s")
    print(f"  hit              {hit_ns(table, size + count, count):8.1f} ns")
    spread = max(rates.values()) / min(rates.values())
    print(f"  fastest/slowest  {spread:8.2f}x (target: < 2x)")
    print(f"  evictions        {table.evictions}")


if __name__ == "__main__":
    main()
