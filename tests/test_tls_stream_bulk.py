"""TLS stream and bulk continuation policies (SPEC §15.4, DECISIONS #7), step by step.

Golden keep values (keep_rec = keep_cont = 8, min_saved = 16); IPv4/TCP without
options, so the TCP payload starts at 54.  Each test plays a connection through
the shipped policy and checks (output_len, reason, deciding rule) and, where the
step is about state, the direction's state afterwards.
"""

from __future__ import annotations

from packets import ALERT, APPDATA, HANDSHAKE, TCP4_PAYLOAD_AT, filler, tls_record
from test_tls_final_only import CLIENT_KEY, GOLDEN_VALUES, SERVER_KEY, Conn

from pcapconstrictor.engine.config import parse_config_text
from pcapconstrictor.grammar import build_evaluator, load_policy, shipped_policy_path

AT = TCP4_PAYLOAD_AT
CUT = "tls_application_data_constricted"


class Policy:
    def __init__(self, name: str) -> None:
        config = parse_config_text(GOLDEN_VALUES, "test.ini")
        self.evaluator = build_evaluator(load_policy(shipped_policy_path(name)), config)

    def feed(self, frame: bytes) -> tuple[int, str, str]:
        out, did = self.evaluator.evaluate(frame, len(frame), 0)
        decision = self.evaluator.decisions[did]
        return out, decision.reason, decision.rule.id

    def state(self, client: bool):
        return self.evaluator.analyzers["tls"].flows.entries.get(CLIENT_KEY if client else SERVER_KEY)


def open_appdata_record(p: Policy, conn: Conn, length: int = 5000, present: int = 1000) -> None:
    """Handshake both ways, then the server starts an AppData record of ``length``
    body bytes with ``present`` of them in the first segment."""
    p.feed(conn.client(tls_record(HANDSHAKE, 300)))
    p.feed(conn.server(tls_record(HANDSHAKE, 120)))
    p.feed(conn.server(tls_record(APPDATA, length, present=present)))


def test_stream_cuts_a_middle_continuation_segment_to_the_continuation_keep_bytes():
    p, conn = Policy("stream"), Conn()
    open_appdata_record(p, conn)
    middle = conn.server(filler(1400))  # 4000 of the record's bytes remain: entirely inside
    assert p.feed(middle) == (AT + 8, CUT, "tls.stream_continuation")
    assert p.state(client=False).active_remaining == 4000 - 1400


def test_final_only_keeps_the_same_middle_continuation_segment_whole():
    p, conn = Policy("final_only"), Conn()
    open_appdata_record(p, conn)
    middle = conn.server(filler(1400))
    assert p.feed(middle) == (len(middle), "tls_candidate", "tls.middle_continuation")


def test_stream_boundary_parse_with_a_following_non_appdata_header_keeps_the_segment_and_stays_in_sync():
    p, conn = Policy("stream"), Conn()
    open_appdata_record(p, conn, length=1100, present=1000)  # 100 bytes of it remain
    segment = conn.server(filler(100) + tls_record(ALERT, 2))
    assert p.feed(segment) == (len(segment), "tls_candidate", "packet.tls")
    state = p.state(client=False)
    assert state.synchronized and not state.active
    # still in sync: the next record start is cut as usual
    assert p.feed(conn.server(tls_record(APPDATA, 3000, present=1000)))[:2] == (AT + 8, CUT)


def test_final_only_resets_where_stream_parses_the_boundary():
    p, conn = Policy("final_only"), Conn()
    open_appdata_record(p, conn, length=1100, present=1000)
    segment = conn.server(filler(100) + tls_record(ALERT, 2))
    assert p.feed(segment) == (len(segment), "tls_candidate", "tls.boundary_reset")
    state = p.state(client=False)
    assert state.confirmed and state.seen_app_data and not state.synchronized


def test_stream_boundary_parse_with_a_following_appdata_start_cuts_after_that_records_prefix():
    p, conn = Policy("stream"), Conn()
    open_appdata_record(p, conn, length=1100, present=1000)
    segment = conn.server(filler(100) + tls_record(APPDATA, 2000, present=900))
    assert p.feed(segment) == (AT + 100 + 8, CUT, "tls.appdata_start")


def test_stream_boundary_parse_with_no_valid_header_keeps_the_segment_whole_and_resets_the_direction():
    p, conn = Policy("stream"), Conn()
    open_appdata_record(p, conn, length=1100, present=1000)
    segment = conn.server(filler(100) + filler(300, byte=0x42))
    assert p.feed(segment) == (len(segment), "tls_candidate", "tls.boundary_reset")
    state = p.state(client=False)
    assert state.confirmed and state.seen_app_data and not state.synchronized


def gap_then(p: Policy, conn: Conn, payload: bytes) -> bytes:
    """A server segment after 5000 lost bytes: the sequence check unsynchronizes."""
    conn.seq[False] += 5000
    return conn.server(payload)


