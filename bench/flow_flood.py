"""Flow-table flood (issue 13 #5): the rate of new flows into an empty, a half-full
and a full table of ``max_flows`` (default 1,048,576), and the cost of a hit.

A new flow is what a SYN/ClientHello flood costs the TLS analyzer: a miss, then a
``get_or_create`` that stores a new ``TlsDirectionState`` (evicting one when full).
Issue 13 asks the rates to stay within 2x of each other (eviction O(1) amortised); the
last column, a bare dict and deque fed the same keys, shows how much of the spread memory
alone makes.  Timed in process CPU time, so other processes move the figures less; with
the cycle collector off, and as the recorder sets it for a run (engine/run/collector.py: at
CPython's default threshold its passes over a million states would be timed, which no run
of the recorder makes).  The fourth column is the rate a user sees: new TLS flows through the
whole offline recorder (decode, analyzers, the default policy, a writer to /dev/null), the
table its TLS analyzer keeps (``general.max_flows``) at the same fill levels.  Each such flow
stores two directions (its segment's, then the peer's, confirmed by the Handshake record), so
half as many flows are timed per figure, the same number of new entries.

``--live``: the recorder (each backend) on a veth pair while bench/blaster.c sends a new TLS
flow in every frame at ``--rate`` (50k/s) for ``--seconds``, ``general.max_flows`` set to
``--live-max-flows`` so the table is full most of the run; it must report 0 kernel drops and
write every frame.

    python bench/flow_flood.py [--max-flows N] [--count N]
    sudo python bench/flow_flood.py --live [--rate 50000] [--seconds 6] [--live-max-flows 100000]
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from functools import partial

from flow_budget import tcp_frame  # bench/flow_budget.py
from offline import CONFIG  # bench/offline.py

from pcapconstrictor.engine.analysis.flow_keys import direction_key
from pcapconstrictor.engine.analysis.flow_table import FlowTable
from pcapconstrictor.engine.analysis.tls import TlsDirectionState
from pcapconstrictor.engine.compiled import build_description
from pcapconstrictor.engine.config import output_snaplen, parse_config_text
from pcapconstrictor.engine.run import collector
from pcapconstrictor.engine.run.pipeline import make_pipeline
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.formats.derived import ethernet as ethernet_layout
from pcapconstrictor.formats.derived import ip as ip_layout
from pcapconstrictor.grammar import load_policy, shipped_policy_path

SRC, DST = b"\xc6\x12\x00\x01", b"\xc6\x13\x00\x01"  # 198.18.0.1 -> 198.19.0.1


def key(i: int) -> bytes:
    """A TCP direction as the TLS analyzer keys its flows (direction_key): a new one per ``i``."""
    return direction_key(SRC, DST, 1024 + i % 60_000, 443 + i // 60_000)


def insert_rate(table: FlowTable[TlsDirectionState], first: int, count: int, collect: bool = True) -> float:
    """New flows per second, keys made beforehand so only the table is timed.  ``collect``
    True: the cyclic GC as it is set (main: as the recorder sets it for a run); False: off,
    for its full passes over a heap of a million states land in one window or another and
    blur the comparison (they cost the same per insert over a long run: a pass comes every
    time the heap has grown by a quarter)."""
    keys = [key(i) for i in range(first, first + count)]
    if not collect:
        gc.disable()
    try:
        start = time.process_time()
        for k in keys:
            table.get_or_create(k, 0, TlsDirectionState)
        return count / (time.process_time() - start)
    finally:
        gc.enable()


def floor_rates(size: int, count: int) -> dict[str, float]:
    """The same four fill levels with no flow table at all: a bare dict and a deque, storing
    one small object per key and dropping the oldest key when full, GC off.  Its spread is
    what the memory hierarchy alone costs a million entries (an empty table's 200,000 entries
    stay in the CPU caches, a full one's do not), the floor under any table's spread."""
    entries: dict[object, object] = {}
    order: deque[object] = deque()

    def rate(first: int, n: int) -> float:
        keys = [key(i) for i in range(first, first + n)]
        gc.disable()
        try:
            start = time.process_time()
            for k in keys:
                if len(entries) >= size:
                    del entries[order.popleft()]
                entries[k] = [False]
                order.append(k)
            return n / (time.process_time() - start)
        finally:
            gc.enable()

    return fill_levels(rate, size, count)


def new_flow_frame() -> Callable[[int], bytes]:
    """Frame ``i`` of a scan, like bench/blaster.c's: a TCP segment from
    198.18.x.y:(1024 + i % 60000) to 198.19.0.1:443 whose payload starts a TLS Handshake record,
    so the TLS analyzer stores a state for it; x.y numbers the block of 60,000 ports."""
    hello = bytes((0x16, 0x03, 0x01, 0x00, 0x05, 0x01))  # a Handshake record (TLS 1.0): a ClientHello
    frame = tcp_frame(SRC, DST, 0, 443, 1, 0x18, hello)  # ACK|PSH
    net = ethernet_layout.ethernet_header.size
    block_at = net + ip_layout.ipv4_header.offset("src") + 2  # the source address's last two bytes
    port_at = net + ip_layout.ipv4_header.size  # the source port
    head, middle, tail = frame[:block_at], frame[block_at + 2 : port_at], frame[port_at + 2 :]

    def build(i: int) -> bytes:
        block, port = divmod(i, 60_000)
        return head + (1 + block).to_bytes(2, "big") + middle + (1024 + port).to_bytes(2, "big") + tail

    return build


def recorder_rates(size: int, count: int) -> dict[str, float]:
    """The recorder's new TLS flows per second at each fill level of its TLS table (``count``
    new entries a figure: ``count // 2`` flows), the cycle collector as a run sets it."""
    text = CONFIG.format(policy="final_only").replace("[general]\n", f"[general]\nmax_flows = {size}\n")
    config = parse_config_text(text, "<bench>")
    frame = new_flow_frame()
    with PcapWriter(os.devnull, output_snaplen(config)) as writer:
        pipeline = make_pipeline(load_policy(shipped_policy_path("final_only")), config, writer)
        table = pipeline.evaluator.analyzers["tls"].flows
        collector.settle()

        def rate(first: int, entries: int) -> float:
            """Flows per second making table entries ``first``..``first + entries`` (two a flow)."""
            frames = [(i * 1000, frame(i), 60) for i in range(first // 2, (first + entries) // 2)]
            start = time.process_time()
            pipeline.run(frames)
            return len(frames) / (time.process_time() - start)

        rates = fill_levels(rate, size, count)
        if pipeline.packets != (size + 2 * count) // 2 or len(table) != size or table.evictions == 0:
            raise RuntimeError(f"the recorder took {pipeline.packets:,} frames and holds {len(table):,} "
                               f"entries after {table.evictions:,} evictions")  # fmt: skip
    gc.unfreeze()
    return rates


def fill_levels(rate: Callable[[int, int], float], size: int, count: int) -> dict[str, float]:
    """``rate(first, n)`` (new keys first..first+n, per second) timed at each fill level of a
    table of ``size``: empty, half full, full and evicting, full again (untimed fills between)."""
    rates = {"empty": rate(0, count)}
    rate(count, size // 2 - count)
    rates["half full"] = rate(size // 2, count)
    rate(size // 2 + count, size - size // 2 - count)
    rates["full (evicting)"] = rate(size, count)
    rates["full, again"] = rate(size + count, count)
    return rates


def hit_ns(table: FlowTable[TlsDirectionState], first: int, count: int) -> float:
    keys = [key(i) for i in range(first, first + count)]
    start = time.process_time()
    for k in keys:
        table.get(k, 0)
    return (time.process_time() - start) / count * 1e9


def live_flood(rate: int, seconds: float, max_flows: int) -> None:
    """One run per backend: frames sent, written, kernel drops, flows evicted."""
    from live import CPUS, RX_IF, SETTLE, LiveBench, _wait_for, unavailable  # bench/live.py

    reason = unavailable()
    if reason:
        sys.exit(f"live flood: {reason}")
    print(f"live flood: a new TLS flow per frame at {rate:,}/s for {seconds:g} s, max_flows {max_flows:,}")
    with LiveBench(seconds) as bench:
        for backend in ("recvmsg", "tpacket_v3"):
            output, config = bench.tmp / "flood.pcap", bench.tmp / "flood.ini"
            config.write_text(f"[general]\nmax_flows = {max_flows}\n[capture]\ninterface = {RX_IF}\n"
                              f"backend = {backend}\noutput = {output}\n")  # fmt: skip
            argv = ["ip", "netns", "exec", bench.rx, "taskset", "-c", f"1-{max(1, CPUS - 1)}",
                    sys.executable, "-m", "pcapconstrictor.engine", "--config", str(config)]  # fmt: skip
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            bench.processes.append(process)
            _wait_for(process, "stdout", "Press Ctrl+C to stop.")
            sent, took = bench.blast(rate, seconds, new_flows=True)
            time.sleep(SETTLE)
            process.send_signal(signal.SIGINT)
            out, err = (s.decode(errors="replace") for s in process.communicate(timeout=120))
            bench.processes.remove(process)
            if "Final stats:\n" not in out:
                raise RuntimeError(f"the recorder failed: {err.strip()}")
            stats = dict(line.split(": ", 1) for line in out.split("Final stats:\n", 1)[1].splitlines())
            print(f"  {backend:10s} sent {sent:,} in {took:.2f} s, written {int(stats['packets_total']):,}, "
                  f"kernel drops {int(stats['kernel_drops']):,}, "
                  f"flows evicted {int(stats.get('flow_evictions', 0)):,}")  # fmt: skip
            output.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-flows", type=int, default=1_048_576)
    parser.add_argument("--count", type=int, default=200_000, help="new flows timed at each fill level")
    parser.add_argument("--live", action="store_true", help="the live flood instead (root)")
    parser.add_argument("--rate", type=int, default=50_000, help="live: new flows per second")
    parser.add_argument("--seconds", type=float, default=6.0, help="live: seconds of flood")
    parser.add_argument("--live-max-flows", type=int, default=100_000, help="live: general.max_flows")
    args = parser.parse_args()
    if args.live:
        live_flood(args.rate, args.seconds, args.live_max_flows)
        return
    size, count = args.max_flows, args.count
    print(f"flow table, max_flows {size}, {count} new flows per figure ({build_description()})")
    print(f"  {'':16s} {'GC off':>8s} {'GC as run':>9s} {'dict+deque':>10s} {'recorder':>9s}"
          "  (k new entries/s; recorder: k new TLS flows/s, two entries each)")  # fmt: skip
    spreads = []
    default = gc.get_threshold()
    for collect in (False, True):
        if collect:  # the cycle collector as the recorder sets it for a run (engine/run/collector.py)
            collector.settle()
        table: FlowTable[TlsDirectionState] = FlowTable(size)
        rates = fill_levels(partial(insert_rate, table, collect=collect), size, count)
        spreads.append(max(rates.values()) / min(rates.values()))
        if not collect:
            off = rates
    gc.unfreeze()
    gc.set_threshold(*default)
    hit = hit_ns(table, size + count, count)
    evictions = table.evictions
    del table
    gc.collect()
    floor = floor_rates(size, count)
    spreads.append(max(floor.values()) / min(floor.values()))
    recorder = recorder_rates(size, count)
    spreads.append(max(recorder.values()) / min(recorder.values()))
    for name, rate in rates.items():
        print(f"  {name:16s} {off[name] / 1000:8.1f} {rate / 1000:9.1f} {floor[name] / 1000:10.1f}"
              f" {recorder[name] / 1000:9.1f}")  # fmt: skip
    print(f"  fastest/slowest  {spreads[0]:7.2f}x {spreads[1]:8.2f}x {spreads[2]:9.2f}x {spreads[3]:8.2f}x"
          "  (target: < 2x)")  # fmt: skip
    print(f"  hit              {hit:8.1f} ns")
    print(f"  evictions        {evictions}")


if __name__ == "__main__":
    main()
