"""Link-layer headers other than Ethernet that captures carry, and the link types naming them.

Numbers are LINKTYPE_* values from the tcpdump.org link-layer header types registry (what a
file stores, not the platform's DLT_*); field names follow the pages of that registry.
"""

import construct as cs

LINKTYPE_NULL = 0  # BSD loopback: a 4-byte address family in the writer's byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_PPP = 9
LINKTYPE_PPP_HDLC = 50
LINKTYPE_RAW = 101  # bare IPv4 or IPv6: the version nibble tells which
LINKTYPE_LOOP = 108  # OpenBSD loopback: the family in network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

# Address families a NULL/LOOP header may carry for IP (AF_INET is 2 everywhere; AF_INET6
# differs by OS: 10 Linux, 24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS).
AF_INET = 2
AF_INET6_VALUES = frozenset({10, 24, 28, 30})

# RFC 1661/1662: an HDLC-like frame may start with address 0xFF, control 0x03; the protocol
# field follows (RFC 1661 §2: 0x0021 IPv4, 0x0057 IPv6; a first byte with the low bit set
# is a compressed one-byte protocol field).
PPP_ADDRESS_CONTROL = b"\xff\x03"
PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057

# https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html
linux_sll_header = cs.Struct(
    "packet_type" / cs.Int16ub,
    "arphrd_type" / cs.Int16ub,
    "link_layer_address_length" / cs.Int16ub,
    "link_layer_address" / cs.Bytes(8),
    "protocol_type" / cs.Int16ub,  # an EtherType for IP
)

# https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html
linux_sll2_header = cs.Struct(
    "protocol_type" / cs.Int16ub,
    "reserved" / cs.Int16ub,
    "interface_index" / cs.Int32ub,
    "arphrd_type" / cs.Int16ub,
    "packet_type" / cs.Int8ub,
    "link_layer_address_length" / cs.Int8ub,
    "link_layer_address" / cs.Bytes(8),
)

# https://www.tcpdump.org/linktypes/LINKTYPE_NULL.html and LINKTYPE_LOOP.html
null_header = cs.Struct("family" / cs.Int32ul)  # host order of the writer: read both ways
loop_header = cs.Struct("family" / cs.Int32ub)

# RFC 1661 §2 after the optional address and control bytes
ppp_protocol = cs.Struct("protocol" / cs.Int16ub)
