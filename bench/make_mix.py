"""Build benchmark PCAPs by replaying the golden fixtures' packets.

``mix``: all packets of the three golden inputs (TLS, QUIC, DNS, ARP, ...);
``tls``: only TCP/443 packets; ``plain``: only packets no analyzer looks at.
Each replay shifts ports per round so flows stay distinct and timestamps
increase; the result is ~N packets.
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

from pcapconstrictor.engine.analysis.decode import decode
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sources.pcap_reader import PcapReader

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_CASES = ("tls_test_2", "quic_test_2", "ipv6_ipv4_test_1")
INPUTS = [ROOT / "fixtures/golden" / c / "input.pcap" for c in GOLDEN_CASES]
INPUTS.append(ROOT / "fixtures/policies/tls_test_1/input.pcap")


def packets(kind: str):
    for path in INPUTS:
        with PcapReader(str(path)) as reader:
            for ts, data, orig in reader:
                d = decode(data, len(data))
                tls = d.tcp and 443 in (d.src_port, d.dst_port)
                quic = d.udp and 443 in (d.src_port, d.dst_port)
                if kind == "tls" and not tls:
                    continue
                if kind == "plain" and (tls or quic):
                    continue
                yield ts, data, orig, d


def replay(kind: str, count: int):
    """``count`` frames ``(ts_ns, data, orig_len)``: the fixture packets over and
    over, the client port moved each round so every round is new flows."""
    base = list(packets(kind))
    written = 0
    rnd = 0
    while True:
        for ts, data, orig, d in base:
            if written == count:
                return
            frame = bytearray(data)
            if (d.tcp or d.udp) and not d.error:
                off = d.transport_offset
                sport, dport = struct.unpack_from(">HH", frame, off)
                shift = rnd % 20000
                if sport != 443:
                    sport = 20000 + (sport + shift) % 40000
                if dport != 443:
                    dport = 20000 + (dport + shift) % 40000
                struct.pack_into(">HH", frame, off, sport, dport)
            yield ts + rnd * 10**9, bytes(frame), orig
            written += 1
        rnd += 1


def build(kind: str, count: int, out: str) -> int:
    with PcapWriter(out, 262144) as w:
        for ts, frame, orig in replay(kind, count):
            w.write(ts, frame, len(frame), orig)
        return w.records


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("kind", choices=("mix", "tls", "plain"))
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=1_000_000)
    a = ap.parse_args()
    print(build(a.kind, a.count, a.out), "packets ->", a.out)
