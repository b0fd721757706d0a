"""Real IPsec ESP from a userspace implementation (scapy's IPsec layer); run inside a namespace.

    esp_traffic.py IFACE SRC DST DSTMAC COUNT

sends COUNT ESP packets (IP protocol 50), COUNT ESP-in-UDP packets on port 4500, three
IKE-shaped datagrams behind the non-ESP marker and a NAT-keepalive, all from SRC to DST.
The inner packets are UDP with 1200-byte payloads; the keys are the constants below so a
test can hand them to tshark.  Every loop is bounded by COUNT.
"""

from __future__ import annotations

import sys

from scapy.all import IP, UDP, Ether, Raw, conf, sendp
from scapy.layers.ipsec import ESP, SecurityAssociation

SPI_ESP, SPI_NAT_T = 0x0000C0DE, 0x0000BEEF
ENCRYPTION_KEY = bytes(range(16))  # AES-CBC-128
AUTHENTICATION_KEY = bytes(range(100, 120))  # HMAC-SHA1-96
NAT_T_PORT = 4500


def main() -> int:
    iface, src, dst, dst_mac, count = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    conf.verb = 0
    link = Ether(dst=dst_mac)
    frames = []
    for spi, nat_t in ((SPI_ESP, False), (SPI_NAT_T, True)):
        sa = SecurityAssociation(proto=ESP, spi=spi, crypt_algo="AES-CBC", crypt_key=ENCRYPTION_KEY,
                                 auth_algo="HMAC-SHA1-96", auth_key=AUTHENTICATION_KEY,
                                 nat_t_header=UDP(sport=NAT_T_PORT, dport=NAT_T_PORT) if nat_t else None)
        for seq in range(1, count + 1):
            inner = IP(src=src, dst=dst) / UDP(sport=40000, dport=9) / Raw(bytes([seq % 256]) * 1200)
            frames.append(link / sa.encrypt(inner, seq_num=seq))
    for i in range(3):  # IKE_SA_INIT-shaped: non-ESP marker, then an IKE header and payload
        header = bytes([i + 1]) * 8 + bytes(8) + b"\x21\x20\x22\x08" + bytes(4)  # SPIs, SA_INIT
        ike = b"\x00\x00\x00\x00" + header + bytes(300)
        frames.append(link / IP(src=src, dst=dst) / UDP(sport=NAT_T_PORT, dport=NAT_T_PORT) / Raw(ike))
    frames.append(link / IP(src=src, dst=dst) / UDP(sport=NAT_T_PORT, dport=NAT_T_PORT) / Raw(b"\xff"))
    sendp(frames, iface=iface, inter=0.0005)
    return 0


if __name__ == "__main__":
    sys.exit(main())
