"""QUIC constriction (SPEC §9): flow key, long-header walk and CID learning, the short
header outcomes, and the AFP defaults.

Two levels: the analyzer's facts and flow state (``QuicAnalyzer``), and the final
``(output_len, reason)`` through the shipped final_only policy.  ``STRICT`` is the golden
config (keep 32, require_dcid_match true, allow_short_header_without_known_dcid false);
``AFP_DEFAULTS`` is an empty config (keep 128, require false, allow true).  IPv4/UDP
frames carry their payload at offset 42.
"""

from __future__ import annotations

import pytest
from packets import (
    CLIENT4,
    CLIENT6,
    SERVER4,
    SERVER6,
    UDP4_PAYLOAD_AT,
    quic_handshake,
    quic_initial,
    quic_long,
    quic_short,
    udp4_frame,
    udp6_frame,
)

from pcapconstrictor.engine.analysis.decode import decode
from pcapconstrictor.engine.analysis.quic import QuicAnalyzer
from pcapconstrictor.engine.analysis.registry import analyze_decoded
from pcapconstrictor.engine.config import parse_config_text
from pcapconstrictor.formats.quic import LONG_HANDSHAKE, LONG_INITIAL, LONG_RETRY, LONG_ZERO_RTT, VERSION_2
from pcapconstrictor.grammar import build_evaluator, load_policy, shipped_policy_path

AT = UDP4_PAYLOAD_AT  # 42
STRICT = """[general]
min_saved_bytes_per_packet = 16
[quic]
short_header_keep_packet_bytes = 32
require_dcid_match = true
allow_short_header_without_known_dcid = false
"""
AFP_DEFAULTS = ""
CONSTRICTED = "quic_short_header_constricted"
MATCHED = "quic_short_header_matched"
UNKNOWN = "quic_short_header_unknown_cid_fallback"
MISMATCH = "quic_short_header_dcid_mismatch_fallback"
MALFORMED = "quic_malformed_fallback"
LONG = "quic_long_header"

CLIENT_DCID = bytes.fromhex("d0d1d2d3d4d5d6d7")  # chosen by the client; never learned
CLIENT_CID = bytes.fromhex("c1c2c3c4c5c6c7c8")  # client's SCID
SERVER_CID = bytes.fromhex("5e5e5e01")  # server's SCID
OTHER_CID = bytes.fromhex("0badc1d0")


def c2s(payload: bytes) -> bytes:
    return udp4_frame(payload, src=CLIENT4, dst=SERVER4, sport=50000, dport=443)


def s2c(payload: bytes) -> bytes:
    return udp4_frame(payload, src=SERVER4, dst=CLIENT4, sport=443, dport=50000)


class Engine:
    def __init__(self) -> None:
        self.quic = QuicAnalyzer()

    def feed(self, frame: bytes):
        return analyze_decoded(self.quic, decode(frame, len(frame)), frame, 0)

    def only_flow(self):
        (flow,) = self.quic.flows.entries.values()
        return flow


class Recorder:
    def __init__(self, text: str = STRICT) -> None:
        self.evaluator = build_evaluator(load_policy(shipped_policy_path("final_only")),
                                         parse_config_text(text, "test.ini"))  # fmt: skip

    def feed(self, frame: bytes) -> tuple[int, str]:
        out, did = self.evaluator.evaluate(frame, len(frame), 0)
        return out, self.evaluator.decisions[did].reason


def whole(frame: bytes, reason: str) -> tuple[int, str]:
    return len(frame), reason


def handshake_done(feed) -> None:
    """Client and server each send an Initial: both SCIDs are learned."""
    feed(c2s(quic_initial(CLIENT_DCID, CLIENT_CID, bytes(1100))))
    feed(s2c(quic_initial(CLIENT_CID, SERVER_CID, bytes(100))))


# --- §9.2 canonical flow key ----------------------------------------------------------------


