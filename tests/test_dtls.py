"""Issue 16: DTLS 1.0/1.2/1.3 (RFC 6347, RFC 9146, RFC 9147) constricted by rules/dtls.rules:
records in clear kept, the last Application Data (or encrypted) record of a datagram cut after
its header and dtls.keep_bytes; DTLS told from QUIC on UDP 443 by the first byte (RFC 9443).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from netns import CAP_IF, PEER4, start_tcpdump, wait_for_line
from packets import CLIENT4, SERVER4, UDP4_PAYLOAD_AT, quic_initial, quic_short, udp4_frame
from protocol_captures import (
    assert_same_packets_and_wire_lengths,
    byte_ratio,
    constrict,
    need_tools,
    records,
    stop_tcpdump,
    tshark_fields,
)  # fmt: skip

from pcapconstrictor.engine.analysis.decode import decode
from pcapconstrictor.engine.analysis.dtls import DtlsAnalyzer
from pcapconstrictor.engine.analysis.registry import analyze_decoded
from pcapconstrictor.engine.config import parse_config_text
from pcapconstrictor.grammar import build_evaluator, load_policy, shipped_policy_path

EXTERNAL = Path(__file__).resolve().parent.parent / "fixtures" / "external"
AT = UDP4_PAYLOAD_AT
ON = "[dtls]\nenabled = true\n"
C2S = (CLIENT4, SERVER4, 50000, 4433)
S2C = (SERVER4, CLIENT4, 4433, 50000)


def record(content_type: int, body: bytes, epoch: int = 0) -> bytes:
    header = bytes([content_type, 0xFE, 0xFD]) + epoch.to_bytes(2, "big") + bytes(6)
    return header + len(body).to_bytes(2, "big") + body


def hello(msg_type: int, cid: bytes | None) -> bytes:
    """A ClientHello (1) or ServerHello (2) with a connection_id extension (RFC 9146 §3)."""
    body = b"\xfe\xfd" + bytes(32) + b"\x00"  # version, random, empty session id
    # ClientHello: cookie, cipher suites, compression; ServerHello: cipher suite, compression
    body += b"\x00\x00\x02\x13\x01\x01\x00" if msg_type == 1 else b"\x13\x01\x00"
    ext = b""
    if cid is not None:
        ext = (54).to_bytes(2, "big") + (1 + len(cid)).to_bytes(2, "big") + bytes([len(cid)]) + cid
    body += len(ext).to_bytes(2, "big") + ext
    length = len(body).to_bytes(3, "big")
    return record(22, bytes([msg_type]) + length + b"\x00\x00" + b"\x00\x00\x00" + length + body)


def walk(payload: bytes, analyzer: DtlsAnalyzer | None = None, direction=C2S):
    """The analyzer's facts for ``payload`` in one Ethernet/IPv4/UDP datagram ``direction``."""
    src, dst, sport, dport = direction
    frame = udp4_frame(payload, src=src, dst=dst, sport=sport, dport=dport)
    return analyze_decoded(analyzer or DtlsAnalyzer(), decode(frame, len(frame)), frame, 0)


def test_handshake_alert_and_change_cipher_spec_records_are_walked_in_clear():
    f = walk(record(22, bytes(60)) + record(20, b"\x01") + record(21, bytes(2)))
    assert f.records == 3 and f.handshake and not f.encrypted_started and not f.malformed


def test_the_last_application_data_record_is_where_the_cut_goes():
    f = walk(record(22, bytes(40)) + record(23, bytes(100)) + record(23, bytes(500)))
    assert f.encrypted_started and f.encrypted_offset == 13 + 40 + 13 + 100
    assert (f.encrypted_header_len, f.encrypted_len, f.clear_after) == (13, 513, False)


def test_a_record_in_clear_after_application_data_is_noted():
    assert walk(record(23, bytes(100)) + record(21, bytes(2))).clear_after


def test_a_record_running_past_the_datagram_is_malformed():
    assert walk(record(23, bytes(100))[:-1]).malformed
    assert walk(b"\x17\x03\x03" + bytes(20)).malformed  # a TLS, not a DTLS, version


