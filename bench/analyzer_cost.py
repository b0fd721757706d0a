"""What enabling the new analyzers costs on the TLS+QUIC+other mix (issue 21, target 5).

    python bench/analyzer_cost.py MIX.pcap [--rounds 9] [--json | --instructions]

SSH, DTLS, WireGuard and IPsec ESP are off by default; enabled, their rules test every TCP/UDP
packet's ports (DTLS also UDP 443's first byte) before the TLS/QUIC rules see it.  Flow budgets
count the bytes of every flow no protocol rule took.  Each variant runs the whole pipeline over
the same file in this process, one after another in every round (so a slow moment of a shared
machine hits all of them), with the cycle collector set as the offline command sets it
(engine/run/collector.py); the figure is the median user CPU time of the rounds, policy loading
and evaluator generation left out (the system time of writing the output into the page cache
swung 0.3-1.3 s between identical runs of the 1M mix on this VM, more than any analyzer costs).
Target: at most 1.05x the default's time.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile

from offline import CONFIG
from protocol_inputs import SECTIONS

from pcapconstrictor.engine.config import output_snaplen, parse_config_text
from pcapconstrictor.engine.run import collector
from pcapconstrictor.engine.run.pipeline import batches_for, make_pipeline
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sources.pcap_reader import PcapReader
from pcapconstrictor.grammar import load_policy, shipped_policy_path

LIMIT = 1.05
ALL_PROTOCOLS = "".join(SECTIONS.values())
BUDGET = "\n[flow]\nbudget_bytes = 65536\nbudget_keep_bytes = 0\n"
VARIANTS = {
    "default": "",
    "SSH, DTLS, WireGuard, ESP enabled": ALL_PROTOCOLS,
    "those and a 64 KiB flow budget": ALL_PROTOCOLS + BUDGET,
}


def user_seconds() -> float:
    """This process's user CPU time, to the microsecond (os.times counts 10 ms ticks: over a
    run of ~0.8 s that alone is a 1 % step)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


def run_once(path: str, out: str, extra: str) -> tuple[float, int, int]:
    """(user CPU seconds of the packet loop, packets, bytes written) for the mix with ``extra``."""
    config = parse_config_text(CONFIG.format(policy="final_only") + extra, "<bench>")
    rules = load_policy(shipped_policy_path("final_only"))
    with PcapReader(path) as reader, PcapWriter(out, output_snaplen(config)) as writer:
        pipeline = make_pipeline(rules, config, writer)
        collector.settle()  # the cycle collector as a run has it (its default costs ~15 % here)
        start = user_seconds()
        for batch in batches_for(pipeline, reader):  # as the offline command does
            pipeline.run_batch(batch)
        writer.flush()
        took = user_seconds() - start
    gc.unfreeze()  # what this run set up and made goes, before the next variant's set-up
    gc.collect()
    return took, pipeline.packets, pipeline.bytes_output


def measure(path: str, rounds: int) -> dict:
    """Per variant: median user CPU seconds, packets and bytes written, and ``ratio``: the
    median over the rounds of its time over the default's in the same round.  Each round
    runs every variant once, the order turned by one each round (no variant always first);
    a ratio within a round leaves out what drifts between rounds (~10 % on this VM)."""
    names = list(VARIANTS)
    times: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    result: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.pcap")
        for r in range(rounds):
            took: dict[str, float] = {}
            for name in names[r % len(names):] + names[: r % len(names)]:
                took[name], packets, written = run_once(path, out, VARIANTS[name])
                times[name].append(took[name])
                result[name] = {"packets": packets, "bytes_output": written}
            for name in names:
                ratios[name].append(took[name] / took["default"])
    for name in names:
        result[name]["seconds"] = statistics.median(times[name])
        result[name]["ratio"] = statistics.median(ratios[name])
    return result