def test_both_directions_of_a_connection_share_one_flow_state():
    eng = Engine()
    handshake_done(eng.feed)
    assert len(eng.quic.flows.entries) == 1
    flow = eng.only_flow()
    assert {flow.scid_a, flow.scid_b} == {CLIENT_CID, SERVER_CID}


def test_a_short_header_matches_the_cid_the_other_endpoint_sent_in_either_direction():
    rec = Recorder()
    handshake_done(rec.feed)
    assert rec.feed(c2s(quic_short(SERVER_CID, bytes(300)))) == (AT + 32, CONSTRICTED)
    assert rec.feed(s2c(quic_short(CLIENT_CID, bytes(300)))) == (AT + 32, CONSTRICTED)


def test_a_short_header_carrying_its_own_senders_cid_does_not_match():
    rec = Recorder()
    handshake_done(rec.feed)
    frame = c2s(quic_short(CLIENT_CID, bytes(300)))
    assert rec.feed(frame) == whole(frame, MISMATCH)


def learned_as(src: bytes, sport: int, dst: bytes, dport: int) -> tuple[bytes | None, bytes | None]:
    """(scid_A, scid_B) after ``src`` sends a long header with SCID SERVER_CID."""
    eng = Engine()
    eng.feed(udp4_frame(quic_handshake(b"", SERVER_CID), src=src, dst=dst, sport=sport, dport=dport))
    flow = eng.only_flow()
    return flow.scid_a, flow.scid_b


def test_endpoint_a_is_the_smaller_address_compared_byte_by_byte():
    low, high = bytes([10, 0, 0, 2]), bytes([10, 0, 0, 10])  # as text "10.0.0.10" < "10.0.0.2"
    assert learned_as(low, 50000, high, 443) == (SERVER_CID, None)
    assert learned_as(high, 443, low, 50000) == (None, SERVER_CID)


def test_endpoint_a_is_the_smaller_port_when_addresses_are_equal():
    same = bytes([10, 0, 0, 1])
    assert learned_as(same, 443, same, 50000) == (SERVER_CID, None)
    assert learned_as(same, 50000, same, 443) == (None, SERVER_CID)


def test_identical_endpoints_tie_to_the_source_as_a():
    same = bytes([10, 0, 0, 1])
    assert learned_as(same, 443, same, 443) == (SERVER_CID, None)


def test_ipv6_flows_learn_and_match_like_ipv4_flows():
    rec = Recorder()
    rec.feed(udp6_frame(quic_initial(CLIENT_DCID, CLIENT_CID, bytes(1100))))
    rec.feed(udp6_frame(quic_initial(CLIENT_CID, SERVER_CID, bytes(100)),
                        src=SERVER6, dst=CLIENT6, sport=443, dport=50000))  # fmt: skip
    assert rec.feed(udp6_frame(quic_short(SERVER_CID, bytes(300)))) == (62 + 32, CONSTRICTED)


# --- §9.3 long-header walk: parse failures --------------------------------------------------


def malformed(payload: bytes) -> None:
    eng, rec = Engine(), Recorder()
    assert eng.feed(c2s(payload)).malformed, payload.hex()
    frame = c2s(payload)
    assert rec.feed(frame) == whole(frame, MALFORMED), payload.hex()


def test_fewer_than_7_bytes_for_a_long_header_is_malformed():
    malformed(bytes([0xF0, 0, 0, 0, 1, 0]))  # a Retry header one byte short


def test_a_7_byte_long_header_parses():
    frame = c2s(bytes([0xF0, 0, 0, 0, 1, 0, 0]))  # Retry, empty CIDs
    assert Recorder().feed(frame) == whole(frame, LONG)


