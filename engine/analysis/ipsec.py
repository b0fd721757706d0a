"""IPsec ESP recognition: ESP as IP protocol 50 (RFC 4303) and ESP in UDP told apart from
IKE by the non-ESP marker (RFC 3948 §2).  Stateless; rules/ipsec.rules decides what is kept.
"""

from __future__ import annotations

from typing import ClassVar, Final

from pcapconstrictor.formats.derived import esp

from .facts import table

_ESP: Final = esp.esp_header
_ESP_SIZE: Final = _ESP.size
_SPI_AT: Final = _ESP.fields["spi"].offset
_SPI_END: Final = _SPI_AT + _ESP.fields["spi"].size
_MARKER: Final = esp.non_esp_marker
_KEEPALIVE: Final = esp.NAT_KEEPALIVE
_PROTO_ESP: Final = esp.IPPROTO_ESP

IPSEC_FACTS = table("ipsec", "e.", [
    ("esp", "bool", "esp", "an ESP header (non-zero SPI, sequence number) is all there"),
    ("esp_offset", "int", "esp_offset", "frame offset of the ESP header"),
    ("header_len", "int", "header_len", "bytes of the ESP header: SPI and sequence number (8)"),
    ("ike", "bool", "ike", "UDP payload opens with the non-ESP marker: IKE (RFC 3948 §2.2)"),
    ("nat_keepalive", "bool", "nat_keepalive", "the one-byte 0xFF NAT-keepalive (RFC 3948 §2.3)"),
    ("udp_encapsulated", "bool", "udp_encapsulated", "seen in UDP rather than as IP protocol 50"),
])  # fmt: skip


class IpsecFacts:
    """What one packet carries (the ``ipsec.*`` facts); class attributes are the defaults."""

    esp = False
    esp_offset = 0
    header_len = _ESP_SIZE
    ike = False
    nat_keepalive = False
    udp_encapsulated = False


class IpsecAnalyzer:
    """Recognises ESP and what shares its UDP port; holds no state, so takes no options."""

    INPUTS: ClassVar[tuple[str, ...]] = ("protocol", "udp", "transport_offset", "payload_offset",
                                         "payload_len")  # fmt: skip

    def analyze(self, data: bytes, ts_ns: int, protocol: int, udp: bool, transport: int,
                base: int, n: int) -> IpsecFacts:  # fmt: skip
        """Classify the packet: the UDP payload when ``udp``, else the IP payload at ``transport``
        (0 when the decoder found none, e.g. an IPv4 fragment)."""
        f = IpsecFacts()
        if udp:
            f.udp_encapsulated = True
            if n == 1 and data[base : base + 1] == _KEEPALIVE:
                f.nat_keepalive = True
                return f
            if n >= len(_MARKER) and data[base : base + len(_MARKER)] == _MARKER:
                f.ike = True
                return f
        elif protocol == _PROTO_ESP and transport > 0:
            base = transport
            n = len(data) - transport  # the IP length is not at hand; only tiny frames carry padding
        else:
            return f
        if n >= _ESP_SIZE and data[base + _SPI_AT : base + _SPI_END] != _MARKER:
            f.esp = True
            f.esp_offset = base
        return f
