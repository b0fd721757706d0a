"""Flow budgets (issue 17): the first budget_bytes of each direction whole, then headers plus
budget_keep_bytes; protocol rules, handshakes and exempt ports untouched; off by default."""

from __future__ import annotations

import re

import pytest
from packets import (
    ACK,
    HANDSHAKE,
    SYN,
    TCP4_PAYLOAD_AT,
    UDP4_PAYLOAD_AT,
    ethernet,
    filler,
    ipv4,
    tcp4_frame,
    tls_header,
    udp4_frame,
)  # fmt: skip

from conftest import run_cli
from pcapconstrictor.engine.analysis.decode import decode
from pcapconstrictor.engine.analysis.flow import FlowAnalyzer
from pcapconstrictor.engine.analysis.registry import analyze_decoded
from pcapconstrictor.engine.config import parse_config_text
from pcapconstrictor.formats import ethernet as eth_format
from pcapconstrictor.grammar import build_evaluator, load_policy, shipped_policy_path

SEC = 10**9


def evaluator(text: str = "", policy: str = "final_only"):
    config = parse_config_text(text, "budget.ini")
    return build_evaluator(load_policy(shipped_policy_path(policy)), config)


def budget(budget_bytes: int, keep: int = 0, min_saved: int = 0, extra: str = ""):
    return evaluator(
        f"[general]\nmin_saved_bytes_per_packet = {min_saved}\n[flow]\n"
        f"budget_bytes = {budget_bytes}\nbudget_keep_bytes = {keep}\n{extra}"
    )


def kept(ev, frame: bytes, ts_ns: int = 0) -> int:
    return ev.evaluate(frame, len(frame), ts_ns)[0]


def reason(ev, frame: bytes, ts_ns: int = 0) -> str:
    return ev.decisions[ev.evaluate(frame, len(frame), ts_ns)[1]].reason


def http(seq: int, size: int, *, sport: int = 8080, dport: int = 50000, flags: int = ACK) -> bytes:
    return tcp4_frame(filler(size), sport=sport, dport=dport, seq=seq, flags=flags)


def test_budget_off_by_default_runs_no_flow_analyzer():
    ev = evaluator()
    assert "_analyze_flow" not in ev.source
    for i in range(5):
        assert kept(ev, http(1 + 1000 * i, 1000)) == TCP4_PAYLOAD_AT + 1000
    assert len(ev.analyzers["flow"].flows) == 0


def test_first_budget_bytes_of_a_direction_are_kept_whole_then_headers_plus_keep_bytes():
    ev = budget(2500, keep=10)
    lengths = [kept(ev, http(1 + 1000 * i, 1000)) for i in range(5)]
    # 0-1000, 1000-2000 whole; 2000-3000 keeps up to the budget (500 bytes); later ones 10 bytes
    assert lengths == [TCP4_PAYLOAD_AT + 1000, TCP4_PAYLOAD_AT + 1000, TCP4_PAYLOAD_AT + 500,
                       TCP4_PAYLOAD_AT + 10, TCP4_PAYLOAD_AT + 10]  # fmt: skip
    assert reason(ev, http(5001, 1000)) == "flow_budget_exceeded"


def test_each_direction_has_its_own_budget():
    ev = budget(1000)
    assert kept(ev, http(1, 1000)) == TCP4_PAYLOAD_AT + 1000
    assert kept(ev, http(1001, 1000)) == TCP4_PAYLOAD_AT
    reply = http(7, 1000, sport=50000, dport=8080)
    assert kept(ev, reply) == TCP4_PAYLOAD_AT + 1000


def test_a_retransmitted_start_is_kept_whole_like_the_original():
    ev = budget(1500)
    syn = http(99, 0, flags=SYN)
    assert kept(ev, syn) == len(syn)
    first = http(100, 1000)
    assert kept(ev, first) == len(first)
    assert kept(ev, http(1100, 1000)) == TCP4_PAYLOAD_AT + 500
    assert kept(ev, http(2100, 1000)) == TCP4_PAYLOAD_AT
    assert kept(ev, first) == len(first)  # the retransmission: same sequence range, same decision


