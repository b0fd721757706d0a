"""The typed evaluators of the shipped policies (issue 21) against the interpreted one.

engine/run/shipped_*.py are generated from the rule files: each must be what the generator
prints today, decide every frame of every fixture exactly as the interpreted evaluator does
(length, decision index, the decision table, the counters) under many configs, and be used
only for the shipped rule files themselves.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from packets import ethernet, ipv4, tcp4_frame, udp4_frame

from conftest import ROOT
from pcapconstrictor.engine.config import parse_config_text
from pcapconstrictor.engine.run import policy_select, typed_policy
from pcapconstrictor.engine.run.pipeline import Pipeline
from pcapconstrictor.engine.sources.capture_files import open_capture
from pcapconstrictor.engine.sources.pcap_reader import PcapReadError
from pcapconstrictor.engine.sources.record_batch import RecordBatch
from pcapconstrictor.formats.ethernet import ETHERTYPE_IPV4
from pcapconstrictor.grammar import build_evaluator, load_policy, shipped_policy_path
from pcapconstrictor.grammar.typed_codegen import typed_module

CAPTURES = sorted(p for p in (ROOT / "fixtures").rglob("*") if p.suffix in (".pcap", ".pcapng"))

CONFIGS = {
    "defaults": "",
    "protocols_on": "[wireguard]\nenabled = true\n[ipsec]\nenabled = true\n[ssh]\nenabled = true\n"
                    "[dtls]\nenabled = true\nports = 443, 4433, 5684\n",
    "budgets": "[flow]\nbudget_bytes = 300\nbudget_keep_bytes = 20\nbudget_ports_exempt = 53, 443\n"
               "[general]\nmax_flows = 5\n",  # and small flow tables: evictions
    "ports_and_sizes": "[tls]\nports = 443, 8443, 993\napp_data_keep_record_bytes = 8\n"
                       "app_data_continuation_keep_bytes = 0\n[quic]\nports = 443, 4433\n"
                       "require_dcid_match = true\nallow_short_header_without_known_dcid = false\n"
                       "short_header_keep_packet_bytes = 1\n[general]\nmin_saved_bytes_per_packet = 0\n"
                       "max_flows = 3\n[capture]\ndefault_snaplen = 200\nmax_capture_len = 120\n",
    "off": "[tls]\nenabled = false\n[quic]\nenabled = false\n",
}  # fmt: skip


def _config(name: str):
    return parse_config_text(CONFIGS[name], f"({name})")


POLICIES = sorted(typed_policy.MODULES)
DEFAULT = "final_only"


def _typed(config, policy: str = DEFAULT):
    evaluator = typed_policy.typed_evaluator(shipped_policy_path(policy), None, config)
    assert isinstance(evaluator, typed_policy.TypedEvaluator)
    return evaluator


def _interpreted(config, policy: str = DEFAULT):
    return build_evaluator(load_policy(shipped_policy_path(policy)), config)


def _frames(path: Path) -> list:
    """The capture's batches up to where it stops being readable (some fixtures are cut short)."""
    out = []
    try:
        with open_capture(str(path)) as reader:
            for batch in reader.batches():
                out.append(batch)
    except PcapReadError:
        pass
    return out


