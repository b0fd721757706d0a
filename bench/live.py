"""Live capture figures (issue 5): the highest rate each capturer records with no loss.

    sudo python bench/live.py [--seconds 3] [--budget 270]

A veth pair joins two throw-away network namespaces (198.18.0.0/15 addresses; IPv6 off, so
nothing else is on the link).  In one, a small C sender (bench/blaster.c, compiled with gcc
into a temporary directory) writes 64-byte Ethernet/IPv4/UDP frames of 256 flows at a set
rate, plain UDP (decoded, classified and cut by the rules; no TLS/QUIC analysis) or, in one
row, with every other flow to UDP 443 carrying QUIC-shaped short headers, which the QUIC
analyzer parses.  The TLS rows send 576-byte TCP segments from port 443 of 256 connections,
each one whole TLS record in sequence (a Handshake record first, then Application Data), so
the TLS analyzer walks every record and the rules cut every segment after the first (to the
default 256 bytes of the record); tcpdump writes them whole.  They are addressed to a MAC
the receiver does not own, as mirrored traffic is, so its IP stack drops them at once and
capturing is the only work they make.  In the other namespace the recorder (default config
but for backend and workers, output on disk) or ``tcpdump -w`` captures them.

A step passes when the recorder reports 0 kernel drops *and* has every frame sent in its
file(s) SETTLE seconds after the last one was sent, so its 64 MiB ring cannot hide a
backlog; tcpdump passes on its own "packets dropped by kernel" being 0 (its 2 MiB buffer
hides little, and on SIGINT it leaves its last ring block unread).  From a start rate each
pass raises the rate by 25 % until a step fails (or the sender can go no faster), then up
to three bisections narrow it.

The sender is pinned to CPU 0, and the kernel's delivery of each frame to the capture
sockets runs there too.  A capturer gets the other CPUs when it has no more processes than
there are; otherwise (workers=2 on 2 cores) it may use every CPU and competes with the
sender, which then sends less than asked: what it achieved is what is reported.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BLASTER_SOURCE = HERE / "blaster.c"
FLOWS = 256
TX_IF, RX_IF = "pcbtx0", "pcbrx0"
TX4, RX4 = "198.18.0.2", "198.18.0.1"
OTHER_MAC = "02:00:c6:12:00:99"  # not the receiver's: its frames arrive as PACKET_OTHERHOST
SECONDS = 4.0  # of traffic per step
SETTLE = 0.3  # after the last frame: longer than a ring block's 64 ms timeout
STEP = 1.25
SENDER_SLACK = 0.97  # a sender below this share of the rate asked is the limit
BUDGET = 420.0  # seconds for the whole live section
CPUS = os.cpu_count() or 1


@dataclass(frozen=True)
class Capturer:
    label: str
    backend: str | None  # None: tcpdump -w
    workers: int
    start: int  # the first rate tried, frames/s
    target: int  # issue 5's zero-drop target; 0: none (the comparison)
    quic_every: int = 0  # every n-th flow QUIC-shaped to UDP 443; 0: plain UDP only
    tls: bool = False  # TLS Application Data segments on established-looking connections

    @property
    def has_own_cpus(self) -> bool:
        """CPU 0 is the sender's; the capturer's processes get the others if there are enough."""
        return self.workers <= CPUS - 1


CAPTURERS = (
    Capturer("tpacket_v3, workers=1", "tpacket_v3", 1, 400_000, 400_000),
    Capturer("tpacket_v3, workers=2", "tpacket_v3", 2, 400_000, 400_000),
    Capturer("recvmsg, workers=1", "recvmsg", 1, 150_000, 150_000),
    Capturer("tcpdump -w (same setup)", None, 1, 400_000, 0),
    Capturer("tpacket_v3, workers=1, half the flows QUIC-shaped", "tpacket_v3", 1, 300_000, 0, quic_every=2),
    Capturer("TLS application data, tpacket_v3, workers=1", "tpacket_v3", 1, 300_000, 0, tls=True),
    Capturer("TLS application data, recvmsg, workers=1", "recvmsg", 1, 150_000, 0, tls=True),
    Capturer("TLS application data, tcpdump -w", None, 1, 300_000, 0, tls=True),
)
TLS_FRAME = 576  # bytes of a TLS-mode frame (blaster.c's TLS_FRAME_LEN)


@dataclass
class Step:
    rate: int  # asked of the sender
    sent: int
    seconds: float
    captured: int  # frames in the capturer's file(s)
    drops: int  # the capturer's own kernel drop count
    judge_written: bool = True  # also require every frame sent to be written
    cut: int = -1  # the recorder's tls_appdata_constricted count (-1: not known)
    cpu: float = 0.0  # the capturer's CPU seconds (user + system), start-up included

    @property
    def achieved(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def passed(self) -> bool:
        return self.sent > 0 and self.drops == 0 and (self.captured >= self.sent or not self.judge_written)

    @property
    def sender_limited(self) -> bool:
        return self.achieved < self.rate * SENDER_SLACK

    def failure(self) -> str:
        if self.drops:
            return f"{self.drops:,} kernel drops"
        return f"{self.sent - self.captured:,} frames not yet written after {SETTLE:g} s"


def unavailable() -> str | None:
    """Why the live benchmarks cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, AF_PACKET)"
    for tool in ("ip", "gcc", "taskset"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian packages iproute2, gcc, util-linux)"
    name = f"pcb-probe-{os.getpid()}"
    probe = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if probe.returncode:
        return f"cannot create a network namespace: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def _run(*argv: str, timeout: float = 30) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result.stdout


