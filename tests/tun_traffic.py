"""Bounded traffic through a TUN device, both ways; run inside a namespace as root.

    tun_traffic.py TUN LOCAL4 REMOTE4 LOCAL6 REMOTE6 COUNT

Attaches to the existing (persistent) TUN device (its carrier is up only while a process holds
it), then sends COUNT UDP datagrams to REMOTE4 and COUNT to REMOTE6, which the kernel routes out
through the device (read back here: outgoing packets), and writes COUNT IPv4 UDP packets from
REMOTE4 to LOCAL4 into the device (received by the kernel: incoming packets).  Every payload
starts with ``pcapconstrictor tun``.  Prints the number of packets read from the device.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import sys
import time

TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
PORT = 9999


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_udp(source: str, destination: str, payload: bytes) -> bytes:
    """An IPv4 UDP packet (UDP checksum 0: none, allowed over IPv4)."""
    udp = struct.pack("!HHHH", 40000, PORT, 8 + len(payload), 0) + payload
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                         socket.inet_aton(source), socket.inet_aton(destination))  # fmt: skip
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + udp


def main(tun: str, local4: str, remote4: str, local6: str, remote6: str, count: int) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    read = 0
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", tun.encode(), IFF_TUN | IFF_NO_PI))
        time.sleep(0.2)  # the carrier comes up; the addresses' routes become usable
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as v4, \
                socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as v6:  # fmt: skip
            for index in range(count):
                v4.sendto(b"pcapconstrictor tun out4 %d" % index, (remote4, PORT))
                v6.sendto(b"pcapconstrictor tun out6 %d" % index, (remote6, PORT))
                os.write(fd, ipv4_udp(remote4, local4, b"pcapconstrictor tun in4 %d" % index))
                time.sleep(0.002)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and select.select([fd], [], [], 0.2)[0]:
            try:
                while os.read(fd, 65535):
                    read += 1
            except BlockingIOError:
                continue
    finally:
        os.close(fd)
    print(read)
    return 0


if __name__ == "__main__":
    name, l4, r4, l6, r6, n = sys.argv[1:7]
    sys.exit(main(name, l4, r4, l6, r6, int(n)))
