"""Batch throughput (issue 19): files/s and packets/s of ``batch --jobs 1``, ``--jobs 2`` and a
local Dask cluster of two single-threaded workers, on the same set of benchmark captures.

Each figure is the wall time of the whole command (start-up included), best of ``--repeat``.
Target: ``--jobs 2`` at least 1.7x ``--jobs 1`` on a 2-core machine.  Runs alone:
``python bench/batch.py`` (``--quick``: smaller files).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from make_mix import build  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "config.ini"


def make_set(folder: Path, files: int, packets: int) -> None:
    """``files`` captures of the TLS+QUIC+other mix (copies of one: the same work each)."""
    folder.mkdir(parents=True, exist_ok=True)
    first = folder / "mix_00.pcap"
    if not first.exists():
        build("mix", packets, str(first))
    for i in range(1, files):
        if not (folder / f"mix_{i:02}.pcap").exists():
            shutil.copyfile(first, folder / f"mix_{i:02}.pcap")


def timed_batch(inputs: Path, out: Path, *where: str, repeat: int) -> tuple[float, dict]:
    best, summary = float("inf"), {}
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pcapconstrictor.engine", "batch", "--json",
                                 "--config", str(CONFIG), "--output-dir", str(out), *where, str(inputs)],
                                capture_output=True, check=True)  # fmt: skip
        seconds = time.perf_counter() - start
        if seconds < best:
            best, summary = seconds, json.loads(result.stdout)
    return best, summary


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dask_cluster(folder: Path) -> tuple[str, list[subprocess.Popen]]:
    """A scheduler and two workers (1 process, 1 thread each) on 127.0.0.1; the caller stops them."""
    from distributed import Client

    dask = str(Path(sys.executable).parent / "dask")
    address = f"tcp://127.0.0.1:{_free_port()}"
    log = open(folder / "dask.log", "ab")  # noqa: SIM115 - lives as long as the cluster
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               "--no-dashboard"], stdout=log, stderr=log)]  # fmt: skip
    for _ in range(2):
        worker = [dask, "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                  "--host", "127.0.0.1", "--local-directory", str(folder)]  # fmt: skip
        procs.append(subprocess.Popen(worker, stdout=log, stderr=log))
    with Client(address, timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
    return address, procs


def batch_rows(files: int, packets: int, workdir: str, repeat: int = 2) -> list[tuple[str, str, str]]:
    folder = Path(workdir) / f"bench_batch_{files}x{packets}"
    make_set(folder / "in", files, packets)
    label = f"{files} files x {packets:,} packets"
    rows, seconds = [], {}
    runs = [("--jobs 1", ("--jobs", "1")), ("--jobs 2", ("--jobs", "2"))]
    for name, where in runs:
        seconds[name], summary = timed_batch(folder / "in", folder / "out", *where, repeat=repeat)
        rows.append(_row(f"batch {name} ({label})", seconds[name], summary, ""))
    speedup = seconds["--jobs 1"] / seconds["--jobs 2"]
    rows[-1] = rows[-1][:2] + (f"{speedup:.2f}x --jobs 1 (target >= 1.7x)",)
    try:
        import distributed  # noqa: F401
    except ImportError:
        return rows + [("batch, Dask (2 workers)", "not measured", "pip install '.[dask]'")]
    address, procs = dask_cluster(folder)
    try:
        took, summary = timed_batch(folder / "in", folder / "out", "--scheduler", address, repeat=repeat)
        rows.append(_row(f"batch, local Dask cluster, 2 workers ({label})", took, summary,
                         f"{seconds['--jobs 1'] / took:.2f}x --jobs 1"))  # fmt: skip
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    return rows


def _row(name: str, seconds: float, summary: dict, note: str) -> tuple[str, str, str]:
    return (name, f"{summary['done'] / seconds:.2f} files/s, {summary['packets'] / seconds:,.0f} pkt/s",
            note or f"{seconds:.2f} s wall, start-up included")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="files of 50,000 packets instead of 200,000")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores")
    print("| benchmark | figure | notes |")
    print("|---|---|---|")
    for name, figure, note in batch_rows(args.files, 50_000 if args.quick else 200_000, args.workdir):
        print(f"| {name} | {figure} | {note} |")


if __name__ == "__main__":
    main()
