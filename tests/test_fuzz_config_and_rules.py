"""Fuzzing the config loader and the rule compiler on mutated text (issue 6, part 1c).

Config text gives a usable :class:`Config` or a :class:`ConfigError` whose text is one of the
SPEC §5 messages at ``<path>:<line>: `` (line 0 for the §5.5 checks) -- nothing else.  Rule
text gives a checked Policy or a :class:`PolicyError` whose text starts
``<path>:<line>:<col>: `` and points into a file that was read; a checked Policy must then
compile and decide frames within ``[0, caplen]``.  The compiler bugs this fuzzing found are
pinned at the end as regression tests, each with its smallest example.
"""

from __future__ import annotations

import os
import re
import shutil
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import GOLDEN, GOLDEN_CASES, ROOT
from pcapconstrictor.engine.analysis.facts import DECODE_FACTS, FRAME_FACTS
from pcapconstrictor.engine.analysis.reasons import UPSTREAM_COUNTERS, UPSTREAM_REASONS
from pcapconstrictor.engine.analysis.registry import ANALYZERS
from pcapconstrictor.engine.config import KEYS, Config, ConfigError, load_config, parse_config_text
from pcapconstrictor.engine.sources.pcap_reader import PcapReader
from pcapconstrictor.grammar import Policy, PolicyError, build_evaluator, load_policy, shipped_policy_path
from pcapconstrictor.grammar.codegen import analyzer_options

# --- config: what SPEC §5 says an error can be ------------------------------------------------

LINE_MESSAGES = {
    "unterminated section header", "empty section name", "expected key = value",
    "key/value found before any section", "empty key", "empty value", "unknown section",
    "unknown capture.backend value", "invalid boolean for capture.promiscuous",
    "invalid unsigned integer for capture ring option", "invalid unsigned integer for capture option",
    "unknown key in [capture]", "invalid unsigned integer for [general]", "unknown key in [general]",
    "invalid boolean for tls.enabled", "invalid port list for tls.ports",
    "invalid unsigned integer for [tls]", "unknown key in [tls]",
    # §5.3 [inferred] + DECISIONS #7: stream and bulk are accepted, anything else is not
    "invalid value for tls.app_data_continuation_policy; expected final_only, stream, or bulk",
    "invalid boolean for [quic]", "invalid port list for quic.ports", "invalid unsigned integer for [quic]",
    "unknown key in [quic]", "unknown key in [stats]", "invalid boolean for stats.enabled",
    "invalid value for capture.format; expected auto, pcap, or pcapng",  # issue 8
    "invalid value for capture.compress; expected none, gzip, or zstd",  # issue 18
    "unknown key in [flow]", "invalid unsigned integer for [flow]",  # issue 17
    "invalid port list for flow.budget_ports_exempt",
    # issue 16: one section per protocol
    "invalid boolean for wireguard.enabled", "invalid port list for wireguard.ports",
    "invalid unsigned integer for wireguard.keep_bytes", "unknown key in [wireguard]",
    "invalid boolean for ipsec.enabled", "invalid port list for ipsec.nat_t_ports",
    "invalid unsigned integer for ipsec.keep_bytes", "unknown key in [ipsec]",
    "invalid boolean for ssh.enabled", "invalid port list for ssh.ports",
    "invalid unsigned integer for ssh.keep_bytes", "unknown key in [ssh]",
    "invalid boolean for dtls.enabled", "invalid port list for dtls.ports",
    "invalid unsigned integer for dtls.keep_bytes", "unknown key in [dtls]",
}  # fmt: skip
FINAL_MESSAGES = {  # §5.5, and the max_flows extension (DECISIONS #6)
    "capture.default_snaplen must be greater than 0", "capture.max_capture_len must be greater than 0",
    "capture.ring_block_size must be greater than 0", "capture.ring_block_count must be greater than 0",
    "capture.ring_frame_size must be greater than 0",
    "capture.ring_block_size must be a multiple of capture.ring_frame_size",
    "general.max_flows must be greater than 0", "capture.workers must be greater than 0",
}  # fmt: skip
WHITESPACE = " \t\n\r\v\f"
CONFIG_PATH = "fuzz.ini"


