"""IPsec ESP (RFC 4303 §2) and its UDP encapsulation for NAT traversal (RFC 3948 §2)."""

import construct as cs

IPPROTO_ESP = 50
NAT_KEEPALIVE = b"\xff"  # RFC 3948 §2.3: a one-byte UDP payload

# What stays readable of an ESP packet: the rest (payload, padding, ICV) is encrypted.
esp_header = cs.Struct(
    "spi" / cs.Int32ub,  # 0 is reserved (RFC 4303 §2.1): in UDP it marks the non-ESP marker
    "sequence_number" / cs.Int32ub,
)

# RFC 3948 §2.2: IKE on the NAT-T port starts with four zero bytes where ESP has its SPI.
non_esp_marker = cs.Const(b"\x00\x00\x00\x00")