def _ssh_and_others() -> list[tuple[int, bytes, int]]:
    """Frames of the protocols the fixtures lack: SSH up to and past NEWKEYS, WireGuard, ESP
    (in UDP and as protocol 50), IKE, NAT keepalives, DTLS; and a frame longer than its wire."""
    def ssh_packet(code: int, size: int) -> bytes:
        padding = 4
        while (1 + size + padding + 4) % 8:
            padding += 1
        body = bytes([padding, code]) + bytes(size - 1) + bytes(padding)
        return len(body).to_bytes(4, "big") + body

    def dtls(content_type: int, body: bytes) -> bytes:
        return bytes([content_type, 0xFE, 0xFD]) + bytes(8) + len(body).to_bytes(2, "big") + body

    payloads, seq = [], 1000
    for segment in (b"SSH-2.0-OpenSSH_9.2p1\r\n", ssh_packet(20, 900), ssh_packet(21, 1), bytes(1400),
                    bytes(600)):  # fmt: skip
        payloads.append(tcp4_frame(segment, dport=22, seq=seq))
        seq += len(segment)
    payloads += [udp4_frame(b"\x01\x00\x00\x00" + bytes(144), dport=51820),
                 udp4_frame(b"\x04\x00\x00\x00" + bytes(8) + bytes(1200), dport=51820),
                 udp4_frame(b"\x09" + bytes(30), sport=51820),
                 udp4_frame(bytes(4) + bytes(200), dport=4500),  # IKE behind the non-ESP marker
                 udp4_frame(b"\xff", dport=4500),
                 udp4_frame(b"\x00\x00\x10\x01" + bytes(4) + bytes(900), dport=4500),
                 ethernet(ETHERTYPE_IPV4, ipv4(50, b"\x00\x00\x10\x01" + bytes(4) + bytes(900))),
                 udp4_frame(dtls(22, bytes(300)), dport=4433), udp4_frame(dtls(23, bytes(1000)), dport=4433),
                 udp4_frame(dtls(23, bytes(900))[:-5], dport=4433),
                 udp4_frame(dtls(23, bytes(900)), dport=443),
                 udp4_frame(bytes(700), dport=53), tcp4_frame(bytes(1400), dport=80)]  # fmt: skip
    frames = [(i * 10**9, frame, len(frame)) for i, frame in enumerate(payloads * 3)]
    frames.append((99, tcp4_frame(bytes(100)), 60))  # orig_len < caplen: inconsistent
    return frames


def _batches(path: Path | str) -> list:
    if path == "synthetic":
        unknown = RecordBatch(_ssh_and_others()[:3])
        unknown.linktype = 147  # LINKTYPE_USER0: no decoder looks into it
        return [_ssh_and_others(), unknown]
    return _frames(path)


@pytest.mark.parametrize("policy", POLICIES)
def test_the_committed_module_is_what_the_generator_prints(policy):
    assert sorted(POLICIES) == ["bulk", "final_only", "stream"]
    committed = (ROOT / "engine" / "run" / f"shipped_{policy}.py").read_text()
    assert committed == typed_module(policy), \
        f"run: python -m pcapconstrictor.grammar.typed_codegen {policy} > engine/run/shipped_{policy}.py"


@pytest.mark.parametrize("policy", POLICIES)
def test_the_decision_table_is_the_interpreted_one(policy):
    config = _config("defaults")
    typed, interpreted = _typed(config, policy), _interpreted(config, policy)
    def table(evaluator) -> list[tuple]:
        return [(d.rule.id, d.rule.section, d.rule.message, d.reason, d.counter, d.kind)
                for d in evaluator.decisions]  # fmt: skip

    assert table(typed) == table(interpreted)
    assert list(typed.analyzers) == list(interpreted.analyzers)


# every config with the default policy; the other two policies with two configs
CASES = [(DEFAULT, name) for name in sorted(CONFIGS)] + [
    (policy, name) for policy in POLICIES if policy != DEFAULT for name in ("defaults", "ports_and_sizes")]


@pytest.mark.parametrize(("policy", "config_name"), CASES)
def test_every_fixture_frame_is_decided_as_the_interpreted_evaluator_decides_it(policy, config_name):
    config = _config(config_name)
    assert len(CAPTURES) > 20
    for path in [*CAPTURES, "synthetic"]:
        typed, interpreted = _typed(config, policy), _interpreted(config, policy)
        one_typed, one_interpreted = _typed(config, policy), _interpreted(config, policy)
        typed_counts, interpreted_counts = [0] * len(typed.decisions), [0] * len(interpreted.decisions)
        for batch in _batches(path):
            linktype = getattr(batch, "linktype", 1)
            for ev in (typed, interpreted, one_typed, one_interpreted):
                ev.use_link_type(linktype)
            # the batch path, as a run takes it
            assert typed.evaluate_batch(batch, typed_counts) == \
                interpreted.evaluate_batch(batch, interpreted_counts), path  # fmt: skip
            # and frame by frame: the same (length, decision index) for each
            for ts_ns, data, orig_len in batch:
                assert one_typed.evaluate(data, orig_len, ts_ns) == \
                    one_interpreted.evaluate(data, orig_len, ts_ns), (path, ts_ns)  # fmt: skip
        assert typed_counts == interpreted_counts, path


