"""Bounded real traffic for the live-capture tests; run inside a namespace.

    live_traffic.py serve CERT KEY          TLS on 443, plain TCP on 80, a QUIC-shaped UDP
                                            responder on 443, on every address; prints
                                            "ready", exits when stdin closes (or after 60 s)
    live_traffic.py client HOST4 HOST6      drive every kind once against `serve`; exits 0
                                            when every exchange completed
    live_traffic.py udp HOST PORT COUNT [SIZE]  COUNT datagrams (of SIZE bytes), 2 ms apart
    live_traffic.py loopback COUNT          COUNT datagrams and one TCP exchange on 127.0.0.1
    live_traffic.py vlan IFACE DSTMAC COUNT raw frames with 802.1Q (VID 42) and 802.1ad
                                            (VID 43) tags, written by an AF_PACKET socket

Every loop is bounded in count and every socket has a timeout.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import struct
import sys
import threading
import time

TLS_RESPONSE = 96 * 1024  # bytes of Application Data each TLS exchange returns
TCP_RESPONSE = 48 * 1024
QUIC_SHORT_PACKETS = 6
SOCKET_TIMEOUT = 5.0

# --- QUIC-shaped datagrams (RFC 9000 §17): nothing here is real QUIC, only its headers ----


def quic_long(packet_type: int, dcid: bytes, scid: bytes, body: bytes) -> bytes:
    first = 0xC0 | packet_type << 4 | 0x03  # long header, fixed bit, type, 4-byte packet number
    token = b"\x00" if packet_type == 0 else b""  # Initial: token length 0
    length = len(body) | 0x4000  # 2-byte varint
    return (bytes([first]) + struct.pack("!I", 1) + bytes([len(dcid)]) + dcid + bytes([len(scid)]) + scid
            + token + struct.pack("!H", length) + body)  # fmt: skip


def quic_short(dcid: bytes, body: bytes) -> bytes:
    return bytes([0x40 | 0x03]) + dcid + body


# --- servers ------------------------------------------------------------------------------


def _serve_stream(listener: socket.socket, wrap, response: int) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            conn.settimeout(SOCKET_TIMEOUT)
            stream = wrap(conn)
            request = stream.recv(100)
            if request.startswith(b"GET"):
                chunk = os.urandom(16384)
                for start in range(0, response, len(chunk)):
                    stream.sendall(chunk[: response - start])
            stream.close()
        except OSError:
            conn.close()


def _serve_quic(sock: socket.socket) -> None:
    server_cid = bytes.fromhex("5e5e5e5e00000001")
    client_cid: dict[object, bytes] = {}
    while True:
        try:
            data, peer = sock.recvfrom(2048)
        except OSError:
            return
        if data[0] & 0x80:  # a long header: learn the client's SCID, answer with a Handshake
            dcid_len = data[5]
            scid_len = data[6 + dcid_len]
            client_cid[peer] = data[7 + dcid_len : 7 + dcid_len + scid_len]
            sock.sendto(quic_long(2, client_cid[peer], server_cid, os.urandom(200)), peer)
        elif peer in client_cid:
            sock.sendto(quic_short(client_cid[peer], os.urandom(900)), peer)


def serve(cert: str, key: str) -> int:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    threads = []
    for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        for port, wrap, response in ((443, lambda s: context.wrap_socket(s, server_side=True), TLS_RESPONSE),
                                     (80, lambda s: s, TCP_RESPONSE)):  # fmt: skip
            listener = socket.socket(family, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind((host, port))
            listener.listen(8)
            serve_one = threading.Thread(target=_serve_stream, args=(listener, wrap, response), daemon=True)
            threads.append(serve_one)
        udp = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6:
            udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        udp.bind((host, 443))
        threads.append(threading.Thread(target=_serve_quic, args=(udp,), daemon=True))
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    select.select([sys.stdin], [], [], 60)  # until the test closes our stdin
    return 0


# --- clients ------------------------------------------------------------------------------


def _fetch(host: str, port: int, expect: int, tls: bool) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_connection((host, port), timeout=SOCKET_TIMEOUT) as raw:
        stream = raw
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            stream = context.wrap_socket(raw)
        stream.sendall(b"GET /\r\n")
        got = 0
        while True:
            chunk = stream.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        assert got == expect, f"{family.name} {host}:{port}: {got} of {expect} bytes"


def _quic(host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    client_cid = os.urandom(8)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(SOCKET_TIMEOUT)
        sock.connect((host, 443))
        sock.send(quic_long(0, os.urandom(8), client_cid, os.urandom(1150)))  # an Initial, no padding
        answer = sock.recv(2048)
        server_cid = answer[7 + answer[5] : 7 + answer[5] + answer[6 + answer[5]]]
        for _ in range(QUIC_SHORT_PACKETS):
            sock.send(quic_short(server_cid, os.urandom(1000)))
            sock.recv(2048)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ping(host: str, count: int = 3) -> None:
    v6 = ":" in host
    family, proto = (socket.AF_INET6, socket.IPPROTO_ICMPV6) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP)
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        sock.settimeout(SOCKET_TIMEOUT)
        for seq in range(count):
            kind = 128 if v6 else 8
            body = struct.pack("!HH", 0x5043, seq) + b"pcapconstrictor" * 4
            message = struct.pack("!BBH", kind, 0, 0) + body
            if not v6:  # the kernel fills the ICMPv6 checksum itself
                message = struct.pack("!BBH", kind, 0, _checksum(message)) + body
            sock.sendto(message, (host, 0))
            while True:  # wait for our echo reply
                reply = sock.recv(2048)
                icmp = reply if v6 else reply[(reply[0] & 0x0F) * 4 :]
                if icmp[0] == (129 if v6 else 0) and icmp[4:8] == body[:4]:
                    break


def client(host4: str, host6: str) -> int:
    for host in (host4, host6):
        _fetch(host, 443, TLS_RESPONSE, tls=True)
        _fetch(host, 80, TCP_RESPONSE, tls=False)
        _quic(host)
        _ping(host)
    print("done", flush=True)
    return 0


def udp(host: str, port: int, count: int, size: int = 0) -> int:
    """``count`` datagrams; ``size`` > 0 pads each to that many bytes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        for index in range(count):
            payload = b"pcapconstrictor %d" % index
            sock.sendto(payload.ljust(size, b"."), (host, port))
            time.sleep(0.002)
    return 0