def test_version_negotiation_is_kept_whole_as_version_negotiation_not_malformed():
    # DECISIONS #9: upstream calls version 0 malformed; the bytes kept are the same (all)
    versions = b"\x00\x00\x00\x01" * 3
    payload = bytes([0xC0]) + bytes(4) + b"\x08" + CLIENT_DCID + b"\x08" + CLIENT_CID + versions
    f = Engine().feed(c2s(payload))
    assert f.version_negotiation and not f.malformed and not f.short_header
    frame = c2s(payload)
    assert Recorder(AFP_DEFAULTS).feed(frame) == whole(frame, "quic_version_negotiation")


def test_a_version_2_initial_is_read_with_the_version_2_type_bits():
    # RFC 9369 §3.2: type bits 01 are an Initial in v2 (a 0-RTT packet in v1)
    packet = quic_long(LONG_INITIAL, CLIENT_DCID, CLIENT_CID, bytes(1100), token=b"\x07" * 30,
                       version=VERSION_2)
    assert (packet[0] >> 4) & 3 == 1
    f = Engine().feed(c2s(packet))
    assert f.only_long_headers and f.long_headers == 1 and f.version == VERSION_2
    frame = c2s(packet)
    assert Recorder(AFP_DEFAULTS).feed(frame) == whole(frame, LONG)


@pytest.mark.parametrize("packet_type", [LONG_INITIAL, LONG_ZERO_RTT, LONG_HANDSHAKE, LONG_RETRY])
def test_version_2_packets_of_every_type_are_walked_and_learned(packet_type):
    eng = Engine()
    body = bytes(30) if packet_type != LONG_RETRY else b"\x01" * 16
    eng.feed(s2c(quic_long(packet_type, CLIENT_CID, SERVER_CID, body, version=VERSION_2)))
    assert eng.only_flow().scid_b == SERVER_CID or eng.only_flow().scid_a == SERVER_CID


def test_a_draft_version_is_read_with_the_version_1_type_bits():
    rec = Recorder()
    draft_29 = 0xFF00001D
    rec.feed(s2c(quic_long(LONG_INITIAL, CLIENT_CID, SERVER_CID, bytes(30), token=b"\x01", version=draft_29)))
    assert rec.feed(c2s(quic_short(SERVER_CID, bytes(300)))) == (AT + 32, CONSTRICTED)


def test_an_unknown_version_is_read_only_to_its_invariants_and_kept_whole():
    # what follows the connection IDs is not known: even a short-header-looking tail stays
    payload = quic_long(LONG_HANDSHAKE, CLIENT_DCID, CLIENT_CID, bytes(20), version=0x1A2A3A4A)
    payload += quic_short(CLIENT_CID, bytes(500))
    f = Engine().feed(c2s(payload))
    assert f.unknown_version and not f.short_header and f.version == 0x1A2A3A4A
    frame = c2s(payload)
    for config in (AFP_DEFAULTS, STRICT):
        assert Recorder(config).feed(frame) == whole(frame, "quic_unknown_version")


def test_an_unknown_version_whose_connection_ids_are_missing_is_malformed_and_kept_whole():
    malformed(quic_long(LONG_HANDSHAKE, CLIENT_DCID, CLIENT_CID, version=0x1A2A3A4A)[:10])


def test_google_quic_in_long_header_form_is_kept_whole():
    payload = quic_long(LONG_INITIAL, CLIENT_DCID, b"", bytes(20), version=int.from_bytes(b"Q046", "big"))
    payload += quic_short(CLIENT_CID, bytes(500))
    f = Engine().feed(c2s(payload))
    assert f.google_quic and not f.short_header
    frame = c2s(payload)
    assert Recorder(AFP_DEFAULTS).feed(frame) == whole(frame, "quic_google_quic")


def test_a_legacy_google_quic_public_header_is_kept_whole():
    # Q043 and earlier: public flags 0x09 (version, 8-byte CID), CID, version "Q043"
    payload = bytes([0x49]) + CLIENT_CID + b"Q043" + bytes(600)
    frame = c2s(payload)
    assert Engine().feed(frame).google_quic
    assert Recorder(AFP_DEFAULTS).feed(frame) == whole(frame, "quic_google_quic")


