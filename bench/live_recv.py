"""How fast can Python take frames off an AF_PACKET socket?  (run as root)

    python bench/live_recv.py [frames] [flood_seconds]

Builds a throw-away network namespace holding a veth pair ``bench0``/``bench1``
and measures two things.

1. Receive cost alone.  ``frames`` Ethernet/IPv4/UDP frames (128 bytes) are
   flooded into ``bench0`` while nothing reads ``bench1``: they queue in the
   receiver (a 1 GiB SO_RCVBUFFORCE buffer or the 64 MiB ring).  Then the queue
   is drained and timed, nothing else competing for the CPU:

   * ``recv_into``     recv_into(buf, MSG_TRUNC) + user-space clock: no VLAN tag,
                       no direction, no kernel timestamp (not correct for us)
   * ``recvmsg_into``  recvmsg_into([buf], anc, MSG_TRUNC) with SO_TIMESTAMPNS_NEW
                       and PACKET_AUXDATA parsed: what the recvmsg backend needs
   * ``recvmsg backend``, ``tpacket_v3 backend``: the real backends' receive()

2. The whole recorder under a flood.  The recorder runs on ``bench1`` with each
   backend while one process floods ``bench0`` for ``flood_seconds``; its final
   stats give what was written and what the kernel dropped.  The frames are
   plain UDP (decoded and classified, no TLS/QUIC analysis): the capture path's
   ceiling, not the analyzers'.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pcapconstrictor.formats import linux_packet as lp


def _udp_frame(size: int = 128) -> bytes:
    """Ethernet/IPv4/UDP 198.18.0.2:40000 -> 198.18.0.1:9 (IP checksum left 0: nothing checks it)."""
    payload = bytes(size - 14 - 20 - 8)
    udp = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes([198, 18, 0, 2]), bytes([198, 18, 0, 1]))  # fmt: skip
    return bytes.fromhex("020000000002020000000001" "0800") + ip + udp


FRAME = _udp_frame()
BUFFER = 65535
_TIMESPEC = struct.Struct("=qq").unpack
_AUXDATA = struct.Struct("=LLLHHHH").unpack


def flood(frames: int = 0, seconds: float = 0.0) -> int:
    """Send FRAME into bench0 ``frames`` times, or for ``seconds``; return how many."""
    tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    tx.bind(("bench0", 0))
    send = tx.send
    sent = 0
    if frames:
        for _ in range(frames):
            send(FRAME)
        sent = frames
    else:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for _ in range(1000):
                send(FRAME)
            sent += 1000
    tx.close()
    return sent


def raw_receiver(timestamps_and_aux: bool) -> socket.socket:
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    rx.setsockopt(socket.SOL_SOCKET, lp.SO_RCVBUFFORCE, 1 << 30)
    if timestamps_and_aux:
        rx.setsockopt(socket.SOL_SOCKET, lp.SO_TIMESTAMPNS_NEW, 1)
        rx.setsockopt(lp.SOL_PACKET, lp.PACKET_AUXDATA, 1)
    rx.bind(("bench1", lp.ETH_P_ALL))
    rx.setblocking(False)
    return rx


def drain_recv_into(rx: socket.socket) -> int:
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    recv_into = rx.recv_into
    clock = time.time_ns
    out = []
    append = out.append
    try:
        while True:
            n = recv_into(buf, BUFFER, socket.MSG_TRUNC)
            append((clock(), bytes(view[: min(n, BUFFER)]), n))
    except BlockingIOError:
        pass
    return len(out)


def drain_recvmsg_into(rx: socket.socket) -> int:
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    bufs = [buf]
    recvmsg_into = rx.recvmsg_into
    anc = socket.CMSG_SPACE(16) + socket.CMSG_SPACE(20)
    out = []
    append = out.append
    try:
        while True:
            n, ancdata, _flags, addr = recvmsg_into(bufs, anc, socket.MSG_TRUNC)
            ts = 0
            for level, kind, data in ancdata:
                if kind == lp.SCM_TIMESTAMPNS_NEW:
                    sec, nsec = _TIMESPEC(data)
                    ts = sec * 1_000_000_000 + nsec
                elif level == lp.SOL_PACKET:
                    _AUXDATA(data)
            if addr[2] == lp.PACKET_OUTGOING:
                continue
            append((ts, bytes(view[: min(n, BUFFER)]), n))
    except BlockingIOError:
        pass
    return len(out)


def recvmsg_backend():
    from pcapconstrictor.engine.sources.recvmsg import RecvmsgCapture

    capture = RecvmsgCapture("bench1", False, BUFFER)
    capture.packet_socket.sock.setsockopt(socket.SOL_SOCKET, lp.SO_RCVBUFFORCE, 1 << 30)
    return capture


def tpacket_backend():
    from pcapconstrictor.engine.sources.tpacket import TpacketCapture

    return TpacketCapture("bench1", False, 1 << 20, 64, 2048, 64)


def drain_backend(capture) -> int:
    total = 0
    while True:
        batch = capture.receive(0)
        if not batch:
            return total
        total += len(batch)


def receive_cost(frames: int) -> dict[str, float]:
    results = {}
    for name, open_receiver, drain in (
        ("recv_into", lambda: raw_receiver(False), drain_recv_into),
        ("recvmsg_into", lambda: raw_receiver(True), drain_recvmsg_into),
        ("recvmsg backend", recvmsg_backend, drain_backend),
        ("tpacket_v3 backend", tpacket_backend, drain_backend),
    ):
        best = 0.0
        for _ in range(3):
            receiver = open_receiver()
            flood(frames)
            time.sleep(0.3)  # let the last ring block retire
            start = time.perf_counter()
            got = drain(receiver)
            elapsed = time.perf_counter() - start
            receiver.close()
            best = max(best, got / elapsed)
        results[name] = best
        print(f"{name:>20}: {got} frames drained, best of 3: {best:>11,.0f} frames/s", flush=True)
    ratio = results["recv_into"] / results["recvmsg_into"]
    print(f"recv_into is {ratio:.2f}x as fast as recvmsg_into", flush=True)
    return results


def recorder_under_flood(seconds: float) -> None:
    for backend in ("recvmsg", "tpacket_v3"):
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "bench.ini"
            config.write_text(f"[capture]\ninterface = bench1\nbackend = {backend}\n"
                              f"output = {tmp}/out.pcap\n")  # fmt: skip
            recorder = subprocess.Popen([sys.executable, "-m", "pcapconstrictor.engine", "--config",
                                         str(config)], stdout=subprocess.PIPE, text=True)  # fmt: skip
            for line in recorder.stdout:
                if line.startswith("Press Ctrl+C"):
                    break
            sent = flood(seconds=seconds)
            time.sleep(1.0)
            recorder.send_signal(signal.SIGINT)
            out = recorder.communicate(timeout=60)[0]
        stats = dict(line.split(": ") for line in out.split("Final stats:\n")[1].splitlines())
        written, drops = int(stats["packets_total"]), int(stats["kernel_drops"])
        print(f"{backend:>20}: flood of {sent / seconds:,.0f} frames/s for {seconds:g} s: "
              f"{written / seconds:,.0f} frames/s written, {drops} kernel drops "
              f"({100 * drops / max(int(stats['kernel_packets']), 1):.1f} %)", flush=True)  # fmt: skip


def main() -> int:
    frames = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    if os.environ.get("BENCH_IN_NETNS"):
        subprocess.run(["ip", "link", "add", "bench0", "type", "veth", "peer", "name", "bench1"], check=True)
        for dev in ("lo", "bench0", "bench1"):
            subprocess.run(["ip", "link", "set", dev, "up"], check=True)
        print(f"1. receive cost alone ({frames} queued frames of {len(FRAME)} bytes)", flush=True)
        receive_cost(frames)
        print(f"2. the whole recorder (default config) under a flood of {len(FRAME)}-byte frames", flush=True)
        recorder_under_flood(seconds)
        return 0
    ns = f"pcbench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        env = dict(os.environ, BENCH_IN_NETNS="1")
        command = [sys.executable, __file__, str(frames), str(seconds)]
        return subprocess.run(["ip", "netns", "exec", ns, *command], env=env).returncode
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    sys.exit(main())
