"""Frame builders for the tests: Ethernet/VLAN, IPv4/IPv6, TCP/UDP, TLS records and
QUIC headers, built from parameters through the ``formats/`` construct schemas.

Every length field defaults to the consistent value and can be overridden, so a
test can build exactly the malformed header a SPEC rule talks about.  Checksums
are left at zero: nothing in the recorder reads them.
"""

from __future__ import annotations

from pcapconstrictor.formats import ethernet as eth_format
from pcapconstrictor.formats import ip as ip_format
from pcapconstrictor.formats import quic as quic_format
from pcapconstrictor.formats import tls as tls_format
from pcapconstrictor.formats import transport as transport_format

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
CLIENT4 = bytes([192, 0, 2, 1])
SERVER4 = bytes([198, 51, 100, 7])
CLIENT6 = bytes.fromhex("20010db8000000000000000000000001")
SERVER6 = bytes.fromhex("20010db8000000000000000000000002")

ETH_LEN = 14
IPV4_LEN = 20
IPV6_LEN = 40
TCP_LEN = 20
UDP_LEN = 8
TCP4_PAYLOAD_AT = ETH_LEN + IPV4_LEN + TCP_LEN  # 54, the SPEC §8.8 offset
UDP4_PAYLOAD_AT = ETH_LEN + IPV4_LEN + UDP_LEN  # 42

ACK = 0x10
PSH_ACK = 0x18
SYN = transport_format.TCP_FLAG_SYN
RST = transport_format.TCP_FLAG_RST
FIN_ACK = transport_format.TCP_FLAG_FIN | ACK

CCS = tls_format.CONTENT_CHANGE_CIPHER_SPEC
ALERT = tls_format.CONTENT_ALERT
HANDSHAKE = tls_format.CONTENT_HANDSHAKE
APPDATA = tls_format.CONTENT_APPLICATION_DATA


# --- link layer -----------------------------------------------------------------------------


def ethernet(ethertype: int, payload: bytes, vlans: tuple[tuple[int, int], ...] = ()) -> bytes:
    """Ethernet II frame; ``vlans`` is ((tpid, vid), ...) outermost first."""
    types = [tpid for tpid, _ in vlans] + [ethertype]
    frame = eth_format.ethernet_header.build(dict(dst=MAC_B, src=MAC_A, ethertype=types[0]))
    for (_, vid), inner in zip(vlans, types[1:], strict=True):
        frame += eth_format.vlan_tag.build(dict(tci=dict(pcp=0, dei=0, vid=vid), ethertype=inner))
    return frame + payload


# --- network layer --------------------------------------------------------------------------