def comment_free(line: str) -> str:
    """SPEC §5.1: a ';' or '#' at column 0 or after whitespace starts a comment."""
    for i, char in enumerate(line):
        if char in ";#" and (i == 0 or line[i - 1] in WHITESPACE):
            return line[:i].strip(WHITESPACE)
    return line.strip(WHITESPACE)


def check_config_value(key: str, value: object) -> None:
    kind = KEYS[key].kind
    if kind == "bool":
        assert type(value) is bool
    elif kind in ("u32", "u64"):
        assert type(value) is int and 0 <= value < (2**32 if kind == "u32" else 2**64), (key, value)
    elif kind == "port list":
        assert type(value) is tuple and value and all(type(p) is int and 0 <= p <= 65535 for p in value)
    elif kind == "enum":
        assert value in KEYS[key].choices
    else:
        assert type(value) is str and value == value.strip(WHITESPACE)


def render(cfg: Config) -> str:
    """The config as canonical INI text, written so that §5.1 reads each value back as is."""
    out = []
    for key, value in cfg.values.items():
        section, name = key.split(".", 1)
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, tuple):
            value = ",".join(map(str, value))
        if value != "":  # an empty string is the default and cannot be written (§5.1 "empty value")
            out.append(f"[{section}]\n{name}={value}")
    return "\n".join(out) + "\n"


def parse_config(text: str) -> Config | str:
    """The Config, or the ConfigError text (any other exception fails the test)."""
    try:
        return parse_config_text(text, CONFIG_PATH)
    except ConfigError as e:
        return str(e)


def check_config_text(text: str, tmp_file: Path) -> None:
    result = parse_config(text)
    if isinstance(result, str):
        match = re.fullmatch(rf"{re.escape(CONFIG_PATH)}(?::(\d+))?: (.*)", result, re.S)
        assert match, result
        line, message = int(match[1] or 0), match[2]
        if match[1] is None:  # the checks that span keys: no line is at fault
            assert message in FINAL_MESSAGES, result
        else:  # the upstream text, then the key (and value) at fault
            assert message.split(": ", 1)[0] in LINE_MESSAGES, result
            lines = text.split("\n")
            assert line <= len(lines) and comment_free(lines[line - 1]), result  # a line that says something
    else:
        assert set(result.values) == set(KEYS)
        for key, value in result.values.items():
            check_config_value(key, value)
        assert result["capture.ring_block_size"] % result["capture.ring_frame_size"] == 0
        assert min(result["capture.default_snaplen"], result["capture.max_capture_len"]) > 0
        assert parse_config(render(result)).values == result.values  # the values survive a rewrite
    # A comment added at every line's end changes nothing (§5.1).
    commented = parse_config("\n".join(line + " ;# x = 1" for line in text.split("\n")))
    assert (commented if isinstance(commented, str) else commented.values) == (
        result if isinstance(result, str) else result.values
    )
    # The file loader reads the same text as bytes (undecodable bytes survive as surrogates).
    tmp_file.write_bytes(text.encode("utf-8", "surrogateescape"))
    try:
        loaded: Config | str = load_config(str(tmp_file)).values
    except ConfigError as e:
        loaded = str(e).replace(str(tmp_file), CONFIG_PATH, 1)
    assert loaded == (result if isinstance(result, str) else result.values)


