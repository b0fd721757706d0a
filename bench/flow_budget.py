"""Flow budgets (issue 17): what the flow analyzer costs per packet, what budgets save on
a plaintext bulk mix, and that a budget of 0 leaves the TLS/QUIC mix's cost unchanged.

``python bench/flow_budget.py [--count N]`` prints a Markdown table.  The bulk mix is
synthetic: HTTP-like downloads (a request, then 1448-byte segments with ACKs back) of sizes
from 2 KiB to 4 MiB, NFS-like UDP datagrams, and DNS queries and answers (exempt port 53).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from make_mix import build  # noqa: E402

from pcapconstrictor.engine.config import output_snaplen, parse_config_text  # noqa: E402
from pcapconstrictor.engine.run.pipeline import make_pipeline  # noqa: E402
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter  # noqa: E402
from pcapconstrictor.engine.sources.pcap_reader import PcapReader  # noqa: E402
from pcapconstrictor.formats import ethernet, ip, transport  # noqa: E402
from pcapconstrictor.grammar import load_policy, shipped_policy_path  # noqa: E402

MSS = 1448
SIZES = (2048, 16384, 65536, 262144, 1 << 20, 4 << 20)  # download sizes, each equally likely


def _frame(proto: int, src: bytes, dst: bytes, segment: bytes) -> bytes:
    packet = ip.ipv4_header.build(dict(
        version_ihl=dict(version=4, ihl=5), tos=0, total_length=20 + len(segment), identification=0,
        flags_fragment=dict(reserved=0, dont_fragment=1, more_fragments=0, fragment_offset=0),
        ttl=64, protocol=proto, header_checksum=0, src=src, dst=dst,
    ))  # fmt: skip
    eth = ethernet.ethernet_header.build(dict(dst=b"\x02" * 6, src=b"\x04" * 6, ethertype=0x0800))
    return eth + packet + segment


def tcp_frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, flags: int, payload: bytes) -> bytes:
    """An Ethernet frame of one IPv4 TCP segment (also bench/flow_flood.py's scan)."""
    header = transport.tcp_header.build(dict(
        src_port=sport, dst_port=dport, seq=seq % 2**32, ack=1,
        offset_reserved=dict(data_offset=5, reserved=0), flags=flags, window=65535, checksum=0,
        urgent_pointer=0,
    ))  # fmt: skip
    return _frame(ip.IPPROTO_TCP, src, dst, header + payload)


def _udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    header = transport.udp_header.build(dict(src_port=sport, dst_port=dport, length=8 + len(payload),
                                             checksum=0))  # fmt: skip
    return _frame(ip.IPPROTO_UDP, src, dst, header + payload)


def bulk_mix(count: int, seed: int = 17):
    """``count`` frames of plaintext bulk traffic, in flow order."""
    rng = random.Random(seed)
    body = bytes(rng.getrandbits(8) for _ in range(MSS))
    client, server = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
    written, ts, port = 0, 0, 20000
    while written < count:
        port = 20000 + (port + 1) % 40000
        ts += 1000
        kind = rng.random()
        if kind < 0.1:  # a DNS query and its answer
            frames = [_udp(client, server, port, 53, body[:40]), _udp(server, client, 53, port, body[:300])]
        elif kind < 0.2:  # NFS-like: 64 datagrams of 8 KiB-ish
            frames = [_udp(client, server, port, 2049, body * 5) for _ in range(64)]
        else:  # an HTTP download
            size = rng.choice(SIZES)
            syn = transport.TCP_FLAG_SYN
            request = b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n"
            frames = [tcp_frame(client, server, port, 80, 0, syn, b""),
                      tcp_frame(server, client, 80, port, 0, syn | 0x10, b""),
                      tcp_frame(client, server, port, 80, 1, 0x18, request)]  # fmt: skip
            for at in range(0, size, MSS):
                frames.append(tcp_frame(server, client, 80, port, 1 + at, 0x18, body[: min(MSS, size - at)]))
                if at // MSS % 2:
                    frames.append(tcp_frame(client, server, port, 80, 33, 0x10, b""))
        for frame in frames:
            if written == count:
                return
            ts += 10_000
            yield ts, frame, len(frame)
            written += 1


def run(path: str, config_text: str, policy_path: str) -> tuple[float, int, int, int]:
    """(seconds, packets, bytes in, bytes out) of the offline pipeline, best of 3."""
    config = parse_config_text(config_text, "<bench>")
    rules = load_policy(policy_path)
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(3):
            t = time.perf_counter()
            with PcapReader(path) as reader, PcapWriter(os.path.join(tmp, "o.pcap"),
                                                        output_snaplen(config)) as writer:  # fmt: skip
                pipeline = make_pipeline(rules, config, writer)
                for batch in reader.batches():
                    pipeline.run_batch(batch)
            best = min(best, time.perf_counter() - t)
    return best, pipeline.packets, pipeline.bytes_input, pipeline.bytes_output


def _base_rules(tmp: str) -> str:
    """The shipped rule files before issue 17 (git), for the budget-off comparison."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for name in ("packet.rules", "final_only.rules", "tls_records.rules", "quic.rules"):
        text = subprocess.run(["git", "-C", root, "show", f"8b3b7c8:rules/{name}"], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip
        with open(os.path.join(tmp, name), "w") as f:
            f.write(text)
    return os.path.join(tmp, "final_only.rules")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=300_000)
    args = ap.parse_args()
    base = "[capture]\ndefault_snaplen = 262144\nmax_capture_len = 262144\n"
    shipped = shipped_policy_path("final_only")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bulk = os.path.join(tmp, "bulk.pcap")
        with PcapWriter(bulk, 262144) as w:
            for ts, frame, orig in bulk_mix(args.count):
                w.write(ts, frame, len(frame), orig)
        off, n, bytes_in, _ = run(bulk, base, shipped)
        counting, *_ = run(bulk, base + f"[flow]\nbudget_bytes = {1 << 60}\n", shipped)
        rows.append(("flow analyzer, cost per packet (budget never reached)",
                     f"{(counting - off) / n * 1e6:.2f} µs",
                     f"{n} packets; off: {off / n * 1e6:.2f} µs/packet"))
        for label, budget in (("4 KiB", 4096), ("64 KiB", 65536), ("1 MiB", 1 << 20)):
            _, _, _, out = run(bulk, base + f"[flow]\nbudget_bytes = {budget}\n", shipped)
            rows.append((f"budget {label}, bulk mix saved", f"{100 * (1 - out / bytes_in):.1f} %",
                         f"{bytes_in / 1e6:.0f} MB in, {out / 1e6:.1f} MB out, budget_keep_bytes = 0"))
        mix = os.path.join(tmp, "mix.pcap")
        build("mix", args.count, mix)
        before, n, *_ = run(mix, base, _base_rules(tmp))
        after, *_ = run(mix, base, shipped)
        rows.append(("TLS/QUIC mix, budget 0: before -> after issue 17",
                     f"{(after / before - 1) * 100:+.1f} %", f"{n} packets, {before:.2f} s -> {after:.2f} s"))
    print("| benchmark | figure | notes |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