def test_dcid_longer_than_20_bytes_is_malformed():
    malformed(quic_handshake(bytes(21), CLIENT_CID))


def test_scid_longer_than_20_bytes_is_malformed():
    malformed(quic_handshake(CLIENT_DCID, bytes(21)))


def test_cids_of_exactly_20_bytes_parse_and_are_learned():
    rec = Recorder()
    rec.feed(s2c(quic_handshake(bytes(20), b"\x20" * 20)))
    assert rec.feed(c2s(quic_short(b"\x20" * 20, bytes(300)))) == (AT + 32, CONSTRICTED)


@pytest.mark.parametrize(("cut", "what"), [
    (6 + 3, "inside the DCID"),
    (6 + 8, "before the SCID length byte"),
    (6 + 8 + 1 + 4, "inside the SCID"),
])  # fmt: skip
def test_cid_bytes_missing_is_malformed(cut, what):
    packet = quic_handshake(CLIENT_DCID, CLIENT_CID, bytes(20))
    malformed(packet[:cut])


def test_packet_bytes_missing_after_the_length_field_is_malformed():
    malformed(quic_handshake(CLIENT_DCID, CLIENT_CID, bytes(100))[:-1])


def test_initial_token_length_varint_cut_short_is_malformed():
    header = quic_long(LONG_INITIAL, CLIENT_DCID, CLIENT_CID, token=bytes(100))
    at = 6 + 8 + 1 + 8  # the token length varint (2 bytes for 100)
    assert header[at] >> 6 == 1
    malformed(header[: at + 1])


def test_initial_token_bytes_missing_is_malformed():
    packet = quic_long(LONG_INITIAL, CLIENT_DCID, CLIENT_CID, bytes(10), token=bytes(100))
    at = 6 + 8 + 1 + 8 + 2
    malformed(packet[: at + 50])


def test_initial_with_a_token_is_walked_past_the_token():
    rec = Recorder()
    rec.feed(s2c(quic_long(LONG_INITIAL, CLIENT_CID, SERVER_CID, bytes(30), token=b"\x01" * 40)))
    assert rec.feed(c2s(quic_short(SERVER_CID, bytes(300)))) == (AT + 32, CONSTRICTED)


@pytest.mark.parametrize("packet_type", [LONG_INITIAL, LONG_ZERO_RTT, LONG_HANDSHAKE])
def test_length_varint_cut_short_is_malformed(packet_type):
    packet = quic_long(packet_type, CLIENT_DCID, CLIENT_CID, length=20000)  # 4-byte varint
    assert packet[-4] >> 6 == 2
    malformed(packet[:-2])


def test_a_length_larger_than_the_datagram_is_malformed():
    malformed(quic_long(LONG_HANDSHAKE, CLIENT_DCID, CLIENT_CID, bytes(50), length=(1 << 62) - 1))


def test_retry_extends_to_the_end_of_the_datagram():
    # What follows the Retry header would be a short header with the learned DCID, or
    # padding; both are part of the Retry.
    eng, rec = Engine(), Recorder()
    for feed in (eng.feed, rec.feed):
        handshake_done(feed)
    payload = quic_long(LONG_RETRY, CLIENT_CID, OTHER_CID, b"\x01" * 16 + quic_short(CLIENT_CID) + bytes(20))
    f = eng.feed(s2c(payload))
    assert f.only_long_headers and f.long_headers == 1 and not f.short_header
    frame = s2c(payload)
    assert rec.feed(frame) == whole(frame, LONG)


# --- §9.3 learning --------------------------------------------------------------------------


@pytest.mark.parametrize("packet_type", [LONG_INITIAL, LONG_ZERO_RTT, LONG_HANDSHAKE, LONG_RETRY])
def test_the_scid_is_learned_from_every_long_header_type(packet_type):
    rec = Recorder()
    rec.feed(s2c(quic_long(packet_type, CLIENT_CID, SERVER_CID, bytes(40))))
    assert rec.feed(c2s(quic_short(SERVER_CID, bytes(300)))) == (AT + 32, CONSTRICTED)