CONFIG_SEEDS = [
    (ROOT / "examples" / "config.ini").read_text(),
    (GOLDEN / "tls_test_2" / "config.ini").read_text(),
    "[capture]\ndefault_snaplen = 60\n[tls]\nports = 0,65535\napp_data_continuation_policy = STREAM\n",
]
SECTIONS = ["general", "capture", "tls", "quic", "stats", "GENERAL", "Tls", "foo", ""]
CONFIG_NAMES = sorted({k.split(".", 1)[1] for k in KEYS}) + ["foo", "MAX_FLOWS", "Enabled", ""]
CONFIG_VALUES = [
    "0", "1", "16", "65535", "65536", "4294967295", "4294967296", "18446744073709551615",
    "18446744073709551616", "0000000000000000000000000000000001", "9" * 5000, "-1", "+1", "0x10", "1e3",
    "١٢", "true", "FALSE", "yes", "on", "443,8443", "443,,8443", "443,", ",", " 443 , 0 ", "recvmsg",
    "TPACKET_V3", "final_only", "Stream", "bulk", "eth0", "a#b.pcap", "a #b", "x;y", "\udcff", "",
]  # fmt: skip
CONFIG_PIECES = ["[", "]", "=", ";", "#", " ", "\t", "\r", "\n", "\v", "\f", "\x00", "é", "\udcff",
                 *SECTIONS, *CONFIG_NAMES, *CONFIG_VALUES]  # fmt: skip

config_lines = st.one_of(
    st.builds(lambda s: f"[{s}]", st.sampled_from(SECTIONS)),
    st.builds(lambda k, v, sp: f"{k}{sp}={sp}{v}", st.sampled_from(CONFIG_NAMES),
              st.sampled_from(CONFIG_VALUES), st.sampled_from(["", " ", "\t", " \r"])),
    st.sampled_from(["", "; comment", "# comment", "  ", "[tls", "[ ]", "novalue", "= 1", "k =", "\r"]),
)  # fmt: skip


def text_mutations(pieces: list[str]):
    return st.tuples(st.sampled_from(["delete", "insert", "insert", "replace", "duplicate_line", "swap_lines",
                                      "upper"]),
                     st.integers(0, 1 << 16), st.integers(0, 1 << 16), st.sampled_from(pieces))  # fmt: skip


def mutate_text(text: str, mutation) -> str:
    kind, a, b, piece = mutation
    if kind in ("duplicate_line", "swap_lines"):
        lines = text.split("\n")
        i, j = a % len(lines), b % len(lines)
        if kind == "duplicate_line":
            lines.insert(j, lines[i])
        else:
            lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    at = a % (len(text) + 1)
    if kind == "insert":
        return text[:at] + piece + text[at:]
    end = min(len(text), at + 1 + b % 12)
    if kind == "delete":
        return text[:at] + text[end:]
    if kind == "upper":
        return text[:at] + text[at:end].upper() + text[end:]
    return text[:at] + piece + text[end:]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_config_and_rules")


@given(seed=st.sampled_from(CONFIG_SEEDS),
       mutations=st.lists(text_mutations(CONFIG_PIECES), min_size=1, max_size=5))  # fmt: skip
def test_mutated_config_text_gives_a_config_or_a_documented_error(scratch, seed, mutations):
    text = seed
    for mutation in mutations:
        text = mutate_text(text, mutation)
    check_config_text(text, scratch / "fuzz.ini")


@given(lines=st.lists(config_lines, max_size=12), eol=st.sampled_from(["\n", "\r\n"]))
def test_generated_config_lines_give_a_config_or_a_documented_error(scratch, lines, eol):
    check_config_text(eol.join(lines), scratch / "fuzz.ini")


# --- rules: every error points at file:line:col --------------------------------------------------

RULES_DIR = Path(shipped_policy_path("final_only")).parent
POLICIES = sorted(KEYS["tls.app_data_continuation_policy"].choices)
ERROR_HEAD = re.compile(r"(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>[^\n]+)\n"
                        r"    (?P<text>[^\n]*)\n    (?P<caret> *\^)")  # fmt: skip


def includes(name: str) -> list[str]:
    """The rule files ``name`` reads, itself first."""
    text = (RULES_DIR / name).read_text()
    found = [name]
    for inc in re.findall(r'^include "([^"]+)"', text, re.M):
        found += [f for f in includes(inc) if f not in found]
    return found


