"""The main PcapConstrictor tool's config files, read as they are (SPEC §15.2).

A second dialect beside ours (``keys``): four sections (general, tls, quic, reinflate), its own
defaults (keep 8/8/32, require_dcid_match true, allow false), its own value syntax (u32 in
decimal or 0x hex, booleans only lower-case ``true``/``false``, case-sensitive names, a comment
from the first ``;`` or ``#`` anywhere) and its own error texts (``config line N: ...``).
``constrict``, ``reinflate`` and ``restore`` read their config through it; the result is a
:class:`Config` over *our* key table (every key we have at our default, the main tool's keys at
its values) plus the two ``reinflate.*`` keys, so the rule compiler and the sinks need no
second code path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .keys import KEYS, U32_MAX, Config, ConfigError, trim

_SECTIONS = ("general", "tls", "quic", "reinflate")
_HEX = re.compile(r"[0-9a-fA-F]+")
_DEC = re.compile(r"[0-9]+")
FILL_RANDOM = "random"  # reinflate.fill_byte: random bytes instead of one byte value


def parse_u32(text: str) -> int:
    """Decimal, or hex after ``0x``/``0X``; no sign; at most 2**32 - 1."""
    digits, pattern, base = text, _DEC, 10
    if len(text) > 2 and text[0] == "0" and text[1] in "xX":
        digits, pattern, base = text[2:], _HEX, 16
    if not pattern.fullmatch(digits):
        raise ValueError(text)
    value = int(digits, base)
    if value > U32_MAX:
        raise ValueError(text)
    return value


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = parse_u32(text)
        if value < minimum:
            raise ValueError(text)
        return value

    return parse


def _choice(*words: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in words:
            raise ValueError(text)
        return text

    return parse


def _bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(text)
    return text == "true"


def _fill_byte(text: str) -> int | str:
    if text == FILL_RANDOM:
        return FILL_RANDOM
    value = parse_u32(text)
    if value > 255:
        raise ValueError(text)
    return value


@dataclass(frozen=True)
class MainKey:
    """One key of the main tool's config: how a value parses, its default, its error text."""

    key: str
    parse: Callable[[str], object]
    default: object
    error: str
    doc: str


MAIN_KEYS: dict[str, MainKey] = {k.key: k for k in (
    MainKey("general.min_saved_bytes_per_packet", parse_u32, 16,
            "invalid value for general.min_saved_bytes_per_packet",
            "cut a packet only if that saves at least this many bytes"),
    MainKey("tls.app_data_keep_record_bytes", _at_least(5), 8,
            "invalid value for tls.app_data_keep_record_bytes; expected integer >= 5",
            "bytes kept from the start of a cut Application Data record (its header and more)"),
    MainKey("tls.app_data_continuation_keep_bytes", parse_u32, 8,
            "invalid value for tls.app_data_continuation_keep_bytes; expected integer >= 0",
            "bytes kept of a segment continuing an Application Data record"),
    MainKey("tls.app_data_continuation_policy", _choice("final_only", "stream", "bulk"), "final_only",
            "invalid value for tls.app_data_continuation_policy; expected final_only, stream, or bulk",
            "which continuation segments are cut (SPEC §15.4)"),
    MainKey("quic.short_header_keep_packet_bytes", _at_least(1), 32,
            "invalid value for quic.short_header_keep_packet_bytes; expected integer >= 1",
            "bytes kept of a short-header packet"),
    MainKey("quic.require_dcid_match", _bool, True,
            "invalid value for quic.require_dcid_match; expected true or false",
            "cut a short header only when its DCID is the learned one"),
    MainKey("quic.allow_short_header_without_known_dcid", _bool, False,
            "invalid value for quic.allow_short_header_without_known_dcid; expected true or false",
            "cut short headers of a connection whose peer DCID was not learned"),
    MainKey("reinflate.fill_byte", _fill_byte, 0xAB,
            "invalid value for reinflate.fill_byte; expected byte value 0..255 or random",
            "the byte that pads a cut record back to its original length, or random"),
    MainKey("reinflate.checksum_policy", _choice("preserve", "recompute"), "preserve",
            "invalid value for reinflate.checksum_policy; expected preserve or recompute",
            "recompute: IPv4 header and TCP/UDP checksums of every complete packet"),
)}  # fmt: skip


def main_tool_defaults(path: str = "(defaults)") -> Config:
    """The main tool's configuration when no ``--config`` is given."""
    values: dict[str, object] = {key: spec.default for key, spec in KEYS.items()}
    origin = dict.fromkeys(values, "default")
    values.update({key: spec.default for key, spec in MAIN_KEYS.items()})
    return Config(path, values, origin)


def load_main_tool_config(path: str) -> Config:
    """Read a main-tool config file; ConfigError carries the main tool's text (§15.2)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        raise ConfigError(f"failed to open config file: {path}") from None
    return parse_main_tool_config(data.decode("utf-8", "surrogateescape"), path)


def parse_main_tool_config(text: str, path: str = "(text)") -> Config:
    config = main_tool_defaults(path)
    section = ""
    for number, raw in enumerate(text.split("\n"), start=1):
        line = trim(_strip_comment(raw))
        if not line:
            continue
        try:
            if line.startswith("["):
                section = _section_header(line)
                continue
            spec, value = _assignment(line, section)
        except ValueError as e:
            raise ConfigError(f"config line {number}: {e}", number) from None
        config.values[spec.key] = value
        config.origin[spec.key] = "file"
    return config


def _strip_comment(line: str) -> str:
    # The main tool cuts at the first ';' or '#' anywhere (ours only at a word start, §5.1).
    cut = min((i for i in (line.find(";"), line.find("#")) if i >= 0), default=len(line))
    return line[:cut]


def _section_header(line: str) -> str:
    if not line.endswith("]"):
        raise ValueError("invalid section header")
    name = trim(line[1:-1])
    if name not in _SECTIONS:
        raise ValueError(f"unknown config section: {name}")
    return name


def _assignment(line: str, section: str) -> tuple[MainKey, object]:
    key, equals, value = line.partition("=")
    if not equals:
        raise ValueError("expected key = value")
    key, value = trim(key), trim(value)
    if not key or not value:
        raise ValueError("expected non-empty key and value")
    if not section:
        raise ValueError("key appears before any section")
    spec = MAIN_KEYS.get(f"{section}.{key}")
    if spec is None:
        raise ValueError(f"unknown config key: {section}.{key}")
    try:
        return spec, spec.parse(value)
    except ValueError:
        raise ValueError(spec.error) from None