def test_a_segment_arriving_early_is_judged_by_where_it_lies_in_the_stream():
    ev = budget(1500)
    assert kept(ev, http(1, 1000)) == TCP4_PAYLOAD_AT + 1000
    assert kept(ev, http(2001, 1000)) == TCP4_PAYLOAD_AT  # past the budget, arrived early
    assert kept(ev, http(1001, 1000)) == TCP4_PAYLOAD_AT + 500  # the gap it left, filled late


def test_sequence_numbers_wrapping_past_2_to_32_keep_counting():
    analyzer = FlowAnalyzer()
    start = 2**32 - 1500
    offsets = []
    for i in range(4):
        frame = http((start + 1000 * i) % 2**32, 1000)
        offsets.append(analyze_decoded(analyzer, decode(frame, len(frame)), frame, 0).offset)
    assert offsets == [0, 1000, 2000, 3000]


def test_syn_is_never_cut_by_a_budget():
    ev = budget(10)
    assert kept(ev, http(1, 500)) == TCP4_PAYLOAD_AT + 10
    syn_with_data = http(5000, 500, flags=SYN)  # a new connection on the same ports (TFO data)
    assert kept(ev, syn_with_data) == len(syn_with_data)


def test_udp_flows_count_datagrams_in_arrival_order():
    ev = budget(1500, keep=4)
    frames = [udp4_frame(filler(1000), sport=40000, dport=2049) for _ in range(3)]
    assert [kept(ev, f) for f in frames] == [UDP4_PAYLOAD_AT + 1000, UDP4_PAYLOAD_AT + 500,
                                             UDP4_PAYLOAD_AT + 4]  # fmt: skip


def test_exempt_ports_are_never_budgeted():
    ev = budget(100)
    dns = [udp4_frame(filler(400), sport=40000, dport=53) for _ in range(3)]
    assert [kept(ev, f) for f in dns] == [len(f) for f in dns]
    ev = budget(100, extra="budget_ports_exempt = 2049\n")
    assert kept(ev, udp4_frame(filler(400), dport=2049)) == UDP4_PAYLOAD_AT + 400


def test_a_packet_a_tls_rule_decided_is_not_budgeted():
    ev = budget(10)
    hello = tcp4_frame(tls_header(HANDSHAKE, 600) + filler(600), dport=443, seq=1)
    assert kept(ev, hello) == len(hello)
    assert reason(ev, hello) == "tls_candidate"
    assert len(ev.analyzers["flow"].flows) == 0


def test_a_budget_cut_obeys_min_saved_bytes_per_packet():
    ev = budget(1000, min_saved=100)
    assert kept(ev, http(1, 1000)) == TCP4_PAYLOAD_AT + 1000
    small = http(1001, 50)
    assert kept(ev, small) == len(small)
    assert reason(ev, small) == "tcp"  # no cut: the packet keeps its ordinary reason
    assert kept(ev, http(1051, 500)) == TCP4_PAYLOAD_AT


def test_other_ip_protocols_are_budgeted_per_address_pair():
    ev = budget(100)
    esp = ethernet(eth_format.ETHERTYPE_IPV4, ipv4(50, filler(300)))
    assert kept(ev, esp) == len(esp) - 200  # the first 100 bytes after the IP header
    assert kept(ev, esp) == len(esp) - 300
    other_pair = ethernet(eth_format.ETHERTYPE_IPV4, ipv4(50, filler(300), dst=bytes([198, 51, 100, 9])))
    assert kept(ev, other_pair) == len(other_pair) - 200


@pytest.mark.parametrize("policy", ["final_only", "stream", "bulk"])
def test_every_shipped_policy_includes_the_budget(policy):
    ev = evaluator("[flow]\nbudget_bytes = 100\n[general]\nmin_saved_bytes_per_packet = 0\n", policy)
    kept(ev, http(1, 100))
    assert kept(ev, http(101, 100)) == TCP4_PAYLOAD_AT


def test_flow_facts_report_counters_flags_and_age():
    analyzer = FlowAnalyzer()
    frames = [(http(99, 0, flags=SYN), 0), (http(100, 700), SEC), (http(800, 300, flags=0x11), 3 * SEC)]
    facts = [analyze_decoded(analyzer, decode(f, len(f)), f, ts) for f, ts in frames]
    last = facts[-1]
    assert (last.offset, last.bytes_before, last.packets_before) == (700, 700, 2)
    assert last.syn_seen and last.fin_seen and not last.rst_seen
    assert last.age_ms == 3000
    assert not facts[0].fin_seen and facts[0].syn


