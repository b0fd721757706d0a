"""``regress``: run golden cases from a YAML manifest and compare byte for byte.

A rule change shows its effect here before it is deployed: each case prints
PASS/FAIL, how many packets changed and bytes saved versus expected; a failure
names the first differing packet.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, replace
from importlib import resources

import yaml

from pcapconstrictor.engine.config import ConfigError, load_config, output_snaplen
from pcapconstrictor.engine.run.pipeline import make_pipeline
from pcapconstrictor.engine.run.policy_select import select_policy
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sources.pcap_reader import PcapReader, PcapReadError
from pcapconstrictor.grammar import PolicyError


class ManifestError(Exception):
    """A manifest that cannot be run: bad YAML, a missing key or file."""


@dataclass
class Case:
    name: str
    input: str
    config: str
    expected: str
    rules: str | None = None
    stats: dict[str, int] = field(default_factory=dict)
    command: str = "offline"  # or a main-tool form: constrict, reinflate (SPEC §14.4)


@dataclass
class Outcome:
    case: Case
    passed: bool
    lines: list[str]
    actual_path: str
    figures: dict[str, int] = field(default_factory=dict)  # the run's stats block, by name


def default_manifest() -> str:
    """The shipped golden manifest: ``fixtures/golden/manifest.yaml`` of the
    source tree this package was installed from, if it is still there."""
    here = resources.files("pcapconstrictor.engine")
    candidates = [os.path.join(os.getcwd(), "fixtures", "golden", "manifest.yaml")]
    candidates.append(os.path.join(str(here), "..", "fixtures", "golden", "manifest.yaml"))
    for path in candidates:
        if os.path.isfile(path):
            return os.path.normpath(path)
    raise ManifestError("no manifest given and fixtures/golden/manifest.yaml not found here")


def load_manifest(path: str) -> list[Case]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise ManifestError(f"cannot read manifest '{path}': {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ManifestError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        raise ManifestError(f"{path}: expected a mapping with a 'cases' list")
    base = os.path.dirname(os.path.abspath(path))
    cases = []
    for i, raw in enumerate(doc["cases"]):
        if not isinstance(raw, dict):
            raise ManifestError(f"{path}: case {i + 1} is not a mapping")
        missing = [k for k in ("name", "input", "config", "expected") if k not in raw]
        if missing:
            raise ManifestError(f"{path}: case {i + 1} lacks {', '.join(missing)}")
        unknown = set(raw) - {"name", "input", "config", "expected", "rules", "stats", "command"}
        if unknown:
            raise ManifestError(f"{path}: case '{raw['name']}' has unknown keys {sorted(unknown)}")
        command = str(raw.get("command", "offline"))
        if command not in COMMANDS:
            raise ManifestError(f"{path}: case '{raw['name']}': command must be one of {', '.join(COMMANDS)}")

        def rel(p):
            return None if p is None else os.path.join(base, str(p))

        # `input: "@name"`: the output an earlier case of this run wrote (a chain of stages)
        source = str(raw["input"]) if str(raw["input"]).startswith("@") else rel(raw["input"])
        cases.append(Case(
            str(raw["name"]), source, rel(raw["config"]), rel(raw["expected"]),
            rel(raw.get("rules")), dict(raw.get("stats") or {}), command,
        ))  # fmt: skip
    return cases


COMMANDS = ("offline", "constrict", "reinflate")


def run_case(case: Case, workdir: str, outputs: dict[str, str] | None = None) -> Outcome:
    """Run the case's command on its input into ``workdir`` and compare with the expectation;
    ``outputs``: what earlier cases wrote, by name (for an ``@name`` input)."""
    actual = os.path.join(workdir, f"{case.name}.pcap")
    if case.input.startswith("@"):
        earlier = (outputs or {}).get(case.input[1:])
        if not earlier:
            missing = f"FAIL {case.name}: no output of case '{case.input[1:]}' to read"
            return Outcome(case, False, [missing], "")
        case = replace(case, input=earlier)
    if case.command != "offline":
        return _run_main_tool_case(case, actual)
    try:
        config = load_config(case.config)
        policy = select_policy(config, case.rules)
        with PcapReader(case.input) as reader, PcapWriter(actual, output_snaplen(config)) as writer:
            pipeline = make_pipeline(policy, config, writer)
            pipeline.run(reader)
    except (ConfigError, PolicyError, PcapReadError, OSError) as e:
        return Outcome(case, False, [f"FAIL {case.name}: {e}"], "")
    stats = pipeline.stats()
    lines: list[str] = []
    diff = compare_pcaps(actual, case.expected)
    figures: dict[str, int] = {}
    for line in stats.lines():
        key, value = line.split(": ")
        figures[key] = int(value)
    stat_diffs = [
        f"{k} {figures.get(k)} != expected {v}" for k, v in case.stats.items() if figures.get(k) != v
    ]
    passed = diff.identical and not stat_diffs
    head = "PASS" if passed else "FAIL"
    lines.append(
        f"{head} {case.name}: {stats.packets_total} packets, {diff.changed} changed, "
        f"bytes saved {stats.bytes_saved} (expected {diff.expected_saved})"
    )
    if diff.first is not None:
        index, ours, theirs = diff.first
        lines.append(f"  first difference: packet {index} (1-based): ours {ours}, expected {theirs}")
    lines.extend(f"  stats: {d}" for d in stat_diffs)
    return Outcome(case, passed, lines, actual, figures)


def _run_main_tool_case(case: Case, actual: str) -> Outcome:
    """A stage of the main tool's golden workflow (SPEC §14.4): its command must exit 0 and
    write the expected bytes."""
    from argparse import Namespace
    from contextlib import redirect_stdout
    from importlib import import_module
    from io import StringIO

    args = Namespace(input=case.input, output=actual, config=case.config, stats=False,
                     decision_log=None, debug=False)  # fmt: skip
    with redirect_stdout(StringIO()):
        status = import_module(f"{__package__}.{case.command}").run(args)
    if status != 0 or not os.path.isfile(actual):
        return Outcome(case, False, [f"FAIL {case.name}: {case.command} exited {status}"], "")
    diff = compare_pcaps(actual, case.expected)
    head = "PASS" if diff.identical else "FAIL"
    lines = [f"{head} {case.name}: {case.command}, {diff.changed} packets differ"]
    if diff.first is not None:
        index, ours, theirs = diff.first
        lines.append(f"  first difference: packet {index} (1-based): ours {ours}, expected {theirs}")
    return Outcome(case, diff.identical, lines, actual)


@dataclass
class PcapDiff:
    identical: bool
    changed: int  # packets whose record (header or bytes) differs
    expected_saved: int
    first: tuple[int, str, str] | None  # (1-based index, ours, expected)


def _records(path: str):
    with PcapReader(path) as reader:
        yield from reader


def compare_pcaps(actual: str, expected: str) -> PcapDiff:
    with open(actual, "rb") as a, open(expected, "rb") as b:
        identical = a.read() == b.read()
    changed = 0
    first = None
    saved = 0
    ours_iter, theirs_iter = _records(actual), _records(expected)
    index = 0
    while True:
        ours = next(ours_iter, None)
        theirs = next(theirs_iter, None)
        if ours is None and theirs is None:
            break
        index += 1
        if theirs is not None:
            saved += theirs[2] - len(theirs[1])  # orig_len - incl_len: bytes cut
        if ours != theirs:
            changed += 1
            if first is None:
                first = (index, _describe(ours), _describe(theirs))
    return PcapDiff(identical, changed, saved, first)


def _describe(record) -> str:
    if record is None:
        return "no record"
    ts_ns, data, orig_len = record
    return f"incl_len {len(data)} orig_len {orig_len}"


def run(args) -> int:
    try:
        manifest = args.manifest or default_manifest()
        cases = load_manifest(manifest)
    except ManifestError as e:
        sys.stderr.write(f"regress: {e}\n")
        return 1
    failed = updated = 0
    with tempfile.TemporaryDirectory(prefix="pcapconstrictor-regress-") as workdir:
        outputs: dict[str, str] = {}
        for case in cases:
            outcome = run_case(case, workdir, outputs)
            outputs[case.name] = outcome.actual_path
            if outcome.passed or not (args.update and outcome.actual_path):
                print("\n".join(outcome.lines))
                failed += not outcome.passed
                continue
            shutil.copyfile(outcome.actual_path, case.expected)
            if case.stats:
                update_stats(manifest, case.name, {k: outcome.figures.get(k, 0) for k in case.stats})
            updated += 1
            print(outcome.lines[0].replace("FAIL", "UPDATED", 1))
            print(f"  rewrote {case.expected}" + (f" and its stats in {manifest}" if case.stats else ""))
    passed = len(cases) - failed - updated
    done = f"{updated} updated, " if args.update else ""
    print(f"regress: {passed} passed, {done}{failed} failed")
    return 1 if failed else 0


def update_stats(manifest: str, name: str, stats: dict[str, int]) -> None:
    """Rewrite one case's ``stats:`` mapping in place; comments and the rest of the file stay."""
    with open(manifest, encoding="utf-8") as f:
        text = f.read()
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    for case in next(v for k, v in root.value if k.value == "cases").value:
        fields = {k.value: v for k, v in case.value}
        if fields["name"].value == name:
            node = fields["stats"]
            start, end = node.start_mark.index, node.end_mark.index
            flow = "{" + ", ".join(f"{k}: {v}" for k, v in stats.items()) + "}"
            text = text[:start] + flow + text[end:]
            break
    with open(manifest, "w", encoding="utf-8") as f:
        f.write(text)
