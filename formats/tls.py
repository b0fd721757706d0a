"""TLS record layer header (RFC 8446 §5.1)."""

import construct as cs

CONTENT_CHANGE_CIPHER_SPEC = 0x14
CONTENT_ALERT = 0x15
CONTENT_HANDSHAKE = 0x16
CONTENT_APPLICATION_DATA = 0x17
RECORD_CONTENT_TYPES = frozenset(
    {CONTENT_CHANGE_CIPHER_SPEC, CONTENT_ALERT, CONTENT_HANDSHAKE, CONTENT_APPLICATION_DATA}
)
LEGACY_VERSION_MAJOR = 0x03
MAX_VERSION_MINOR = 0x04  # SSL 3.0 (0) to TLS 1.3 (4)
MAX_RECORD_LENGTH = (1 << 14) + 2048  # RFC 5246 §6.2.3: TLSCiphertext.length bound

tls_record_header = cs.Struct(
    "content_type" / cs.Int8ub,
    "version_major" / cs.Int8ub,
    "version_minor" / cs.Int8ub,  # not checked (SPEC §8.4)
    "length" / cs.Int16ub,
)
