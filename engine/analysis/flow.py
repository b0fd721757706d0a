"""Per-flow byte and packet counters, for flow budgets (issue 17).

The "time machine" model: keep the start of every connection whole, then only
headers.  This analyzer publishes, per direction of a TCP or UDP flow (per IP
pair and protocol for anything else), where this packet's payload lies in its
direction's stream, the payload bytes and packets seen before it, the TCP
flags seen, and the flow's age.  How much to keep is up to the rules
(rules/budget.rules).

A TCP payload is placed by its sequence number, relative to the SYN's (or,
joined mid-stream, the first seen segment's), so each sequence range is
counted once: a retransmitted start lies at the start again, a segment
arriving early lies where it belongs.  The 32-bit sequence is unwrapped around
the highest offset reached, so streams past 4 GiB keep counting.
"""

from __future__ import annotations

from typing import ClassVar, Final

from pcapconstrictor.formats.derived import ip as ip_format
from pcapconstrictor.formats.derived import transport as transport_format

from .facts import table
from .flow_keys import addresses_in, connection_key, connection_key_in, sender_first, sender_first_in
from .flow_table import FlowState, FlowTable

_V4_TOTAL_AT: Final = ip_format.ipv4_header.big_endian_at("total_length", 2)
_V6: Final = ip_format.ipv6_header
_SYN: Final = transport_format.TCP_FLAG_SYN
_FIN: Final = transport_format.TCP_FLAG_FIN
_RST: Final = transport_format.TCP_FLAG_RST
_V6_PAYLOAD_AT: Final = _V6.big_endian_at("payload_length", 2)
_V6_SIZE: Final = _V6.size
_SEQ_MOD: Final = 1 << 32
_SEQ_HALF: Final = 1 << 31
_PROTOCOL_BYTE: Final = [bytes((p,)) for p in range(256)]  # before another protocol's key
_UDP_TAG: Final = _PROTOCOL_BYTE[ip_format.IPPROTO_UDP]  # before a UDP flow's key

FLOW_FACTS = table("flow", "fl.", [
    ("offset", "int", "offset",
     "where this packet's payload starts in its direction's stream (TCP: by sequence number)"),
    ("bytes_before", "int", "bytes_before",
     "payload bytes this direction carried before this packet, each TCP sequence byte counted once"),
    ("packets_before", "int", "packets_before", "packets this direction carried before this packet"),
    ("payload_offset", "int", "payload_offset",
     "frame offset of the payload: after the TCP/UDP header, else after the IP header"),
    ("payload_len", "int", "payload_len", "payload bytes inside the IP packet (0 for a fragment)"),
    ("sequenced", "bool", "sequenced", "the offset comes from a TCP sequence number"),
    ("syn", "bool", "syn", "this packet has TCP SYN set (a connection handshake)"),
    ("syn_seen", "bool", "syn_seen", "a SYN was seen on this flow (either direction, this packet too)"),
    ("fin_seen", "bool", "fin_seen", "a FIN was seen on this flow (either direction, this packet too)"),
    ("rst_seen", "bool", "rst_seen", "a RST was seen on this flow (either direction, this packet too)"),
    ("age_ms", "int", "age_ms", "milliseconds since the flow's first packet"),
])  # fmt: skip


class FlowCounters(FlowState):
    """Both directions of one flow, in one object (a table of a million flows holds a million
    objects, not three million): direction ``a`` sends from the canonical first endpoint.  Per
    direction, ``*_high`` is the stream offset after the highest payload byte seen, ``*_packets``
    the packets seen and ``*_origin`` the TCP sequence number at offset 0 (-1: none yet)."""

    FIELDS: ClassVar[tuple[str, ...]] = ("first_ns", "flags")
    __slots__ = ("first_ns", "flags", "a_packets", "a_high", "a_origin",
                 "b_packets", "b_high", "b_origin")  # fmt: skip

    def __init__(self, first_ns: int) -> None:
        super().__init__()
        self.first_ns = first_ns
        self.flags = 0  # TCP SYN/FIN/RST seen, either direction
        self.a_packets = self.a_high = self.b_packets = self.b_high = 0
        self.a_origin = self.b_origin = -1

    def direction(self, forward: bool) -> tuple[int, int, int]:
        """``(packets, high, origin)`` of direction a (``forward``) or b (for tools)."""
        if forward:
            return self.a_packets, self.a_high, self.a_origin
        return self.b_packets, self.b_high, self.b_origin


class FlowFacts:
    """What the counters say about one packet (the ``flow.*`` facts)."""

    __slots__ = ("offset", "bytes_before", "packets_before", "payload_offset", "payload_len",
                 "sequenced", "syn", "syn_seen", "fin_seen", "rst_seen", "age_ms")  # fmt: skip
    # declared for the typed evaluator of a shipped policy (mypy reads its fact types here)
    offset: int
    bytes_before: int
    packets_before: int
    payload_offset: int
    payload_len: int
    sequenced: bool
    syn: bool
    syn_seen: bool
    fin_seen: bool
    rst_seen: bool
    age_ms: int


