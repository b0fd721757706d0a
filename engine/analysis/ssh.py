"""SSH key-exchange walk over TCP segments, per direction (RFC 4253 §4.2, §6, §7.3).

Each direction opens with its identification line, then binary packets in clear up to
and including SSH_MSG_NEWKEYS; everything after NEWKEYS is encrypted (a re-key included).
The walk follows packet boundaries with TCP sequence numbers, as the TLS walk does, and
remembers the sequence number where the encrypted bytes start, so a retransmitted
key-exchange segment is still recognised.  It publishes facts; rules/ssh.rules decides.
"""

from __future__ import annotations

from typing import ClassVar, Final

from pcapconstrictor.formats.derived import ssh as ssh_format
from pcapconstrictor.formats.derived import transport

from .facts import table
from .flow_keys import key_in, reverse_key_in
from .flow_table import FlowState, FlowTable

_PACKET: Final = ssh_format.binary_packet_header
_HEADER_SIZE: Final = _PACKET.size
_LENGTH_FIELD: Final = _PACKET.fields["packet_length"].size  # not counted in packet_length
_PADDING_AT: Final = _PACKET.fields["padding_length"].offset
_CODE_AT: Final = _PACKET.fields["message_code"].offset
_PREFIX: Final = ssh_format.IDENTIFICATION_PREFIX
_MAX_IDENT: Final = ssh_format.MAX_IDENTIFICATION_BYTES
_NEWKEYS: Final = ssh_format.SSH_MSG_NEWKEYS
_BLOCK: Final = ssh_format.BLOCK_SIZE
_MIN_PADDING: Final = ssh_format.MIN_PADDING
_MAX_LENGTH: Final = ssh_format.MAX_PACKET_LENGTH
_SYN_OR_RST: Final = transport.TCP_FLAG_SYN | transport.TCP_FLAG_RST
_HALF: Final = 1 << 31

# where a direction is
IDENTIFICATION: Final = 0  # reading the identification line
KEY_EXCHANGE: Final = 1  # walking binary packets in clear
ENCRYPTED: Final = 2  # past NEWKEYS
LOST: Final = 3  # a gap, or bytes that are no SSH packet: nothing more can be known

SSH_FACTS = table("ssh", "s.", [
    ("no_identification", "bool", "no_identification",
     "an unknown direction whose payload does not open with 'SSH-': joined mid-stream or not SSH"),
    ("lost", "bool", "lost",
     "the direction lost its place before NEWKEYS (a gap, or bytes that are no SSH packet)"),
    ("key_exchange", "bool", "key_exchange",
     "the segment holds identification or key-exchange bytes (in clear)"),
    ("encrypted", "bool", "encrypted", "encrypted bytes (after NEWKEYS) are in the segment"),
    ("encrypted_offset", "int", "encrypted_offset", "payload offset where the encrypted bytes start"),
    ("newkeys", "bool", "newkeys", "SSH_MSG_NEWKEYS starts in the segment"),
    ("packets", "int", "packets", "binary packet headers walked in the segment"),
])  # fmt: skip


class SshDirectionState(FlowState):
    """What is known about one direction of a TCP connection."""

    __slots__ = ("phase", "expected_seq", "ident_seen", "remaining", "header",
                 "encrypted_seq")  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.phase = IDENTIFICATION
        self.expected_seq = 0
        self.ident_seen = 0  # identification bytes read without a LF yet
        self.remaining = 0  # bytes of the current packet still to come
        self.header = b""  # the start of a packet header split across segments
        self.encrypted_seq = 0  # sequence number of the first encrypted byte


class SshFacts:
    """What the walk saw in one segment (the ``ssh.*`` facts); class attributes are defaults."""

    no_identification = False
    lost = False
    key_exchange = False
    encrypted = False
    encrypted_offset = 0
    newkeys = False
    packets = 0


_NOTHING: Final = SshFacts()
_NO_IDENTIFICATION: Final = SshFacts()
_NO_IDENTIFICATION.no_identification = True
_LOST: Final = SshFacts()
_LOST.lost = True