def test_unified_header_without_cid_or_length_runs_to_the_datagram_end():
    f = walk(bytes([0b00101000, 0x12, 0x34]) + bytes(300))  # C=0 S=1 L=0
    assert f.unified_header and f.encrypted_started and f.encrypted_header_len == 3
    assert f.encrypted_len == 303


def test_a_connection_id_is_learned_from_the_hello_of_the_side_that_receives_it():
    analyzer = DtlsAnalyzer()
    client_cid, server_cid = b"client-cid", b"srv"
    walk(hello(1, client_cid), analyzer, C2S)
    walk(hello(2, server_cid), analyzer, S2C)
    to_client = bytes([0b00111100]) + client_cid + b"\x00\x01" + (200).to_bytes(2, "big") + bytes(200)
    f = walk(to_client, analyzer, S2C)
    assert not f.cid_unknown and f.encrypted_header_len == 1 + len(client_cid) + 2 + 2
    to_server = bytes([0b00111100]) + server_cid + b"\x00\x01" + (200).to_bytes(2, "big") + bytes(200)
    assert walk(to_server, analyzer, C2S).encrypted_header_len == 1 + len(server_cid) + 4


def test_a_connection_id_of_unknown_length_is_not_walked():
    f = walk(bytes([0b00111100]) + bytes(300))
    assert f.cid_unknown and not f.encrypted_started


def test_a_dtls_1_2_connection_id_record_uses_the_learned_length():
    analyzer = DtlsAnalyzer()
    walk(hello(1, b"abcd"), analyzer, C2S)
    rec = bytes([25, 0xFE, 0xFD, 0, 1]) + bytes(6) + b"abcd" + (100).to_bytes(2, "big") + bytes(100)
    f = walk(rec, analyzer, S2C)
    assert f.encrypted_started and f.encrypted_header_len == 13 + 4 and f.encrypted_len == len(rec)


# --- the rules ------------------------------------------------------------------------------


def evaluator(sections: str = ON):
    policy = load_policy(shipped_policy_path("final_only"))
    return build_evaluator(policy, parse_config_text(sections, "t.ini"))


def decide(ev, frame: bytes) -> tuple[int, str]:
    out, did = ev.evaluate(frame, len(frame), 0)
    return out, ev.decisions[did].reason


def test_application_data_keeps_its_header_and_keep_bytes():
    frame = udp4_frame(record(23, bytes(1000)), dport=4433)
    assert decide(evaluator(), frame) == (AT + 13, "dtls_application_data_constricted")
    assert decide(evaluator(ON + "keep_bytes = 40\n"), frame)[0] == AT + 13 + 40


def test_without_a_dtls_section_dtls_is_not_cut():
    frame = udp4_frame(record(23, bytes(1000)), dport=4433)
    assert decide(evaluator(""), frame)[0] == len(frame)


def test_on_udp_443_the_first_byte_tells_dtls_from_quic():
    on, off = evaluator(ON), evaluator("")
    dtls = udp4_frame(record(23, bytes(1000)), dport=443)
    assert decide(on, dtls) == (AT + 13, "dtls_application_data_constricted")
    server_cid = bytes(range(1, 9))
    reply = quic_initial(server_cid, server_cid)
    quic = [udp4_frame(quic_initial(bytes(8), bytes(8)), dport=443),
            udp4_frame(reply, src=SERVER4, dst=CLIENT4, sport=443, dport=50000),
            udp4_frame(quic_short(server_cid, bytes(1200)), dport=443)]  # fmt: skip
    decisions = [decide(on, frame) for frame in quic]
    assert decisions == [decide(off, frame) for frame in quic]
    assert decisions[0][1] == "quic_long_header" and decisions[2][1] == "quic_short_header_constricted"


def test_records_in_clear_are_kept_whole_and_malformed_datagrams_too():
    ev = evaluator()
    handshake = udp4_frame(record(22, bytes(900)), dport=4433)
    assert decide(ev, handshake) == (len(handshake), "dtls_records_kept")
    bad = udp4_frame(record(23, bytes(900))[:-5], dport=4433)
    assert decide(ev, bad) == (len(bad), "dtls_malformed_fallback")


# --- the shared captures and real OpenSSL traffic --------------------------------------------

HANDSHAKE_FIELDS = ("dtls.record.content_type", "dtls.record.version", "dtls.record.length",
                    "dtls.handshake.type", "dtls.handshake.length")  # fmt: skip


