"""One entry point for every benchmark figure (issue 5, issue 21): ``python bench/run.py``.

Prints a Markdown table.  Offline figures, per input: ours (compiled and pure Python, as whole
commands), ``tcpdump -r IN -w OUT`` and a bare struct read/rewrite loop, medians of alternating
runs (bench/compare.py).  This interpreter's install is measured as what it is (compiled or
pure); ``--compiled-python`` / ``--pure-python`` name the interpreter of the other build.
Start-up: a run on a 1-packet file (policy cache warm and cold) and ``--help``.
``--quick`` uses 10x fewer packets.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from analyzer_cost import cost_rows  # noqa: E402
from compare import compare_rows  # noqa: E402
from make_mix import build, replay  # noqa: E402
from offline import CONFIG  # noqa: E402
from protocol_inputs import SECTIONS, build_protocol, to_pcapng  # noqa: E402

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


# flow budgets on (docs/configuration.md "Flow budgets"): 64 KiB per flow direction kept whole
BUDGET_SECTION = "\n[flow]\nbudget_bytes = 65536\nbudget_keep_bytes = 0\n"
# a pcapng input gives a pcapng output by default: classic PCAP, as tcpdump -w and the struct loop write
PCAP_OUTPUT = "\n[capture]\nformat = pcap\n"
KINDS = (
    ("mix", "TLS+QUIC+other mix"), ("tls", "bulk TLS only"), ("plain", "non-TLS/QUIC only"),
    ("mix.pcapng", "TLS+QUIC+other mix as pcapng"), ("mix", "TLS+QUIC+other mix, flow budget 64 KiB"),
    ("wireguard", "WireGuard transport data"), ("esp", "IPsec ESP"),
    ("ssh", "SSH (key exchange, then encrypted)"),
    ("dtls", "DTLS 1.2 (hellos, then Application Data)"),
)  # fmt: skip


def input_file(kind: str, count: int, workdir: str) -> str:
    """The generated input of ``kind`` (built once and kept in ``workdir``)."""
    base, _, ext = kind.partition(".")
    path = os.path.join(workdir, f"bench_{base}_{count}.{ext or 'pcap'}")
    if not os.path.exists(path):
        if ext == "pcapng":
            to_pcapng(input_file(base, count, workdir), path)
        elif kind in SECTIONS:
            build_protocol(kind, count, path)
        else:
            build(kind, count, path)
    return path


def offline_rows(count: int, workdir: str, pythons: dict[str, str], rounds: int) -> list[tuple[str, ...]]:
    rows = []
    for kind, label in KINDS:
        extra = SECTIONS.get(kind, BUDGET_SECTION if "budget" in label else "")
        extra += PCAP_OUTPUT if kind.endswith(".pcapng") else ""
        rows += compare_rows(f"offline, {label}", input_file(kind, count, workdir), count, pythons, workdir,
                             rounds, extra)  # fmt: skip
    for kind, label in KINDS[:3]:  # the same work without the page cache's share (bench/compare.py)
        rows += compare_rows(f"offline to /dev/null, {label}", input_file(kind, count, workdir), count,
                             pythons, workdir, rounds, sink="null")  # fmt: skip
    return rows


def _median_ms(argv: list[str], runs: int, env: dict | None = None, remove: str | None = None) -> float:
    """Median CPU time (user + system) of a fresh process: less noisy than wall time on a shared machine."""
    times = []
    for _ in range(runs):
        if remove and os.path.exists(remove):
            os.unlink(remove)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, check=True, capture_output=True, env=env)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        times.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times) * 1000


def startup_rows(workdir: str, runs: int = 9) -> list[tuple[str, str, str]]:
    """A whole run on a 1-packet file (the policy cache warm, then off) and --help, fresh interpreters."""
    one = os.path.join(workdir, "bench_one_packet.pcap")
    build("mix", 1, one)
    out = os.path.join(workdir, "bench_one_packet_out.pcap")
    config = os.path.join(workdir, "bench_startup.ini")
    with open(config, "w") as f:
        f.write(CONFIG.format(policy="final_only") + f"\n[capture]\noutput = {out}\n")
    run = [sys.executable, "-m", "pcapconstrictor.engine", "--config", config, "--offline-input", one]
    # as installed: the bytecode cached (the first run writes what an editable install lacks)
    plain = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as cache:
        env = {**plain, "XDG_CACHE_HOME": cache}
        subprocess.run(run, check=True, capture_output=True, env=env)  # fills the cache
        os.unlink(out)
        warm = _median_ms(run, runs, env, out)
        cold = _median_ms(run, max(3, runs // 3), {**env, "PCAPCONSTRICTOR_NO_CACHE": "1"}, out)
    help_ms = _median_ms([sys.executable, "-m", "pcapconstrictor.engine", "--help"], runs, plain)
    bare = _median_ms([sys.executable, "-c", "pass"], runs, plain)
    return [
        ("start-up: run on a 1-packet file, policy cache warm", f"{warm:.0f} ms",
         f"target < 60 ms; CPU time, median of {runs}"),
        ("start-up: run on a 1-packet file, no policy cache", f"{cold:.0f} ms", "rule files parsed (lark)"),
        ("start-up: --help (fresh interpreter)", f"{help_ms:.0f} ms", "target < 150 ms"),
        ("start-up: python -c pass", f"{bare:.0f} ms", "the interpreter alone, for scale"),
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
    ap.add_argument("--compiled-python", help="interpreter of a mypyc-compiled install")
    ap.add_argument("--pure-python", help="interpreter of a pure-Python install")
    ap.add_argument("--rounds", type=int, default=5, help="alternating runs per input (median)")
    args = ap.parse_args()
    count = 100_000 if args.quick else 1_000_000
    this = "pure" if build_description().startswith("pure") else "compiled"
    chosen = {"compiled": args.compiled_python, "pure": args.pure_python, this: sys.executable}
    pythons = {label: chosen[label] for label in ("compiled", "pure") if chosen[label]}
    rows = offline_rows(count, args.workdir, pythons, args.rounds)
    rows += cost_rows(input_file("mix", count, args.workdir), pythons, max(args.rounds, 9))
    rows += startup_rows(args.workdir)
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
