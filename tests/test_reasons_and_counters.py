"""Decision reasons and counters (SPEC §10), the length model (SPEC §6), and the
per-packet expectations of the upstream fixtures (SPEC §14.3, §14.5), all through
the shipped final_only policy's evaluator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from packets import (
    APPDATA,
    CLIENT4,
    HANDSHAKE,
    SERVER4,
    TCP4_PAYLOAD_AT,
    UDP4_PAYLOAD_AT,
    ethernet,
    filler,
    ipv4,
    quic_initial,
    quic_short,
    tcp,
    tcp4_frame,
    tls_record,
    udp4_frame,
)

from conftest import FIXTURES, GOLDEN
from pcapconstrictor.engine.analysis.decode import decode
from pcapconstrictor.engine.config import load_config, parse_config_text
from pcapconstrictor.engine.sources.pcap_reader import PcapReader
from pcapconstrictor.grammar import build_evaluator, load_policy, shipped_policy_path

UPSTREAM_EXTRA = FIXTURES / "upstream_extra"

GOLDEN_VALUES = """[general]
min_saved_bytes_per_packet = 16
[tls]
app_data_keep_record_bytes = 8
app_data_continuation_keep_bytes = 8
[quic]
short_header_keep_packet_bytes = 32
require_dcid_match = true
allow_short_header_without_known_dcid = false
"""

# SPEC §10: every reason string, and the counter each one increments.
COUNTER_OF = {
    "default": None,
    "parse_error": None,
    "non_ip": None,
    "tcp": None,
    "udp": None,
    "tls_candidate": None,
    "tls_application_data_constricted": "tls_appdata_constricted",
    "tls_malformed_fallback": "tls_fallback",
    "tls_no_record_fallback": "tls_fallback",
    "quic_candidate": None,
    "quic_long_header": "quic_long_header",
    "quic_short_header_matched": "quic_short_matched",
    "quic_short_header_constricted": "quic_short_constricted",
    "quic_short_header_unknown_cid_fallback": "quic_fallback",
    "quic_short_header_dcid_mismatch_fallback": "quic_fallback",
    "quic_malformed_fallback": "quic_fallback",
}
# DECISIONS #9: QUIC packets upstream misread, kept whole under their own reasons; the
# counters are the ones upstream's misreading gave (malformed / a long header).
OUR_QUIC_REASONS = {
    "quic_version_negotiation": "quic_fallback",
    "quic_unknown_version": "quic_long_header",
    "quic_google_quic": "quic_long_header",
}


class Recorder:
    """The shipped final_only policy bound to a config."""

    def __init__(self, text: str = GOLDEN_VALUES, config=None) -> None:
        config = parse_config_text(text, "test.ini") if config is None else config
        policy = load_policy(shipped_policy_path(str(config["tls.app_data_continuation_policy"])))
        self.evaluator = build_evaluator(policy, config)

    def decide(self, frame: bytes, orig_len: int | None = None) -> tuple[int, str, str | None]:
        out, did = self.evaluator.evaluate(frame, len(frame) if orig_len is None else orig_len, 0)
        decision = self.evaluator.decisions[did]
        return out, decision.reason, decision.counter

    def feed(self, frame: bytes, orig_len: int | None = None) -> tuple[int, str]:
        return self.decide(frame, orig_len)[:2]


def with_values(text: str, **values: object) -> str:
    """``text`` plus extra sections, e.g. capture={"default_snaplen": 100}."""
    extra = "".join(
        f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
        for section, keys in values.items()
    )
    return text + extra


def c2s_tls(payload: bytes, seq: int) -> bytes:
    return tcp4_frame(payload, src=CLIENT4, dst=SERVER4, sport=50000, dport=443, seq=seq)


def c2s_udp(payload: bytes) -> bytes:
    return udp4_frame(payload, src=CLIENT4, dst=SERVER4, sport=50000, dport=443)


def s2c_udp(payload: bytes) -> bytes:
    return udp4_frame(payload, src=SERVER4, dst=CLIENT4, sport=443, dport=50000)


SERVER_CID = bytes.fromhex("5e5e5e01")
CLIENT_CID = bytes.fromhex("c1c2c3c4c5c6c7c8")


def learn_server_cid(rec: Recorder) -> None:
    rec.feed(s2c_udp(quic_initial(CLIENT_CID, SERVER_CID, bytes(100))))


# --- §10: each reason from a crafted packet, with its counter -------------------------------

# reason -> (config text, setup(recorder), the packet that gets the reason, expected output length
# as a function of the packet)
Scenario = tuple[str, Callable[[Recorder], None], bytes, Callable[[bytes], int]]
WHOLE: Callable[[bytes], int] = len


def _nothing(rec: Recorder) -> None:
    pass


def _client_hello(rec: Recorder) -> None:
    rec.feed(c2s_tls(tls_record(HANDSHAKE, 200), seq=1))


SCENARIOS: dict[str, Scenario] = {
    "default": (GOLDEN_VALUES, _nothing, ethernet(0x0800, ipv4(1, b"\x08\x00" + bytes(62))), WHOLE),
    "parse_error": (GOLDEN_VALUES, _nothing, c2s_tls(tls_record(HANDSHAKE, 200), seq=1)[:-10], WHOLE),
    "non_ip": (GOLDEN_VALUES, _nothing, ethernet(0x0806, bytes(28)), WHOLE),
    "tcp": (GOLDEN_VALUES, _nothing, tcp4_frame(b"GET / HTTP/1.1\r\n\r\n", dport=80), WHOLE),
    "udp": (GOLDEN_VALUES, _nothing, udp4_frame(bytes([0x40]) + bytes(300), dport=53), WHOLE),
    "tls_candidate": (GOLDEN_VALUES, _nothing, c2s_tls(tls_record(HANDSHAKE, 200), seq=1), WHOLE),
    "tls_application_data_constricted": (
        GOLDEN_VALUES, _client_hello, c2s_tls(tls_record(APPDATA, 400), seq=206),
        lambda _: TCP4_PAYLOAD_AT + 8,
    ),
    "tls_malformed_fallback": (GOLDEN_VALUES, _client_hello, c2s_tls(bytes(400), seq=206), WHOLE),
    "tls_no_record_fallback": (GOLDEN_VALUES, _nothing, c2s_tls(b"GET / HTTP/1.1\r\n\r\n", seq=1), WHOLE),
    "quic_candidate": (GOLDEN_VALUES, _nothing, c2s_udp(bytes(300)), WHOLE),
    "quic_long_header": (
        GOLDEN_VALUES, _nothing, c2s_udp(quic_initial(bytes(8), CLIENT_CID, bytes(1200))), WHOLE,
    ),
    "quic_short_header_matched": (
        GOLDEN_VALUES, learn_server_cid, c2s_udp(quic_short(SERVER_CID, bytes(40))), WHOLE,
    ),
    "quic_short_header_constricted": (
        GOLDEN_VALUES, learn_server_cid, c2s_udp(quic_short(SERVER_CID, bytes(400))),
        lambda _: UDP4_PAYLOAD_AT + 32,
    ),
    "quic_short_header_unknown_cid_fallback": (
        GOLDEN_VALUES, _nothing, c2s_udp(quic_short(SERVER_CID, bytes(400))), WHOLE,
    ),
    "quic_short_header_dcid_mismatch_fallback": (
        GOLDEN_VALUES, learn_server_cid, c2s_udp(quic_short(b"\x0b\xad\xc1\xd0", bytes(400))), WHOLE,
    ),
    "quic_malformed_fallback": (
        GOLDEN_VALUES, _nothing, c2s_udp(quic_initial(bytes(8), CLIENT_CID, bytes(200)) + bytes(1000)), WHOLE,
    ),
}  # fmt: skip


def test_every_spec_reason_has_a_scenario():
    assert set(SCENARIOS) == set(COUNTER_OF)


# Reasons of our extensions, declared in their rule files, with their counters.
EXTENSION_COUNTER_OF = {
    "flow_budget_exceeded": "flow_budget_constricted",  # issue 17: rules/budget.rules
    "unknown_link_type": "unknown_link_type",  # issue 15
}


# Issue 16's protocols: their rules are off unless a config section switches them on.
EXTENSION_PROTOCOLS = ("wireguard", "ipsec", "esp", "ipsec_nat_t", "ssh", "dtls")


def _extension_rule(rule_id: str) -> bool:
    return rule_id.split(".")[0] in EXTENSION_PROTOCOLS or rule_id.split(".")[-1] in EXTENSION_PROTOCOLS


def test_the_shipped_rules_use_only_spec_reasons_and_counters_and_the_declared_ones():
    rec = Recorder()
    allowed = {**COUNTER_OF, **EXTENSION_COUNTER_OF, **OUR_QUIC_REASONS}
    for decision in rec.evaluator.decisions:
        if _extension_rule(decision.rule.id):
            assert decision.reason not in COUNTER_OF, decision.reason  # ours, never upstream's
            continue
        assert decision.reason in allowed, decision.reason
        assert decision.counter == allowed[decision.reason], (decision.reason, decision.counter)


@pytest.mark.parametrize("reason", sorted(COUNTER_OF))
def test_each_reason_is_produced_by_the_shipped_rules_with_its_counter(reason):
    text, setup, frame, expected_len = SCENARIOS[reason]
    rec = Recorder(text)
    setup(rec)
    assert rec.decide(frame) == (expected_len(frame), reason, COUNTER_OF[reason])


def test_inconsistent_lengths_are_a_parse_error_without_counter():
    # A valid AppData segment that would be cut, but captured length > original length.
    rec = Recorder()
    _client_hello(rec)
    frame = c2s_tls(tls_record(APPDATA, 400), seq=206)
    assert rec.decide(frame, orig_len=len(frame) - 1) == (len(frame) - 1, "parse_error", None)


def test_an_inconsistent_packet_never_reaches_the_tls_engine():
    rec = Recorder()
    hello = c2s_tls(tls_record(HANDSHAKE, 200), seq=1)
    assert rec.feed(hello, orig_len=len(hello) - 1)[1] == "parse_error"
    frame = c2s_tls(tls_record(APPDATA, 400), seq=206)  # the direction never synchronised
    assert rec.feed(frame) == (len(frame), "tls_no_record_fallback")


def test_a_capture_cut_below_the_original_length_is_decoded_from_the_captured_bytes():
    # caplen < orig_len is consistent; the IP packet is incomplete: parse_error, kept as captured.
    rec = Recorder()
    frame = c2s_tls(tls_record(HANDSHAKE, 200), seq=1)
    assert rec.decide(frame[:100], orig_len=len(frame)) == (100, "parse_error", None)


# --- §8.1 classification --------------------------------------------------------------------


def test_an_ipv4_fragment_on_a_tls_port_is_default():
    frame = ethernet(0x0800, ipv4(6, tcp(50000, 443, tls_record(APPDATA, 400)), more_fragments=1))
    assert Recorder().decide(frame) == (len(frame), "default", None)


def test_tcp_on_a_tls_port_with_tls_disabled_is_tcp():
    frame = c2s_tls(tls_record(HANDSHAKE, 200), seq=1)
    assert Recorder(with_values(GOLDEN_VALUES, tls={"enabled": "false"})).feed(frame) == (len(frame), "tcp")


def test_udp_on_the_quic_port_with_quic_disabled_is_udp():
    frame = c2s_udp(quic_initial(bytes(8), CLIENT_CID, bytes(1200)))
    assert Recorder(with_values(GOLDEN_VALUES, quic={"enabled": "false"})).feed(frame) == (len(frame), "udp")


def test_configured_ports_replace_the_default_ones():
    rec = Recorder(with_values(GOLDEN_VALUES, tls={"ports": "8443"}, quic={"ports": "4433"}))
    hello = tcp4_frame(tls_record(HANDSHAKE, 200), dport=443)
    assert rec.feed(hello) == (len(hello), "tcp")
    hello = tcp4_frame(tls_record(HANDSHAKE, 200), dport=8443)
    assert rec.feed(hello) == (len(hello), "tls_candidate")
    initial = quic_initial(bytes(8), CLIENT_CID, bytes(1200))
    assert rec.feed(udp4_frame(initial, dport=443))[1] == "udp"
    assert rec.feed(udp4_frame(initial, sport=4433, dport=50000))[1] == "quic_long_header"


def test_udp_on_a_tls_only_port_is_udp():
    frame = udp4_frame(quic_initial(bytes(8), CLIENT_CID, bytes(1200)), dport=8443)
    assert Recorder().feed(frame) == (len(frame), "udp")


# --- §6.3 no reduction after min_saved ------------------------------------------------------


def test_a_tls_cut_saving_less_than_min_saved_stays_tls_candidate_without_counter():
    rec = Recorder()
    _client_hello(rec)
    frame = c2s_tls(tls_record(APPDATA, 18), seq=206)  # 54 + 23: the cut to 62 would save 15
    assert rec.decide(frame) == (len(frame), "tls_candidate", None)


def test_a_quic_cut_saving_less_than_min_saved_becomes_short_header_matched():
    rec = Recorder()
    learn_server_cid(rec)
    frame = c2s_udp(quic_short(SERVER_CID, bytes(32 + 15 - 5)))  # would save 15
    assert rec.decide(frame) == (len(frame), "quic_short_header_matched", "quic_short_matched")


def test_min_saved_0_applies_any_strict_reduction():
    rec = Recorder(GOLDEN_VALUES.replace("min_saved_bytes_per_packet = 16", "min_saved_bytes_per_packet = 0"))
    _client_hello(rec)
    frame = c2s_tls(tls_record(APPDATA, 4), seq=206)  # 54 + 9: the cut to 62 saves 1
    assert rec.decide(frame) == (62, "tls_application_data_constricted", "tls_appdata_constricted")


# --- §6.1, §6.2 snap lengths ----------------------------------------------------------------


def snap(default_snaplen: int, max_capture_len: int = 65535, text: str = GOLDEN_VALUES) -> Recorder:
    return Recorder(with_values(text, capture={"default_snaplen": default_snaplen,
                                               "max_capture_len": max_capture_len}))  # fmt: skip


def test_default_snaplen_clamps_every_packet():
    frame = tcp4_frame(bytes(300), dport=80)
    assert snap(100).feed(frame) == (100, "tcp")


def test_max_capture_len_clamps_every_packet():
    frame = tcp4_frame(bytes(300), dport=80)
    assert snap(65535, 90).feed(frame) == (90, "tcp")


def test_the_smaller_snap_setting_wins_whichever_it_is():
    frame = tcp4_frame(bytes(300), dport=80)
    assert snap(100, 90).feed(frame)[0] == 90
    assert snap(90, 100).feed(frame)[0] == 90


def test_the_snaplen_clamp_ignores_min_saved():
    frame = tcp4_frame(bytes(51), dport=80)  # 105 bytes, clamped by 5
    assert snap(100).feed(frame) == (100, "tcp")


@pytest.mark.parametrize("reason", ["non_ip", "parse_error", "default", "udp", "quic_long_header"])
def test_the_snaplen_clamp_keeps_the_reason(reason):
    _, setup, frame, _ = SCENARIOS[reason]
    rec = snap(60)
    setup(rec)
    assert rec.decide(frame) == (min(60, len(frame)), reason, COUNTER_OF[reason])


def test_a_tls_cut_not_shorter_than_the_snaplen_is_no_reduction():
    rec = snap(60)
    _client_hello(rec)
    frame = c2s_tls(tls_record(APPDATA, 400), seq=206)  # cut to 62 >= baseline 60
    assert rec.decide(frame) == (60, "tls_candidate", None)


def test_min_saved_is_measured_against_the_snaplen_baseline():
    for snaplen, expected in ((70, (70, "tls_candidate")), (78, (62, "tls_application_data_constricted"))):
        rec = snap(snaplen)
        _client_hello(rec)
        assert rec.feed(c2s_tls(tls_record(APPDATA, 400), seq=206)) == expected, snaplen


def test_tls_state_follows_the_whole_packet_even_when_the_snaplen_is_smaller():
    # The AppData record starts at payload offset 205, beyond the 120-byte snaplen; the engine
    # still sees it, so the next segment is known to end that record exactly.
    rec = snap(120)
    first = c2s_tls(tls_record(HANDSHAKE, 200) + tls_record(APPDATA, 1000, present=95), seq=1)
    assert rec.feed(first) == (120, "tls_candidate")
    last = c2s_tls(filler(905), seq=1 + 305)
    assert rec.feed(last) == (TCP4_PAYLOAD_AT + 8, "tls_application_data_constricted")


def test_quic_state_follows_the_whole_datagram_even_when_the_snaplen_is_smaller():
    rec = snap(100)
    first = s2c_udp(quic_initial(CLIENT_CID, b"\x01" * 4, bytes(150)) + quic_initial(CLIENT_CID, SERVER_CID))
    assert rec.feed(first) == (100, "quic_long_header")
    short = c2s_udp(quic_short(SERVER_CID, bytes(400)))
    assert rec.feed(short) == (UDP4_PAYLOAD_AT + 32, "quic_short_header_constricted")


# --- §14.3 golden per-packet expectations ---------------------------------------------------


def run_pcap(path: Path, rec: Recorder) -> list[tuple[int, int, str, str | None, bytes]]:
    """(input caplen, output length, reason, counter, frame) per packet, 1-based list order."""
    out = []
    with PcapReader(str(path)) as reader:
        for _, data, orig_len in reader:
            length, reason, counter = rec.decide(data, orig_len)
            out.append((len(data), length, reason, counter, data))
    return out


def golden_recorder(case: str) -> Recorder:
    return Recorder(config=load_config(str(GOLDEN / case / "config.ini")))


TLS_TEST_2_CUTS = {6: (2978, 199), 7: (332, 66), 9: (118, 68), 10: (1061, 62), 12: (986, 516), 14: (145, 66)}


def test_tls_test_2_packets_are_cut_as_spec_14_3_lists():
    results = run_pcap(GOLDEN / "tls_test_2" / "input.pcap", golden_recorder("tls_test_2"))
    assert len(results) == 14
    for index, (caplen, out, reason, counter, _) in enumerate(results, 1):
        if index in TLS_TEST_2_CUTS:
            want_caplen, want_out = TLS_TEST_2_CUTS[index]
            assert (caplen, out, reason) == (want_caplen, want_out, "tls_application_data_constricted"), index
        else:  # not listed: full length; the §14.3 stats count only the six cuts
            assert out == caplen and counter is None, (index, reason)


def quic_test_2_expected() -> dict[int, tuple[int | None, int | None, str]]:
    """index -> (input caplen or None, output length or None for "whole", reason), from §14.3."""
    expected: dict[int, tuple[int | None, int | None, str]] = {}
    cut = "quic_short_header_constricted"
    for index, (caplen, out) in {16: (723, 686), 18: (173, 150), 19: (120, 74), 20: (808, 74), 21: (778, 74),
                                 22: (779, 74), 23: (664, 78), 24: (170, 78), 27: (723, 74), 29: (587, 78),
                                 30: (1294, 78)}.items():  # fmt: skip
        expected[index] = (caplen, out, cut)
    for index in (31, 32, 33, 35, 36, 38, 39, 40, 41):
        expected[index] = (1298, 78, cut)
    for index in (25, 26, 28, 34, 37):
        expected[index] = (None, None, "quic_short_header_matched")
    for index in (1, 2, 11):
        expected[index] = (None, None, "quic_malformed_fallback")
    expected[10] = (None, None, "quic_short_header_unknown_cid_fallback")
    expected[4] = (4438, None, "tls_no_record_fallback")
    for index in (3, 6, 7, 8, 9, 12, 13, 14, 15, 17):
        expected[index] = (None, None, "quic_long_header")
    return expected


def test_quic_test_2_packets_are_decided_as_spec_14_3_lists():
    results = run_pcap(GOLDEN / "quic_test_2" / "input.pcap", golden_recorder("quic_test_2"))
    assert len(results) == 41
    expected = quic_test_2_expected()
    for index, (caplen, out, reason, counter, _) in enumerate(results, 1):
        if index not in expected:  # not listed (packet 5): full length, no counter
            assert out == caplen and counter is None, (index, reason)
            continue
        want_caplen, want_out, want_reason = expected[index]
        assert reason == want_reason, index
        assert counter == COUNTER_OF[want_reason], index
        assert caplen == (want_caplen or caplen), index
        assert out == (want_out or caplen), index


def test_quic_test_2_counters_add_up_to_the_spec_14_3_stats():
    results = run_pcap(GOLDEN / "quic_test_2" / "input.pcap", golden_recorder("quic_test_2"))
    counts: dict[str, int] = {}
    for _, _, _, counter, _ in results:
        if counter:
            counts[counter] = counts.get(counter, 0) + 1
    assert counts == {"tls_fallback": 1, "quic_long_header": 10, "quic_short_matched": 5,
                      "quic_short_constricted": 20, "quic_fallback": 4}  # fmt: skip
    assert sum(r[1] for r in results) == 20979 and sum(r[0] for r in results) == 37260


# --- §14.5 other upstream fixtures with the golden values -----------------------------------


def extra_recorder(path: Path) -> Recorder:
    with PcapReader(str(path)) as reader:
        snaplen = reader.snaplen or 65535
    capture = {"default_snaplen": snaplen, "max_capture_len": snaplen}
    return Recorder(with_values(GOLDEN_VALUES, capture=capture))


def payload_sizes(path: Path) -> list[tuple[int, int, str]]:
    """(transport payload bytes in, transport payload bytes out, reason) per packet."""
    sizes = []
    for caplen, out, reason, _, frame in run_pcap(path, extra_recorder(path)):
        d = decode(frame, caplen)
        assert d.ok and (d.tcp or d.udp)
        sizes.append((d.payload_len, max(0, min(out, d.payload_offset + d.payload_len) - d.payload_offset),
                      reason))  # fmt: skip
        assert out <= caplen
    return sizes


def test_the_upstream_extra_fixtures_are_present():
    assert (UPSTREAM_EXTRA / "tls_test_1.pcap").stat().st_size == 14970  # SPEC §14.1
    assert (UPSTREAM_EXTRA / "quic_test_1.pcap").stat().st_size == 12068


def test_tls_test_1_tcp_payload_sizes_are_those_of_spec_14_5():
    sizes = payload_sizes(UPSTREAM_EXTRA / "tls_test_1.pcap")
    assert len(sizes) == 17
    after = {4: 1900, 7: 1229, 8: 2800, 9: 2800, 10: 8, 15: 14, 16: 8, 17: 1025}
    shrink = {7, 10, 15, 16, 17}
    for index, (before, out, reason) in enumerate(sizes, 1):
        if index in after:
            assert out == after[index], index
        if index in shrink:
            assert out < before and reason == "tls_application_data_constricted", index
        else:
            assert out == before, index


def test_quic_test_1_udp_payload_sizes_are_those_of_spec_14_5():
    sizes = payload_sizes(UPSTREAM_EXTRA / "quic_test_1.pcap")
    assert len(sizes) == 16
    after = {1: 1252, 2: 1252, 3: 43, 4: 1252, 5: 1252, 6: 1252, 7: 1252, 8: 1252, 9: 197, 10: 85,
             11: 124, 12: 32, 13: 317, 14: 1185, 15: 32, 16: 31}  # fmt: skip
    shrink = {11, 12, 15}
    for index, (before, out, reason) in enumerate(sizes, 1):
        assert out == after[index], index
        if index in shrink:
            assert out < before and reason == "quic_short_header_constricted", index
        else:
            assert out == before, index
    assert sizes[10][0] == 141  # #11: 124 of 141
    reasons = {index: reason for index, (_, _, reason) in enumerate(sizes, 1)}
    assert reasons[13] == reasons[14] == "quic_short_header_unknown_cid_fallback"
    assert reasons[1] == reasons[2] == "quic_malformed_fallback"
