"""TLS record walk over TCP segments, per direction (SPEC §8.3-§8.5, §15.4).

The analyzer tracks record boundaries and publishes what it saw in a segment
as :class:`TlsFacts`; it never decides how much to keep (rules do, from the
facts and the config).  Its one behavioural option is what happens when an
Application Data record ends inside a segment and more bytes follow:
``boundary = reset`` refuses to judge the segment and forgets the direction's
position (final_only, §8.5 step 6), ``boundary = parse`` resumes the walk at
the record boundary (stream/bulk, §15.4).  And where an unsynchronized
direction looks for a record header: ``resync = start`` only at the segment
start (SPEC), ``resync = scan`` anywhere in it (bulk, DECISIONS #10).
"""

from __future__ import annotations

from typing import ClassVar, Final

from pcapconstrictor.formats.derived import tls as tls_format
from pcapconstrictor.formats.derived import transport

from .facts import table
from .flow_keys import key_in, reverse_key_in
from .flow_table import FlowState, FlowTable

_RECORD: Final = tls_format.tls_record_header
# The u16 length is read as two bytes at its schema offset (cheaper than a
# struct call per record).
_LEN_AT: Final = _RECORD.big_endian_at("length", 2)
_HEADER_SIZE: Final = _RECORD.size
_VERSION_AT: Final = _RECORD.fields["version_major"].offset
_TYPES: Final = tls_format.RECORD_CONTENT_TYPES
# a content type byte -> 1 if known: compiled, one byte index where a set test boxes the byte
_KNOWN_TYPE: Final = bytes(1 if t in _TYPES else 0 for t in range(256))
_HANDSHAKE: Final = tls_format.CONTENT_HANDSHAKE
_APPDATA: Final = tls_format.CONTENT_APPLICATION_DATA
_MAJOR: Final = tls_format.LEGACY_VERSION_MAJOR
_MAX_MINOR: Final = tls_format.MAX_VERSION_MINOR
_MAX_LENGTH: Final = tls_format.MAX_RECORD_LENGTH
_HEADER_STARTS: Final = tuple(bytes((t, _MAJOR)) for t in sorted(_TYPES))
_SYN_OR_RST: Final = transport.TCP_FLAG_SYN | transport.TCP_FLAG_RST

BOUNDARY_MODES = ("reset", "parse")
RESYNC_MODES = ("start", "scan")

TLS_FACTS = table("tls", "t.", [
    ("no_record", "bool", "no_record",
     "no TLS record where one must start (unsynchronized direction, or a non-Handshake "
     "record on an unconfirmed one)"),
    ("malformed", "bool", "malformed", "synchronized, but no valid record header at a boundary"),
    ("boundary_reset", "bool", "boundary_reset",
     "an Application Data record ended inside the segment and the walk did not continue; "
     "the direction lost its position"),
    ("boundary_parsed", "bool", "boundary_parsed",
     "an Application Data record ended inside the segment and the walk resumed at the boundary"),
    ("middle_continuation", "bool", "middle_continuation",
     "the whole segment lies inside an open Application Data record"),
    ("final_continuation", "bool", "final_continuation",
     "an open Application Data record ends exactly at the segment end"),
    ("appdata_started", "bool", "appdata_started", "an Application Data record starts in the segment"),
    ("appdata_offset", "int", "appdata_offset",
     "payload offset of the last Application Data record start"),
    ("appdata_visible", "int", "appdata_visible",
     "bytes of that record present in the segment (header included)"),
    ("non_appdata_after", "bool", "non_appdata_after",
     "a non-Application-Data record follows the last Application Data start"),
    ("synchronized", "bool", "synchronized", "the direction knows where records start (after the segment)"),
    ("confirmed", "bool", "confirmed", "a Handshake record was seen on this connection"),
    ("seen_app_data", "bool", "seen_app_data", "this direction has seen an Application Data start"),
    ("records", "int", "records", "record headers walked in the segment"),
    ("resynchronized", "bool", "resynchronized",
     "an unsynchronized direction found a record header inside the segment and walked on from it"),
    ("resync_offset", "int", "resync_offset", "payload offset of that header (-1 if none)"),
])  # fmt: skip


