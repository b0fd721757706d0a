"""Ethernet II header and IEEE 802.1Q / 802.1ad tags."""

import construct as cs

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100  # 802.1Q
ETHERTYPE_QINQ = 0x88A8  # 802.1ad service tag
VLAN_ETHERTYPES = (ETHERTYPE_VLAN, ETHERTYPE_QINQ)  # 0x9100 is not a tag (SPEC §7.1)

ethernet_header = cs.Struct(
    "dst" / cs.Bytes(6),
    "src" / cs.Bytes(6),
    "ethertype" / cs.Int16ub,
)

# What follows a 0x8100/0x88A8 EtherType: the tag control information and the
# EtherType of the encapsulated frame.
vlan_tag = cs.Struct(
    "tci" / cs.BitStruct(
        "pcp" / cs.BitsInteger(3),
        "dei" / cs.BitsInteger(1),
        "vid" / cs.BitsInteger(12),
    ),
    "ethertype" / cs.Int16ub,
)
