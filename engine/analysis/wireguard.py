"""WireGuard message recognition (whitepaper §5.4): stateless, one UDP datagram at a time.

Publishes what the datagram is; rules/wireguard.rules decides what is kept.  A message is
recognised only by its type, its three zero bytes and its size: handshake messages have one
exact size each, transport data is at least a header and an authentication tag long.
"""

from __future__ import annotations

from typing import ClassVar, Final

from pcapconstrictor.formats.derived import wireguard as wg

from .facts import table

_HEADER: Final = wg.message_header
_TYPE_AT: Final = _HEADER.fields["message_type"].offset
_ZERO_AT: Final = _HEADER.fields["reserved_zero"].offset
_ZERO_END: Final = _ZERO_AT + _HEADER.fields["reserved_zero"].size
_ZEROS: Final = bytes(_HEADER.fields["reserved_zero"].size)
_DATA_HEADER_SIZE: Final = wg.transport_data_header.size
_DATA_MIN: Final = wg.TRANSPORT_DATA_MIN_SIZE
_TRANSPORT_DATA: Final = wg.TRANSPORT_DATA
_HANDSHAKE_SIZES: Final = wg.HANDSHAKE_SIZES

WIREGUARD_FACTS = table("wireguard", "w.", [
    ("message_type", "int", "message_type", "first byte of the datagram (0 if empty)"),
    ("handshake", "bool", "handshake",
     "initiation, response or cookie reply: type 1-3, three zero bytes, its exact size"),
    ("transport_data", "bool", "transport_data", "type 4, three zero bytes, at least 32 bytes"),
    ("data_header_len", "int", "data_header_len",
     "bytes of the transport data header: type, reserved, receiver index, counter (16)"),
])  # fmt: skip


class WireguardFacts:
    """What one datagram is (the ``wireguard.*`` facts); class attributes are the defaults."""

    message_type = 0
    handshake = False
    transport_data = False
    data_header_len = _DATA_HEADER_SIZE


class WireguardAnalyzer:
    """Recognises WireGuard messages; holds no state, so it takes no options."""

    INPUTS: ClassVar[tuple[str, ...]] = ("payload_offset", "payload_len")

    def analyze(self, data: bytes, ts_ns: int, base: int, n: int) -> WireguardFacts:
        """Classify the ``n`` UDP payload bytes at ``data[base:]``."""
        f = WireguardFacts()
        if n < _ZERO_END or data[base + _ZERO_AT : base + _ZERO_END] != _ZEROS:
            f.message_type = data[base + _TYPE_AT] if n > 0 else 0
            return f
        kind = data[base + _TYPE_AT]
        f.message_type = kind
        if kind == _TRANSPORT_DATA:
            f.transport_data = n >= _DATA_MIN
        else:
            f.handshake = _HANDSHAKE_SIZES.get(kind, -1) == n
        return f
