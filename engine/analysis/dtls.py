"""DTLS record walk over one UDP datagram (RFC 6347 §4.1, RFC 9146 §4, RFC 9147 §4).

Every record of the datagram is walked: plaintext headers (13 bytes) name their content
type; a DTLS 1.2 connection-ID record (type 25) and a DTLS 1.3 unified header hide it, so
their payload counts as encrypted like Application Data.  Records carrying a connection ID
can be walked only when its length is known: it is learned, per direction, from the
connection_id extension of a ClientHello or ServerHello in clear.  That is the only state.
Publishes facts; rules/dtls.rules decides what is kept.
"""

from __future__ import annotations

from typing import ClassVar, Final

from pcapconstrictor.formats.derived import dtls as dtls_format

from .facts import table
from .flow_keys import key_in, reverse_key_in
from .flow_table import FlowState, FlowTable

_RECORD: Final = dtls_format.dtls_plaintext_header
_HEADER_SIZE: Final = _RECORD.size
_VERSION_AT: Final = _RECORD.fields["version_major"].offset
_EPOCH_AT: Final = _RECORD.big_endian_at("epoch", 2)
_LEN_AT: Final = _RECORD.big_endian_at("length", 2)
_MAJOR: Final = dtls_format.VERSION_MAJOR
_PLAINTEXT: Final = dtls_format.PLAINTEXT_CONTENT_TYPES
_HANDSHAKE: Final = dtls_format.CONTENT_HANDSHAKE
_APPDATA: Final = dtls_format.CONTENT_APPLICATION_DATA
_CID_RECORD: Final = dtls_format.CONTENT_TLS12_CID
_UNIFIED: Final = dtls_format.unified_header_first_byte
_FIXED: Final = _UNIFIED.in_byte("fixed")
_C: Final = _UNIFIED.in_byte("cid_present")
_S: Final = _UNIFIED.in_byte("sequence_16_bit")
_L: Final = _UNIFIED.in_byte("length_present")
_UNIFIED_FIXED: Final = dtls_format.UNIFIED_HEADER_FIXED
_HANDSHAKE_HEADER: Final = dtls_format.handshake_header
_HS_SIZE: Final = _HANDSHAKE_HEADER.size
_HS_LEN_AT: Final = _HANDSHAKE_HEADER.fields["length"].offset
_HS_OFFSET_AT: Final = _HANDSHAKE_HEADER.fields["fragment_offset"].offset
_HS_FRAGMENT_AT: Final = _HANDSHAKE_HEADER.fields["fragment_length"].offset
_CLIENT_HELLO: Final = dtls_format.HANDSHAKE_CLIENT_HELLO
_SERVER_HELLO: Final = dtls_format.HANDSHAKE_SERVER_HELLO
_CID_EXTENSIONS: Final = (dtls_format.EXTENSION_CONNECTION_ID, dtls_format.EXTENSION_CONNECTION_ID_DRAFT)

DTLS_FACTS = table("dtls", "x.", [
    ("records", "int", "records", "records walked in the datagram"),
    ("handshake", "bool", "handshake", "a Handshake record (content type 22) is in the datagram"),
    ("malformed", "bool", "malformed",
     "bytes that are no DTLS record header, or a record running past the datagram's end"),
    ("cid_unknown", "bool", "cid_unknown",
     "a record carries a connection ID whose length was not learned from a hello"),
    ("encrypted_started", "bool", "encrypted_started",
     "an Application Data record, or one whose content type is encrypted (DTLS 1.2 CID record, "
     "DTLS 1.3 unified header), starts in the datagram"),
    ("encrypted_offset", "int", "encrypted_offset", "payload offset of the last such record"),
    ("encrypted_header_len", "int", "encrypted_header_len", "bytes of that record's header"),
    ("encrypted_len", "int", "encrypted_len", "bytes of that record, header included"),
    ("clear_after", "bool", "clear_after",
     "a record with a content type in clear (not Application Data) follows the last such record"),
    ("unified_header", "bool", "unified_header", "a DTLS 1.3 unified header is in the datagram"),
])  # fmt: skip


class DtlsDirectionState(FlowState):
    """The connection ID length records sent in one direction carry."""

    __slots__ = ("cid_len",)

    def __init__(self) -> None:
        super().__init__()
        self.cid_len = 0


class DtlsFacts:
    """What the walk saw in one datagram (the ``dtls.*`` facts); class attributes are defaults."""

    records = 0
    handshake = False
    malformed = False
    cid_unknown = False
    encrypted_started = False
    encrypted_offset = 0
    encrypted_header_len = 0
    encrypted_len = 0
    clear_after = False
    unified_header = False


