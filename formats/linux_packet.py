"""AF_PACKET kernel ABI (linux/if_packet.h, linux/if_ether.h), native byte order.

Python's ``socket`` module lacks most SOL_PACKET constants; they live here, once.
"""

import construct as cs

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_DROP_MEMBERSHIP = 2
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_AUXDATA = 8
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_IGNORE_OUTGOING = 23
TPACKET_V3 = 2
PACKET_MR_PROMISC = 1
ETH_P_ALL = 0x0003
PACKET_HOST = 0
PACKET_OUTGOING = 4
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
PACKET_FANOUT_FLAG_UNIQUEID = 0x2000  # the kernel picks an unused group id (Linux 4.15+)

# Socket-level (SOL_SOCKET) options the socket module lacks, asm-generic/socket.h values
# (x86, arm, arm64, riscv, powerpc, s390; not alpha/mips/parisc/sparc).
SO_RCVBUFFORCE = 33  # like SO_RCVBUF but past net.core.rmem_max; needs CAP_NET_ADMIN
SO_TIMESTAMPNS_NEW = 64  # kernel >= 5.1; the cmsg carries a __kernel_timespec (64-bit on every ABI)
SCM_TIMESTAMPNS_NEW = SO_TIMESTAMPNS_NEW

ETH_ALEN = 6
ETH_P_8021Q = 0x8100

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
TPACKET_ALIGNMENT = 16


def tpacket_align(n: int) -> int:
    """TPACKET_ALIGN(): round up to TPACKET_ALIGNMENT."""
    return (n + TPACKET_ALIGNMENT - 1) & ~(TPACKET_ALIGNMENT - 1)


tpacket_req3 = cs.Struct(
    "tp_block_size" / cs.Int32un,
    "tp_block_nr" / cs.Int32un,
    "tp_frame_size" / cs.Int32un,
    "tp_frame_nr" / cs.Int32un,
    "tp_retire_blk_tov" / cs.Int32un,
    "tp_sizeof_priv" / cs.Int32un,
    "tp_feature_req_word" / cs.Int32un,
)

# struct tpacket_block_desc with its tpacket_hdr_v1 flattened in.
tpacket_block_desc = cs.Struct(
    "version" / cs.Int32un,
    "offset_to_priv" / cs.Int32un,
    "block_status" / cs.Int32un,
    "num_pkts" / cs.Int32un,
    "offset_to_first_pkt" / cs.Int32un,
    "blk_len" / cs.Int32un,
    "seq_num" / cs.Int64un,
    "ts_first_pkt_sec" / cs.Int32un,
    "ts_first_pkt_nsec" / cs.Int32un,
    "ts_last_pkt_sec" / cs.Int32un,
    "ts_last_pkt_nsec" / cs.Int32un,
)

tpacket3_hdr = cs.Struct(
    "tp_next_offset" / cs.Int32un,
    "tp_sec" / cs.Int32un,
    "tp_nsec" / cs.Int32un,
    "tp_snaplen" / cs.Int32un,
    "tp_len" / cs.Int32un,
    "tp_status" / cs.Int32un,
    "tp_mac" / cs.Int16un,
    "tp_net" / cs.Int16un,
    # struct tpacket_hdr_variant1
    "tp_rxhash" / cs.Int32un,
    "tp_vlan_tci" / cs.Int32un,
    "tp_vlan_tpid" / cs.Int16un,
    "hv1_padding" / cs.Int16un,
    "tp_padding" / cs.Bytes(8),
)

tpacket_stats_v3 = cs.Struct(
    "tp_packets" / cs.Int32un,
    "tp_drops" / cs.Int32un,
    "tp_freeze_q_cnt" / cs.Int32un,
)

tpacket_stats = cs.Struct("tp_packets" / cs.Int32un, "tp_drops" / cs.Int32un)

tpacket_auxdata = cs.Struct(
    "tp_status" / cs.Int32un,
    "tp_len" / cs.Int32un,
    "tp_snaplen" / cs.Int32un,
    "tp_mac" / cs.Int16un,
    "tp_net" / cs.Int16un,
    "tp_vlan_tci" / cs.Int16un,
    "tp_vlan_tpid" / cs.Int16un,
)

sockaddr_ll = cs.Struct(
    "sll_family" / cs.Int16un,
    "sll_protocol" / cs.Int16ub,
    "sll_ifindex" / cs.Int32sn,
    "sll_hatype" / cs.Int16un,
    "sll_pkttype" / cs.Int8un,
    "sll_halen" / cs.Int8un,
    "sll_addr" / cs.Bytes(8),
)

packet_mreq = cs.Struct(
    "mr_ifindex" / cs.Int32sn,
    "mr_type" / cs.Int16un,
    "mr_alen" / cs.Int16un,
    "mr_address" / cs.Bytes(8),
)

# The SCM_TIMESTAMPNS_NEW payload.
kernel_timespec = cs.Struct("tv_sec" / cs.Int64sn, "tv_nsec" / cs.Int64sn)
