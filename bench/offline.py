"""Offline throughput: the whole pipeline versus a bare struct read/rewrite
loop over the same file, in the same process (issue 5, target 1).

The ratio ours/reference is the figure to track: it cancels the machine's
speed and the disk's, leaving what our decode, analyzers and rules cost.
"""

from __future__ import annotations

import os
import struct
import tempfile
import time

from pcapconstrictor.engine.config import output_snaplen, parse_config_text
from pcapconstrictor.engine.run.pipeline import batches_for, make_pipeline
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sources.pcap_reader import PcapReader
from pcapconstrictor.grammar import load_policy, shipped_policy_path

CONFIG = """
[general]
min_saved_bytes_per_packet = 16
[tls]
app_data_keep_record_bytes = 8
app_data_continuation_keep_bytes = 8
app_data_continuation_policy = {policy}
[quic]
short_header_keep_packet_bytes = 32
require_dcid_match = true
allow_short_header_without_known_dcid = false
[capture]
default_snaplen = 262144
max_capture_len = 262144
"""


def reference(path: str, out: str) -> int:
    """Read every record and write it back unchanged, with struct only."""
    header = struct.Struct("<IIII")
    unpack, pack = header.unpack_from, header.pack
    n = 0
    with open(path, "rb") as f, open(out, "wb") as o:
        o.write(f.read(24))
        rest = b""
        parts: list[bytes] = []
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            buf = rest + chunk
            pos, end = 0, len(buf)
            while pos + 16 <= end:
                sec, usec, incl, orig = unpack(buf, pos)
                if pos + 16 + incl > end:
                    break
                parts.append(pack(sec, usec, incl, orig))
                parts.append(buf[pos + 16 : pos + 16 + incl])
                pos += 16 + incl
                n += 1
            rest = buf[pos:]
            o.write(b"".join(parts))
            parts.clear()
    return n


def ours(path: str, out: str, policy: str) -> tuple[int, int]:
    config = parse_config_text(CONFIG.format(policy=policy), "<bench>")
    rules = load_policy(shipped_policy_path(policy))
    with PcapReader(path) as reader, PcapWriter(out, output_snaplen(config)) as writer:
        pipeline = make_pipeline(rules, config, writer)
        for batch in batches_for(pipeline, reader):  # as the offline command does
            pipeline.run_batch(batch)
    return pipeline.packets, pipeline.bytes_output


def measure(path: str, policy: str = "final_only", repeat: int = 3) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.pcap")
        best_ref = best_ours = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            n_ref = reference(path, out)
            best_ref = min(best_ref, time.perf_counter() - t)
            t = time.perf_counter()
            n, bytes_out = ours(path, out, policy)
            best_ours = min(best_ours, time.perf_counter() - t)
    assert n == n_ref
    return {"packets": n, "ours_pps": n / best_ours, "reference_pps": n / best_ref,
            "ratio": best_ref / best_ours, "bytes_out": bytes_out}  # fmt: skip


def reference_pcapng(path: str, out: str) -> int:
    """The struct loop for a pcapng input (one section, nanosecond timestamps, as
    bench/protocol_inputs.to_pcapng writes): every Enhanced Packet Block rewritten as a
    PCAP record, what ours and ``tcpdump -r -w`` do with it."""
    block = struct.Struct("<II")
    epb = struct.Struct("<IIIII")
    record = struct.Struct("<IIII")
    unpack_block, unpack_epb, pack = block.unpack_from, epb.unpack_from, record.pack
    n = 0
    with open(path, "rb") as f, open(out, "wb") as o:
        o.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        rest = b""
        parts: list[bytes] = []
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            buf = rest + chunk
            pos, end = 0, len(buf)
            while pos + 8 <= end:
                kind, total = unpack_block(buf, pos)
                if pos + total > end:
                    break
                if kind == 6:
                    _, high, low, incl, orig = unpack_epb(buf, pos + 8)
                    sec, nsec = divmod(high << 32 | low, 1_000_000_000)
                    parts.append(pack(sec, nsec // 1000, incl, orig))
                    parts.append(buf[pos + 28 : pos + 28 + incl])
                    n += 1
                pos += total
            rest = buf[pos:]
            o.write(b"".join(parts))
            parts.clear()
    return n