def test_a_zero_length_scid_is_not_learned():
    rec = Recorder()
    rec.feed(s2c(quic_initial(CLIENT_CID, b"", bytes(100))))
    frame = c2s(quic_short(b"", bytes(300)))
    assert rec.feed(frame) == whole(frame, UNKNOWN)


def test_a_zero_length_scid_leaves_an_earlier_learned_scid_in_place():
    rec = Recorder()
    rec.feed(s2c(quic_initial(CLIENT_CID, SERVER_CID, bytes(100))))
    rec.feed(s2c(quic_handshake(CLIENT_CID, b"", bytes(100))))
    assert rec.feed(c2s(quic_short(SERVER_CID, bytes(300)))) == (AT + 32, CONSTRICTED)


def test_dcids_are_not_learned():
    rec = Recorder()
    rec.feed(c2s(quic_initial(CLIENT_DCID, CLIENT_CID, bytes(1100))))
    frame = c2s(quic_short(CLIENT_DCID, bytes(300)))
    assert rec.feed(frame) == whole(frame, UNKNOWN)


def test_a_later_scid_from_the_same_endpoint_replaces_the_earlier_one():
    rec = Recorder()
    rec.feed(s2c(quic_initial(CLIENT_CID, SERVER_CID, bytes(100))))
    rec.feed(s2c(quic_handshake(CLIENT_CID, OTHER_CID, bytes(100))))
    stale = c2s(quic_short(SERVER_CID, bytes(300)))
    assert rec.feed(stale) == whole(stale, MISMATCH)
    assert rec.feed(c2s(quic_short(OTHER_CID, bytes(300)))) == (AT + 32, CONSTRICTED)


def test_coalesced_long_headers_are_all_walked_and_learned():
    eng = Engine()
    initial = quic_initial(CLIENT_CID, b"\x01" * 4, bytes(50))
    datagram = initial + quic_handshake(CLIENT_CID, SERVER_CID, bytes(60))
    f = eng.feed(s2c(datagram))
    assert f.only_long_headers and f.long_headers == 2
    assert SERVER_CID in (eng.only_flow().scid_a, eng.only_flow().scid_b)


def test_coalesced_long_headers_then_a_short_header_cut_only_the_short_header():
    rec = Recorder()
    handshake_done(rec.feed)
    long_part = quic_handshake(SERVER_CID, CLIENT_CID, bytes(60))
    frame = c2s(long_part + quic_short(SERVER_CID, bytes(300)))
    assert rec.feed(frame) == (AT + len(long_part) + 32, CONSTRICTED)


def test_cids_learned_before_a_later_parse_failure_stay_learned():
    eng, rec = Engine(), Recorder()
    bad_tail = bytes([0xC8]) * 40  # looks like a long header, DCID length 200
    for feed in (eng.feed, rec.feed):
        feed(s2c(quic_initial(CLIENT_CID, SERVER_CID, bytes(100)) + bad_tail))
    f = eng.feed(c2s(quic_short(SERVER_CID, bytes(300))))
    assert f.dcid_known and f.dcid_matched
    assert rec.feed(c2s(quic_short(SERVER_CID, bytes(300)))) == (AT + 32, CONSTRICTED)


def test_the_failing_datagram_itself_is_malformed():
    frame = s2c(quic_initial(CLIENT_CID, SERVER_CID, bytes(100)) + bytes([0xC8]) * 40)
    assert Recorder().feed(frame) == whole(frame, MALFORMED)


# --- §9.4 after the walk --------------------------------------------------------------------