class DtlsAnalyzer:
    """DTLS record walk; remembers connection ID lengths per direction (one instance per run)."""

    INPUTS: ClassVar[tuple[str, ...]] = (
        "ip_version", "network_offset", "transport_offset", "payload_offset", "payload_len",
    )  # fmt: skip

    def __init__(self, max_flows: int = 1 << 20, idle_timeout_sec: int = 0) -> None:
        self.flows: FlowTable[DtlsDirectionState] = FlowTable(max_flows, idle_timeout_sec * 10**9)

    def _cid_len(self, key: bytes, ts_ns: int) -> int:
        s = self.flows.get(key, ts_ns)
        return -1 if s is None else s.cid_len

    def analyze(self, data: bytes, ts_ns: int, ip_version: int, net: int, udp_at: int, base: int,
                n: int) -> DtlsFacts:  # fmt: skip
        """Walk the records of the ``n`` UDP payload bytes at ``data[base:]``."""
        f = DtlsFacts()
        key = key_in(data, ip_version, net, udp_at)
        off = 0
        while off < n:
            p = base + off
            left = n - off
            kind = data[p]
            if kind in _PLAINTEXT:
                if left < _HEADER_SIZE or data[p + _VERSION_AT] != _MAJOR:
                    f.malformed = True
                    return f
                header = _HEADER_SIZE
                if kind == _CID_RECORD:  # RFC 9146: the CID sits between sequence number and length
                    cid = self._cid_len(key, ts_ns)
                    if cid < 0:
                        f.cid_unknown = True
                        return f
                    header += cid
                    if left < header:
                        f.malformed = True
                        return f
                at = p + _LEN_AT + header - _HEADER_SIZE
                total = header + (data[at] << 8 | data[at + 1])
            elif (data[p] >> _FIXED[1]) & _FIXED[2] == _UNIFIED_FIXED:  # RFC 9147 §4
                f.unified_header = True
                header = 1
                if (kind >> _C[1]) & 1:
                    cid = self._cid_len(key, ts_ns)
                    if cid < 0:
                        f.cid_unknown = True
                        return f
                    header += cid
                header += 2 if (kind >> _S[1]) & 1 else 1
                if (kind >> _L[1]) & 1:
                    header += 2
                if header > left:
                    f.malformed = True
                    return f
                if (kind >> _L[1]) & 1:
                    total = header + (data[p + header - 2] << 8 | data[p + header - 1])
                else:  # no length: the record runs to the end of the datagram
                    total = left
            else:
                f.malformed = True
                return f
            if total > left:
                f.malformed = True
                return f
            f.records += 1
            if kind == _APPDATA or kind == _CID_RECORD or kind not in _PLAINTEXT:
                f.encrypted_started = True
                f.encrypted_offset = off
                f.encrypted_header_len = header
                f.encrypted_len = total
                f.clear_after = False
            else:
                if f.encrypted_started:
                    f.clear_after = True
                if kind == _HANDSHAKE:
                    f.handshake = True
                    if data[p + _EPOCH_AT] | data[p + _EPOCH_AT + 1] == 0:  # epoch 0: in clear
                        back = reverse_key_in(data, ip_version, net, udp_at)
                        self._learn_cid(data, p + header, p + total, back, ts_ns)
            off += total
        return f

    def _learn_cid(self, data: bytes, q: int, end: int, reverse: bytes, ts_ns: int) -> None:
        """A whole ClientHello or ServerHello at ``q``: the CID its sender asks to receive
        (RFC 9146 §3) is the one records sent to it carry, i.e. the ``reverse`` direction's."""
        if end - q < _HS_SIZE or data[q] not in (_CLIENT_HELLO, _SERVER_HELLO):
            return
        length = int.from_bytes(data[q + _HS_LEN_AT : q + _HS_LEN_AT + 3], "big")
        if (data[q + _HS_OFFSET_AT : q + _HS_OFFSET_AT + 3] != b"\0\0\0"
                or int.from_bytes(data[q + _HS_FRAGMENT_AT : q + _HS_FRAGMENT_AT + 3], "big") != length
                or q + _HS_SIZE + length > end):  # fmt: skip
            return  # a fragment: the extensions may be elsewhere
        hello = data[q + _HS_SIZE : q + _HS_SIZE + length]
        cid = _connection_id_length(hello, data[q] == _CLIENT_HELLO)
        if cid >= 0:
            self.flows.get_or_create(reverse, ts_ns, DtlsDirectionState).cid_len = cid


def _connection_id_length(hello: bytes, client: bool) -> int:
    """Length of the connection_id extension's CID in a hello body, or -1 if none."""
    i = dtls_format.HELLO_VERSION_AND_RANDOM
    end = len(hello)
    try:
        i += 1 + hello[i]  # session id
        if client:
            i += 1 + hello[i]  # cookie (DTLS only)
            i += 2 + (hello[i] << 8 | hello[i + 1])  # cipher suites
            i += 1 + hello[i]  # compression methods
        else:
            i += 2 + 1  # cipher suite, compression method
        if i + 2 > end:
            return -1
        ext_end = min(end, i + 2 + (hello[i] << 8 | hello[i + 1]))
        i += 2
        while i + 4 <= ext_end:
            ext_type = hello[i] << 8 | hello[i + 1]
            ext_len = hello[i + 2] << 8 | hello[i + 3]
            if ext_type in _CID_EXTENSIONS and ext_len >= 1 and 1 + hello[i + 4] <= ext_len:
                return hello[i + 4]
            i += 4 + ext_len
    except IndexError:  # a hello cut short: no extension to learn from
        return -1
    return -1