class FlowAnalyzer:
    """Payload counters per flow direction over a run, in a bounded table."""

    def __init__(self, max_flows: int = 1 << 20, idle_timeout_sec: int = 0) -> None:
        self.flows: FlowTable[FlowCounters] = FlowTable(max_flows, idle_timeout_sec * 10**9)

    # decoder fields analyze() takes after (data, ts_ns), in order
    INPUTS: ClassVar[tuple[str, ...]] = (
        "ip_version", "protocol", "src_port", "dst_port", "network_offset", "transport_offset", "tcp",
        "udp", "payload_offset", "payload_len", "tcp_seq", "tcp_flags",
    )  # fmt: skip

    @staticmethod
    def key(protocol: int, is_tcp: bool, is_udp: bool, src: bytes, dst: bytes, sport: int,
            dport: int) -> tuple[bytes, bool]:  # fmt: skip
        """The flow's key as :meth:`analyze` builds it from the frame, and whether the sender
        is its first endpoint (for tools and tests)."""
        forward = sender_first(src, dst, sport, dport)
        if is_tcp or is_udp:
            key = connection_key(src, dst, sport, dport)
            return (key if is_tcp else _UDP_TAG + key), forward
        return _other_key(protocol, src + dst if forward else dst + src), forward

    def analyze(self, data: bytes, ts_ns: int, version: int, protocol: int, sport: int, dport: int,
                net: int, transport: int, is_tcp: bool, is_udp: bool, base: int, n: int, seq: int,
                flags: int) -> FlowFacts:  # fmt: skip
        """Place this packet's payload in its direction's stream and count it."""
        # the key: the connection's (flow_keys: addresses then ports, from the first endpoint),
        # a UDP one tagged, else the protocol and the two addresses; their lengths differ
        if is_tcp or is_udp:
            key, forward = connection_key_in(data, version, sport, dport, net, transport)
            if is_udp:
                key = _UDP_TAG + key
        else:  # another IP protocol (or a fragment): the payload follows the IP header
            base, n = transport, _ip_payload_len(data, version, net, transport)
            forward = sender_first_in(data, version, net, sport, dport)
            key = _other_key(protocol, addresses_in(data, version, net, forward))
        state = self.flows.get(key, ts_ns)
        if state is None:
            state = self.flows.add(key, FlowCounters(ts_ns), ts_ns)
        if forward:
            packets, high, origin = state.a_packets, state.a_high, state.a_origin
        else:
            packets, high, origin = state.b_packets, state.b_high, state.b_origin
        f = FlowFacts()
        f.payload_offset, f.payload_len = base, n
        f.bytes_before, f.packets_before = high, packets
        f.syn = f.sequenced = False
        if is_tcp:
            f.sequenced = True
            state.flags |= flags & (_SYN | _FIN | _RST)
            if flags & _SYN:
                f.syn = True
                start = (seq + 1) % _SEQ_MOD  # the SYN takes one sequence number
                if origin >= 0 and origin != start:  # a new connection on the same ports
                    high = packets = f.bytes_before = f.packets_before = 0
                origin = start
                offset = 0
            elif origin < 0:  # joined mid-stream: count from here
                origin = seq
                offset = 0
            else:
                delta = (seq - origin - high) % _SEQ_MOD
                offset = high + (delta - _SEQ_MOD if delta >= _SEQ_HALF else delta)
                if offset < 0:  # before the first byte this capture saw
                    offset = 0
            end = offset + n
            if end > high:
                high = end
        else:
            offset = high
            high = offset + n
        packets += 1
        if forward:
            state.a_packets, state.a_high, state.a_origin = packets, high, origin
        else:
            state.b_packets, state.b_high, state.b_origin = packets, high, origin
        f.offset = offset
        seen = state.flags
        f.syn_seen = (seen & _SYN) != 0
        f.fin_seen = (seen & _FIN) != 0
        f.rst_seen = (seen & _RST) != 0
        f.age_ms = (ts_ns - state.first_ns) // 1_000_000
        return f


def _other_key(protocol: int, addresses: bytes) -> bytes:
    """The key of a flow of another IP protocol (no ports): the protocol, then the first
    endpoint's address and the other's (``addresses``)."""
    return _PROTOCOL_BYTE[protocol & 0xFF] + addresses


def _ip_payload_len(data: bytes, version: int, net: int, transport: int) -> int:
    """Bytes after the IP header, by the IP length field; 0 for a fragment
    (the decoder gives a fragment no transport offset)."""
    if not transport:
        return 0
    if version == 4:
        p = net + _V4_TOTAL_AT
        return net + (data[p] << 8 | data[p + 1]) - transport
    p = net + _V6_PAYLOAD_AT
    return net + _V6_SIZE + (data[p] << 8 | data[p + 1]) - transport
