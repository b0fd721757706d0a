"""INI configuration loader (SPEC.md §5).

Matches the upstream loader byte for byte: the same syntax, defaults and error messages, and the
same per-section order of checks, because that order decides which message a bad line gets
(§5.4). Differences on purpose: `tls.app_data_continuation_policy` accepts stream and bulk
(DECISIONS.md #7), and three extension keys bound the flow tables and the flush period (#6).
Issue 8 adds capture.filter, capture.format and three rotation keys; a `.yaml`/`.yml` config
is read by `config_yaml` into the same table.

Every key is one row of `KEYS`; parsing, defaults and the printed reference all come from it.
This module holds the value types and the table; `sections` applies it to a line, `ini` and
`yaml_file` read the two file syntaxes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

WHITESPACE = " \t\n\r\v\f"  # C isspace() in the "C" locale; Unicode spaces are not trimmed
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: no sign, hex, '_' or other scripts' digits
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
PORT_MAX = 65535


class ConfigError(Exception):
    """A config that cannot be used; str() is the full upstream text (§5.7), which the CLI
    prints after `Configuration error: `. `line` is None for open/read failures."""

    def __init__(self, text: str, line: int | None = None) -> None:
        super().__init__(text)
        self.line = line


class LineError(Exception):
    """A message for the current line; the reader (INI or YAML) adds `<path>:<line>: `."""


# --- value types (§5.2) ---------------------------------------------------------------------


def trim(text: str) -> str:
    return text.strip(WHITESPACE)


def ascii_lower(text: str) -> str:
    # Upstream lower-cases with tolower() per byte: only A-Z change.
    return text.translate(_ASCII_LOWER)


def _parse_unsigned(text: str, limit: int) -> int:
    if not _DIGITS.fullmatch(text):
        raise ValueError(text)
    significant = text.lstrip("0") or "0"  # leading zeros are legal; keeps int() off huge input
    if len(significant) > len(str(U64_MAX)) or int(significant) > limit:
        raise ValueError(text)
    return int(significant)


def parse_u32(text: str) -> int:
    return _parse_unsigned(text, U32_MAX)


def _parse_u64(text: str) -> int:
    return _parse_unsigned(text, U64_MAX)


def _parse_bool(text: str) -> bool:
    word = ascii_lower(text)
    if word in ("true", "1"):
        return True
    if word in ("false", "0"):
        return False
    raise ValueError(text)


def _parse_ports(text: str) -> tuple[int, ...]:
    # An empty item (trailing comma, `443,,8443`) fails the digit check like any other bad item.
    return tuple(_parse_unsigned(trim(item), PORT_MAX) for item in text.split(","))


def _parse_string(text: str) -> str:
    return text


_PARSERS: dict[str, Callable[[str], object]] = {
    "u32": parse_u32,
    "u64": _parse_u64,
    "bool": _parse_bool,
    "port list": _parse_ports,
    "string": _parse_string,
}


# --- the key table (§5.3, §5.4) -------------------------------------------------------------


class KeySpec(NamedTuple):
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
            word = ascii_lower(text)
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
_FLOW_INT = "invalid unsigned integer for [flow]"
_FORMAT_ERROR = "invalid value for capture.format; expected auto, pcap, or pcapng"
_COMPRESS_ERROR = "invalid value for capture.compress; expected none, gzip, or zstd"

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
            "extension: output format; auto = pcapng for a .pcapng output or pcapng input, else PCAP",
            choices=("auto", "pcap", "pcapng")),
    KeySpec("capture.rotate_bytes", "u64", 0, _CAPTURE_INT,
            "extension: start a new output file before one would grow past this size; 0 = off"),
    KeySpec("capture.rotate_seconds", "u32", 0, _CAPTURE_INT,
            "extension: start a new output file each interval of this many seconds; 0 = off",
            by_name=False),
    KeySpec("capture.rotate_files", "u32", 0, _CAPTURE_INT,
            "extension: keep at most this many rotated files, deleting the oldest; 0 = all",
            by_name=False),
    # Issue 18 #3: closed files handed on (README "Operations").
    KeySpec("capture.compress", "enum", "none", _COMPRESS_ERROR,
            "extension: compress each rotated file once closed (gzip or zstd)",
            choices=("none", "gzip", "zstd")),
    KeySpec("capture.post_rotate_command", "string", "", "",
            "extension: command run (no shell) with each closed, compressed file as its last argument"),
    KeySpec("capture.rotate_total_bytes", "u64", 0, _CAPTURE_INT,
            "extension: delete the oldest closed files to keep the rotated set under this size; 0 = off"),
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
    # Issue 17: flow budgets (README "Flow budgets"); budget_bytes = 0 leaves upstream's bytes.
    KeySpec("flow.budget_bytes", "u64", 0, _FLOW_INT,
            "extension: payload bytes of each flow direction kept whole, later ones cut; 0 = off"),
    KeySpec("flow.budget_keep_bytes", "u32", 0, _FLOW_INT,
            "extension: payload bytes kept of each packet past a flow's budget"),
    KeySpec("flow.budget_ports_exempt", "port list", (53,), "invalid port list for flow.budget_ports_exempt",
            "extension: TCP/UDP ports whose flows are never budgeted"),
    # Issue 16: one section per protocol; off unless the config switches it on, so a config
    # with upstream keys only gives upstream's bytes (README "Protocols beyond TLS and QUIC").
    KeySpec("wireguard.enabled", "bool", False, "invalid boolean for wireguard.enabled",
            "extension: constrict WireGuard transport data on UDP wireguard.ports"),
    KeySpec("wireguard.ports", "port list", (51820,), "invalid port list for wireguard.ports",
            "extension: UDP ports classified as WireGuard; replaces the default list"),
    KeySpec("wireguard.keep_bytes", "u32", 0, "invalid unsigned integer for wireguard.keep_bytes",
            "extension: bytes kept after a transport data packet's 16-byte header"),
    KeySpec("ipsec.enabled", "bool", False, "invalid boolean for ipsec.enabled",
            "extension: constrict IPsec ESP (IP protocol 50, and ESP in UDP on ipsec.nat_t_ports)"),
    KeySpec("ipsec.nat_t_ports", "port list", (4500,), "invalid port list for ipsec.nat_t_ports",
            "extension: UDP ports carrying ESP and IKE (RFC 3948); replaces the default list"),
    KeySpec("ipsec.keep_bytes", "u32", 0, "invalid unsigned integer for ipsec.keep_bytes",
            "extension: bytes kept after an ESP packet's SPI and sequence number"),
    KeySpec("ssh.enabled", "bool", False, "invalid boolean for ssh.enabled",
            "extension: constrict SSH after NEWKEYS on TCP ssh.ports"),
    KeySpec("ssh.ports", "port list", (22,), "invalid port list for ssh.ports",
            "extension: TCP ports classified as SSH; replaces the default list"),
    KeySpec("ssh.keep_bytes", "u32", 0, "invalid unsigned integer for ssh.keep_bytes",
            "extension: payload bytes kept of each segment after NEWKEYS"),
    KeySpec("dtls.enabled", "bool", False, "invalid boolean for dtls.enabled",
            "extension: constrict DTLS Application Data on UDP dtls.ports"),
    KeySpec("dtls.ports", "port list", (443, 4433, 5684), "invalid port list for dtls.ports",
            "extension: UDP ports read as DTLS when the first byte is 20-63; replaces the default list"),
    KeySpec("dtls.keep_bytes", "u32", 0, "invalid unsigned integer for dtls.keep_bytes",
            "extension: bytes kept after an Application Data record's header"),
    KeySpec("stats.enabled", "bool", True, "invalid boolean for stats.enabled",
            "print the stats block after an offline run"),
    # Issue 18: the Prometheus endpoint (README "Operations"); off unless listen is set.
    KeySpec("metrics.listen", "string", "", "",
            "extension: live: serve Prometheus metrics on HOST:PORT ([v6]:PORT); empty = off"),
)

KEYS: dict[str, KeySpec] = {spec.key: spec for spec in _TABLE}


class Config:
    """Every known key with its effective value, and whether the file or the default set it."""

    def __init__(self, path: str, values: dict[str, object], origin: dict[str, str]) -> None:
        self.path = path
        self.values = values
        self.origin = origin

    def __repr__(self) -> str:
        return f"Config(path={self.path!r}, values={self.values!r}, origin={self.origin!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and (self.path, self.values, self.origin) == (
            other.path, other.values, other.origin)  # fmt: skip

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it was

    def __getitem__(self, key: str) -> object:
        return self.values[key]


def output_snaplen(config: Config) -> int:
    """PCAP header snaplen: min(default_snaplen, max_capture_len) (SPEC §6.2)."""
    return min(config["capture.default_snaplen"], config["capture.max_capture_len"])