def cost_rows(path: str, pythons: dict[str, str], rounds: int) -> list[tuple[str, str, str]]:
    """bench/run.py's rows: each variant over the default, per install (a process each)."""
    rows = []
    for label, python in pythons.items():
        argv = [python, os.path.abspath(__file__), path, "--rounds", str(rounds), "--json"]
        figures = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
        base = figures["default"]
        for name, f in figures.items():
            if name == "default":
                continue
            ratio = f["ratio"]
            verdict = "PASS" if ratio <= LIMIT else "FAIL"
            same = "output identical in size" if f["bytes_output"] == base["bytes_output"] else (
                f"output {f['bytes_output'] / base['bytes_output']:.3f}x the default's bytes")  # fmt: skip
            rows.append((f"analyzer cost, mix ({base['packets']:,} packets), ours {label}: {name} / default",
                         f"{ratio:.3f}x", f"{verdict} (target <= {LIMIT}x); default "
                         f"{base['seconds'] / base['packets'] * 1e6:.2f} µs/packet user CPU; {same}; "
                         f"median of {rounds} rounds' ratios, in process, order turned"))  # fmt: skip
    return rows


def instruction_rows(path: str, pythons: dict[str, str], packets: int = 100_000) -> list[tuple[str, ...]]:
    """The same ratios counted in instructions, which do not swing with the machine: each
    variant's whole command under callgrind (valgrind) on the first ``packets`` packets of
    ``path`` and on its first packet alone; the difference is the packets' work, start-up
    left out.  Slow (~15 s a run compiled, ~1 min pure); bench/run.py does not run it."""
    if shutil.which("valgrind") is None:
        return [("analyzer cost in instructions", "not measured", "valgrind is not installed")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        prefix, one = os.path.join(tmp, "prefix.pcap"), os.path.join(tmp, "one.pcap")
        taken = _head(path, prefix, packets)
        _head(path, one, 1)
        for label, python in pythons.items():
            per_packet = {}
            for name, extra in VARIANTS.items():
                config = os.path.join(tmp, "config.ini")
                with open(config, "w") as f:
                    f.write(CONFIG.format(policy="final_only") + extra)
                out = os.path.join(tmp, "out.pcap")
                _instructions(python, config, one, out, counted=False)  # the policy cache warm for both
                counts = [_instructions(python, config, inp, out) for inp in (one, prefix)]
                per_packet[name] = (counts[1] - counts[0]) / (taken - 1)
            for name, cost in per_packet.items():
                if name != "default":
                    ratio = cost / per_packet["default"]
                    verdict = "PASS" if ratio <= LIMIT else "FAIL"
                    rows.append((f"analyzer cost in instructions, mix ({taken:,} packets), ours {label}: "
                                 f"{name} / default", f"{ratio:.3f}x",
                                 f"{verdict} (target <= {LIMIT}x); default {per_packet['default']:,.0f} "
                                 "instructions a packet (callgrind, whole command, no start-up)"))
    return rows


def _head(path: str, out: str, count: int) -> int:
    """Write the first ``count`` records of the classic PCAP ``path`` to ``out``; how many there were."""
    header = struct.Struct("<IIII")
    with open(path, "rb") as f, open(out, "wb") as o:
        o.write(f.read(24))
        n = 0
        while n < count:
            raw = f.read(16)
            if len(raw) < 16:
                break
            o.write(raw + f.read(header.unpack(raw)[2]))
            n += 1
    return n


def _instructions(python: str, config: str, path: str, out: str, counted: bool = True) -> int:
    """Instructions a whole offline command executes (callgrind's total; 0 if not ``counted``)."""
    argv = [python, "-m", "pcapconstrictor.engine.commands.cli", "--config", config, "--offline-input", path,
            "--output", out]  # fmt: skip
    if not counted:
        subprocess.run(argv, capture_output=True, check=True)
        return 0
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv]
    run = subprocess.run(argv, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total: {run.stderr[-500:]}")
    return int(found.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", help="the mix (bench/make_mix.py mix OUT)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--json", action="store_true", help="print the medians as JSON")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions instead (callgrind, the first 100,000 packets; needs valgrind)")
    args = ap.parse_args()
    if args.instructions:
        for row in instruction_rows(args.path, {"(this install)": sys.executable}):
            print(" | ".join(row))
        return 0
    if args.json:
        print(json.dumps(measure(args.path, args.rounds)))
        return 0
    for row in cost_rows(args.path, {"(this install)": sys.executable}, args.rounds):
        print(" | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
