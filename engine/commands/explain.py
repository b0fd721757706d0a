"""``explain``: the whole decision story of one packet of an offline input.

Packets before it run through the same traced evaluator (so flow state is
exactly what the real run has); for the packet itself it prints the decode,
the analyzer's state before and after, every rule tried with the facts it
read, and the final length.
"""

from __future__ import annotations

import sys

from pcapconstrictor.engine.analysis.decode import decode
from pcapconstrictor.engine.analysis.flow_keys import connection_key, direction_key
from pcapconstrictor.engine.sinks.decision_log import address
from pcapconstrictor.engine.sinks.fact_values import fact_names, fact_values, facts_used, format_facts
from pcapconstrictor.engine.sources.capture_files import open_capture
from pcapconstrictor.engine.sources.pcap_reader import PcapReadError
from pcapconstrictor.formats.derived import link as link_format
from pcapconstrictor.formats.derived import transport
from pcapconstrictor.grammar import build_evaluator

from .loading import Failure, load_run, run_options_of


def _state_lines(evaluator, decoded) -> list[str]:
    if decoded is None or decoded.error or not decoded.ip:
        return ["  (no flow)"]
    lines = _flow_counter_lines(evaluator, decoded)
    if not (decoded.tcp or decoded.udp):
        return lines or ["  (no flow)"]
    d = decoded
    tls = evaluator.analyzers["tls"].flows.entries
    forward = direction_key(d.src_addr, d.dst_addr, d.src_port, d.dst_port)
    reverse = direction_key(d.dst_addr, d.src_addr, d.dst_port, d.src_port)
    for label, key in (("this direction", forward), ("reverse", reverse)):
        state = tls.get(key)
        if state is not None:
            fields = " ".join(f"{k}={getattr(state, k)}" for k in state.FIELDS)
            lines.append(f"  tls {label}: {fields}")
    connection = connection_key(d.src_addr, d.dst_addr, d.src_port, d.dst_port)
    quic = evaluator.analyzers["quic"].flows.entries.get(connection)
    if quic is not None:
        lines.append(f"  quic flow: scid_a={_hex(quic.scid_a)} scid_b={_hex(quic.scid_b)}")
    return lines or ["  (no state)"]


def _flow_counter_lines(evaluator, d) -> list[str]:
    """The flow budget's counters for this packet's flow (issue 17), if it has any."""
    flow = evaluator.analyzers["flow"]
    key, forward = flow.key(d.protocol, d.tcp, d.udp, d.src_addr, d.dst_addr, d.src_port, d.dst_port)
    state = flow.flows.entries.get(key)
    if state is None:
        return []
    named = ((transport.TCP_FLAG_SYN, "S"), (transport.TCP_FLAG_FIN, "F"), (transport.TCP_FLAG_RST, "R"))
    flags = "".join(name for bit, name in named if state.flags & bit) or "-"
    lines = [f"  flow: first packet at {state.first_ns // 10**9}.{state.first_ns // 1000 % 10**6:06d}, "
             f"TCP flags seen {flags}"]  # fmt: skip
    for label, side in (("this direction", forward), ("reverse", not forward)):
        packets, high, origin = state.direction(side)
        lines.append(f"  flow {label}: payload_bytes={high} packets={packets} "
                     f"seq_origin={'-' if origin < 0 else origin}")  # fmt: skip
    return lines


def _hex(cid) -> str:
    return "unknown" if cid is None else (cid.hex() or "(empty)")


def explain(config, policy, input_path: str, number: int, out=sys.stdout) -> int:
    evaluator = build_evaluator(policy, config, traced=True)
    seen = 0
    with open_capture(input_path) as reader:  # any format and link type the offline feed reads
        for batch in reader.batches():
            linktype = getattr(batch, "linktype", link_format.LINKTYPE_ETHERNET)
            evaluator.use_link_type(linktype)
            for ts_ns, data, orig_len in batch:
                seen += 1
                if seen < number:
                    evaluator.evaluate(data, orig_len, ts_ns)
                    continue
                before = _state_lines(evaluator, decode(data, len(data), linktype))
                out_len, did = evaluator.evaluate(data, orig_len, ts_ns)
                _story(out, evaluator, seen, ts_ns, data, orig_len, out_len, did, before)
                return 0
    sys.stderr.write(f"explain: the input has only {seen} packets\n")
    return 1


def _story(out, evaluator, index, ts_ns, data, orig_len, out_len, did, before) -> None:
    trace = evaluator.trace
    d = trace.decoded
    w = out.write
    w(f"packet {index}: captured {len(data)} bytes, original {orig_len}, "
      f"time {ts_ns // 10**9}.{ts_ns // 1000 % 10**6:06d}\n")  # fmt: skip
    w("decode:\n")
    if d is None:
        w("  not decoded (an earlier rule decided)\n")
    elif d.error:
        w(f"  failed: {d.error}\n")
    else:
        w(f"  ethertype 0x{d.ethertype:04x}, {d.vlan_tags} VLAN tag(s)\n")
        if d.ip:
            w(f"  IPv{d.ip_version} {address(d.src_addr)} -> {address(d.dst_addr)}, protocol {d.protocol}\n")
        if d.tcp or d.udp:
            kind = "TCP" if d.tcp else "UDP"
            extra = f", seq {d.tcp_seq}, flags 0x{d.tcp_flags:02x}" if d.tcp else ""
            w(f"  {kind} {d.src_port} -> {d.dst_port}{extra}, payload {d.payload_len} bytes "
              f"at offset {d.payload_offset}\n")  # fmt: skip
    w("state before:\n" + "".join(line + "\n" for line in before))
    if trace.analyzer:
        facts = trace.facts
        shown = " ".join(f"{k}={getattr(facts, k)}" for k in fact_names(trace.analyzer))
        w(f"{trace.analyzer} analyzer facts:\n  {shown}\n")
    w("rules tried:\n")
    rules = {r.id: r for r in evaluator_rules(evaluator)}
    for rule_id, matched in trace.tried:
        rule = rules[rule_id]
        values = fact_values(facts_used(rule), rule.section, data, orig_len, trace)
        mark = "MATCH" if matched else "no   "
        w(f"  {mark} {rule_id} ({rule.path.rsplit('/', 1)[-1]}:{rule.pos.line}) {format_facts(values)}\n")
    w("state after:\n" + "".join(line + "\n" for line in _state_lines(evaluator, d)))
    decision = evaluator.decisions[did]
    w(f"decision: rule {decision.rule.id} ({decision.kind})\n")
    if decision.kind in ("cut", "below_min_saved"):
        w(f"  proposed keep {trace.keep}\n")
    w(f"  reason {decision.reason}, counter {decision.counter or '-'}\n")
    w(f"  output {out_len} of {len(data)} captured bytes (orig_len {orig_len})\n")


def evaluator_rules(evaluator):
    seen = {}
    for decision in evaluator.decisions:
        seen.setdefault(decision.rule.id, decision.rule)
    return seen.values()


def run(args) -> int:
    try:
        config, policy = load_run(run_options_of(args))
        return explain(config, policy, args.offline_input, args.packet)
    except Failure as e:
        sys.stderr.write(f"{e}\n")
        return 1
    except PcapReadError as e:
        sys.stderr.write(f"explain: {e}\n")
        return 1
