"""Helpers for issue 16's protocol tests: bulk traffic in a namespace, tcpdump, an offline
constrict of the capture, and tshark as the judge of what survived.

Every loop is bounded in bytes and time; every process is started through ``Netns`` so
``Netns.close`` kills it by pid.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from netns import Netns, Record, read_pcap, stop, wait_for_line

from conftest import run_cli

# A TCP sink that sends SIZE bytes to its first client and exits (bounded by a 20 s timeout).
BULK_SERVER = """
import socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(1); s.settimeout(20)
print("ready", flush=True)
c, _ = s.accept(); c.settimeout(20)
chunk = bytes(range(256)) * 64
sent = 0
while sent < size:
    c.sendall(chunk[: size - sent]); sent += min(len(chunk), size - sent)
c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
"""
BULK_CLIENT = """
import socket, sys
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = socket.create_connection((host, port), timeout=20)
got = 0
while got < size:
    data = c.recv(65536)
    if not data:
        break
    got += len(data)
c.close()
sys.exit(0 if got == size else 1)
"""


def need_tools(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (see .ci/run for the Debian packages)")


def bulk_tcp(ns: Netns, server_host: str, port: int, size: int) -> None:
    """``size`` bytes from a server in the peer namespace to a client in the capture one."""
    server = ns.start(ns.peer, sys.executable, "-c", BULK_SERVER, server_host, str(port), str(size))
    wait_for_line(server, "stdout", "ready")
    result = ns.exec(ns.capture, sys.executable, "-c", BULK_CLIENT, server_host, str(port), str(size),
                     timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    server.wait(timeout=20)


def stop_tcpdump(tcpdump: subprocess.Popen) -> None:
    """Stop it; a kernel drop only makes the input capture smaller, which these tests allow."""
    stop(tcpdump)


def constrict(tmp_path: Path, capture: Path, sections: str, name: str = "out") -> tuple[Path, dict[str, int]]:
    """Run the recorder offline on ``capture`` with ``sections`` added to a minimal config."""
    output = tmp_path / f"{name}.pcap"
    config = tmp_path / f"{name}.ini"
    config.write_text(f"[capture]\noutput = {output}\n{sections}")
    result = run_cli("--config", str(config), "--offline-input", str(capture))
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    lines = result.stdout.decode().split("\nstats:\n", 1)[-1].splitlines()
    return output, {k: int(v) for k, v in (line.split(": ", 1) for line in lines if ": " in line)
                    if v.isdigit()}  # fmt: skip


def tshark_fields(path: Path, display_filter: str, *fields: str, extra: tuple[str, ...] = ()) -> list[str]:
    """One line per packet matching ``display_filter``: the ``fields`` tab-separated."""
    need_tools("tshark")
    args = ["tshark", "-r", str(path), *extra, "-Y", display_filter, "-T", "fields"]
    for field in fields or ("frame.number",):
        args += ["-e", field]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def records(path: Path) -> list[Record]:
    return read_pcap(path)[1]


def assert_same_packets_and_wire_lengths(before: Path, after: Path) -> None:
    ins, outs = records(before), records(after)
    assert len(outs) == len(ins)
    assert [r.orig_len for r in outs] == [r.orig_len for r in ins]
    assert all(o.data == i.data[: o.incl_len] for o, i in zip(outs, ins, strict=True))


def byte_ratio(before: Path, after: Path) -> float:
    return after.stat().st_size / before.stat().st_size