class LiveBench:
    """The two namespaces, the compiled sender and a scratch directory on disk; ``close()``
    (or leaving the ``with``) removes all of them and stops anything still running."""

    def __init__(self, seconds: float = SECONDS) -> None:
        self.seconds = seconds
        self.tx, self.rx = f"pcb-tx-{os.getpid()}", f"pcb-rx-{os.getpid()}"
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="pcb-live-", dir="/var/tmp"))  # /tmp may be in RAM
        self.blaster = self.tmp / "blaster"

    def __enter__(self) -> LiveBench:
        self._previous = signal.signal(signal.SIGTERM, _interrupt)  # unwind through close() as Ctrl+C does
        try:
            self._build()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
        signal.signal(signal.SIGTERM, self._previous)

    def _build(self) -> None:
        _run("gcc", "-O2", "-Wall", "-o", str(self.blaster), str(BLASTER_SOURCE), timeout=60)
        for ns in (self.tx, self.rx):
            _run("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                 "net.ipv6.conf.default.disable_ipv6=1")  # fmt: skip
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "link", "add", TX_IF, "netns", self.tx, "type", "veth", "peer", "name", RX_IF,
             "netns", self.rx)  # fmt: skip
        for ns, dev, address in ((self.tx, TX_IF, TX4), (self.rx, RX_IF, RX4)):
            _run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
        self.processes.clear()
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.namespaces.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def blast(self, rate: int, seconds: float, quic_every: int = 0, new_flows: bool = False,
              tls: bool = False) -> tuple[int, float]:  # fmt: skip
        """Send ``rate`` frames/s for ``seconds``; (frames sent, seconds it took).  ``new_flows``:
        every frame a new TLS flow (bench/flow_flood.py); ``tls``: TLS records on 256
        connections (blaster.c's MODE 2)."""
        count = max(1, int(rate * seconds))
        mode = 1 if new_flows else 2 if tls else 0
        out = _run("ip", "netns", "exec", self.tx, "taskset", "-c", "0", str(self.blaster), TX_IF, OTHER_MAC,
                   str(rate), str(count), str(seconds), str(FLOWS), str(quic_every), str(mode),
                   timeout=seconds * 2 + 30)  # fmt: skip
        sent, took = out.split()
        return int(sent), float(took)

    def step(self, capturer: Capturer, rate: int) -> Step:
        """One step: start the capturer, send, wait SETTLE, stop it, read its counts."""
        output = self.tmp / "live.pcap"
        if capturer.backend is None:
            argv = ["tcpdump", "-i", RX_IF, "-n", "-w", str(output)]
            ready, stream = "listening on", "stderr"
        else:
            config = self.tmp / "live.ini"
            config.write_text(f"[capture]\ninterface = {RX_IF}\nbackend = {capturer.backend}\n"
                              f"workers = {capturer.workers}\noutput = {output}\n")  # fmt: skip
            argv = [sys.executable, "-m", "pcapconstrictor.engine", "--config", str(config)]
            ready, stream = "Press Ctrl+C to stop.", "stdout"
        if capturer.has_own_cpus:
            argv = ["taskset", "-c", f"1-{CPUS - 1}", *argv]
        process = subprocess.Popen(["ip", "netns", "exec", self.rx, *argv], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)  # fmt: skip
        self.processes.append(process)
        try:
            _wait_for(process, stream, ready)
            sent, took = self.blast(rate, self.seconds, capturer.quic_every, tls=capturer.tls)
            time.sleep(SETTLE)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)  # the sender's already counted
            process.send_signal(signal.SIGINT)
            out, err = (s.decode(errors="replace") for s in process.communicate(timeout=60))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
            self.processes.remove(process)
            for path in self.tmp.glob("live.pcap*"):
                path.unlink()
        if capturer.backend is None:
            return Step(rate, sent, took, *_tcpdump_counts(err), judge_written=False, cpu=cpu)
        return Step(rate, sent, took, *_recorder_counts(out, err), cpu=cpu)


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def _wait_for(process: subprocess.Popen, stream_name: str, needle: str, timeout: float = 30) -> None:
    stream = getattr(process, stream_name)
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while needle.encode() not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise RuntimeError(f"capturer not ready in {timeout:g} s: {seen.decode(errors='replace')}")
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"capturer ended before it was ready: {seen.decode(errors='replace')}")
            seen += chunk