def loopback(count: int) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(SOCKET_TIMEOUT)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as conn:
            peer, _ = listener.accept()
            with peer:
                conn.sendall(b"x" * 5000)
                got = 0
                while got < 5000:
                    got += len(peer.recv(65536))
    udp("127.0.0.1", 9, count)
    return 0


def vlan(interface: str, dst_mac: str, count: int) -> int:
    """Tagged frames as a switch port would deliver them: 802.1Q VID 42 and 802.1ad VID 43."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
        sock.bind((interface, 0))
        src = sock.getsockname()[4]
        dst = bytes.fromhex(dst_mac.replace(":", ""))
        for index in range(count):
            for tpid, vid, pcp in ((0x8100, 42, 5), (0x88A8, 43, 0)):
                payload = b"vlan %d %d" % (vid, index)
                udp_header = struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0)
                ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp_header) + len(payload), index, 0,
                                 64, 17, 0, socket.inet_aton("198.18.0.2"), socket.inet_aton("198.18.0.1"))
                ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
                tag = struct.pack("!HH", tpid, pcp << 13 | vid)
                sock.send(dst + src + tag + struct.pack("!H", 0x0800) + ip + udp_header + payload)
            time.sleep(0.002)
    return 0


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "serve":
        return serve(*args)
    if command == "client":
        return client(*args)
    if command == "udp":
        return udp(args[0], int(args[1]), int(args[2]), *map(int, args[3:]))
    if command == "loopback":
        return loopback(int(args[0]))
    if command == "vlan":
        return vlan(args[0], args[1], int(args[2]))
    raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
