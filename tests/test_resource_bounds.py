"""Resource bounds (issue 6, part 6; DECISIONS #6).

A million distinct flows, generated in memory, go through the shipped policy with
``general.max_flows`` small and at its default: the TLS and QUIC flow tables never hold more
than ``max_flows`` entries, every eviction is counted and printed as ``flow_evictions``, and
with a small bound the process stops growing (RSS between 100k and 1M flows).  A record
header claiming 4 GiB, or 2 GiB in a sparse file that really is that long, is rejected as
libpcap rejects it (longer than 262,144 bytes and than the file's snaplen) without the reader
allocating or reading it, from a file and from a pipe.

Each heavy run happens in a fresh interpreter, so one run's memory cannot hide another's.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import GOLDEN, ROOT

TLS_FLOWS = 600_000  # each creates two TLS directions: 1.2M entries, beyond the default bound
QUIC_FLOWS = 400_000  # each learns one SCID: one QUIC flow entry
DEFAULT_MAX_FLOWS = 1 << 20
MIB = 1 << 20

# Run in a child interpreter: feed the flows, watch the tables after every packet.
DRIVER = r"""
import json, struct, sys
from pcapconstrictor.engine.config import parse_config_text
from pcapconstrictor.engine.run.policy_select import select_policy
from pcapconstrictor.engine.run.pipeline import make_pipeline

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))

max_flows, tls_flows, quic_flows = (int(a) for a in sys.argv[1:4])
text = "" if max_flows == 0 else f"[general]\nmax_flows = {max_flows}\n"
config = parse_config_text(text, "bounds.ini")

class Discard:
    def write_batch(self, frames, lengths):
        pass

pipeline = make_pipeline(select_policy(config), config, Discard())
tls = pipeline.evaluator.analyzers["tls"].flows
quic = pipeline.evaluator.analyzers["quic"].flows

def ipv4(proto, payload):
    return (bytes(12) + b"\x08\x00" + struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64,
            proto, 0, bytes(4), bytes([198, 51, 100, 7])) + payload)

hello = bytes([0x16, 3, 1, 0, 4, 1, 0, 0, 0])  # a Handshake record: confirms both directions
tls_frame = bytearray(ipv4(6, struct.pack(">HHIIBBHHH", 0, 443, 1, 0, 0x50, 0x18, 65535, 0, 0) + hello))
initial = bytes([0xC0, 0, 0, 0, 1, 8]) + bytes(8) + bytes([8]) + b"scid1234" + bytes([0, 1, 0])
quic_frame = bytearray(ipv4(17, struct.pack(">HHHH", 0, 443, 8 + len(initial), 0) + initial))

def frames(n):
    for i in range(n):
        frame = tls_frame if i % 5 < 3 else quic_frame  # 3 TLS flows in 5
        struct.pack_into(">I", frame, 26, 0x0A000000 + i)  # IPv4 source: 10.x.y.z, one per flow
        struct.pack_into(">H", frame, 34, 1024 + i % 64000)  # TCP/UDP source port
        yield i * 1000, bytes(frame), len(frame)

total = tls_flows + quic_flows
peak_tls = peak_quic = 0
rss_at = {}
stream = frames(total)
for done in range(0, total, 1000):
    pipeline.run(stream, 1000)
    peak_tls, peak_quic = max(peak_tls, len(tls)), max(peak_quic, len(quic))
    if done + 1000 in (100_000, total):
        rss_at[done + 1000] = rss()
