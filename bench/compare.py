"""Ours against ``tcpdump -r IN -w OUT`` and a bare struct loop, per input (issue 21).

Each round runs every contender once, in turn (ours compiled, ours pure, tcpdump, struct
loop, then again), so a slow moment of a shared machine hits all of them; the figure is
the median of the rounds.  Ours and tcpdump are whole commands (start-up included, what a
user waits for); the struct loop runs in this process (for a ``.pcapng`` input, its pcapng
form: Enhanced Packet Blocks rewritten as PCAP records, as ours and tcpdump do).  The
synthetic inputs of the protocols beyond TLS/QUIC are built by bench/protocol_inputs.py.

Every contender writes a new file (the last one's output is removed first, untimed: a
truncate inside a timed run would charge it with freeing the previous output's page cache).
``sink="null"`` sends every output to /dev/null instead (ours ``--output -``, tcpdump ``-w -``):
on a VM the kernel's cost of filling a fresh file's page cache swings ~3x between identical
runs, more than everything else a run does; without it the figures compare the work itself.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time

from offline import CONFIG, reference, reference_pcapng


def _timed(argv: list[str], null: bool) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL if null else subprocess.PIPE,
                   stderr=subprocess.PIPE)  # fmt: skip
    return time.perf_counter() - t


def compare_input(path: str, packets: int, pythons: dict[str, str], workdir: str, rounds: int = 5,
                  extra_config: str = "", sink: str = "file") -> list[tuple[str, float]]:
    """``(contender, median seconds)`` for one input; the contenders alternate within a round."""
    config = os.path.join(workdir, "bench_compare.ini")
    null = sink == "null"
    out = os.path.join(workdir, "bench_compare_out.pcap")
    with open(config, "w") as f:
        f.write(CONFIG.format(policy="final_only") + extra_config)
    runs: dict[str, list[float]] = {}
    tcpdump = shutil.which("tcpdump")

    def fresh() -> str:
        if os.path.exists(out):
            os.unlink(out)
        return "-" if null else out

    for _ in range(rounds):
        for label, python in pythons.items():
            argv = [python, "-m", "pcapconstrictor.engine", "--config", config, "--offline-input", path,
                    "--output", fresh()]  # fmt: skip
            runs.setdefault(f"ours, {label}", []).append(_timed(argv, null))
        if tcpdump:
            argv = [tcpdump, "-r", path, "-w", fresh()]
            runs.setdefault(f"tcpdump -r IN -w {'-' if null else 'OUT'}", []).append(_timed(argv, null))
        fresh()
        target = os.devnull if null else out
        t = time.perf_counter()
        (reference_pcapng if path.endswith(".pcapng") else reference)(path, target)
        runs.setdefault("struct read/rewrite loop", []).append(time.perf_counter() - t)
    if os.path.exists(out):
        os.unlink(out)
    return [(label, statistics.median(times)) for label, times in runs.items()]


def compare_rows(label: str, path: str, packets: int, pythons: dict[str, str], workdir: str,
                 rounds: int, extra_config: str = "", sink: str = "file") -> list[tuple[str, str, str]]:
    medians = compare_input(path, packets, pythons, workdir, rounds, extra_config, sink)
    base = dict(medians)
    rows = []
    for contender, seconds in medians:
        notes = []
        for ref in ("tcpdump -r IN -w OUT", "tcpdump -r IN -w -", "struct read/rewrite loop"):
            if contender.startswith("ours") and ref in base:
                notes.append(f"{base[ref] / seconds:.2f}x the speed of {ref.split(' ')[0]}")
        rows.append((f"{label} ({packets:,} packets): {contender}", f"{packets / seconds:,.0f} pkt/s",
                     "; ".join(notes) or f"median of {rounds} alternating runs"))  # fmt: skip
    return rows
