"""Network device ioctls (linux/sockios.h, linux/if.h, linux/if_arp.h, linux/ethtool.h): ``struct
ifreq`` as the views the recorder reads (flags, MTU, hardware address family, a pointer to an ethtool
request), and ``struct ethtool_value`` for the legacy offload queries (issue 18 #5); native byte order.
"""

import struct

import construct as cs

SIOCGIFFLAGS = 0x8913
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927
SIOCETHTOOL = 0x8946
IFNAMSIZ = 16
IFF_UP = 0x1
IFF_RUNNING = 0x40

# The ifreq union is as large as its largest member, struct ifmap: 2 longs and 5 bytes.
_LONG = struct.calcsize("l")
IFR_UNION_SIZE = max(16, -(-(2 * _LONG + 5) // _LONG) * _LONG)

ifreq_flags = cs.Struct(
    "ifr_name" / cs.Bytes(IFNAMSIZ),
    "ifr_flags" / cs.Int16sn,
    cs.Padding(IFR_UNION_SIZE - 2),
)

ifreq_mtu = cs.Struct(
    "ifr_name" / cs.Bytes(IFNAMSIZ),
    "ifr_mtu" / cs.Int32sn,
    cs.Padding(IFR_UNION_SIZE - 4),
)

ifreq_hwaddr = cs.Struct(
    "ifr_name" / cs.Bytes(IFNAMSIZ),
    "sa_family" / cs.Int16un,  # an ARPHRD_* value: the link type
    "sa_data" / cs.Bytes(14),
    cs.Padding(IFR_UNION_SIZE - 16),
)

# ifr_data: a pointer to the ethtool request the kernel reads and fills in place.
_POINTER = struct.calcsize("P")
ifreq_data = cs.Struct(
    "ifr_name" / cs.Bytes(IFNAMSIZ),
    "ifr_data" / (cs.Int64un if _POINTER == 8 else cs.Int32un),
    cs.Padding(IFR_UNION_SIZE - _POINTER),
)

# The legacy one-value ethtool commands (linux/ethtool.h): each reads or sets one offload.
ethtool_value = cs.Struct(
    "cmd" / cs.Int32un,
    "data" / cs.Int32un,
)
ETHTOOL_GTSO = 0x1E  # TCP segmentation offload: sent TCP is captured before it is segmented
ETHTOOL_GGSO = 0x23  # generic segmentation offload: the same for any protocol
ETHTOOL_GFLAGS = 0x25  # ETH_FLAG_* bits, among them large receive offload
ETHTOOL_GGRO = 0x2B  # generic receive offload: received segments merged before capture
ETHTOOL_SGRO = 0x2C
ETH_FLAG_LRO = 1 << 15

# ARPHRD_* (linux/if_arp.h) -> the libpcap link-type name the frames would have.
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
ARPHRD_NONE = 0xFFFE  # tun, wireguard: no link-layer header
ARPHRD_TUNNEL = 768  # ipip
ARPHRD_TUNNEL6 = 769  # ip6tnl
ARPHRD_SIT = 776
ARPHRD_IPGRE = 778
ARPHRD_IP6GRE = 823
# Interfaces whose frames are bare IP packets once the kernel has taken any link header off
# (an AF_PACKET SOCK_DGRAM socket): captured as raw IP, as libpcap does.
LAYER3 = frozenset({ARPHRD_NONE, ARPHRD_TUNNEL, ARPHRD_TUNNEL6, ARPHRD_SIT, ARPHRD_IPGRE, ARPHRD_IP6GRE})
LINK_TYPE_NAMES = {
    ARPHRD_ETHER: "EN10MB",
    ARPHRD_LOOPBACK: "EN10MB",  # lo frames carry an all-zero Ethernet header
    ARPHRD_NONE: "RAW",
    32: "INFINIBAND",
    256: "SLIP",
    280: "CAN_SOCKETCAN",
    512: "PPP",
    768: "RAW (IPIP)",
    769: "RAW (IP6IP6)",
    776: "RAW (SIT)",
    778: "RAW (IPGRE)",
    801: "IEEE802_11",
    803: "IEEE802_11_RADIO",
    804: "IEEE802_15_4",
    823: "RAW (IP6GRE)",
    824: "NETLINK",
}
