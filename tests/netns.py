"""Two network namespaces joined by a veth pair, and the processes tests run in them.

``capture`` holds ``cap0`` (198.18.0.1, fd00:198:18::1) where the recorder and
tcpdump run; ``peer`` holds ``peer0`` (198.18.0.2, fd00:198:18::2) where the
traffic comes from.  MAC addresses and neighbours are static so no ARP or
neighbour discovery runs; addresses are only from 198.18.0.0/15 and fd00::/8.
Namespace names carry the pid and a counter; :meth:`Netns.close` deletes them
(and with them the veth pair) and kills every process it started.
"""

from __future__ import annotations

import itertools
import os
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRAFFIC = HERE / "live_traffic.py"
CAP_IF, PEER_IF = "cap0", "peer0"
CAP_MAC, PEER_MAC = "02:00:c6:12:00:01", "02:00:c6:12:00:02"
CAP4, PEER4 = "198.18.0.1", "198.18.0.2"
CAP6, PEER6 = "fd00:198:18::1", "fd00:198:18::2"
TCPDUMP_OPTIONS = ("-n", "-U", "-s", "0", "--immediate-mode", "-B", "65536", "-Z", "root")
"""tcpdump's options wherever it records or judges a test's traffic: no name lookups, each packet
written at once and whole (``-s 0``: tcpdump's default snap length, 262,144), and a large buffer
(64 MiB): in immediate mode each ring block leaves nearly empty, and with 16 MiB tcpdump dropped
frames in 3 of 40 runs of one test with both CPUs loaded."""
_COUNTER = itertools.count()
_QUIET_IPV6 = """
for key in ("router_solicitations", "accept_dad", "dad_transmits"):
    with open(f"/proc/sys/net/ipv6/conf/default/{key}", "w") as knob:
        knob.write("0")
"""


def netns_unavailable() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "live capture tests need root (network namespaces, CAP_NET_RAW)"
    for tool in ("ip", "tcpdump", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian packages iproute2, tcpdump, openssl)"
    name = f"pcc-probe-{os.getpid()}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if probe.returncode:
        return f"cannot create a network namespace: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    if result.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {result.stderr.strip()}")


class Netns:
    def __init__(self) -> None:
        tag = f"{os.getpid()}-{next(_COUNTER)}"
        self.capture, self.peer = f"pcc-cap-{tag}", f"pcc-peer-{tag}"
        self.processes: list[subprocess.Popen] = []
        self._created: list[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        for ns in (self.capture, self.peer):
            _ip("netns", "add", ns)
            self._created.append(ns)
            # No router solicitations or DAD: nothing but the test's own traffic on the link.
            self.exec(ns, sys.executable, "-c", _QUIET_IPV6)
            _ip("link", "set", "lo", "up", ns=ns)
        _ip("link", "add", CAP_IF, "netns", self.capture, "address", CAP_MAC, "type", "veth",
            "peer", "name", PEER_IF, "netns", self.peer, "address", PEER_MAC)  # fmt: skip
        for ns, dev, a4, a6, other4, other6, other_mac in (
            (self.capture, CAP_IF, CAP4, CAP6, PEER4, PEER6, PEER_MAC),
            (self.peer, PEER_IF, PEER4, PEER6, CAP4, CAP6, CAP_MAC),
        ):
            _ip("addr", "add", f"{a4}/24", "dev", dev, ns=ns)
            _ip("addr", "add", f"{a6}/64", "dev", dev, "nodad", ns=ns)
            _ip("link", "set", dev, "up", ns=ns)
            _ip("neigh", "replace", other4, "lladdr", other_mac, "dev", dev, "nud", "permanent", ns=ns)
            _ip("neigh", "replace", other6, "lladdr", other_mac, "dev", dev, "nud", "permanent", ns=ns)

    def exec(self, ns: str, *argv: str, timeout: float = 30, check: bool = True):
        result = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, timeout=timeout)
        if check and result.returncode:
            raise RuntimeError(f"{argv}: {result.stderr.decode(errors='replace')}")
        return result

    def start(self, ns: str, *argv: str, **kwargs) -> subprocess.Popen:
        """A process in ``ns`` (``ip netns exec`` execs it: the pid is the program's)."""
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        process = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kwargs)
        self.processes.append(process)
        return process

    def traffic(self, ns: str, *args: str, timeout: float = 30) -> str:
        result = self.exec(ns, sys.executable, str(TRAFFIC), *args, timeout=timeout, check=False)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout.decode()

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            for stream in (process.stdout, process.stderr, process.stdin):
                if stream is not None:
                    stream.close()
        for ns in self._created:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        self._created.clear()


def wait_for_line(process: subprocess.Popen, stream_name: str, needle: str, timeout: float = 20) -> str:
    """Read ``process.<stream_name>`` until a line contains ``needle``; return what was read."""
    stream = getattr(process, stream_name)
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while needle.encode() not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise AssertionError(f"no {needle!r} within {timeout}s; got {seen!r}")
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"{stream_name} closed before {needle!r}; got {seen!r}")
            seen += chunk
    return seen.decode(errors="replace")


def start_tcpdump(ns: Netns, interface: str, output: Path, *expression: str) -> subprocess.Popen:
    """tcpdump in the capture namespace on ``interface`` writing ``output``, listening once this
    returns; ``expression``: a capture filter's words."""
    argv = ("tcpdump", "-i", interface, "-w", str(output), *TCPDUMP_OPTIONS, *expression)
    tcpdump = ns.start(ns.capture, *argv)
    wait_for_line(tcpdump, "stderr", "listening on")
    return tcpdump


def stop(process: subprocess.Popen, signum: int = signal.SIGINT, timeout: float = 10) -> tuple[str, str]:
    """Signal, wait, and return the rest of stdout and stderr."""
    process.send_signal(signum)
    out, err = process.communicate(timeout=timeout)
    return out.decode(errors="replace"), err.decode(errors="replace")


# --- an independent classic PCAP reader (plain struct, not the code under test) --------------


@dataclass(frozen=True)
class Record:
    ts_us: int
    incl_len: int
    orig_len: int
    data: bytes


def read_pcap(path: Path) -> tuple[tuple[int, ...], list[Record]]:
    """(magic, major, minor, zone, sigfigs, snaplen, linktype), records of a LE µs file."""
    raw = path.read_bytes()
    header = struct.unpack_from("<IHHiIII", raw, 0)
    assert header[0] == 0xA1B2C3D4, f"{path}: not a little-endian microsecond PCAP"
    records = []
    at = 24
    while at < len(raw):
        sec, usec, incl, orig = struct.unpack_from("<IIII", raw, at)
        data = raw[at + 16 : at + 16 + incl]
        assert len(data) == incl, f"{path}: record at {at} is cut short"
        records.append(Record(sec * 1_000_000 + usec, incl, orig, data))
        at += 16 + incl
    return header, records


def stats_block(stdout: str) -> dict[str, int]:
    """The ``key: value`` lines after ``Final stats:``."""
    lines = stdout.split("Final stats:\n", 1)[1].splitlines()
    return {key: int(value) for key, value in (line.split(": ") for line in lines)}