def test_flow_table_is_bounded_and_evictions_are_counted():
    analyzer = FlowAnalyzer(max_flows=2)
    for port in range(10):
        frame = http(1, 10, dport=40000 + port)
        analyze_decoded(analyzer, decode(frame, len(frame)), frame, 0)
    assert len(analyzer.flows) == 2 and analyzer.flows.evictions == 8


def test_tcp_udp_and_other_protocols_between_the_same_endpoints_are_separate_flows():
    """Keys are frame slices (addresses, then ports) of lengths that tell TCP, UDP and other
    protocols apart; either direction finds the one flow; FlowAnalyzer.key (explain) agrees."""
    import packets

    analyzer = FlowAnalyzer()
    a, b = packets.CLIENT4, packets.SERVER4
    frames = [packets.tcp4_frame(bytes(100), src=a, dst=b, sport=5000, dport=6000),
              packets.tcp4_frame(bytes(40), src=b, dst=a, sport=6000, dport=5000, seq=9000),
              packets.udp4_frame(bytes(50), src=a, dst=b, sport=5000, dport=6000),
              packets.udp4_frame(bytes(30), src=b, dst=a, sport=6000, dport=5000),
              packets.ethernet(0x0800, packets.ipv4(1, bytes(64), src=b, dst=a)),  # ICMP
              packets.tcp4_frame(bytes(10), src=a, dst=b, sport=5000, dport=6000, seq=1100,
                                 options=b"\x01" * 4)]  # fmt: skip
    facts = []
    for f in frames:
        d = decode(f, len(f))
        facts.append(analyze_decoded(analyzer, d, f, 0))
        key, _ = FlowAnalyzer.key(d.protocol, d.tcp, d.udp, d.src_addr, d.dst_addr, d.src_port, d.dst_port)
        assert key in analyzer.flows.entries
    assert len(analyzer.flows.entries) == 3
    assert [x.packets_before for x in facts] == [0, 0, 0, 0, 0, 1]  # each direction its own count
    assert facts[3].bytes_before == 0 and facts[5].bytes_before == 100


def _bulk_capture(tmp_path) -> tuple:
    from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter

    path = tmp_path / "bulk.pcap"
    frames = [http(99, 0, flags=SYN)] + [http(100 + 1000 * i, 1000) for i in range(6)]
    with PcapWriter(str(path), 65535) as w:
        for i, f in enumerate(frames):
            w.write(i * SEC, f, len(f), len(f))
    config = tmp_path / "budget.ini"
    config.write_text(f"[flow]\nbudget_bytes = 2000\n[capture]\noutput = {tmp_path / 'out.pcap'}\n")
    return path, config


def test_offline_run_counts_budget_cuts_in_the_stats(tmp_path):
    path, config = _bulk_capture(tmp_path)
    result = run_cli("--config", str(config), "--offline-input", str(path))
    assert result.returncode == 0, result.stderr
    assert "flow_budget_constricted: 4" in result.stdout.decode()


def test_audit_shows_the_budget_rules_with_their_values(tmp_path):
    _, config = _bulk_capture(tmp_path)
    text = run_cli("audit", "--config", str(config)).stdout.decode()
    assert "rule packet.tcp_budget" in text and "rule flow.over_budget" in text
    assert "offset + flow.payload_len > 2000" in text


def test_explain_shows_the_flows_counters(tmp_path):
    path, config = _bulk_capture(tmp_path)
    result = run_cli("explain", "--config", str(config), "--offline-input", str(path), "--packet", "5")
    assert result.returncode == 0, result.stderr
    text = result.stdout.decode()
    assert "flow this direction: payload_bytes=3000 packets=4 seq_origin=100" in text
    assert "flow this direction: payload_bytes=4000 packets=5" in text  # after
    assert "TCP flags seen S" in text
    assert re.search(r"MATCH flow\.over_budget .*flow\.offset=3000", text)
    assert "reason flow_budget_exceeded" in text