print(json.dumps({
    "packets": pipeline.packets, "peak_tls": peak_tls, "peak_quic": peak_quic,
    "tls_evictions": tls.evictions, "quic_evictions": quic.evictions, "tls_max": tls.max_flows,
    "quic_max": quic.max_flows, "stats_evictions": pipeline.stats().flow_evictions,
    "stats_block": pipeline.stats().block(), "rss": rss_at,
    "reasons": pipeline.reason_counts(),
}))
"""


def start_driver(max_flows: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(max_flows), str(TLS_FLOWS), str(QUIC_FLOWS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out)


def test_a_million_flows_stay_within_max_flows_with_evictions_counted_and_memory_flat():
    """Peaks are sampled every 1000 packets; a table that grew past its bound would have to
    shrink back within those 1000 packets, which nothing but eviction does."""
    small, default = start_driver(1000), start_driver(0)  # both at once: two cores
    small, default = finish(small), finish(default)
    for run, bound in ((small, 1000), (default, DEFAULT_MAX_FLOWS)):
        assert run["packets"] == TLS_FLOWS + QUIC_FLOWS
        assert run["tls_max"] == run["quic_max"] == bound
        assert run["reasons"] == {"tls_candidate": TLS_FLOWS, "quic_long_header": QUIC_FLOWS}
        assert run["peak_tls"] == min(bound, 2 * TLS_FLOWS) and run["peak_quic"] == min(bound, QUIC_FLOWS)
        # every flow is distinct: each entry beyond the bound pushed an older one out, and was counted
        assert run["tls_evictions"] == 2 * TLS_FLOWS - min(bound, 2 * TLS_FLOWS)
        assert run["quic_evictions"] == QUIC_FLOWS - min(bound, QUIC_FLOWS)
        assert run["stats_evictions"] == run["tls_evictions"] + run["quic_evictions"] > 0
        assert f"flow_evictions: {run['stats_evictions']}\n" in run["stats_block"]
    growth_small = small["rss"][str(TLS_FLOWS + QUIC_FLOWS)] - small["rss"]["100000"]
    growth_default = default["rss"][str(TLS_FLOWS + QUIC_FLOWS)] - default["rss"]["100000"]
    assert growth_small < 16 * MIB, f"RSS grew {growth_small / MIB:.1f} MiB from 100k to 1M flows"
    # The probe is sensitive: the default bound lets the tables grow, and RSS shows it.
    assert growth_default > 200 * MIB, f"RSS grew only {growth_default / MIB:.1f} MiB with the default bound"


# --- a 4 GiB record length ---------------------------------------------------------------------

HUGE = 0xFFFF_FFFF
HEADER = bytes.fromhex("d4c3b2a1") + struct.pack("<HHiIII", 2, 4, 0, 0, 65535, 1)
TAIL = 1 * MIB  # bytes really present after the lying record header


def run_measured(args: list[str], stdin_data: bytes | None = None, cwd: Path | None = None):
    """Run the CLI; (exit status, stderr, the child's own peak RSS in bytes)."""
    proc = subprocess.Popen([sys.executable, "-m", "pcapconstrictor.engine", *args], cwd=cwd,
                            stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    out: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda s=stream, k=key: out.__setitem__(k, s.read()))
               for key, stream in (("stdout", proc.stdout), ("stderr", proc.stderr))]  # fmt: skip
    for t in readers:
        t.start()
    if stdin_data is not None:
        try:
            proc.stdin.write(stdin_data)
        except BrokenPipeError:
            pass
        proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's rusage, not every child's
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in readers:
        t.join()
    return proc.returncode, out["stderr"].decode(), usage.ru_maxrss * 1024


def huge_record_error(length: int = HUGE) -> str:
    return (f"Offline feed error: packet 1 at file offset 24: captured length {length} exceeds the maximum "
            "record length 262144")  # fmt: skip


def test_a_4_gib_record_length_is_rejected_without_allocating_it(tmp_path):
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\noutput = {tmp_path / 'out.pcap'}\n")
    status, err, baseline = run_measured(["--config", str(config), "--offline-input",
                                          str(GOLDEN / "tls_test_2" / "input.pcap")])  # fmt: skip
    assert status == 0, err
    content = HEADER + struct.pack("<IIII", 0, 0, HUGE, HUGE) + bytes(TAIL)
    path = tmp_path / "huge.pcap"
    path.write_bytes(content)
    for source, stdin_data in ((str(path), None), ("-", content)):
        status, err, peak = run_measured(["--config", str(config), "--offline-input", source], stdin_data,
                                         cwd=ROOT)  # fmt: skip
        assert status == 1
        assert err.strip() == huge_record_error(), source
        # Bounded reads: at most a 16 MiB piece more than a small run, nowhere near 4 GiB.
        assert peak < baseline + 48 * MIB, f"{source}: {peak / MIB:.0f} MiB, baseline {baseline / MIB:.0f}"


def test_a_2_gib_record_in_a_sparse_2_gib_file_is_refused_at_once_in_constant_memory(tmp_path):
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\noutput = {tmp_path / 'out.pcap'}\n")
    status, err, baseline = run_measured(["--config", str(config), "--offline-input",
                                          str(GOLDEN / "tls_test_2" / "input.pcap")])  # fmt: skip
    assert status == 0, err
    length = 2**31 - 1
    path = tmp_path / "sparse.pcap"
    path.write_bytes(HEADER + struct.pack("<IIII", 0, 0, length, length))
    os.truncate(path, 40 + length)  # every byte of the record is there (holes read as zeros)
    started = time.monotonic()
    status, err, peak = run_measured(["--config", str(config), "--offline-input", str(path)], cwd=ROOT)
    assert time.monotonic() - started < 5
    assert status == 1
    assert err.strip() == huge_record_error(length)
    assert peak < baseline + 16 * MIB, f"{peak / MIB:.0f} MiB, baseline {baseline / MIB:.0f}"
