"""DTLS record layer: the DTLS 1.0/1.2 plaintext header (RFC 6347 §4.1, RFC 9147 §4), the
DTLS 1.2 connection-ID record (RFC 9146 §4), the DTLS 1.3 unified header (RFC 9147 §4),
and the hello fields read to learn a connection ID's length (RFC 9147 §5.3, §9)."""

import construct as cs

CONTENT_CHANGE_CIPHER_SPEC = 20
CONTENT_ALERT = 21
CONTENT_HANDSHAKE = 22
CONTENT_APPLICATION_DATA = 23
CONTENT_HEARTBEAT = 24
CONTENT_TLS12_CID = 25  # RFC 9146: the real content type is inside the encrypted payload
CONTENT_ACK = 26  # RFC 9147 §7
PLAINTEXT_CONTENT_TYPES = frozenset(range(CONTENT_CHANGE_CIPHER_SPEC, CONTENT_ACK + 1))
VERSION_MAJOR = 0xFE  # DTLS 1.0 is 0xfeff, 1.2 (and 1.3's legacy_record_version) 0xfefd
# RFC 9443 §7: a first byte of 20-63 is DTLS (plaintext types 20-26, unified headers 32-63)
DEMUX_FIRST, DEMUX_LAST = 20, 63

dtls_plaintext_header = cs.Struct(
    "content_type" / cs.Int8ub,
    "version_major" / cs.Int8ub,
    "version_minor" / cs.Int8ub,
    "epoch" / cs.Int16ub,
    "sequence_number" / cs.Bytes(6),
    "length" / cs.Int16ub,
)

# RFC 9147 §4: 0 0 1 C S L E E; the CID, a 8- or 16-bit sequence number and the length follow
unified_header_first_byte = cs.Struct(
    "flags"
    / cs.BitStruct(
        "fixed" / cs.BitsInteger(3),  # 0b001
        "cid_present" / cs.BitsInteger(1),
        "sequence_16_bit" / cs.BitsInteger(1),
        "length_present" / cs.BitsInteger(1),
        "epoch_low_bits" / cs.BitsInteger(2),
    ),
)
UNIFIED_HEADER_FIXED = 0b001

# Handshake (RFC 6347 §4.2.2): a hello is read only when it is one whole fragment.
HANDSHAKE_CLIENT_HELLO = 1
HANDSHAKE_SERVER_HELLO = 2
handshake_header = cs.Struct(  # the uint24 fields as 3 big-endian bytes (for layout.Layout)
    "msg_type" / cs.Int8ub,
    "length" / cs.Bytes(3),
    "message_seq" / cs.Int16ub,
    "fragment_offset" / cs.Bytes(3),
    "fragment_length" / cs.Bytes(3),
)
HELLO_VERSION_AND_RANDOM = 2 + 32  # legacy_version, random
EXTENSION_CONNECTION_ID = 54  # RFC 9146 §3 / RFC 9147 §9: uint8 length, then the CID
EXTENSION_CONNECTION_ID_DRAFT = 53  # the pre-RFC code point some implementations still send
