"""TLS final_only (SPEC §8.3-§8.8, DECISIONS.md #1), step by step.

Two levels: the analyzer's facts and per-direction state (``TlsAnalyzer``), and the
final ``(output_len, reason)`` through the shipped final_only policy with the golden
keep values (keep_rec = keep_cont = 8, min_saved = 16).  Frames are IPv4/TCP without
options unless a test says otherwise, so the TCP payload starts at 54 (SPEC §8.8).
"""

from __future__ import annotations

import pytest
from packets import (
    ACK,
    ALERT,
    APPDATA,
    CCS,
    CLIENT4,
    FIN_ACK,
    HANDSHAKE,
    PSH_ACK,
    RST,
    SERVER4,
    SYN,
    TCP4_PAYLOAD_AT,
    filler,
    tcp4_frame,
    tls_header,
    tls_record,
)

from pcapconstrictor.engine.analysis.decode import decode
from pcapconstrictor.engine.analysis.flow_keys import direction_key
from pcapconstrictor.engine.analysis.registry import analyze_decoded
from pcapconstrictor.engine.analysis.tls import TlsAnalyzer
from pcapconstrictor.engine.config import parse_config_text
from pcapconstrictor.grammar import build_evaluator, load_policy, shipped_policy_path

AT = TCP4_PAYLOAD_AT  # 54
GOLDEN_VALUES = """[general]
min_saved_bytes_per_packet = 16
[tls]
app_data_keep_record_bytes = 8
app_data_continuation_keep_bytes = 8
"""
CONSTRICTED = "tls_application_data_constricted"


class Conn:
    """One TCP connection CLIENT4:50000 <-> SERVER4:443; each side tracks its next seq."""

    def __init__(self, client_seq: int = 1000, server_seq: int = 70000) -> None:
        self.seq = {True: client_seq, False: server_seq}

    def segment(self, payload: bytes, *, client: bool, flags: int = PSH_ACK, seq: int | None = None,
                options: bytes = b"") -> bytes:  # fmt: skip
        seq = self.seq[client] if seq is None else seq
        self.seq[client] = (seq + len(payload)) & 0xFFFFFFFF
        if client:
            return tcp4_frame(payload, src=CLIENT4, dst=SERVER4, sport=50000, dport=443, seq=seq,
                              flags=flags, options=options)  # fmt: skip
        return tcp4_frame(payload, src=SERVER4, dst=CLIENT4, sport=443, dport=50000, seq=seq,
                          flags=flags, options=options)  # fmt: skip

    def client(self, payload: bytes = b"", **kw) -> bytes:
        return self.segment(payload, client=True, **kw)

    def server(self, payload: bytes = b"", **kw) -> bytes:
        return self.segment(payload, client=False, **kw)


CLIENT_KEY = direction_key(CLIENT4, SERVER4, 50000, 443)
SERVER_KEY = direction_key(SERVER4, CLIENT4, 443, 50000)


class Engine:
    """The TLS analyzer alone: facts per segment, state per direction."""

    def __init__(self) -> None:
        self.tls = TlsAnalyzer(boundary="reset")

    def feed(self, frame: bytes):
        return analyze_decoded(self.tls, decode(frame, len(frame)), frame, 0)

    def state(self, client: bool):
        return self.tls.flows.entries.get(CLIENT_KEY if client else SERVER_KEY)


class Recorder:
    """The shipped final_only policy with a config built by parse_config_text."""

    def __init__(self, text: str = GOLDEN_VALUES) -> None:
        config = parse_config_text(text, "test.ini")
        self.evaluator = build_evaluator(load_policy(shipped_policy_path("final_only")), config)

    def feed(self, frame: bytes) -> tuple[int, str]:
        out, did = self.evaluator.evaluate(frame, len(frame), 0)
        return out, self.evaluator.decisions[did].reason

    def state(self, client: bool):
        return self.evaluator.analyzers["tls"].flows.entries.get(CLIENT_KEY if client else SERVER_KEY)


