"""The batch command on a real Dask cluster (issue 19): a `dask scheduler` and two `dask worker`
processes on 127.0.0.1, started and stopped by these tests (their PIDs only)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import GOLDEN, GOLDEN_CASES, ROOT, run_cli

distributed = pytest.importorskip("distributed", reason="the Dask tests need the [dask] extra")

pytestmark = pytest.mark.slow  # starting the cluster alone takes ~15 s on 2 busy cores

CONFIG = ROOT / "examples" / "config.ini"
DASK = Path(sys.executable).parent / "dask"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A scheduler and two single-threaded workers without nannies (a killed worker stays dead)."""

    def __init__(self, folder: Path) -> None:
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.log = folder / "dask.log"
        self.processes: list[subprocess.Popen] = []
        self._start("scheduler", "--host", "127.0.0.1", "--port", self.address.rsplit(":", 1)[1],
                    "--no-dashboard")  # fmt: skip
        self.workers = [self._start("worker", self.address, "--nworkers", "1", "--nthreads", "1",
                                    "--no-nanny", "--no-dashboard", "--host", "127.0.0.1",
                                    "--worker-port", str(_free_port()), "--local-directory", str(folder))
                        for _ in range(2)]  # fmt: skip
        with distributed.Client(self.address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)

    def _start(self, *args: str) -> subprocess.Popen:
        with open(self.log, "ab") as log:
            proc = subprocess.Popen([str(DASK), *args], stdout=log, stderr=log, cwd="/")
        self.processes.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not DASK.exists():
        pytest.skip(f"the dask command is not installed beside {sys.executable}")
    folder = tmp_path_factory.mktemp("dask")
    started = None
    try:
        started = Cluster(folder)
        yield started
    finally:
        if started is not None:
            started.stop()


def single_run(input_path: Path, output: Path) -> bytes:
    result = run_cli("--config", str(CONFIG), "--offline-input", str(input_path), "--output", str(output))
    assert result.returncode == 0, result.stderr
    return output.read_bytes()


def test_dask_batch_writes_each_file_as_a_single_offline_run_would(cluster, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for case in GOLDEN_CASES:
        (inputs / f"{case}.pcap").write_bytes((GOLDEN / case / "input.pcap").read_bytes())
    (inputs / "broken.pcap").write_text("not a capture\n")
    result = run_cli("batch", "--json", "--config", str(CONFIG), "--output-dir", str(tmp_path / "out"),
                     "--scheduler", cluster.address, str(inputs))  # fmt: skip
    summary = json.loads(result.stdout)
    assert result.returncode == 1, result.stderr  # the broken file, reported back from a worker
    assert (summary["done"], summary["failed"]) == (3, 1)
    assert "unexpected EOF while reading PCAP global header" in summary["failures"][0]["error"]
    assert summary["packets"] == 14 + 41 + 130
    for case in GOLDEN_CASES:
        reference = single_run(GOLDEN / case / "input.pcap", tmp_path / f"{case}.reference.pcap")
        assert (tmp_path / "out" / f"{case}.pcap").read_bytes() == reference, case
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{c}.pcap" for c in GOLDEN_CASES)


def test_a_lost_workers_files_are_done_again_by_dask_and_stay_whole(cluster, tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    from make_mix import build

    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    build("mix", 60_000, str(inputs / "f0.pcap"))
    for i in range(1, 6):
        (inputs / f"f{i}.pcap").write_bytes((inputs / "f0.pcap").read_bytes())
    cmd = [sys.executable, "-m", "pcapconstrictor.engine", "batch", "--json", "--config", str(CONFIG),
           "--output-dir", str(out), "--scheduler", cluster.address, str(inputs)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(out.glob(".*.partial*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    victim = cluster.workers[0]
    os.kill(victim.pid, signal.SIGKILL)  # one worker lost in the middle of a file
    victim.wait(timeout=30)
    stdout, stderr = proc.communicate(timeout=300)
    summary = json.loads(stdout)
    assert proc.returncode == 0, stderr
    assert (summary["done"], summary["failed"]) == (6, 0)
    reference = single_run(inputs / "f0.pcap", tmp_path / "reference.pcap")
    assert sorted(p.name for p in out.iterdir()) == [f"f{i}.pcap" for i in range(6)]
    for i in range(6):
        assert (out / f"f{i}.pcap").read_bytes() == reference, i
