"""QUIC long-header walk and connection-ID learning (SPEC §9.2-§9.4).

Learns each endpoint's Source Connection ID from every long header it sends
(coalesced packets included) and, for a trailing short header, reports whether
its Destination Connection ID is the one learned for the peer.  Packet types
are read per version (v1 and its drafts, v2); of a version whose layout is not
known only RFC 8999's invariants are read.  What to keep is up to the rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Final

from pcapconstrictor.formats import quic_wire
from pcapconstrictor.formats.derived import quic as quic_format

from .facts import table
from .flow_keys import connection_key_in
from .flow_table import FlowState, FlowTable

if TYPE_CHECKING:  # mypyc's native integers; at run time (pure Python) plain annotations
    from mypy_extensions import i64

_FIXED: Final = quic_format.quic_long_header_fixed
_FIXED_SIZE: Final = _FIXED.size
# Read as bytes at their schema offsets (cheaper than a struct call each):
# the version only needs comparing with 0, the packet type is a bit field of
# the first byte.
_VERSION_AT: Final = _FIXED.fields["version"].offset
assert _FIXED.fields["version"].size == 4, "the walk reads the version as four bytes"
_GOOGLE: Final = quic_wire.GOOGLE_QUIC_PREFIX
_TYPE_AT: Final = _FIXED.in_byte("long_packet_type")[0]
_TYPE_SHIFT: Final = _FIXED.in_byte("long_packet_type")[1]
_TYPE_MASK: Final = _FIXED.in_byte("long_packet_type")[2]
_DCID_LEN_AT: Final = _FIXED.fields["dcid_length"].offset
_MAX_CID: Final = quic_wire.MAX_CID_LENGTH
_INITIAL: Final = quic_wire.LONG_INITIAL
_RETRY: Final = quic_wire.LONG_RETRY
_NOT_PARSED: Final = (-1, b"")  # _long_header's answer for a header that does not parse
# Google QUIC up to Q043 (no long header): public flags with the version bit (0x01)
# and an 8-byte connection ID (0x08), then the version at offset 9.
_GQUIC_FLAGS: Final = 0x09
_GQUIC_VERSION_AT: Final = 9

QUIC_FACTS = table("quic", "q.", [
    ("long_headers", "int", "long_headers", "long-header packets parsed at the start of the datagram"),
    ("malformed", "bool", "malformed", "a long header failed to parse"),
    ("version", "int", "version", "version of the last long header walked (0 if none)"),
    ("version_negotiation", "bool", "version_negotiation",
     "a Version Negotiation packet (version 0, RFC 8999 §6)"),
    ("unknown_version", "bool", "unknown_version",
     "a long header of a version whose layout is not known: only its invariants were read"),
    ("google_quic", "bool", "google_quic", "a Google QUIC (Q0xx) packet: not RFC 9000's layout"),
    ("only_long_headers", "bool", "only_long_headers", "the datagram is long headers and nothing else"),
    ("trailing_bytes", "bool", "trailing_bytes",
     "bytes after the long headers are not a short header (e.g. padding)"),
    ("short_header", "bool", "short_header", "a short header (fixed bit set) follows"),
    ("short_offset", "int", "short_offset", "UDP payload offset of the short header"),
    ("short_len", "int", "short_len", "bytes from the short header to the datagram end"),
    ("flow_known", "bool", "flow_known",
     "a long header was seen on this flow before: it is a QUIC connection (main tool, SPEC §15.5)"),
    ("dcid_known", "bool", "dcid_known", "the peer's connection ID was learned"),
    ("dcid_len", "int", "dcid_len", "length of the learned peer connection ID"),
    ("dcid_matched", "bool", "dcid_matched",
     "the short header's DCID equals the learned one (all its bytes present)"),
])  # fmt: skip


class QuicFlowState(FlowState):
    """SPEC §9.2: the SCID learned for each endpoint of a canonical flow."""

    __slots__ = ("scid_a", "scid_b")

    def __init__(self) -> None:
        super().__init__()
        self.scid_a: bytes | None = None
        self.scid_b: bytes | None = None


class QuicFacts:
    """What the walk saw in one datagram (the ``quic.*`` facts); class
    attributes are the defaults."""

    long_headers = 0
    malformed = False
    version = 0
    version_negotiation = False
    unknown_version = False
    google_quic = False
    only_long_headers = False
    trailing_bytes = False
    short_header = False
    short_offset = 0
    short_len = 0
    flow_known = False
    dcid_known = False
    dcid_len = 0
    dcid_matched = False


class QuicAnalyzer:
    """Per-flow QUIC connection-ID learning over a run.

    A flow is keyed by the direction from endpoint a to endpoint b (flow_keys.connection_key),
    endpoint a the smaller ``(address, port)`` (SPEC §9.2's canonical order)."""

    def __init__(self, max_flows: int = 1 << 20, idle_timeout_sec: int = 0) -> None:
        self.flows: FlowTable[QuicFlowState] = FlowTable(max_flows, idle_timeout_sec * 10**9)

    # decoder fields analyze() takes after (data, ts_ns), in order
    INPUTS: ClassVar[tuple[str, ...]] = (
        "ip_version", "src_port", "dst_port", "network_offset", "transport_offset", "payload_offset",
        "payload_len",
    )  # fmt: skip

    def analyze(self, data: bytes, ts_ns: int, ip_version: int, sport: int, dport: int, net: int,
                udp_at: int, base: int, n: int) -> QuicFacts:  # fmt: skip
        """Walk the ``n`` payload bytes at ``data[base:]`` of one UDP datagram."""
        f = QuicFacts()
        if n == 0:
            return f
        key, a_to_b = connection_key_in(data, ip_version, sport, dport, net, udp_at)
        end = base + n
        off = 0
        flow = None
        while off < n and data[base + off] & 0x80:
            o = base + off
            if n - off < _FIXED_SIZE:
                f.malformed = True
                return f
            v0: i64 = data[o + _VERSION_AT]
            v1: i64 = data[o + _VERSION_AT + 1]
            v2: i64 = data[o + _VERSION_AT + 2]
            v3: i64 = data[o + _VERSION_AT + 3]
            version = v0 << 24 | v1 << 16 | v2 << 8 | v3
            types = quic_wire.long_packet_types(version)
            if not types:
                # After a packet of a known version this is filler, not another
                # version (coalesced packets share one connection, RFC 9000 §12.2).
                if off > 0 or _invariant_size(data, o, end) < 0:
                    f.malformed = True
                elif version == 0:
                    f.version_negotiation = True
                elif data[o + _VERSION_AT : o + _VERSION_AT + 2] == _GOOGLE:
                    f.google_quic = True
                else:  # RFC 8999 §5.1: only the connection IDs may be read
                    f.unknown_version = True
                    f.version = version
                return f
            f.version = version
            size, scid = _long_header(data, o, end, types)
            if size < 0:
                f.malformed = True
                return f
            if flow is None:
                flow = self.flows.get_or_create(key, ts_ns, QuicFlowState)
            if scid:  # learn the sender's connection ID
                if a_to_b:
                    flow.scid_a = scid
                else:
                    flow.scid_b = scid
            f.long_headers += 1
            off += size
        if off == n:
            f.only_long_headers = f.long_headers > 0
            return f
        if off == 0 and _is_legacy_google_quic(data, base, n):
            f.google_quic = True
            return f
        if data[base + off] & 0xC0 != 0x40:  # not a short header with the fixed bit
            f.trailing_bytes = f.long_headers > 0
            return f
        f.short_header = True
        f.short_offset = off
        f.short_len = n - off
        if flow is None:  # not looked up yet for a long header of this datagram
            flow = self.flows.get(key, ts_ns)
        if flow is not None:
            f.flow_known = True
            expected = flow.scid_b if a_to_b else flow.scid_a
            if expected is not None:
                f.dcid_known = True
                f.dcid_len = k = len(expected)
                start = base + off + 1
                f.dcid_matched = n - off >= 1 + k and data[start : start + k] == expected
        return f


def _long_header(data: bytes, o: int, end: int, types: bytes) -> tuple[int, bytes]:
    """``(size, source connection ID)`` of the long-header packet at ``o`` whose
    type bits mean ``types`` (its version's mapping); size -1 if it does not
    parse (SPEC §9.3).  Never None: compiled, a tuple that cannot be None is
    returned in registers, not built as an object per packet."""
    dcid_len = data[o + _DCID_LEN_AT]
    p = o + _FIXED_SIZE + dcid_len
    if dcid_len > _MAX_CID or p >= end:
        return _NOT_PARSED
    scid_len = data[p]
    p += 1
    if scid_len > _MAX_CID or p + scid_len > end:
        return _NOT_PARSED
    scid = data[p : p + scid_len]
    p += scid_len
    ptype = types[(data[o + _TYPE_AT] >> _TYPE_SHIFT) & _TYPE_MASK]
    if ptype == _RETRY:
        return end - o, scid
    if ptype == _INITIAL:
        token, size = quic_wire.varint_at(data, p, end)
        if not size or p + size + token > end:
            return _NOT_PARSED
        p += size + token
    length, size = quic_wire.varint_at(data, p, end)
    if not size or p + size + length > end:
        return _NOT_PARSED
    return p + size + length - o, scid


def _invariant_size(data: bytes, o: int, end: int) -> int:
    """Bytes of the RFC 8999 §5.1 invariant fields (through the SCID) at ``o``,
    or -1 when they are not all present."""
    p = o + _FIXED_SIZE + data[o + _DCID_LEN_AT]
    if p >= end:
        return -1
    p += 1 + data[p]
    return p - o if p <= end else -1


def _is_legacy_google_quic(data: bytes, base: int, n: int) -> bool:
    """A Google QUIC public header carrying a Q0xx version (up to Q043)."""
    at = base + _GQUIC_VERSION_AT
    return (n >= _GQUIC_VERSION_AT + 4 and data[base] & _GQUIC_FLAGS == _GQUIC_FLAGS
            and data[at : at + 2] == _GOOGLE)  # fmt: skip
