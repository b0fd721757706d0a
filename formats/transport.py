"""TCP (RFC 9293) and UDP (RFC 768) headers."""

import construct as cs

TCP_FLAG_FIN = 0x01
TCP_FLAG_SYN = 0x02
TCP_FLAG_RST = 0x04

tcp_header = cs.Struct(
    "src_port" / cs.Int16ub,
    "dst_port" / cs.Int16ub,
    "seq" / cs.Int32ub,
    "ack" / cs.Int32ub,
    "offset_reserved" / cs.BitStruct("data_offset" / cs.BitsInteger(4), "reserved" / cs.BitsInteger(4)),
    "flags" / cs.Int8ub,
    "window" / cs.Int16ub,
    "checksum" / cs.Int16ub,
    "urgent_pointer" / cs.Int16ub,
)

udp_header = cs.Struct(
    "src_port" / cs.Int16ub,
    "dst_port" / cs.Int16ub,
    "length" / cs.Int16ub,
    "checksum" / cs.Int16ub,
)
