"""INI configuration loader (SPEC.md §5).

Matches the upstream loader byte for byte: the same syntax, defaults and error messages, and the
same per-section order of checks, because that order decides which message a bad line gets
(§5.4). Differences on purpose: `tls.app_data_continuation_policy` accepts stream and bulk
(DECISIONS.md #7), and three extension keys bound the flow tables and the flush period (#6).
Issue 8 adds capture.filter, capture.format and three rotation keys; a `.yaml`/`.yml` config
is read by `config_yaml` into the same table.

Every key is one row of `KEYS`; parsing, defaults and the printed reference all come from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

_WHITESPACE = " \t\n\r\v\f"  # C isspace() in the "C" locale; Unicode spaces are not trimmed
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: no sign, hex, '_' or other scripts' digits
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
PORT_MAX = 65535
YAML_EXTENSIONS = (".yaml", ".yml")


class ConfigError(Exception):
    """A config that cannot be used; str() is the full upstream text (§5.7), which the CLI
    prints after `Configuration error: `. `line` is None for open/read failures."""

    def __init__(self, text: str, line: int | None = None) -> None:
        super().__init__(text)
        self.line = line


class _LineError(Exception):
    """A message for the current line; the caller adds `<path>:<line>: `."""


# --- value types (§5.2) ---------------------------------------------------------------------


def _trim(text: str) -> str:
    return text.strip(_WHITESPACE)


def _ascii_lower(text: str) -> str:
    # Upstream lower-cases with tolower() per byte: only A-Z change.
    return text.translate(_ASCII_LOWER)


def _parse_unsigned(text: str, limit: int) -> int:
    if not _DIGITS.fullmatch(text):
        raise ValueError(text)
    significant = text.lstrip("0") or "0"  # leading zeros are legal; keeps int() off huge input
    if len(significant) > len(str(U64_MAX)) or int(significant) > limit:
        raise ValueError(text)
    return int(significant)


def _parse_u32(text: str) -> int:
    return _parse_unsigned(text, U32_MAX)


def _parse_u64(text: str) -> int:
    return _parse_unsigned(text, U64_MAX)


def _parse_bool(text: str) -> bool:
    word = _ascii_lower(text)
    if word in ("true", "1"):
        return True
    if word in ("false", "0"):
        return False
    raise ValueError(text)


def _parse_ports(text: str) -> tuple[int, ...]:
    # An empty item (trailing comma, `443,,8443`) fails the digit check like any other bad item.
    return tuple(_parse_unsigned(_trim(item), PORT_MAX) for item in text.split(","))


def _parse_string(text: str) -> str:
    return text


_PARSERS: dict[str, Callable[[str], object]] = {
    "u32": _parse_u32,
    "u64": _parse_u64,
    "bool": _parse_bool,
    "port list": _parse_ports,
    "string": _parse_string,
}


# --- the key table (§5.3, §5.4) -------------------------------------------------------------


@dataclass(frozen=True)
class KeySpec:
    """One config key: its type, default, the error a bad value gets, and a line of doc.

    `by_name=False` reproduces §5.4: in sections with a generic integer rule the value is
    parsed as u32 (with that section's shared error text) *before* the key name is looked at,
    so such keys share their section's `error`.
    """

    key: str  # 'section.name', lower case
    kind: str  # 'u32', 'u64', 'bool', 'port list', 'string' or 'enum'
    default: object
    error: str  # message for a value that does not parse ('' for strings: they always do)
    doc: str
    choices: tuple[str, ...] = ()  # enum values, lower case; input is matched case-insensitively
    by_name: bool = True

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split(".", 1)[1]

    def parse(self, text: str) -> object:
        """Convert a trimmed, non-empty value; raise ValueError if it is not of this kind."""
        if self.kind == "enum":
            word = _ascii_lower(text)
            if word not in self.choices:
                raise ValueError(text)
            return word
        return _PARSERS[self.kind](text)


_GENERAL_INT = "invalid unsigned integer for [general]"
_CAPTURE_INT = "invalid unsigned integer for capture option"
_RING_INT = "invalid unsigned integer for capture ring option"
_TLS_INT = "invalid unsigned integer for [tls]"
_QUIC_INT = "invalid unsigned integer for [quic]"
_QUIC_BOOL = "invalid boolean for [quic]"
_POLICY_ERROR = (
    "invalid value for tls.app_data_continuation_policy; expected final_only, stream, or bulk"
)
_FORMAT_ERROR = "invalid value for capture.format; expected auto, pcap, or pcapng"

_TABLE = (
    KeySpec("general.min_saved_bytes_per_packet", "u32", 16, _GENERAL_INT,
            "cut a packet only if that saves at least this many bytes (§6.3)", by_name=False),
    KeySpec("general.max_flows", "u32", 1048576, _GENERAL_INT,
            "extension: TLS and QUIC flow tables each keep at most this many flows (~LRU); > 0",
            by_name=False),
    KeySpec("general.flow_idle_timeout_sec", "u32", 0, _GENERAL_INT,
            "extension: forget a flow idle for this long; 0 = no idle timeout", by_name=False),
    KeySpec("capture.backend", "enum", "recvmsg", "unknown capture.backend value",
            "live receive method (§13)", choices=("recvmsg", "tpacket_v3")),
    KeySpec("capture.interface", "string", "", "",
            "interface to capture on; required in live mode only"),
    KeySpec("capture.promiscuous", "bool", False, "invalid boolean for capture.promiscuous",
            "put the interface in promiscuous mode (live)"),
    KeySpec("capture.output", "string", "output.pcap", "",
            "PCAP file written in both modes"),
    KeySpec("capture.default_snaplen", "u32", 65535, _CAPTURE_INT,
            "snaplen in the PCAP header and per-packet clamp (§6.2); > 0", by_name=False),
    KeySpec("capture.max_capture_len", "u32", 65535, _CAPTURE_INT,
            "hard per-packet clamp (§6.2); > 0", by_name=False),
    KeySpec("capture.max_packets", "u64", 0, _CAPTURE_INT,
            "live: stop after this many packets; 0 = unlimited"),
    KeySpec("capture.duration_sec", "u64", 0, _CAPTURE_INT,
            "live: stop after this many seconds; 0 = unlimited"),
    KeySpec("capture.ring_block_size", "u32", 1048576, _RING_INT,
            "tpacket_v3 block size; > 0 and a multiple of ring_frame_size"),
    KeySpec("capture.ring_block_count", "u32", 64, _RING_INT,
            "tpacket_v3 number of blocks; > 0"),
    KeySpec("capture.ring_frame_size", "u32", 2048, _RING_INT,
            "tpacket_v3 frame size; > 0"),
    KeySpec("capture.block_timeout_ms", "u32", 64, _RING_INT,
            "tpacket_v3 block retire timeout"),
    KeySpec("capture.max_ring_bytes", "u64", 0, _CAPTURE_INT,
            "extension: largest tpacket_v3 ring memory, every worker's ring counted; "
            "0 = half of MemAvailable"),
    KeySpec("capture.flush_interval_ms", "u32", 1000, _CAPTURE_INT,
            "extension: live: flush the output file at least this often", by_name=False),
    KeySpec("capture.workers", "u32", 1, _CAPTURE_INT,
            "extension: live: capture processes sharing the interface by PACKET_FANOUT; > 0",
            by_name=False),
    # Issue 8 extensions: capture filter, output format, rotation (README "Output formats, ...").
    KeySpec("capture.filter", "string", "", "",
            "extension: capture filter in tcpdump syntax, live and offline; empty = every frame"),
    KeySpec("capture.format", "enum", "auto", _FORMAT_ERROR,
            "extension: output format; auto = pcapng for a .pcapng output, else classic PCAP",
            choices=("auto", "pcap", "pcapng")),
    KeySpec("capture.rotate_bytes", "u64", 0, _CAPTURE_INT,
            "extension: start a new output file before one would grow past this size; 0 = off"),
    KeySpec("capture.rotate_seconds", "u32", 0, _CAPTURE_INT,
            "extension: start a new output file each interval of this many seconds; 0 = off",
            by_name=False),
    KeySpec("capture.rotate_files", "u32", 0, _CAPTURE_INT,
            "extension: keep at most this many rotated files, deleting the oldest; 0 = all",
            by_name=False),
    KeySpec("tls.enabled", "bool", True, "invalid boolean for tls.enabled",
            "run the TLS engine on TCP packets to or from tls.ports"),
    KeySpec("tls.ports", "port list", (443, 8443), "invalid port list for tls.ports",
            "TCP ports classified as TLS; replaces the default list"),
    KeySpec("tls.app_data_keep_record_bytes", "u32", 256, _TLS_INT,
            "bytes kept from the start of a cut ApplicationData record; 0 allowed (§8.6)",
            by_name=False),
    KeySpec("tls.app_data_continuation_keep_bytes", "u32", 64, _TLS_INT,
            "bytes kept of a segment continuing an ApplicationData record; 0 allowed",
            by_name=False),
    KeySpec("tls.app_data_continuation_policy", "enum", "final_only", _POLICY_ERROR,
            "which continuation segments are cut (DECISIONS.md #7)",
            choices=("final_only", "stream", "bulk")),
    KeySpec("quic.enabled", "bool", True, _QUIC_BOOL,
            "run the QUIC engine on UDP packets to or from quic.ports"),
    KeySpec("quic.ports", "port list", (443,), "invalid port list for quic.ports",
            "UDP ports classified as QUIC; replaces the default list"),
    KeySpec("quic.short_header_keep_packet_bytes", "u32", 128, _QUIC_INT,
            "bytes kept of a short-header packet; 0 still keeps 1 + DCID length", by_name=False),
    KeySpec("quic.require_dcid_match", "bool", False, _QUIC_BOOL,
            "cut short headers only when the DCID is a learned one (§9)"),
    KeySpec("quic.allow_short_header_without_known_dcid", "bool", True, _QUIC_BOOL,
            "cut short headers of flows with no learned DCID (§9)"),
    KeySpec("stats.enabled", "bool", True, "invalid boolean for stats.enabled",
            "print the stats block after an offline run"),
)

KEYS: dict[str, KeySpec] = {spec.key: spec for spec in _TABLE}


@dataclass
class _SectionRules:
    """How one section dispatches a line, derived from KEYS (§5.4)."""

    name: str
    by_name: dict[str, KeySpec] = field(default_factory=dict)
    after_u32: dict[str, KeySpec] = field(default_factory=dict)
    u32_error: str | None = None  # None: no generic integer rule, unknown names fail at once


def _section_rules(keys: dict[str, KeySpec]) -> dict[str, _SectionRules]:
    sections: dict[str, _SectionRules] = {}
    for spec in keys.values():
        rules = sections.setdefault(spec.section, _SectionRules(spec.section))
        if spec.by_name:
            rules.by_name[spec.name] = spec
            continue
        if spec.kind != "u32" or rules.u32_error not in (None, spec.error):
            raise ValueError(f"{spec.key}: keys matched after the u32 parse share one u32 rule")
        rules.after_u32[spec.name] = spec
        rules.u32_error = spec.error
    return sections


_SECTIONS = _section_rules(KEYS)


# --- final validation (§5.5), reported as line 0, first failure wins ------------------------


def _positive(key: str) -> tuple[str, Callable[[dict[str, object]], bool]]:
    return f"{key} must be greater than 0", lambda values: values[key] > 0


_FINAL_CHECKS: tuple[tuple[str, Callable[[dict[str, object]], bool]], ...] = (
    _positive("capture.default_snaplen"),
    _positive("capture.max_capture_len"),
    _positive("capture.ring_block_size"),
    _positive("capture.ring_block_count"),
    _positive("capture.ring_frame_size"),
    ("capture.ring_block_size must be a multiple of capture.ring_frame_size",
     lambda values: values["capture.ring_block_size"] % values["capture.ring_frame_size"] == 0),
    _positive("general.max_flows"),  # extension, after the upstream checks
    _positive("capture.workers"),  # extension
)


# --- loading --------------------------------------------------------------------------------


@dataclass
class Config:
    """Every known key with its effective value, and whether the file or the default set it."""

    path: str
    values: dict[str, object]
    origin: dict[str, str]

    def __getitem__(self, key: str) -> object:
        return self.values[key]


def load_config(path: str) -> Config:
    """Read and parse a config file; raise ConfigError with the upstream message on failure.

    The file is read as bytes and split on b'\\n' only, as upstream does: no newline
    translation, and bytes that are not UTF-8 survive in strings (surrogateescape)."""
    try:
        handle = open(path, "rb")
    except IsADirectoryError:
        # Upstream's ifstream opens a directory and fails on the first read.
        raise ConfigError(f"failed to read config file: {path}") from None
    except (OSError, ValueError):
        raise ConfigError(f"unable to open config file: {path}") from None
    with handle:
        try:
            data = handle.read()
        except OSError:
            raise ConfigError(f"failed to read config file: {path}") from None
    if path.lower().endswith(YAML_EXTENSIONS):  # issue 8: the same keys in YAML
        from .config_yaml import parse_config_yaml

        return parse_config_yaml(data, path)
    return parse_config_text(data.decode("utf-8", "surrogateescape"), path)


def parse_config_text(text: str, path: str) -> Config:
    """Parse config text; `path` is only used, as given, in error messages."""
    values, origin = defaults()
    section: str | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = _trim(_strip_comment(raw))
        if not line:
            continue
        try:
            if line.startswith("["):
                section = _section_header(line)
                continue
            spec, value = _assignment(line, section)
        except _LineError as exc:
            raise ConfigError(f"{path}:{number}: {exc}", number) from None
        values[spec.key] = value
        origin[spec.key] = "file"
    return finish(path, values, origin)


def defaults() -> tuple[dict[str, object], dict[str, str]]:
    """Every key at its default: the values, and where each came from."""
    return {key: spec.default for key, spec in KEYS.items()}, dict.fromkeys(KEYS, "default")


def finish(path: str, values: dict[str, object], origin: dict[str, str]) -> Config:
    """The checks that span keys (§5), then the config (INI and YAML alike)."""
    for message, holds in _FINAL_CHECKS:
        if not holds(values):
            raise ConfigError(f"{path}:0: {message}", 0)
    return Config(path, values, origin)


def _strip_comment(line: str) -> str:
    # Only at column 0 or after whitespace, so `output = a#b.pcap` keeps its '#' (§5.1).
    for index, char in enumerate(line):
        if char in ";#" and (index == 0 or line[index - 1] in _WHITESPACE):
            return line[:index]
    return line


def _section_header(line: str) -> str:
    if not line.endswith("]"):
        raise _LineError("unterminated section header")
    name = _trim(line[1:-1])
    if not name:
        raise _LineError("empty section name")
    return _ascii_lower(name)  # unknown names are accepted until a key is assigned


def _assignment(line: str, section: str | None) -> tuple[KeySpec, object]:
    key, equals, value = line.partition("=")
    if not equals:
        raise _LineError("expected key = value")
    if section is None:
        raise _LineError("key/value found before any section")
    key, value = _ascii_lower(_trim(key)), _trim(value)
    if not key:
        raise _LineError("empty key")
    if not value:
        raise _LineError("empty value")
    rules = _SECTIONS.get(section)
    if rules is None:
        raise _LineError("unknown section")
    return _dispatch(rules, key, value)


def _dispatch(rules: _SectionRules, key: str, value: str) -> tuple[KeySpec, object]:
    """Apply §5.4: named keys first, then the section's u32 parse, then the key lookup."""
    spec = rules.by_name.get(key)
    if spec is not None:
        return spec, _convert(spec, value)
    unknown = f"unknown key in [{rules.name}]"
    if rules.u32_error is None:
        raise _LineError(unknown)
    try:
        number = _parse_u32(value)
    except ValueError:
        raise _LineError(rules.u32_error) from None
    spec = rules.after_u32.get(key)
    if spec is None:
        raise _LineError(unknown)
    return spec, number


def _convert(spec: KeySpec, value: str) -> object:
    try:
        return spec.parse(value)
    except ValueError:
        raise _LineError(spec.error) from None