@cache
def rules_config() -> Config:
    return parse_config_text((GOLDEN / "tls_test_2" / "config.ini").read_text(), "golden.ini")


@cache
def probe_frames() -> list[tuple[int, bytes, int]]:
    """Golden frames as captured, cut short (orig_len kept) and inconsistent (orig < caplen)."""
    frames = []
    for case in GOLDEN_CASES:
        with PcapReader(str(GOLDEN / case / "input.pcap")) as reader:
            frames += list(reader)[:12]
    return frames + [(ts, data[:50], orig) for ts, data, orig in frames[::3]] + [
        (ts, data, len(data) // 2) for ts, data, _ in frames[1::4]
    ]


def check_policy_error(e: PolicyError) -> None:
    """``<path>:<line>:<col>: message``, that line of the file shown, a caret under the column."""
    match = ERROR_HEAD.fullmatch(str(e))
    assert match, str(e)
    path, line, col = match["path"], int(match["line"]), int(match["col"])
    assert os.path.isfile(path), f"the error names a file that was not read: {str(e)!r}"
    lines = Path(path).read_text(encoding="utf-8", errors="replace").split("\n")  # lark counts '\n' only
    assert 1 <= line <= len(lines) and col >= 1, str(e)
    assert (e.path, e.line, e.column) == (path, line, col) and len(match["caret"]) == col, str(e)
    assert match["text"] == lines[line - 1], str(e)


def check_compiled_policy(policy: Policy) -> None:
    """A checked policy compiles and decides every probe frame within [0, effective length]."""
    cfg = rules_config()
    try:
        opts = {name: analyzer_options(policy, name, cfg) for name in ANALYZERS}
        ev = build_evaluator(policy, cfg)
    except PolicyError as e:  # what only the config reveals, e.g. max_flows = a key set to 0
        check_policy_error(e)
        return
    # (stateless analyzers such as wireguard and ipsec have no flow table)
    assert all(o.get("max_flows", 1) >= 1 for o in opts.values()), opts  # a table that can hold a flow
    for ts, data, orig in probe_frames():
        out_len, did = ev.evaluate(data, orig, ts)
        assert type(out_len) is int and 0 <= did < len(ev.decisions)
        assert 0 <= out_len <= min(len(data), orig), (out_len, len(data), orig)


@pytest.fixture(scope="module")
def rules_copy(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("rules")
    for f in RULES_DIR.glob("*.rules"):
        shutil.copy(f, target / f.name)
    return target


def check_mutated_rules(rules_copy: Path, entry: str, target: str, text: str) -> None:
    """Load ``entry`` with ``target`` replaced by ``text``; then put the original back."""
    path = rules_copy / target
    original = (RULES_DIR / target).read_text()
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        try:
            policy = load_policy(str(rules_copy / entry))
        except PolicyError as e:
            check_policy_error(e)
            return
        check_compiled_policy(policy)
    finally:
        path.write_text(original)


FACT_NAMES = sorted({*FRAME_FACTS, *DECODE_FACTS, *(f for a in ANALYZERS.values() for f in a.facts)})
RULE_TOKENS = [
    "policy", "include", "analyzer", "baseline", "declare", "reason", "counter", "on", "rule", "let", "when",
    "keep", "min_saved", "otherwise", "count", "analyze", "and", "or", "not", "in", "true", "false",
    "packet", "tls", "quic", "dns", "min", "max", "foo", "boundary", "reset", "parse", "max_flows",
    "idle_timeout_sec", "cut", "x", "0", "1", "2", "65535", "4294967296", "1" + "0" * 40, "=", "==", "!=",
    "<", "<=", ">", ">=", "+", "-", "(", ")", ",", "$", '"packet.rules"', '"quic.rules"',
    '"final_only.rules"', '""', '"x"', '"', "#", "\n", " ", "\t", "\r", "\x0c", "é", "\x00", "tls.", ".",
    "$general.max_flows",
    *FACT_NAMES, *(f"${k}" for k in KEYS), *UPSTREAM_REASONS, *UPSTREAM_COUNTERS,
]  # fmt: skip
TOKEN = re.compile(r'"[^"\n]*"|#[^\n]*|\$?[A-Za-z_][A-Za-z0-9_.]*|[0-9]+|==|!=|<=|>=|\s+|.', re.S)
TOKEN_EDITS = st.tuples(
    st.sampled_from(["delete", "duplicate", "swap", "replace", "replace"]),
    st.integers(0, 1 << 16),
    st.integers(0, 1 << 16),
    st.sampled_from(RULE_TOKENS),
)
FILES = st.sampled_from([(entry, target) for entry in POLICIES for target in includes(f"{entry}.rules")])


@given(files=FILES, mutations=st.lists(text_mutations(RULE_TOKENS), min_size=1, max_size=4))
def test_mutated_rule_text_gives_a_checked_policy_or_a_positioned_error(rules_copy, files, mutations):
    entry, target = files
    text = (RULES_DIR / target).read_text()
    for mutation in mutations:
        text = mutate_text(text, mutation)
    check_mutated_rules(rules_copy, f"{entry}.rules", target, text)


@given(files=FILES,
       edits=st.lists(TOKEN_EDITS, min_size=1, max_size=4))
def test_token_edits_of_rule_files_give_a_checked_policy_or_a_positioned_error(rules_copy, files, edits):
    """Whole tokens deleted, duplicated, swapped or replaced by keywords, facts, config keys,
    reasons, counters and numbers: closer to what a person mistypes than byte noise."""
    entry, target = files
    tokens = TOKEN.findall((RULES_DIR / target).read_text())
    words = [i for i, t in enumerate(tokens) if not t.isspace()]
    for kind, a, b, token in edits:
        i, j = words[a % len(words)], words[b % len(words)]
        if kind == "delete":
            tokens[i] = ""
        elif kind == "duplicate":
            tokens[i] = f"{tokens[i]} {tokens[i]}"
        elif kind == "swap":
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            tokens[i] = token
    check_mutated_rules(rules_copy, f"{entry}.rules", target, "".join(tokens))


# --- regressions: compiler bugs this fuzzing found (issue 6) -----------------------------------
# Each is the smallest rule file that showed one; all are fixed.  A new bug found here gets
# its minimal example below as a strict xfail limited to the exception it raises (so a fix
# turns it into a failure that removes the marker), and the fuzz check above steps around
# exactly that case with an `event("known bug ...")`, so it keeps looking for others.

CHECKED = 'on packet\nrule any "every packet" reason default\n'


def load_text(tmp_path: Path, text: str, name: str = "bug.rules") -> Policy:
    path = tmp_path / name
    path.write_text(text)
    return load_policy(str(path))


def expect_positioned_error(tmp_path: Path, text: str, name: str = "bug.rules") -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_text(tmp_path, text, name)
    assert str(info.value).startswith(f"{tmp_path / name}:")
    assert ERROR_HEAD.fullmatch(str(info.value)), str(info.value)
    return info.value


def test_a_number_too_long_for_int_is_a_positioned_error(tmp_path):
    """Was: int() refused more than 4300 digits; the ValueError escaped as a lark VisitError."""
    expect_positioned_error(tmp_path, f'on packet\nrule a "x" keep {"9" * 5000} reason default\n')


def test_including_a_file_that_is_not_utf8_is_a_positioned_error(tmp_path):
    """Was: the UnicodeDecodeError escaped as a lark VisitError."""
    (tmp_path / "binary.rules").write_bytes(b"\xff\xfe on packet\n")
    expect_positioned_error(tmp_path, 'include "binary.rules"\n' + CHECKED)


def test_a_very_long_expression_is_a_positioned_error(tmp_path):
    """Was: a RecursionError in lark's Transformer, then a PolicyError without line:col."""
    text = 'on packet\nrule a "x" when 0' + " + 1" * 3000 + ' > 2 reason default\nrule b "y" reason default\n'
    error = expect_positioned_error(tmp_path, text)
    assert error.line == 2


def test_analyzer_max_flows_below_1_is_a_positioned_error(tmp_path):
    """Was: accepted; the first TLS segment with payload raised StopIteration in FlowTable.put."""
    analyze = ('on packet\nrule t "tls" when decode.tcp analyze tls reason tls_candidate\n'
               'rule any "every packet" reason default\n')  # fmt: skip
    error = expect_positioned_error(tmp_path, "analyzer tls max_flows = 0\n" + analyze)
    assert (error.line, error.column) == (1, 26)


def test_analyzer_max_flows_from_a_config_key_set_to_0_is_a_positioned_error(tmp_path):
    """The checker cannot see a config value; compiling against the config must refuse it."""
    analyze = ('on packet\nrule t "tls" when decode.tcp analyze tls reason tls_candidate\n'
               'rule any "every packet" reason default\n')  # fmt: skip
    policy = load_text(tmp_path, "analyzer tls max_flows = $general.flow_idle_timeout_sec\n" + analyze)
    with pytest.raises(PolicyError) as info:
        build_evaluator(policy, rules_config())  # flow_idle_timeout_sec is 0 there
    assert str(info.value).startswith(f"{tmp_path / 'bug.rules'}:1:")
    assert ERROR_HEAD.fullmatch(str(info.value)), str(info.value)


def test_a_deeply_nested_expression_is_a_positioned_error_not_a_codegen_crash(tmp_path):
    """Was: 300 terms passed the checker; codegen then hit Python's nesting limit."""
    total = " + ".join(["frame.caplen"] * 300)
    text = f'on packet\nrule a "x" when {total} > 2 reason default\nrule b "y" reason default\n'
    assert expect_positioned_error(tmp_path, text).line == 2


def test_a_keep_in_on_packet_without_otherwise_is_a_positioned_error(tmp_path):
    """Was: passed the checker, then build_evaluator indexed the decision table with None."""
    error = expect_positioned_error(tmp_path, 'on packet\nrule a "x" keep 10 reason default\n')
    assert (error.line, error.column) == (2, 17)


@pytest.mark.parametrize("baseline", ["frame.caplen + 10", "frame.orig_len", "frame.caplen - 100"])
def test_a_baseline_beyond_the_frame_is_clamped_to_the_effective_length(tmp_path, baseline):
    """Was: out_len above caplen or below 0, which the writer then refused."""
    ev = build_evaluator(load_text(tmp_path, f"baseline = {baseline}\n" + CHECKED), rules_config())
    for data, orig in ((bytes(60), 60), (bytes(60), 100), (bytes(60), 30)):
        out_len, _ = ev.evaluate(data, orig, 0)
        assert 0 <= out_len <= min(len(data), orig)


def test_an_error_after_a_form_feed_echoes_the_line_it_names(tmp_path):
    """Was: PolicyError split lines with str.splitlines() (which breaks at a form feed), lark
    counts newlines only, so the echoed line was the wrong one."""
    error = expect_positioned_error(tmp_path, '\fon packet\nrule a "x" reason no_such_reason\n')
    assert error.line == 2
    assert str(error).split("\n")[1] == '    rule a "x" reason no_such_reason'


def test_an_include_path_with_a_nul_byte_is_a_positioned_error(tmp_path):
    """Found by the long run: open() raised ValueError, which escaped as a lark VisitError."""
    error = expect_positioned_error(tmp_path, 'include "\x00packet.rules"\n' + CHECKED)
    assert (error.line, error.column) == (1, 1)


def test_unexpected_end_of_file_after_a_form_feed_names_the_last_line(tmp_path):
    """Found by the long run: parser._end() counted lines with str.splitlines(), so after a
    form feed 'unexpected end of file' named a line past the end of the file."""
    error = expect_positioned_error(tmp_path, "on packet\n\frule")
    assert (error.line, error.column) == (2, 6)