def test_bulk_cuts_an_unsynchronized_segment_of_a_confirmed_direction_that_saw_appdata():
    p, conn = Policy("bulk"), Conn()
    open_appdata_record(p, conn, length=20000, present=1000)
    segment = gap_then(p, conn, filler(1400))
    assert p.feed(segment) == (AT + 8, CUT, "tls.bulk_continuation")
    assert not p.state(client=False).synchronized
    # it stays unsynchronized and keeps cutting while no header is visible
    assert p.feed(conn.server(filler(1400)))[:3] == (AT + 8, CUT, "tls.bulk_continuation")


def test_stream_keeps_the_same_unsynchronized_segment_whole():
    p, conn = Policy("stream"), Conn()
    open_appdata_record(p, conn, length=20000, present=1000)
    segment = gap_then(p, conn, filler(1400))
    assert p.feed(segment) == (len(segment), "tls_no_record_fallback", "tls.no_record")


def test_bulk_never_cuts_a_confirmed_direction_that_never_saw_appdata():
    p, conn = Policy("bulk"), Conn()
    p.feed(conn.client(tls_record(HANDSHAKE, 300)))
    p.feed(conn.server(tls_record(HANDSHAKE, 120)))
    segment = gap_then(p, conn, filler(1400))
    assert p.feed(segment) == (len(segment), "tls_no_record_fallback", "tls.no_record")


def test_bulk_never_cuts_an_unconfirmed_direction():
    p, conn = Policy("bulk"), Conn()
    segment = conn.server(filler(1400))  # joined mid-stream: no handshake ever seen
    assert p.feed(segment) == (len(segment), "tls_no_record_fallback", "tls.no_record")
    assert p.state(client=False) is None


def test_a_visible_record_header_beats_a_bulk_cut():
    p, conn = Policy("bulk"), Conn()
    open_appdata_record(p, conn, length=20000, present=1000)
    segment = gap_then(p, conn, tls_record(APPDATA, 3000, present=1400))
    assert p.feed(segment) == (AT + 8, CUT, "tls.appdata_start")
    assert p.state(client=False).synchronized


def test_bulk_after_a_gap_resynchronizes_on_a_record_header_inside_the_segment():
    # DECISIONS #10: the tail of a lost record, then a header: kept through the header and
    # the record prefix; the direction walks on from there
    p, conn = Policy("bulk"), Conn()
    open_appdata_record(p, conn, length=20000, present=1000)
    segment = gap_then(p, conn, filler(300) + tls_record(APPDATA, 3000, present=1100))
    assert p.feed(segment) == (AT + 300 + 8, CUT, "tls.appdata_start")
    assert p.state(client=False).synchronized


def test_bulk_resynchronizes_on_a_header_whose_record_ends_where_another_starts():
    p, conn = Policy("bulk"), Conn()
    open_appdata_record(p, conn, length=20000, present=1000)
    records = tls_record(ALERT, 2) + tls_record(APPDATA, 3000, present=1000)
    segment = gap_then(p, conn, filler(200) + records)
    assert p.feed(segment) == (AT + 200 + 7 + 8, CUT, "tls.appdata_start")


def test_bulk_does_not_resynchronize_on_a_header_inconsistent_with_what_follows():
    # a header-looking pattern whose record ends inside the segment on no other header
    p, conn = Policy("bulk"), Conn()
    open_appdata_record(p, conn, length=20000, present=1000)
    fake = bytes([APPDATA, 3, 3, 0, 50])
    segment = gap_then(p, conn, filler(300) + fake + filler(1000))
    assert p.feed(segment) == (AT + 8, CUT, "tls.bulk_continuation")
    assert not p.state(client=False).synchronized


def test_stream_and_final_only_do_not_scan_an_unsynchronized_segment():
    for policy in ("stream", "final_only"):
        p, conn = Policy(policy), Conn()
        open_appdata_record(p, conn, length=20000, present=1000)
        segment = gap_then(p, conn, filler(300) + tls_record(APPDATA, 3000, present=1100))
        assert p.feed(segment) == (len(segment), "tls_no_record_fallback", "tls.no_record"), policy


def test_bulk_respects_min_saved_and_short_segments():
    p, conn = Policy("bulk"), Conn()
    open_appdata_record(p, conn, length=20000, present=1000)
    short = gap_then(p, conn, filler(20))  # 8 kept of 20: saves 12 < 16
    out, reason, rule = p.feed(short)
    assert (out, rule) == (len(short), "tls.bulk_continuation")
    assert reason == "tls_candidate"


def test_on_a_bulk_download_stream_and_bulk_save_far_more_than_final_only(tmp_path):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent.parent / "bench"))
    from tls_policies import bulk_download, saved_by_policy

    path = str(tmp_path / "bulk.pcap")
    bulk_download(path, 1_000_000, gap=False)
    complete = {p: saved / captured for p, (captured, saved) in saved_by_policy(path).items()}
    bulk_download(path, 1_000_000, gap=True)
    lossy = {p: saved / captured for p, (captured, saved) in saved_by_policy(path).items()}
    assert complete["stream"] > 0.85 and complete["bulk"] == complete["stream"]
    assert complete["final_only"] < 0.1
    assert lossy["bulk"] > 0.85 > lossy["stream"] > lossy["final_only"]