def test_zeek_dtls13_cid_capture_keeps_every_hello_and_cuts_unified_records_after_the_header(tmp_path):
    capture = EXTERNAL / "zeek_dtls13-cid.pcap"
    output, stats = constrict(tmp_path, capture, ON + "ports = 11111\n")
    assert_same_packets_and_wire_lengths(capture, output)
    decode = ("-d", "udp.port==11111,dtls")
    hellos = tshark_fields(capture, "dtls.handshake", *HANDSHAKE_FIELDS, extra=decode)
    assert hellos and tshark_fields(output, "dtls.handshake", *HANDSHAKE_FIELDS, extra=decode) == hellos
    unified = [(i, o) for i, o in zip(records(capture), records(output), strict=True)
               if i.data[AT] & 0xE0 == 0x20]  # fmt: skip
    assert unified and stats["dtls_appdata_constricted"] == len(unified)
    for i, o in unified:
        cids = (b"I am a client CID", b"fancy server CID")  # learned from the two hellos
        cid = next((len(c) for c in cids if i.data[AT + 1 :].startswith(c)), 0) if i.data[AT] & 0x10 else 0
        assert o.incl_len == AT + 1 + cid + 2 + 2 < i.incl_len


def test_zeek_dtls12_handshake_capture_is_kept_whole(tmp_path):
    capture = EXTERNAL / "zeek_dtls1_2.pcap"
    output, stats = constrict(tmp_path, capture, ON + "ports = 4400\n")
    assert [r.data for r in records(output)] == [r.data for r in records(capture)]
    assert stats["dtls_records_kept"] == len(records(capture))


def test_openssl_dtls12_transfer_keeps_every_handshake_record_and_saves_85_percent(ns, cert, tmp_path):
    need_tools("openssl", "tcpdump", "tshark")
    crt, key = cert
    log = tmp_path / "s_server.out"  # what it received goes there too: a pipe would fill up
    with log.open("wb") as out:
        server = ns.start(ns.peer, "timeout", "30", "openssl", "s_server", "-dtls1_2", "-accept", "4433",
                          "-cert", str(crt), "-key", str(key), stdout=out,
                          stdin=subprocess.PIPE)  # fmt: skip  # (at EOF on stdin it stops)
    for _ in range(100):
        if b"ACCEPT" in log.read_bytes():
            break
        assert server.poll() is None, server.stderr.read().decode(errors="replace")
        time.sleep(0.05)
    capture = tmp_path / "dtls.pcap"
    tcpdump = start_tcpdump(ns, CAP_IF, capture)
    try:
        client = ns.start(ns.capture, "openssl", "s_client", "-dtls1_2", "-mtu", "1400", "-nocommands",
                          "-connect", f"{PEER4}:4433", stdin=subprocess.PIPE)  # fmt: skip
        wait_for_line(client, "stdout", "Verify return code")  # the handshake is done
        # s_client sends what one read of its stdin returns as one record, and DTLS does not
        # split a record over datagrams: paced writes of 1000 bytes keep each within the MTU
        for i in range(800):
            client.stdin.write(b"%07d " % i + bytes(range(65, 91)) * 38 + b"\n")
            client.stdin.flush()
            time.sleep(0.002)
        client.stdin.close()
        client.wait(timeout=20)
        time.sleep(0.2)  # the last records and the close_notify
    finally:
        stop_tcpdump(tcpdump)
        server.kill()
    assert client.returncode == 0, client.stderr.decode(errors="replace")
    output, stats = constrict(tmp_path, capture, ON)
    assert_same_packets_and_wire_lengths(capture, output)
    assert byte_ratio(capture, output) <= 0.15
    handshake = tshark_fields(capture, "dtls.handshake", *HANDSHAKE_FIELDS)
    assert len(handshake) >= 4
    assert tshark_fields(output, "dtls.handshake", *HANDSHAKE_FIELDS) == handshake
    in_headers = tshark_fields(capture, "dtls", "dtls.record.content_type", "dtls.record.length")
    assert tshark_fields(output, "dtls", "dtls.record.content_type", "dtls.record.length") == in_headers
    assert stats["dtls_appdata_constricted"] >= 50 and stats.get("dtls_fallback", 0) == 0
    assert shutil.which("openssl")