def ipv4(protocol: int, payload: bytes, src: bytes = CLIENT4, dst: bytes = SERVER4, *,
         version: int = 4, ihl: int | None = None, options: bytes = b"",
         total_length: int | None = None, more_fragments: int = 0, fragment_offset: int = 0,
         dont_fragment: int = 1) -> bytes:  # fmt: skip
    """IPv4 packet; ``ihl`` (in 32-bit words) and ``total_length`` default to the real sizes."""
    header_len = IPV4_LEN + len(options)
    header = ip_format.ipv4_header.build(dict(
        version_ihl=dict(version=version, ihl=header_len // 4 if ihl is None else ihl),
        tos=0,
        total_length=header_len + len(payload) if total_length is None else total_length,
        identification=0x1234,
        flags_fragment=dict(reserved=0, dont_fragment=dont_fragment, more_fragments=more_fragments,
                            fragment_offset=fragment_offset),
        ttl=64, protocol=protocol, header_checksum=0, src=src, dst=dst,
    ))  # fmt: skip
    return header + options + payload


def ipv6(next_header: int, payload: bytes, src: bytes = CLIENT6, dst: bytes = SERVER6, *,
         version: int = 6, payload_length: int | None = None) -> bytes:  # fmt: skip
    header = ip_format.ipv6_header.build(dict(
        version_class_label=dict(version=version, traffic_class=0, flow_label=0),
        payload_length=len(payload) if payload_length is None else payload_length,
        next_header=next_header, hop_limit=64, src=src, dst=dst,
    ))  # fmt: skip
    return header + payload


# --- transport layer ------------------------------------------------------------------------


def tcp(src_port: int, dst_port: int, payload: bytes = b"", *, seq: int = 1000, flags: int = PSH_ACK,
        options: bytes = b"", data_offset: int | None = None) -> bytes:  # fmt: skip
    """TCP segment; ``data_offset`` (in 32-bit words) defaults to the real header size."""
    words = (TCP_LEN + len(options)) // 4 if data_offset is None else data_offset
    header = transport_format.tcp_header.build(dict(
        src_port=src_port, dst_port=dst_port, seq=seq, ack=1,
        offset_reserved=dict(data_offset=words, reserved=0), flags=flags,
        window=65535, checksum=0, urgent_pointer=0,
    ))  # fmt: skip
    return header + options + payload


def udp(src_port: int, dst_port: int, payload: bytes = b"", *, length: int | None = None) -> bytes:
    header = transport_format.udp_header.build(dict(
        src_port=src_port, dst_port=dst_port,
        length=UDP_LEN + len(payload) if length is None else length, checksum=0,
    ))  # fmt: skip
    return header + payload


def tcp4_frame(payload: bytes = b"", *, src: bytes = CLIENT4, dst: bytes = SERVER4, sport: int = 50000,
               dport: int = 443, seq: int = 1000, flags: int = PSH_ACK,
               options: bytes = b"") -> bytes:  # fmt: skip
    """Ethernet/IPv4/TCP frame (payload at offset 54 without options)."""
    segment = tcp(sport, dport, payload, seq=seq, flags=flags, options=options)
    return ethernet(eth_format.ETHERTYPE_IPV4, ipv4(ip_format.IPPROTO_TCP, segment, src, dst))


def udp4_frame(payload: bytes = b"", *, src: bytes = CLIENT4, dst: bytes = SERVER4, sport: int = 50000,
               dport: int = 443) -> bytes:  # fmt: skip
    """Ethernet/IPv4/UDP frame (payload at offset 42)."""
    datagram = udp(sport, dport, payload)
    return ethernet(eth_format.ETHERTYPE_IPV4, ipv4(ip_format.IPPROTO_UDP, datagram, src, dst))


def udp6_frame(payload: bytes = b"", *, src: bytes = CLIENT6, dst: bytes = SERVER6, sport: int = 50000,
               dport: int = 443) -> bytes:  # fmt: skip
    datagram = udp(sport, dport, payload)
    return ethernet(eth_format.ETHERTYPE_IPV6, ipv6(ip_format.IPPROTO_UDP, datagram, src, dst))


# --- TLS ------------------------------------------------------------------------------------


def tls_header(content_type: int, length: int, *, major: int = 3, minor: int = 3) -> bytes:
    return tls_format.tls_record_header.build(
        dict(content_type=content_type, version_major=major, version_minor=minor, length=length)
    )


def tls_record(content_type: int, length: int, present: int | None = None, fill: int = 0xAA) -> bytes:
    """A record header declaring ``length`` body bytes, followed by ``present`` of them
    (all of them by default).  The filler byte 0xAA is no TLS content type."""
    body = length if present is None else present
    return tls_header(content_type, length) + bytes([fill]) * body


def filler(n: int, byte: int = 0xAA) -> bytes:
    """Record-body bytes that never look like a TLS record header."""
    return bytes([byte]) * n


# --- QUIC -----------------------------------------------------------------------------------


def quic_long(packet_type: int, dcid: bytes, scid: bytes, body: bytes = b"", *, version: int = 1,
              token: bytes = b"", dcid_length: int | None = None, scid_length: int | None = None,
              length: int | None = None) -> bytes:  # fmt: skip
    """A long-header packet (RFC 9000 §17.2) whose Length covers ``body`` (not for Retry,
    which has no Length field: its ``body`` is the rest of the datagram)."""
    type_fields: dict[str, object] = {}
    if packet_type == quic_format.LONG_INITIAL:
        type_fields = dict(token_length=len(token), token=token)
    if packet_type != quic_format.LONG_RETRY:
        type_fields["length"] = len(body) if length is None else length
    header = quic_format.quic_long_header.build(dict(
        fixed=dict(
            first_byte=dict(header_form=1, fixed_bit=1, type_specific_bits=0,
                            long_packet_type=quic_format.long_type_bits(version, packet_type)),
            version=version,
            dcid_length=len(dcid) if dcid_length is None else dcid_length,
        ),
        dcid=dcid,
        scid_length=len(scid) if scid_length is None else scid_length,
        scid=scid,
        type_fields=type_fields,
    ))  # fmt: skip
    return header + body


def quic_initial(dcid: bytes, scid: bytes, body: bytes = b"\x00" * 20, token: bytes = b"") -> bytes:
    return quic_long(quic_format.LONG_INITIAL, dcid, scid, body, token=token)


def quic_handshake(dcid: bytes, scid: bytes, body: bytes = b"\x00" * 20) -> bytes:
    return quic_long(quic_format.LONG_HANDSHAKE, dcid, scid, body)


def quic_short(dcid: bytes, body: bytes = b"\x11" * 40) -> bytes:
    """A 1-RTT packet (RFC 9000 §17.3): fixed bit set, then the DCID the receiver knows."""
    first = quic_format.quic_short_header_first_byte.build(dict(
        header_form=0, fixed_bit=1, spin_bit=0, reserved_bits=0, key_phase=0, packet_number_length=0,
    ))  # fmt: skip
    return first + dcid + body