class TlsDirectionState(FlowState):
    """SPEC §8.3: what is known about one direction of a TCP connection."""

    FIELDS: ClassVar[tuple[str, ...]] = (  # the §8.3 state, in the order tools show it
        "confirmed", "seen_app_data", "synchronized", "expected_seq",
        "active", "active_remaining", "active_app_data",
    )  # fmt: skip
    __slots__ = FIELDS

    def __init__(self) -> None:
        super().__init__()  # the flow table's eviction mark, not TLS state
        self.confirmed = False
        self.seen_app_data = False
        self.synchronized = False
        self.expected_seq = 0
        self.active = False
        self.active_remaining = 0
        self.active_app_data = False


class TlsFacts:
    """What the walk saw in one segment (the ``tls.*`` facts).  Class
    attributes are the defaults; a segment stores only what it changes.
    Read-only once :meth:`TlsAnalyzer.analyze` returns it."""

    no_record = False
    malformed = False
    boundary_reset = False
    boundary_parsed = False
    middle_continuation = False
    final_continuation = False
    appdata_started = False
    appdata_offset = -1
    appdata_visible = 0
    non_appdata_after = False
    synchronized = False
    confirmed = False
    seen_app_data = False
    records = 0
    resynchronized = False
    resync_offset = -1

    def _state(self, s: TlsDirectionState | None) -> TlsFacts:
        if s is not None:
            self.synchronized = s.synchronized
            self.confirmed = s.confirmed
            self.seen_app_data = s.seen_app_data
        return self


# What a segment without payload on an unknown direction shows: every default; and
# what one with payload shows when it does not start with a Handshake record.
# Facts are read-only once returned, so one instance serves each.
_NOTHING_SEEN: Final = TlsFacts()
_NO_RECORD: Final = TlsFacts()
_NO_RECORD.no_record = True