def test_a_run_takes_the_typed_evaluator_and_counts_the_same(monkeypatch):
    config = _config("budgets")
    batches = [b for path in [*CAPTURES, "synthetic"] for b in _batches(path)]
    stats = {}
    for interpreted in (False, True):
        if interpreted:
            monkeypatch.setenv(typed_policy.INTERPRETED_ENV, "1")
        evaluator = policy_select.evaluator_for(policy_select.prepare_policy(config), config)
        assert isinstance(evaluator, typed_policy.TypedEvaluator) is not interpreted
        pipeline = Pipeline(evaluator, _NullSink())
        for batch in batches:
            pipeline.run_batch(batch)
        stats[interpreted] = (pipeline.stats(), pipeline.reason_counts(), pipeline.counts)
    assert stats[False] == stats[True]
    assert stats[False][0].counters.get("flow_budget_constricted")  # the budget rules ran
    assert stats[False][0].flow_evictions > 0  # read from the typed evaluator's analyzers


class _NullSink:
    def write_batch(self, frames, lengths) -> None:
        pass


def test_traced_runs_and_other_rule_files_keep_the_interpreted_path(tmp_path):
    config = _config("defaults")
    shipped = shipped_policy_path(DEFAULT)
    policy = load_policy(shipped)
    assert isinstance(policy_select.evaluator_for(policy, config), typed_policy.TypedEvaluator)
    traced = policy_select.evaluator_for(policy, config, traced=True)
    assert traced.trace is not None and not isinstance(traced, typed_policy.TypedEvaluator)
    # a shipped policy without a typed module of its own (the main tool's)
    other = shipped_policy_path("main_final_only")
    assert typed_policy.typed_evaluator(other, None, config) is None
    assert typed_policy.typed_evaluator(shipped_policy_path("stream"), None, config) is not None
    # a copy of the shipped files elsewhere is a user's rule file
    own = tmp_path / "rules"
    shutil.copytree(Path(shipped).parent, own)
    copy = str(own / Path(shipped).name)
    assert typed_policy.typed_evaluator(copy, None, config) is None
    assert typed_policy.typed_evaluator(copy, load_policy(copy).sources, config) is None


def test_a_changed_shipped_rule_text_falls_back_to_interpreted(monkeypatch):
    config = _config("defaults")
    shipped = shipped_policy_path(DEFAULT)
    policy = load_policy(shipped)
    include = next(p for p in policy.sources if p.endswith("quic.rules"))
    changed = dict(policy.sources)
    changed[include] = changed[include].replace("reason quic_long_header", "reason quic_fallback", 1)
    assert changed[include] != policy.sources[include]
    assert typed_policy.typed_evaluator(shipped, changed, config) is None
    # the files on disk, read now (a policy from the cache): a changed include is seen too
    real_read = typed_policy.read_rule_text
    monkeypatch.setattr(typed_policy, "read_rule_text",
                        lambda p: real_read(p) + "\n" if p.endswith("tls_records.rules") else real_read(p))
    assert typed_policy.typed_evaluator(shipped, None, config) is None
    monkeypatch.undo()
    assert typed_policy.typed_evaluator(shipped, None, config) is not None
    monkeypatch.setenv(typed_policy.INTERPRETED_ENV, "1")
    assert typed_policy.typed_evaluator(shipped, None, config) is None