def whole(frame: bytes, reason: str = "tls_candidate") -> tuple[int, str]:
    return len(frame), reason


def synchronized_client(feed, conn: Conn) -> None:
    """ClientHello: the client direction synchronises, both directions are confirmed."""
    feed(conn.client(tls_record(HANDSHAKE, 300)))


def synchronized_both(feed, conn: Conn) -> None:
    synchronized_client(feed, conn)
    feed(conn.server(tls_record(HANDSHAKE, 120)))


# --- §8.8 worked examples -------------------------------------------------------------------

EXAMPLE_1 = tls_record(HANDSHAKE, 1210) + tls_record(CCS, 1) + tls_record(APPDATA, 9089, present=1579 - 5)


def play_example_1(rec: Recorder, conn: Conn):
    return rec.feed(conn.server(EXAMPLE_1))


def test_worked_example_1_handshake_ccs_and_an_appdata_start_are_cut_8_bytes_into_the_appdata():
    rec, conn = Recorder(), Conn()
    assert len(EXAMPLE_1) == 2800
    assert play_example_1(rec, conn) == (AT + 1221 + 8, CONSTRICTED)  # 54 + 1229
    s = rec.state(client=False)
    assert s.active and s.active_app_data and s.active_remaining == 7515


def test_worked_example_2_a_segment_inside_the_appdata_record_is_kept_whole():
    rec, conn = Recorder(), Conn()
    play_example_1(rec, conn)
    frame = conn.server(filler(2800))
    assert rec.feed(frame) == whole(frame)
    assert rec.state(client=False).active_remaining == 7515 - 2800


def test_worked_example_3_the_segment_ending_the_record_exactly_is_cut_to_8_bytes():
    rec, conn = Recorder(), Conn()
    play_example_1(rec, conn)
    rec.feed(conn.server(filler(2800)))
    rec.feed(conn.server(filler(2800)))
    assert rec.state(client=False).active_remaining == 1915
    assert rec.feed(conn.server(filler(1915))) == (AT + 8, CONSTRICTED)  # 62
    assert not rec.state(client=False).active


def test_worked_example_4_six_complete_appdata_records_are_cut_after_the_last_ones_first_8_bytes():
    rec, conn = Recorder(), Conn()
    synchronized_client(rec.feed, conn)
    payload = b"".join(tls_record(APPDATA, n) for n in (424, 145, 144, 144, 135, 143))
    assert len(payload) == 1165
    assert rec.feed(conn.client(payload)) == (AT + 1025, CONSTRICTED)


def test_worked_example_5_ccs_then_appdata_is_cut_to_14_payload_bytes():
    rec, conn = Recorder(), Conn()
    synchronized_client(rec.feed, conn)
    payload = tls_record(CCS, 1) + tls_record(APPDATA, 53)
    assert len(payload) == 64
    assert rec.feed(conn.client(payload)) == (AT + 14, CONSTRICTED)


# --- DECISIONS.md #1: a non-AppData record after the AppData start drops the cut ------------


def test_appdata_followed_by_an_alert_in_the_same_segment_is_kept_whole():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    frame = conn.server(tls_record(APPDATA, 100) + tls_record(ALERT, 2))
    assert rec.feed(frame) == whole(frame, "tls_candidate")


def test_appdata_followed_by_an_alert_is_reported_as_appdata_with_a_non_appdata_record_after_it():
    eng, conn = Engine(), Conn()
    synchronized_both(eng.feed, conn)
    f = eng.feed(conn.server(tls_record(APPDATA, 100) + tls_record(ALERT, 2)))
    assert f.appdata_started and f.non_appdata_after and not f.malformed and not f.no_record


def test_appdata_followed_by_a_partial_handshake_record_is_kept_whole():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    frame = conn.server(tls_record(APPDATA, 100) + tls_record(HANDSHAKE, 400, present=50))
    assert rec.feed(frame) == whole(frame)