class TlsAnalyzer:
    """Per-direction TLS record tracking over a run (one instance per run)."""

    def __init__(self, boundary: str = "reset", max_flows: int = 1 << 20,
                 idle_timeout_sec: int = 0, resync: str = "start") -> None:  # fmt: skip
        if boundary not in BOUNDARY_MODES:
            raise ValueError(f"tls boundary must be one of {', '.join(BOUNDARY_MODES)}")
        if resync not in RESYNC_MODES:
            raise ValueError(f"tls resync must be one of {', '.join(RESYNC_MODES)}")
        self.parse_boundary = boundary == "parse"
        self.scan = resync == "scan"
        self.flows: FlowTable[TlsDirectionState] = FlowTable(max_flows, idle_timeout_sec * 10**9)

    # decoder fields analyze() takes after (data, ts_ns), in order
    INPUTS: ClassVar[tuple[str, ...]] = (
        "ip_version", "network_offset", "transport_offset", "tcp_seq", "tcp_flags", "payload_offset",
        "payload_len",
    )  # fmt: skip

    def analyze(self, data: bytes, ts_ns: int, ip_version: int, net: int, tcp_at: int, seq: int,
                flags: int, base: int, n: int) -> TlsFacts:  # fmt: skip
        """Walk the ``n`` payload bytes at ``data[base:]`` of one TCP segment."""
        flows = self.flows
        key = key_in(data, ip_version, net, tcp_at)
        if flags & _SYN_OR_RST:  # step 1: a new or aborted connection
            flows.delete(key)
            flows.delete(reverse_key_in(data, ip_version, net, tcp_at))
        if n == 0:  # step 2: nothing to walk, only the direction's state to report
            s = flows.get(key, ts_ns)
            return _NOTHING_SEEN if s is None else TlsFacts()._state(s)
        s = flows.get(key, ts_ns)
        if s is None:
            # A direction starts being tracked only at a Handshake record: anything else
            # on an unknown direction is no_record, and a state made for it would be
            # deleted at once (after possibly evicting a real flow to make room).
            if n < _HEADER_SIZE or data[base] != _HANDSHAKE or data[base + _VERSION_AT] != _MAJOR:
                return _NO_RECORD
            s = flows.add(key, TlsDirectionState(), ts_ns)
        f = TlsFacts()
        was_confirmed = s.confirmed
        if s.synchronized and seq != s.expected_seq:  # step 4: gap or retransmission
            s.active = False
            s.active_remaining = 0
            s.synchronized = False
            s.expected_seq = 0
        off = 0
        reset = uncertain = at_boundary = False
        if s.active:  # step 6: continuation of an open record
            r = s.active_remaining
            if r > n:
                f.middle_continuation = s.active_app_data
                s.active_remaining = r - n
                off = n
            elif r == n:
                f.final_continuation = s.active_app_data
                s.active = False
                off = n
            else:
                off = r
                s.active = False
                if s.active_app_data:
                    if self.parse_boundary:
                        at_boundary = True
                    else:
                        reset = True
        while not reset and off < n:  # step 7: walk the record headers
            p = base + off
            if n - off < _HEADER_SIZE or not _KNOWN_TYPE[data[p]] or data[p + _VERSION_AT] != _MAJOR:
                if at_boundary:  # stream: nothing valid after the record end
                    reset = True
                    break
                if not s.synchronized:
                    if self.scan and was_confirmed and not f.resynchronized:
                        found = _find_record_header(data, p + 1, base + n)
                        if found >= 0:  # walk on from the header found (DECISIONS #10)
                            off = found - base
                            f.resynchronized = True
                            f.resync_offset = off
                            continue
                    if not was_confirmed:
                        flows.delete(key)
                    f.no_record = True
                    return f._state(s)
                uncertain = True
                break
            if at_boundary:
                at_boundary = False
                f.boundary_parsed = True
            ctype = data[p]
            if not s.synchronized and ctype != _HANDSHAKE and not was_confirmed:
                flows.delete(key)
                f.no_record = True
                return f
            s.synchronized = True
            f.records += 1
            if ctype == _HANDSHAKE:
                s.confirmed = True
                rkey = reverse_key_in(data, ip_version, net, tcp_at)
                flows.get_or_create(rkey, ts_ns, TlsDirectionState).confirmed = True
            total = _HEADER_SIZE + (data[p + _LEN_AT] << 8 | data[p + _LEN_AT + 1])
            rem = n - off
            if ctype == _APPDATA:
                s.seen_app_data = True
                f.appdata_started = True
                f.appdata_offset = off
                f.appdata_visible = total if total <= rem else rem
                f.non_appdata_after = False
            elif f.appdata_started:
                f.non_appdata_after = True
            if total > rem:  # the record continues in later segments
                s.active = True
                s.active_remaining = total - rem
                s.active_app_data = ctype == _APPDATA
                break
            off += total
        s.expected_seq = (seq + n) & 0xFFFFFFFF  # step 8
        if reset:  # step 9: forget the position, keep what the connection proved
            confirmed, seen = s.confirmed, s.seen_app_data
            flows.delete(key)
            f.boundary_reset = True
            f.confirmed = confirmed
            f.seen_app_data = seen
            if confirmed:
                fresh = flows.add(key, TlsDirectionState(), ts_ns)
                fresh.confirmed = True
                fresh.seen_app_data = seen
            return f
        if uncertain:
            f.malformed = True
        f.synchronized = s.synchronized  # _state(s), inlined on the per-segment path
        f.confirmed = s.confirmed
        f.seen_app_data = s.seen_app_data
        return f


def _valid_header(data: bytes, q: int, end: int) -> int:
    """Record end (absolute) of a plausible header at ``q``: a known content type,
    version 3.0-3.4, a non-empty length within the RFC 8446 §5.2 bound; else -1."""
    if end - q < _HEADER_SIZE or not _KNOWN_TYPE[data[q]] or data[q + _VERSION_AT] != _MAJOR:
        return -1
    if data[q + _VERSION_AT + 1] > _MAX_MINOR:
        return -1
    length = data[q + _LEN_AT] << 8 | data[q + _LEN_AT + 1]
    return q + _HEADER_SIZE + length if 0 < length <= _MAX_LENGTH else -1


def _find_record_header(data: bytes, start: int, end: int) -> int:
    """First offset in ``[start, end)`` where a record header sits whose end is
    consistent with what follows: the record runs to or past the segment end, or
    another plausible header starts where it ends.  -1 if there is none."""
    seg = bytes(data[start:end])
    candidates: list[int] = []
    for pattern in _HEADER_STARTS:
        i = seg.find(pattern)
        while i >= 0:
            candidates.append(i)
            i = seg.find(pattern, i + 1)
    for i in sorted(candidates):
        q = start + i
        record_end = _valid_header(data, q, end)
        if record_end >= end or (record_end >= 0 and _valid_header(data, record_end, end) >= 0):
            return q
    return -1