def test_only_long_headers_is_long_header():
    eng, rec = Engine(), Recorder()
    payload = quic_initial(CLIENT_DCID, CLIENT_CID, bytes(1100))
    f = eng.feed(c2s(payload))
    assert f.only_long_headers and f.long_headers == 1 and not f.malformed
    assert rec.feed(c2s(payload)) == whole(c2s(payload), LONG)


def test_zero_padding_after_long_headers_is_malformed():
    eng, rec = Engine(), Recorder()
    payload = quic_initial(CLIENT_DCID, CLIENT_CID, bytes(200)) + bytes(900)
    f = eng.feed(c2s(payload))
    assert f.trailing_bytes and not f.short_header
    assert rec.feed(c2s(payload)) == whole(c2s(payload), MALFORMED)


@pytest.mark.parametrize("first", [0x00, 0x3F, 0x20])
def test_a_datagram_whose_first_byte_lacks_the_fixed_bit_is_not_quic(first):
    for config in (STRICT, AFP_DEFAULTS):
        rec = Recorder(config)
        handshake_done(rec.feed)
        frame = c2s(bytes([first]) + SERVER_CID + bytes(300))
        assert rec.feed(frame) == whole(frame, "quic_candidate")


def test_an_empty_udp_payload_on_the_quic_port_is_not_walked():
    frame = c2s(b"")
    assert Recorder(AFP_DEFAULTS).feed(frame) == whole(frame, "quic_candidate")


def test_unknown_peer_cid_with_require_dcid_match_is_unknown_cid():
    text = STRICT.replace("without_known_dcid = false", "without_known_dcid = true")
    frame = c2s(quic_short(SERVER_CID, bytes(300)))
    assert Recorder(text).feed(frame) == whole(frame, UNKNOWN)


def test_unknown_peer_cid_without_allow_is_unknown_cid():
    text = STRICT.replace("require_dcid_match = true", "require_dcid_match = false")
    frame = c2s(quic_short(SERVER_CID, bytes(300)))
    assert Recorder(text).feed(frame) == whole(frame, UNKNOWN)


def test_peer_cid_unknown_while_the_senders_own_cid_is_known_is_unknown_cid():
    rec = Recorder()
    rec.feed(c2s(quic_initial(CLIENT_DCID, CLIENT_CID, bytes(1100))))  # flow exists, server side not learned
    frame = c2s(quic_short(SERVER_CID, bytes(300)))
    assert rec.feed(frame) == whole(frame, UNKNOWN)


def test_unknown_peer_cid_allowed_keeps_short_header_keep_bytes():
    text = "[quic]\nshort_header_keep_packet_bytes = 40\n"  # require false, allow true
    assert Recorder(text).feed(c2s(quic_short(SERVER_CID, bytes(300)))) == (AT + 40, CONSTRICTED)


def test_unknown_peer_cid_allowed_keeps_at_least_1_byte():
    text = "[quic]\nshort_header_keep_packet_bytes = 0\n"
    assert Recorder(text).feed(c2s(quic_short(SERVER_CID, bytes(300)))) == (AT + 1, CONSTRICTED)


def test_a_short_header_shorter_than_1_plus_the_learned_cid_is_malformed():
    eng, rec = Engine(), Recorder()
    for feed in (eng.feed, rec.feed):
        handshake_done(feed)
    payload = quic_short(SERVER_CID[:3], b"")  # 4 bytes; 1 + 4 needed
    f = eng.feed(c2s(payload))
    assert f.short_header and f.dcid_known and f.dcid_len == 4 and not f.dcid_matched
    assert rec.feed(c2s(payload)) == whole(c2s(payload), MALFORMED)


def test_a_short_header_of_exactly_1_plus_the_learned_cid_matches():
    text = STRICT.replace("min_saved_bytes_per_packet = 16", "min_saved_bytes_per_packet = 0")
    rec = Recorder(text)
    handshake_done(rec.feed)
    frame = c2s(quic_short(SERVER_CID, b""))
    assert rec.feed(frame) == whole(frame, MATCHED)