def test_an_appdata_start_after_the_non_appdata_record_is_cut_again():
    # the main tool's rule: only a segment whose last visible record is an AppData start is cut
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    payload = tls_record(APPDATA, 100) + tls_record(ALERT, 2) + tls_record(APPDATA, 300)
    assert rec.feed(conn.server(payload)) == (AT + 105 + 7 + 8, CONSTRICTED)


# --- §8.5 step 1: SYN or RST deletes both directions ----------------------------------------


def test_syn_deletes_the_state_of_both_directions():
    eng, conn = Engine(), Conn()
    synchronized_both(eng.feed, conn)
    assert eng.state(client=True) and eng.state(client=False)
    eng.feed(conn.client(flags=SYN))
    assert eng.state(client=True) is None and eng.state(client=False) is None


def test_rst_from_the_other_side_deletes_the_state_of_both_directions():
    eng, conn = Engine(), Conn()
    synchronized_both(eng.feed, conn)
    eng.feed(conn.server(flags=RST | ACK))
    assert eng.state(client=True) is None and eng.state(client=False) is None


def test_after_syn_a_direction_is_unconfirmed_again_and_appdata_is_not_cut():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    rec.feed(conn.client(flags=SYN, seq=5000))
    frame = conn.server(tls_record(APPDATA, 300))
    assert rec.feed(frame) == whole(frame, "tls_no_record_fallback")


# --- step 2: no payload ---------------------------------------------------------------------


def test_a_segment_without_payload_is_no_application_data_and_changes_nothing():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    before = vars_of(rec.state(client=True))
    for flags in (ACK, FIN_ACK):
        frame = conn.client(flags=flags)
        assert rec.feed(frame) == whole(frame, "tls_candidate")
    assert vars_of(rec.state(client=True)) == before


def test_a_segment_without_payload_creates_no_state():
    eng = Engine()
    f = eng.feed(Conn().client(flags=ACK))
    assert not (f.no_record or f.malformed or f.appdata_started)
    assert eng.state(client=True) is None


STATE_FIELDS = ("confirmed", "seen_app_data", "synchronized", "expected_seq", "active",
                "active_remaining", "active_app_data")  # SPEC §8.3


def vars_of(state) -> dict:
    return {name: getattr(state, name) for name in STATE_FIELDS}


# --- step 3: was_confirmed is the value before the segment ----------------------------------


def test_a_direction_confirmed_by_the_peers_handshake_synchronises_on_any_record_type():
    rec, conn = Recorder(), Conn()
    synchronized_client(rec.feed, conn)  # confirms the server direction too
    s = rec.state(client=False)
    assert s.confirmed and not s.synchronized
    payload = tls_record(CCS, 1) + tls_record(APPDATA, 53)
    assert rec.feed(conn.server(payload)) == (AT + 14, CONSTRICTED)


def test_was_confirmed_is_read_after_the_syn_rst_reset_of_the_same_segment():
    # RST with payload: step 1 deletes the confirmed entry before step 3 reads it, so the
    # AppData record at the segment start is on an unconfirmed direction: NoRecord.
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    frame = conn.server(tls_record(APPDATA, 300), flags=RST | ACK)
    assert rec.feed(frame) == whole(frame, "tls_no_record_fallback")
    assert rec.state(client=False) is None


def test_the_same_rst_free_segment_on_the_confirmed_direction_is_cut():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    assert rec.feed(conn.server(tls_record(APPDATA, 300))) == (AT + 8, CONSTRICTED)


# --- step 4: sequence check -----------------------------------------------------------------


def test_a_sequence_gap_clears_synchronization_and_the_open_record():
    eng, conn = Engine(), Conn()
    synchronized_both(eng.feed, conn)
    eng.feed(conn.server(tls_record(APPDATA, 5000, present=1000)))
    assert eng.state(client=False).active
    gap = conn.seq[False] + 1400  # one segment lost
    f = eng.feed(conn.server(filler(1000), seq=gap))
    s = eng.state(client=False)
    assert f.no_record and not f.middle_continuation
    assert not s.synchronized and not s.active and s.confirmed
    assert s.expected_seq == 0  # cleared by step 4, not advanced on the NoRecord path


