"""One entry point for every benchmark figure (issue 5): ``python bench/run.py``.

Prints a Markdown table.  Offline figures compare the whole pipeline with a
bare struct read/rewrite loop over the same file in the same process (the
ratio is the figure to track).  ``--quick`` uses 10x fewer packets.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from make_mix import build, replay  # noqa: E402
from offline import CONFIG, measure  # noqa: E402

from pcapconstrictor.engine.compiled import build_description  # noqa: E402
from pcapconstrictor.engine.config import parse_config_text  # noqa: E402
from pcapconstrictor.engine.run.pipeline import make_pipeline  # noqa: E402
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter  # noqa: E402
from pcapconstrictor.grammar import load_policy, shipped_policy_path  # noqa: E402


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    build = build_description()  # compiled with mypyc, or pure Python
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}; {build}"


def offline_rows(count: int, workdir: str) -> list[tuple[str, str, str]]:
    rows = []
    kinds = (("mix", "TLS+QUIC+other mix"), ("tls", "bulk TLS only"), ("plain", "non-TLS/QUIC only"))
    for kind, label in kinds:
        path = os.path.join(workdir, f"bench_{kind}_{count}.pcap")
        if not os.path.exists(path):
            build(kind, count, path)
        m = measure(path)
        rows.append((f"offline, {label} ({m['packets']:,} packets)",
                     f"{m['ours_pps']:,.0f} pkt/s", f"ratio {m['ratio']:.2f} vs struct loop "
                     f"{m['reference_pps']:,.0f} pkt/s (target >= 0.4; 500k pkt/s)"))  # fmt: skip
    return rows


def startup_rows() -> list[tuple[str, str, str]]:
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pcapconstrictor.engine", "--help"],
                       check=True, capture_output=True)  # fmt: skip
        best = min(best, time.perf_counter() - t)
    # policy load in a fresh interpreter: lark builds its parser from the grammar
    code = ("import time;from pcapconstrictor.grammar import load_policy,shipped_policy_path,build_evaluator;"
            "from pcapconstrictor.engine.config import parse_config_text;t=time.perf_counter();"
            "build_evaluator(load_policy(shipped_policy_path('final_only')),parse_config_text('','c'));"
            "print(time.perf_counter()-t)")  # fmt: skip
    load = min(float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                    text=True).stdout) for _ in range(3))  # fmt: skip
    return [
        ("start-up: --help (fresh interpreter)", f"{best * 1000:.0f} ms", "target < 150 ms"),
        ("policy load: lark parse + check + compile", f"{load * 1000:.0f} ms", "target < 50 ms"),
    ]


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def memory_rows(count: int) -> list[tuple[str, str, str]]:
    """RSS after count/10 and after count packets of new flows, flow tables bounded."""
    # the bound must fill within the first tenth, or the figure measures tables still growing to it
    text = CONFIG.format(policy="final_only") + "\n[general]\nmax_flows = 10000\n"
    config = parse_config_text(text, "<bench>")
    with PcapWriter("/dev/null", 262144) as writer:
        pipeline = make_pipeline(load_policy(shipped_policy_path("final_only")), config, writer)
        frames = replay("mix", count)
        pipeline.run(frames, count // 10)
        first = rss_kib()
        pipeline.run(frames)
        last = rss_kib()
        stats = pipeline.stats()
    growth = (last - first) / first * 100
    return [(f"memory: RSS after {count // 10:,} vs {count:,} packets",
             f"{first / 1024:.0f} -> {last / 1024:.0f} MiB ({growth:+.1f} %)",
             f"target within 10 %; {stats.flow_evictions:,} flow evictions "
             "(max_flows 10000)")]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="10x fewer packets")
    ap.add_argument("--workdir", default="/tmp", help="where the generated PCAPs are kept")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--skip-batch", action="store_true", help="leave out bench/batch.py (~2 minutes)")
    args = ap.parse_args()
    count = 100_000 if args.quick else 1_000_000
    rows = offline_rows(count, args.workdir) + startup_rows()
    rows += memory_rows(count if args.quick else 10_000_000)
    if not args.skip_batch:
        from batch import batch_rows  # bench/batch.py: --jobs 1, --jobs 2, a local Dask cluster

        rows += batch_rows(8, 50_000 if args.quick else 200_000, args.workdir)
    if not args.skip_live:
        rows += live_rows()
    print(f"machine: {machine()}")
    print(f"peak RSS of this run: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB\n")
    print("| benchmark | figure | notes |")
    print("|---|---|---|")
    for name, figure, note in rows:
        print(f"| {name} | {figure} | {note} |")


def live_rows() -> list[tuple[str, str, str]]:
    try:
        from live import live_rows as rows  # bench/live.py: veth flood, zero-drop search
    except ImportError:
        return [("live capture", "not measured", "bench/live.py not present")]
    return rows()


if __name__ == "__main__":
    main()