def _recorder_counts(out: str, err: str) -> tuple[int, int, bool, int]:
    if "Final stats:\n" not in out:
        raise RuntimeError(f"the recorder failed: {err.strip()}")
    stats = dict(line.split(": ", 1) for line in out.split("Final stats:\n", 1)[1].splitlines())
    cut = int(stats.get("tls_appdata_constricted", -1))
    return int(stats["packets_total"]), int(stats["kernel_drops"]), True, cut


def _tcpdump_counts(err: str) -> tuple[int, int]:
    """From tcpdump's exit summary: "N packets captured", "N packets dropped by kernel"."""
    counts = {}
    for line in err.splitlines():
        words = line.split(" ", 1)
        if len(words) == 2 and words[0].isdigit():
            counts[words[1]] = int(words[0])
    return counts["packets captured"], counts["packets dropped by kernel"]


@dataclass
class Search:
    capturer: Capturer
    steps: list[Step]

    @property
    def best(self) -> Step | None:
        passed = [s for s in self.steps if s.passed]
        return max(passed, key=lambda s: s.achieved) if passed else None

    @property
    def lowest_failure(self) -> Step | None:
        failed = [s for s in self.steps if not s.passed]
        return min(failed, key=lambda s: s.rate) if failed else None


def search(bench: LiveBench, capturer: Capturer, deadline: float, log=None) -> Search:
    """Step the rate up from ``capturer.start`` by STEP until a step fails or the sender is
    the limit (down by STEP while none passes), then bisect twice."""
    result = Search(capturer, [])
    rate = capturer.start
    bisections = 0
    while rate not in [s.rate for s in result.steps] and time.monotonic() + bench.seconds + 3 < deadline:
        step = bench.step(capturer, rate)
        result.steps.append(step)
        if log is not None:
            verdict = "pass" if step.passed else step.failure()
            log(f"  {capturer.label}: asked {rate:,}/s, sent {step.achieved:,.0f}/s, "
                f"captured {step.captured:,} of {step.sent:,}, {step.cpu:.1f} s CPU: {verdict}")  # fmt: skip
        best, failure = result.best, result.lowest_failure
        if failure is None:
            if step.sender_limited:
                break  # asking for more would not send more
            rate = int(round(rate * STEP, -3))
        elif best is None:
            rate = int(round(rate / STEP, -3))
            if rate < 10_000:
                break
        else:
            if bisections == 3 or failure.rate <= best.rate * 1.03:
                break
            bisections += 1
            rate = int(round((best.rate + failure.rate) / 2, -3))
    return result


def sender_alone(bench: LiveBench, tls: bool = False) -> float:
    """What the sender achieves with nothing capturing: its ceiling on this machine."""
    sent, took = bench.blast(5_000_000, 1.5, tls=tls)
    return sent / took