def test_a_sequence_gap_in_a_confirmed_direction_is_a_no_record_fallback():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    rec.feed(conn.server(tls_record(APPDATA, 5000, present=1000)))
    frame = conn.server(filler(1000), seq=conn.seq[False] + 1400)
    assert rec.feed(frame) == whole(frame, "tls_no_record_fallback")


def test_a_retransmission_clears_synchronization_and_resynchronises_on_its_header():
    eng, conn = Engine(), Conn()
    synchronized_both(eng.feed, conn)
    first_seq = conn.seq[False]
    eng.feed(conn.server(tls_record(APPDATA, 5000, present=1000)))
    assert eng.state(client=False).active_remaining == 5005 - 1005
    # Retransmission of the same segment: seq != expected_seq, so the open record is dropped
    # and the walk starts over at its header (the direction is confirmed).
    f = eng.feed(conn.server(tls_record(APPDATA, 5000, present=1000), seq=first_seq))
    s = eng.state(client=False)
    assert f.appdata_started and f.appdata_offset == 0
    assert s.synchronized and s.active and s.active_remaining == 5005 - 1005
    assert s.expected_seq == first_seq + 1005


def test_a_segment_at_the_expected_sequence_continues_the_open_record():
    eng, conn = Engine(), Conn()
    synchronized_both(eng.feed, conn)
    eng.feed(conn.server(tls_record(APPDATA, 5000, present=1000)))
    f = eng.feed(conn.server(filler(1000)))
    assert f.middle_continuation and eng.state(client=False).active_remaining == 5005 - 1005 - 1000


# --- step 6: continuation of an open record -------------------------------------------------


def test_appdata_continuation_longer_than_the_segment_is_a_middle_segment_kept_whole():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    rec.feed(conn.server(tls_record(APPDATA, 4000, present=500)))
    frame = conn.server(filler(1000))
    assert rec.feed(frame) == whole(frame)
    assert rec.state(client=False).active_remaining == 4005 - 505 - 1000


def test_a_middle_segment_is_kept_whole_even_if_its_bytes_look_like_a_record_header():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    rec.feed(conn.server(tls_record(APPDATA, 4000, present=500)))
    frame = conn.server(tls_record(APPDATA, 100) + filler(300))
    assert rec.feed(frame) == whole(frame)


def test_appdata_continuation_ending_exactly_at_the_segment_end_is_cut_to_continuation_keep_bytes():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    rec.feed(conn.server(tls_record(APPDATA, 2000, present=500)))
    assert rec.feed(conn.server(filler(1500))) == (AT + 8, CONSTRICTED)
    s = rec.state(client=False)
    assert not s.active and s.synchronized


def test_exact_final_continuation_no_longer_than_continuation_keep_bytes_is_not_cut():
    # cand = min(keep_cont, L) = L: step 12 gives NoApplicationData, the reason stays tls_candidate
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    rec.feed(conn.server(tls_record(APPDATA, 100, present=97)))  # 3 bytes still to come
    last = conn.server(filler(3))
    assert rec.feed(last) == whole(last, "tls_candidate")
    assert not rec.state(client=False).active


def test_non_appdata_continuation_longer_than_the_segment_is_kept_whole():
    eng, rec, conn, conn2 = Engine(), Recorder(), Conn(), Conn()
    for feed, c in ((eng.feed, conn), (rec.feed, conn2)):
        synchronized_client(feed, c)
        feed(c.server(tls_record(HANDSHAKE, 4000, present=500)))
    f = eng.feed(conn.server(filler(1000)))
    assert not f.middle_continuation and not f.no_record and not f.malformed
    assert eng.state(client=False).active_remaining == 4005 - 505 - 1000
    frame = conn2.server(filler(1000))
    assert rec.feed(frame) == whole(frame)