def test_a_different_dcid_is_dcid_mismatch():
    rec = Recorder()
    handshake_done(rec.feed)
    frame = c2s(quic_short(OTHER_CID, bytes(300)))
    assert rec.feed(frame) == whole(frame, MISMATCH)


def test_the_dcid_is_compared_even_when_require_dcid_match_is_false():
    for text in (AFP_DEFAULTS, STRICT.replace("require_dcid_match = true", "require_dcid_match = false")):
        rec = Recorder(text)
        handshake_done(rec.feed)
        frame = c2s(quic_short(OTHER_CID, bytes(300)))
        assert rec.feed(frame) == whole(frame, MISMATCH), text


def test_a_matched_short_header_keeps_at_least_1_plus_the_cid_length():
    text = STRICT.replace("short_header_keep_packet_bytes = 32", "short_header_keep_packet_bytes = 2")
    rec = Recorder(text)
    handshake_done(rec.feed)
    assert rec.feed(c2s(quic_short(SERVER_CID, bytes(300)))) == (AT + 1 + len(SERVER_CID), CONSTRICTED)


def test_a_matched_short_header_keeps_keep_bytes_when_larger():
    rec = Recorder()
    handshake_done(rec.feed)
    assert rec.feed(c2s(quic_short(SERVER_CID, bytes(300)))) == (AT + 32, CONSTRICTED)


def test_a_matched_short_header_shorter_than_keep_bytes_is_matched_not_cut():
    rec = Recorder()
    handshake_done(rec.feed)
    frame = c2s(quic_short(SERVER_CID, bytes(20)))  # 25 bytes < 32
    assert rec.feed(frame) == whole(frame, MATCHED)


def test_a_matched_cut_saving_less_than_min_saved_is_matched_not_cut():
    rec = Recorder()
    handshake_done(rec.feed)
    frame = c2s(quic_short(SERVER_CID, bytes(32 + 15 - 5)))  # 47 bytes: would save 15
    assert rec.feed(frame) == whole(frame, MATCHED)
    cut = c2s(quic_short(SERVER_CID, bytes(32 + 16 - 5)))  # 48 bytes: saves 16
    assert rec.feed(cut) == (AT + 32, CONSTRICTED)


def test_the_short_header_dcid_length_is_the_learned_length_not_read_from_the_packet():
    eng = Engine()
    handshake_done(eng.feed)
    f = eng.feed(c2s(quic_short(SERVER_CID + b"\xff" * 10, bytes(100))))
    assert f.dcid_matched and f.dcid_len == len(SERVER_CID)


# --- §9.6 the AFP defaults ------------------------------------------------------------------


def test_afp_defaults_cut_any_fixed_bit_datagram_of_an_unknown_flow_to_128_bytes():
    rec = Recorder(AFP_DEFAULTS)
    for first in (0x40, 0x45, 0x7F):
        frame = c2s(bytes([first]) + bytes(299))
        assert rec.feed(frame) == (AT + 128, CONSTRICTED), hex(first)


def test_afp_defaults_keep_a_datagram_whose_cut_would_save_less_than_min_saved():
    rec = Recorder(AFP_DEFAULTS)
    frame = c2s(bytes([0x40]) + bytes(128 + 15 - 1))
    assert rec.feed(frame) == whole(frame, MATCHED)


def test_afp_defaults_cut_a_matched_short_header_to_128_bytes():
    rec = Recorder(AFP_DEFAULTS)
    handshake_done(rec.feed)
    assert rec.feed(s2c(quic_short(CLIENT_CID, bytes(1000)))) == (AT + 128, CONSTRICTED)


def test_afp_defaults_leave_udp_outside_the_quic_port_alone():
    frame = udp4_frame(bytes([0x40]) + bytes(299), sport=50000, dport=53)
    assert Recorder(AFP_DEFAULTS).feed(frame) == whole(frame, "udp")
