"""IPv4 (RFC 791) and IPv6 (RFC 8200) fixed headers."""

import construct as cs

IPPROTO_TCP = 6
IPPROTO_UDP = 17
# IPv6 next-header values that are extension headers (SPEC §7.3).
IPV6_EXTENSION_HEADERS = frozenset({0, 43, 44, 51, 60, 135, 139, 140})

ipv4_header = cs.Struct(
    "version_ihl" / cs.BitStruct("version" / cs.BitsInteger(4), "ihl" / cs.BitsInteger(4)),
    "tos" / cs.Int8ub,
    "total_length" / cs.Int16ub,
    "identification" / cs.Int16ub,
    "flags_fragment" / cs.BitStruct(
        "reserved" / cs.BitsInteger(1),
        "dont_fragment" / cs.BitsInteger(1),
        "more_fragments" / cs.BitsInteger(1),
        "fragment_offset" / cs.BitsInteger(13),
    ),
    "ttl" / cs.Int8ub,
    "protocol" / cs.Int8ub,
    "header_checksum" / cs.Int16ub,
    "src" / cs.Bytes(4),
    "dst" / cs.Bytes(4),
)

ipv6_header = cs.Struct(
    "version_class_label" / cs.BitStruct(
        "version" / cs.BitsInteger(4),
        "traffic_class" / cs.BitsInteger(8),
        "flow_label" / cs.BitsInteger(20),
    ),
    "payload_length" / cs.Int16ub,
    "next_header" / cs.Int8ub,
    "hop_limit" / cs.Int8ub,
    "src" / cs.Bytes(16),
    "dst" / cs.Bytes(16),
)