def test_non_appdata_continuation_ending_exactly_at_the_segment_end_is_not_cut_and_closes_the_record():
    rec, conn = Recorder(), Conn()
    synchronized_client(rec.feed, conn)
    rec.feed(conn.server(tls_record(HANDSHAKE, 2000, present=500)))
    frame = conn.server(filler(1500))
    assert rec.feed(frame) == whole(frame)
    s = rec.state(client=False)
    assert not s.active and s.synchronized
    assert rec.feed(conn.server(tls_record(APPDATA, 200))) == (AT + 8, CONSTRICTED)  # next boundary known


def test_appdata_record_ending_inside_the_segment_resets_and_keeps_the_segment_whole():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    rec.feed(conn.server(tls_record(APPDATA, 1000, present=500)))
    frame = conn.server(filler(500) + tls_record(APPDATA, 600))  # r = 500 < L
    assert rec.feed(frame) == whole(frame, "tls_candidate")


def test_appdata_boundary_reset_forgets_position_but_keeps_confirmed_and_seen_app_data():
    eng, conn = Engine(), Conn()
    synchronized_both(eng.feed, conn)
    eng.feed(conn.server(tls_record(APPDATA, 1000, present=500)))
    f = eng.feed(conn.server(filler(500) + tls_record(APPDATA, 600)))
    s = eng.state(client=False)
    assert f.boundary_reset and not f.appdata_started
    assert s.confirmed and s.seen_app_data
    assert not s.synchronized and not s.active and s.expected_seq == 0


def test_after_a_boundary_reset_the_next_record_start_resynchronises_the_confirmed_direction():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    rec.feed(conn.server(tls_record(APPDATA, 1000, present=500)))
    rec.feed(conn.server(filler(500) + tls_record(APPDATA, 600)))
    assert rec.feed(conn.server(tls_record(APPDATA, 700))) == (AT + 8, CONSTRICTED)


def test_non_appdata_record_ending_inside_the_segment_continues_the_walk_at_its_end():
    rec, conn = Recorder(), Conn()
    synchronized_client(rec.feed, conn)
    rec.feed(conn.server(tls_record(HANDSHAKE, 1000, present=500)))
    payload = filler(500) + tls_record(APPDATA, 300)
    assert rec.feed(conn.server(payload)) == (AT + 500 + 8, CONSTRICTED)


def test_non_appdata_record_ending_inside_the_segment_then_garbage_is_malformed():
    rec, conn = Recorder(), Conn()
    synchronized_client(rec.feed, conn)
    rec.feed(conn.server(tls_record(HANDSHAKE, 1000, present=500)))
    frame = conn.server(filler(500) + filler(200, 0x42))
    assert rec.feed(frame) == whole(frame, "tls_malformed_fallback")


# --- step 7: the record walk ----------------------------------------------------------------


