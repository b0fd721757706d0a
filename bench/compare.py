"""Ours against ``tcpdump -r IN -w OUT`` and a bare struct loop, per input (issue 21).

Each round runs every contender once, in turn (ours compiled, ours pure, tcpdump, struct
loop, then again), so a slow moment of a shared machine hits all of them; the figure is
the median of the rounds.  Ours and tcpdump are whole commands (start-up included, what a
user waits for); the struct loop runs in this process.  Also the synthetic inputs of the
protocols beyond TLS/QUIC (WireGuard transport data, IPsec ESP).
"""

from __future__ import annotations

import os
import shutil
import statistics
import struct
import subprocess
import time

from offline import CONFIG, reference

from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter

PROTOCOL_SECTIONS = "\n[wireguard]\nenabled = true\n[ipsec]\nenabled = true\n"
_ETH_IPV4 = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"


def _ipv4(proto: int, payload: bytes, flow: int) -> bytes:
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                         bytes((198, 18, 0, 1)), bytes((198, 19, flow >> 8 & 255, flow & 255)))  # fmt: skip
    return _ETH_IPV4 + header + payload


def protocol_frames(kind: str, count: int, size: int = 1000):
    """``wireguard``: transport data messages on UDP 51820; ``esp``: ESP in IP, 256 flows."""
    body = bytes(range(256)) * (size // 256 + 1)
    for n in range(count):
        flow = n % 256
        if kind == "wireguard":
            wg = struct.pack("<BxxxIQ", 4, flow, n) + body[:size]
            frame = _ipv4(17, struct.pack(">HHHH", 40000 + flow, 51820, 8 + len(wg), 0) + wg, flow)
        else:
            frame = _ipv4(50, struct.pack(">II", 0x1000 + flow, n + 1) + body[:size], flow)
        yield 1_700_000_000 * 10**9 + n * 1000, frame, len(frame)


def build_protocol(kind: str, count: int, out: str) -> None:
    with PcapWriter(out, 262144) as w:
        for ts, frame, orig in protocol_frames(kind, count):
            w.write(ts, frame, len(frame), orig)


def _timed(argv: list[str], env: dict | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - t


def compare_input(path: str, packets: int, pythons: dict[str, str], workdir: str, rounds: int = 5,
                  extra_config: str = "") -> list[tuple[str, float]]:
    """``(contender, median seconds)`` for one input; the contenders alternate within a round."""
    config = os.path.join(workdir, "bench_compare.ini")
    out = os.path.join(workdir, "bench_compare_out.pcap")
    with open(config, "w") as f:
        f.write(CONFIG.format(policy="final_only") + extra_config)
    runs: dict[str, list[float]] = {}
    tcpdump = shutil.which("tcpdump")
    for _ in range(rounds):
        for label, python in pythons.items():
            if os.path.exists(out):
                os.unlink(out)
            argv = [python, "-m", "pcapconstrictor.engine", "--config", config, "--offline-input", path,
                    "--output", out]  # fmt: skip
            runs.setdefault(f"ours, {label}", []).append(_timed(argv))
        if tcpdump:
            runs.setdefault("tcpdump -r IN -w OUT", []).append(_timed([tcpdump, "-r", path, "-w", out]))
        t = time.perf_counter()
        reference(path, out)
        runs.setdefault("struct read/rewrite loop", []).append(time.perf_counter() - t)
    return [(label, statistics.median(times)) for label, times in runs.items()]


def compare_rows(label: str, path: str, packets: int, pythons: dict[str, str], workdir: str,
                 rounds: int, extra_config: str = "") -> list[tuple[str, str, str]]:
    medians = compare_input(path, packets, pythons, workdir, rounds, extra_config)
    base = dict(medians)
    rows = []
    for contender, seconds in medians:
        notes = []
        for ref in ("tcpdump -r IN -w OUT", "struct read/rewrite loop"):
            if contender.startswith("ours") and ref in base:
                notes.append(f"{base[ref] / seconds:.2f}x the speed of {ref.split(' ')[0]}")
        rows.append((f"{label} ({packets:,} packets): {contender}", f"{packets / seconds:,.0f} pkt/s",
                     "; ".join(notes) or f"median of {rounds} alternating runs"))  # fmt: skip
    return rows
