"""Issue 13 item 3: a tpacket_v3 ring (with capture.workers = N, the N rings) larger than
capture.max_ring_bytes, or than half of MemAvailable when that is 0, is refused before any
socket is opened, instead of letting the kernel pin it and run the host out of memory.

The interface named here does not exist: an error about the ring, not about the interface,
shows the bound was checked before the backend was opened."""

from __future__ import annotations

import re

from test_live_capture import write_config

from conftest import run_cli
from pcapconstrictor.engine.sources.tpacket import memory_available

MIB = 1 << 20
NO_SUCH_INTERFACE = "Live capture error: if_nametoindex failed for interface 'nosuch0'"


def run_ring(tmp_path, ring: str):
    output = tmp_path / "out.pcap"
    config = write_config(tmp_path / "c.ini", "tpacket_v3", output, "nosuch0", extra=ring)
    result = run_cli("--config", str(config))
    assert not output.exists()
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def test_a_ring_over_max_ring_bytes_is_refused_before_the_socket_is_opened(tmp_path):
    status, out, err = run_ring(tmp_path, f"ring_block_count = 100000\nmax_ring_bytes = {64 * MIB}\n")
    assert status == 1 and out == ""
    assert err == (f"Live capture error: the tpacket_v3 ring needs {100000 * MIB} bytes "
                   f"(ring_block_size x ring_block_count), more than {64 * MIB} bytes "
                   "(capture.max_ring_bytes); lower capture.ring_block_count or capture.ring_block_size, "
                   "or set capture.max_ring_bytes\n")  # fmt: skip


def test_without_max_ring_bytes_the_bound_is_half_of_memavailable(tmp_path):
    available = memory_available()
    assert available is not None and available > 0
    huge = "ring_block_size = 4294963200\nring_block_count = 4294967295\n"  # ~2^64 bytes: beyond any host
    status, _, err = run_ring(tmp_path, huge)
    assert status == 1
    match = re.fullmatch(r"Live capture error: the tpacket_v3 ring needs (\d+) bytes "
                         r"\(ring_block_size x ring_block_count\), more than (\d+) bytes "
                         r"\(half of MemAvailable\); .*\n", err)  # fmt: skip
    assert match, err
    assert int(match[1]) == 4294963200 * 4294967295
    assert abs(int(match[2]) - available // 2) < available // 4  # MemAvailable moves a little


def test_with_several_workers_the_bound_is_on_all_their_rings(tmp_path):
    ring = f"ring_block_count = 40\nmax_ring_bytes = {64 * MIB}\n"  # 40 MiB each
    status, _, err = run_ring(tmp_path, ring + "workers = 2\n")
    assert status == 1
    assert err.startswith(f"Live capture error: the tpacket_v3 ring needs {80 * MIB} bytes "
                          "(ring_block_size x ring_block_count x 2 workers), more than ")  # fmt: skip
    _, _, err = run_ring(tmp_path, ring + "workers = 1\n")  # one such ring fits: on to the interface
    assert err.startswith(NO_SUCH_INTERFACE), err


def test_the_upstream_ring_checks_come_before_the_bound(tmp_path):
    ring = f"ring_block_count = 100000\nring_frame_size = 64\nmax_ring_bytes = {MIB}\n"
    _, _, err = run_ring(tmp_path, ring)
    assert err == "Live capture error: capture.ring_frame_size is too small for TPACKET_V3 metadata\n"