def row_for(result: Search) -> tuple[str, str, str]:
    capturer, best, failure = result.capturer, result.best, result.lowest_failure
    name = f"live, {capturer.label}: highest zero-drop rate"
    steps = f"{len(result.steps)} steps of {SECONDS:g} s"
    if best is None:
        where = f"lowest step, {failure.rate:,}/s: {failure.failure()}" if failure else "no step ran"
        return name, "below the lowest step", f"{where}; {steps}"
    figure = f"{best.achieved:,.0f} pkt/s"
    notes = [f"capturer CPU at that step {best.cpu / best.seconds:.0%} of one core"]
    if capturer.target:
        short = 1 - best.achieved / capturer.target
        verdict = "met" if short <= 0 else f"NOT met, {short:.0%} short"
        notes.append(f"target >= {capturer.target:,}: {verdict}")
    if failure is not None and failure.rate > best.rate:
        notes.append(f"asked {failure.rate:,}/s (sent {failure.achieved:,.0f}/s): {failure.failure()}")
    else:
        figure = f">= {figure}"
        top = max(result.steps, key=lambda s: s.rate)
        if top.sender_limited:
            notes.append(f"no step failed: the sender is the limit (asked {top.rate:,}/s, it sent "
                         f"{top.achieved:,.0f}/s)")  # fmt: skip
        else:
            notes.append("no step failed in the time given")
    if capturer.backend is None:
        notes.insert(0, 'judged by its exit summary: 0 "packets dropped by kernel"')
    elif capturer.tls and best.cut >= 0:
        notes.insert(0, f"TLS records cut at that step: {best.cut:,} of {best.sent:,} frames")
    if not capturer.has_own_cpus:
        notes.append(f"{capturer.workers} processes on {CPUS} cores: they share CPU 0 with the sender")
    return name, figure, "; ".join([*notes, steps])


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def live_rows(seconds: float = SECONDS, budget: float = BUDGET, log=progress,
              match: str = "") -> list[tuple[str, str, str]]:  # fmt: skip
    """The live section of bench/run.py's table (each step is logged to stderr); ``match``:
    only the capturers whose label it finds (a regular expression)."""
    reason = unavailable()
    if reason:
        return [("live capture", "not measured", reason)]
    capturers = [c for c in CAPTURERS if re.search(match, c.label)]
    skipped = []
    if shutil.which("tcpdump") is None:
        capturers = [c for c in capturers if c.backend is not None]
        skipped.append(("live, tcpdump -w", "not measured", "tcpdump is not installed"))
    rows = []
    started = time.monotonic()
    with LiveBench(seconds) as bench:
        sender_max = sender_alone(bench)
        rows.append(("live, the sender alone (nothing capturing)", f"{sender_max:,.0f} pkt/s",
                     f"64-byte frames, {FLOWS} UDP flows, AF_PACKET sendmmsg over veth, pinned to CPU 0; "
                     f"the capturers run beside it on the other {CPUS - 1} of {CPUS} cores"))  # fmt: skip
        if any(c.tls for c in capturers):
            rows.append(("live, the sender alone, TLS frames", f"{sender_alone(bench, tls=True):,.0f} pkt/s",
                         f"{TLS_FRAME}-byte TCP segments, one TLS record each, {FLOWS} connections"))
        for index, capturer in enumerate(capturers):
            share = (budget - (time.monotonic() - started)) / (len(capturers) - index)
            result = search(bench, capturer, time.monotonic() + share, log)
            rows.append(row_for(result))
    return rows + skipped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=SECONDS, help="traffic per step")
    ap.add_argument("--budget", type=float, default=BUDGET, help="seconds for all the searches")
    ap.add_argument("--match", default="", help="only the rows whose label this regex finds (e.g. TLS)")
    args = ap.parse_args()
    from run import machine  # bench/, the script's directory, is on sys.path

    rows = live_rows(args.seconds, args.budget, match=args.match)
    print(f"machine: {machine()}\n")
    print("| benchmark | figure | notes |\n|---|---|---|")
    for name, figure, notes in rows:
        print(f"| {name} | {figure} | {notes} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
