"""The per-packet and the batch form of a compiled policy are one policy.

``evaluate`` (decision logs, explain) and ``evaluate_batch`` (the hot path) are
emitted from the same rules by the same emitter; on every fixture input, under
every shipped policy, they must keep the same bytes by the same decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES, GOLDEN, GOLDEN_CASES
from pcapconstrictor.engine.config import load_config
from pcapconstrictor.engine.sources.pcap_reader import PcapReader
from pcapconstrictor.grammar import build_evaluator, load_policy, shipped_policy_path

INPUTS = sorted({*FIXTURES.glob("golden/*/input.pcap"), *FIXTURES.glob("policies/*/input.pcap")})


def frames(path: Path) -> list[tuple[int, bytes, int]]:
    with PcapReader(str(path)) as reader:
        return list(reader)


@pytest.mark.parametrize("policy", ["final_only", "stream", "bulk"])
@pytest.mark.parametrize("path", INPUTS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_batch_and_per_packet_evaluation_agree(policy, path):
    config = load_config(str(GOLDEN / GOLDEN_CASES[0] / "config.ini"))
    rules = load_policy(shipped_policy_path(policy))
    packets = frames(path)
    one = build_evaluator(rules, config)
    per_packet = [one.evaluate(data, orig, ts) for ts, data, orig in packets]
    batch = build_evaluator(rules, config)  # fresh flow state
    counts = [0] * len(batch.decisions)
    half = len(packets) // 2  # two calls: state carries over between batches
    first, size_1 = batch.evaluate_batch(packets[:half], counts)
    second, size_2 = batch.evaluate_batch(packets[half:], counts)
    assert first + second == [out for out, _ in per_packet]
    assert size_1 + size_2 == sum(len(data) for _, data, _ in packets)
    expected = [0] * len(one.decisions)
    for _, did in per_packet:
        expected[did] += 1
    assert counts == expected and sum(counts) == len(packets)


def test_a_rule_that_cannot_match_with_the_config_is_not_emitted_but_keeps_its_decisions(tmp_path):
    policy = tmp_path / "p.rules"
    policy.write_text('policy p "x"\non packet\n'
                      'rule never "off by config"\n    when decode.tcp and $tls.enabled\n    reason tcp\n'
                      'rule rest "everything"\n    reason default\n')  # fmt: skip
    config_path = tmp_path / "c.ini"
    config_path.write_text("[tls]\nenabled = false\n")
    evaluator = build_evaluator(load_policy(str(policy)), load_config(str(config_path)))
    assert [d.rule.id for d in evaluator.decisions] == ["never", "rest"]
    assert "(never matches with this config)" in evaluator.source
    assert "counts[0]" not in evaluator.source and "return baseline, 0" not in evaluator.source
    counts = [0, 0]
    frame = bytes(12) + b"\x08\x00" + bytes(50)
    assert evaluator.evaluate_batch([(0, frame, 64)], counts) == ([64], 64) and counts == [0, 1]