def test_no_header_on_an_unsynchronized_unconfirmed_direction_deletes_it_as_no_record():
    rec, conn = Recorder(), Conn()
    frame = conn.client(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
    assert rec.feed(frame) == whole(frame, "tls_no_record_fallback")
    assert rec.state(client=True) is None


def test_no_header_on_an_unsynchronized_confirmed_direction_keeps_it_as_no_record():
    eng, conn = Engine(), Conn()
    synchronized_client(eng.feed, conn)
    f = eng.feed(conn.server(filler(700)))  # joined mid-record
    s = eng.state(client=False)
    assert f.no_record
    assert s is not None and s.confirmed and not s.synchronized
    assert s.expected_seq == 0  # the NoRecord path does not update expected_seq


def test_no_header_at_a_boundary_of_a_synchronized_direction_is_malformed():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    frame = conn.server(filler(400, 0x00))
    assert rec.feed(frame) == whole(frame, "tls_malformed_fallback")


def test_a_malformed_segment_keeps_the_direction_synchronized_and_advances_expected_seq():
    eng, conn = Engine(), Conn()
    synchronized_both(eng.feed, conn)
    f = eng.feed(conn.server(filler(400, 0x00)))
    s = eng.state(client=False)
    assert f.malformed and s.synchronized and s.expected_seq == conn.seq[False]


def test_garbage_after_a_complete_record_in_the_same_segment_is_malformed():
    rec, conn = Recorder(), Conn()
    frame = conn.client(tls_record(HANDSHAKE, 200) + filler(50, 0x01))
    assert rec.feed(frame) == whole(frame, "tls_malformed_fallback")


def invalid_after_a_record(tail: bytes) -> tuple[Recorder, bytes]:
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    return rec, conn.server(tls_record(APPDATA, 100) + tail)


def test_a_header_whose_second_byte_is_not_3_is_not_a_record_header():
    rec, frame = invalid_after_a_record(tls_header(APPDATA, 20, major=2) + filler(20))
    assert rec.feed(frame) == whole(frame, "tls_malformed_fallback")


def test_a_header_with_an_unknown_content_type_is_not_a_record_header():
    for ctype in (0x13, 0x18, 0x00, 0xFF):
        rec, frame = invalid_after_a_record(bytes([ctype]) + tls_header(APPDATA, 20)[1:] + filler(20))
        assert rec.feed(frame) == whole(frame, "tls_malformed_fallback"), hex(ctype)


def test_fewer_than_5_bytes_left_is_not_a_record_header():
    rec, frame = invalid_after_a_record(tls_header(APPDATA, 0)[:4])
    assert rec.feed(frame) == whole(frame, "tls_malformed_fallback")


def test_the_minor_version_is_not_checked():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    payload = tls_record(HANDSHAKE, 30) + tls_header(APPDATA, 400, minor=0x77) + filler(400)
    assert rec.feed(conn.server(payload)) == (AT + 35 + 8, CONSTRICTED)


def test_the_record_length_has_no_upper_bound():
    eng, conn = Engine(), Conn()
    synchronized_both(eng.feed, conn)
    eng.feed(conn.server(tls_header(APPDATA, 0xFFFF) + filler(995)))
    s = eng.state(client=False)
    assert s.active and s.active_remaining == 5 + 0xFFFF - 1000


def test_a_non_handshake_record_on_an_unconfirmed_direction_is_no_record_and_deletes_it():
    for ctype in (CCS, ALERT, APPDATA):
        rec, conn = Recorder(), Conn()
        frame = conn.client(tls_record(ctype, 300))
        assert rec.feed(frame) == whole(frame, "tls_no_record_fallback"), ctype
        assert rec.state(client=True) is None


def test_a_handshake_record_synchronises_an_unconfirmed_direction_and_confirms_both():
    eng, conn = Engine(), Conn()
    f = eng.feed(conn.client(tls_record(HANDSHAKE, 300)))
    client, server = eng.state(client=True), eng.state(client=False)
    assert not f.no_record and f.synchronized and f.confirmed
    assert client.synchronized and client.confirmed
    assert server is not None and server.confirmed and not server.synchronized


def test_a_handshake_only_segment_is_not_cut():
    rec, conn = Recorder(), Conn()
    frame = conn.client(tls_record(HANDSHAKE, 600))
    assert rec.feed(frame) == whole(frame, "tls_candidate")


def test_a_record_continuing_past_the_segment_opens_an_active_record():
    eng, conn = Engine(), Conn()
    synchronized_both(eng.feed, conn)
    f = eng.feed(conn.server(tls_record(ALERT, 2) + tls_record(APPDATA, 3000, present=995)))
    s = eng.state(client=False)
    assert f.appdata_started and f.appdata_offset == 7 and f.appdata_visible == 1000
    assert s.active and s.active_app_data and s.active_remaining == 3005 - 1000
    assert s.seen_app_data


def test_a_partial_appdata_record_is_cut_keep_record_bytes_after_its_start():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    payload = tls_record(ALERT, 2) + tls_record(APPDATA, 3000, present=995)
    assert rec.feed(conn.server(payload)) == (AT + 7 + 8, CONSTRICTED)


def test_complete_records_are_walked_to_the_segment_end():
    eng, conn = Engine(), Conn()
    synchronized_both(eng.feed, conn)
    seq = conn.seq[False]
    payload = tls_record(HANDSHAKE, 40) + tls_record(CCS, 1) + tls_record(APPDATA, 60)
    f = eng.feed(conn.server(payload))
    s = eng.state(client=False)
    assert f.records == 3 and f.appdata_offset == 45 + 6 and not f.non_appdata_after
    assert s.synchronized and not s.active and s.expected_seq == seq + len(payload)


def test_a_direction_without_appdata_has_not_seen_app_data():
    eng, conn = Engine(), Conn()
    eng.feed(conn.client(tls_record(HANDSHAKE, 40) + tls_record(CCS, 1)))
    assert not eng.state(client=True).seen_app_data


# --- step 8: expected_seq is modulo 2^32 ----------------------------------------------------


def test_expected_seq_wraps_modulo_2_to_the_32():
    eng, conn = Engine(), Conn(server_seq=0xFFFFFF00)
    synchronized_both(eng.feed, conn)  # server handshake: 125 bytes from 0xFFFFFF00
    eng.feed(conn.server(tls_record(APPDATA, 3000, present=995)))
    assert eng.state(client=False).expected_seq == (0xFFFFFF00 + 125 + 1000) % 2**32
    assert conn.seq[False] < 0x1000  # the next segment's seq has wrapped


def test_a_record_continues_across_the_sequence_wrap():
    rec, conn = Recorder(), Conn(server_seq=0xFFFFFF00)
    synchronized_both(rec.feed, conn)
    rec.feed(conn.server(tls_record(APPDATA, 3000, present=995)))
    assert rec.feed(conn.server(filler(2005))) == (AT + 8, CONSTRICTED)


# --- steps 10-13: result mapping ------------------------------------------------------------


def test_malformed_wins_over_a_pending_appdata_cut():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    frame = conn.server(tls_record(APPDATA, 300) + filler(100, 0x00))
    assert rec.feed(frame) == whole(frame, "tls_malformed_fallback")


def test_an_appdata_record_no_longer_than_keep_record_bytes_is_not_cut():
    rec, conn = Recorder(), Conn()
    synchronized_both(rec.feed, conn)
    frame = conn.server(tls_record(APPDATA, 3))  # cand = min(8, 8) = 8 = L
    assert rec.feed(frame) == whole(frame, "tls_candidate")


def test_a_cut_is_the_absolute_frame_offset_tcp_payload_offset_plus_cand():
    rec, conn = Recorder(), Conn()
    options = b"\x01\x01\x08\x0a" + bytes(8)  # 12 option bytes: payload at 66, as in tls_test_1
    rec.feed(conn.client(tls_record(HANDSHAKE, 300), options=options))
    frame = conn.client(tls_record(CCS, 1) + tls_record(APPDATA, 53), options=options)
    assert rec.feed(frame) == (66 + 14, CONSTRICTED)


def test_the_cut_is_measured_against_min_saved_bytes():
    # 54 + 8 = 62 kept of a 54 + 25 = 79-byte frame saves 17 >= 16: cut; of 78 saves 16: cut;
    # of 77 saves 15: kept (no reduction after §6.3 -> tls_candidate).
    for body, expected in ((20, (62, CONSTRICTED)), (19, (62, CONSTRICTED)), (18, None)):
        rec, conn = Recorder(), Conn()
        synchronized_both(rec.feed, conn)
        frame = conn.server(tls_record(APPDATA, body))
        assert rec.feed(frame) == (expected or whole(frame, "tls_candidate")), body


def test_keep_record_bytes_counts_from_the_record_header():
    text = GOLDEN_VALUES.replace("app_data_keep_record_bytes = 8", "app_data_keep_record_bytes = 0")
    rec, conn = Recorder(text), Conn()
    synchronized_both(rec.feed, conn)
    payload = tls_record(CCS, 1) + tls_record(APPDATA, 500)
    assert rec.feed(conn.server(payload)) == (AT + 6, CONSTRICTED)  # cut at the record start


def test_tls_port_8443_and_the_source_port_are_tls_candidates():
    rec = Recorder()
    for sport, dport in ((50000, 8443), (8443, 50000), (443, 50000)):
        hello = tcp4_frame(tls_record(HANDSHAKE, 100), sport=sport, dport=dport, seq=1)
        assert rec.feed(hello) == whole(hello, "tls_candidate")
        frame = tcp4_frame(tls_record(APPDATA, 400), sport=sport, dport=dport, seq=106)
        assert rec.feed(frame) == (AT + 8, CONSTRICTED)


def test_tcp_outside_the_tls_ports_is_not_walked():
    rec = Recorder()
    frame = tcp4_frame(tls_record(HANDSHAKE, 100), sport=50000, dport=80)
    assert rec.feed(frame) == whole(frame, "tcp")


# --- flow table room (DECISIONS #6) ----------------------------------------------------------


@pytest.mark.parametrize("payload", [filler(300), tls_record(APPDATA, 40), b"\x16\x03"])
def test_a_segment_that_starts_no_handshake_on_an_unknown_direction_takes_no_room(payload):
    tls = TlsAnalyzer(boundary="reset", max_flows=2)
    conn = Conn()
    hello = conn.client(tls_record(HANDSHAKE, 300))
    analyze_decoded(tls, decode(hello, len(hello)), hello, 0)
    assert len(tls.flows) == 2  # the client direction and the confirmed server direction
    other = tcp4_frame(payload, sport=50001)  # a new connection that is not TLS (yet)
    facts = analyze_decoded(tls, decode(other, len(other)), other, 0)
    assert facts.no_record and not (facts.synchronized or facts.confirmed or facts.records)
    assert tls.flows.evictions == 0 and set(tls.flows.entries) == {CLIENT_KEY, SERVER_KEY}


def test_a_direction_has_one_state_whatever_its_ip_header_carries():
    """The direction key is a slice of the frame where the addresses and ports lie side by
    side, built from them where IPv4 options come between: the same key either way."""
    import packets

    def frame(payload: bytes, seq: int, *, src=CLIENT4, dst=SERVER4, sport=50000, dport=443,
              options: bytes = b"", v6: bool = False) -> bytes:  # fmt: skip
        segment = packets.tcp(sport, dport, payload, seq=seq)
        if v6:
            return packets.ethernet(0x86DD, packets.ipv6(6, segment, src, dst))
        return packets.ethernet(0x0800, packets.ipv4(6, segment, src, dst, options=options))

    tls = TlsAnalyzer()
    hello = tls_record(HANDSHAKE, 40)
    data = tls_record(APPDATA, 100)
    for f in (frame(hello, 1000), frame(data, 1000 + len(hello), options=b"\x01\x01\x01\x00")):
        analyze_decoded(tls, decode(f, len(f)), f, 0)
    assert set(tls.flows.entries) == {CLIENT_KEY, SERVER_KEY}  # the handshake confirmed the reply
    state = tls.flows.entries[CLIENT_KEY]
    assert state.seen_app_data and state.expected_seq == 1000 + len(hello) + len(data)
    reply = frame(data, 7000, src=SERVER4, dst=CLIENT4, sport=443, dport=50000, options=b"\x01" * 8)
    facts = analyze_decoded(tls, decode(reply, len(reply)), reply, 0)
    assert facts.confirmed and facts.appdata_started  # the confirmed reverse direction, found
    six = frame(hello, 5, src=packets.CLIENT6, dst=packets.SERVER6, v6=True)
    analyze_decoded(tls, decode(six, len(six)), six, 0)
    assert direction_key(packets.CLIENT6, packets.SERVER6, 50000, 443) in tls.flows.entries