class SshAnalyzer:
    """Per-direction SSH key-exchange tracking over a run (one instance per run)."""

    INPUTS: ClassVar[tuple[str, ...]] = (
        "ip_version", "network_offset", "transport_offset", "tcp_seq", "tcp_flags", "payload_offset",
        "payload_len",
    )  # fmt: skip

    def __init__(self, max_flows: int = 1 << 20, idle_timeout_sec: int = 0) -> None:
        self.flows: FlowTable[SshDirectionState] = FlowTable(max_flows, idle_timeout_sec * 10**9)

    def analyze(self, data: bytes, ts_ns: int, ip_version: int, net: int, tcp_at: int, seq: int,
                flags: int, base: int, n: int) -> SshFacts:  # fmt: skip
        """Walk the ``n`` payload bytes at ``data[base:]`` of one TCP segment."""
        flows = self.flows
        key = key_in(data, ip_version, net, tcp_at)
        if flags & _SYN_OR_RST:  # a new or aborted connection
            flows.delete(key)
            flows.delete(reverse_key_in(data, ip_version, net, tcp_at))
        if n == 0:
            return _NOTHING
        s = flows.get(key, ts_ns)
        if s is None:
            if data[base : base + len(_PREFIX)] != _PREFIX:
                return _NO_IDENTIFICATION
            s = flows.add(key, SshDirectionState(), ts_ns)
            s.expected_seq = seq
        if s.phase == ENCRYPTED:
            return _encrypted(s, seq, n)
        if s.phase == LOST:
            return _LOST
        if seq != s.expected_seq:
            behind = (s.expected_seq - seq) & 0xFFFFFFFF
            if behind < _HALF and (behind - n) & 0xFFFFFFFF < _HALF:
                f = SshFacts()  # a retransmission of bytes already walked: still in clear
                f.key_exchange = True
                return f
            s.phase = LOST  # a gap: the next packet boundary is unknown
            return _LOST
        s.expected_seq = (seq + n) & 0xFFFFFFFF
        return _walk(s, data, base, n, seq)


def _encrypted(s: SshDirectionState, seq: int, n: int) -> SshFacts:
    """A segment of a direction past NEWKEYS: encrypted from ``encrypted_seq`` on."""
    f = SshFacts()
    before = (s.encrypted_seq - seq) & 0xFFFFFFFF  # clear bytes at the segment start
    if before >= _HALF or before == 0:
        f.encrypted = True
    elif before >= n:  # a retransmission of key-exchange bytes
        f.key_exchange = True
    else:
        f.key_exchange = f.encrypted = True
        f.encrypted_offset = before
    return f


def _walk(s: SshDirectionState, data: bytes, base: int, n: int, seq: int) -> SshFacts:
    f = SshFacts()
    f.key_exchange = True
    off = 0
    if s.phase == IDENTIFICATION:
        lf = data.find(b"\n", base, base + n)
        if lf < 0:
            s.ident_seen += n
            if s.ident_seen > _MAX_IDENT:
                s.phase = LOST
                return _LOST
            return f
        off = lf + 1 - base
        s.phase = KEY_EXCHANGE
    while off < n:
        if s.remaining:  # inside a packet
            step = min(s.remaining, n - off)
            s.remaining -= step
            off += step
            continue
        need = _HEADER_SIZE - len(s.header)
        s.header += data[base + off : base + off + min(need, n - off)]
        if len(s.header) < _HEADER_SIZE:  # the header continues in the next segment
            return f
        used = need
        header = s.header
        s.header = b""
        length = int.from_bytes(header[:_LENGTH_FIELD], "big")
        padding = header[_PADDING_AT]
        if ((length + _LENGTH_FIELD) % _BLOCK or length > _MAX_LENGTH
                or padding < _MIN_PADDING or padding >= length):  # fmt: skip
            s.phase = LOST
            return _LOST
        f.packets += 1
        s.remaining = _LENGTH_FIELD + length - _HEADER_SIZE
        off += used
        if header[_CODE_AT] == _NEWKEYS:
            f.newkeys = True
            end = off + s.remaining  # NEWKEYS ends here (it may continue into the next segment)
            s.phase = ENCRYPTED
            s.encrypted_seq = (seq + end) & 0xFFFFFFFF
            s.remaining = 0
            if end < n:
                f.encrypted = True
                f.encrypted_offset = end
            return f
    return f
