"""pcapng: Section Header, Interface Description and Enhanced Packet blocks, little-endian.

Field and option names follow draft-ietf-opsawg-pcapng (§4 general block structure, §3.5
options, §4.1 SHB, §4.2 IDB, §4.3 EPB).  ``block`` parses or builds any block; the writer's
per-record path packs ``enhanced_packet_block_header`` through a layout derived from it.
"""

import construct as cs

BLOCK_TYPE_SHB = 0x0A0D0D0A
BLOCK_TYPE_IDB = 0x00000001
BLOCK_TYPE_EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
SECTION_LENGTH_UNKNOWN = -1

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_HARDWARE = 2
SHB_OS = 3
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9  # one byte: 10^-value seconds when the top bit is clear
IF_FILTER = 11  # first byte 0: a libpcap filter string follows
IF_FILTER_LIBPCAP = 0
LINKTYPE_ETHERNET = 1

# Block header and trailer (§4): the length counts the whole block, both copies included.
BLOCK_HEADER_SIZE = 8
BLOCK_TRAILER_SIZE = 4

option = cs.Struct(
    "option_code" / cs.Int16ul,
    "option_length" / cs.Rebuild(cs.Int16ul, cs.len_(cs.this.option_value)),
    "option_value" / cs.Bytes(cs.this.option_length),
    cs.Padding(lambda ctx: -ctx.option_length % 4),
)
options = cs.GreedyRange(option)  # ends with opt_endofopt; a block may have none at all

section_header_block_body = cs.Struct(
    "byte_order_magic" / cs.Int32ul,
    "major_version" / cs.Int16ul,
    "minor_version" / cs.Int16ul,
    "section_length" / cs.Int64sl,
    "options" / options,
)

interface_description_block_body = cs.Struct(
    "linktype" / cs.Int16ul,
    "reserved" / cs.Int16ul,
    "snaplen" / cs.Int32ul,
    "options" / options,
)

_EPB_FIXED = (
    "interface_id" / cs.Int32ul,
    "timestamp_upper" / cs.Int32ul,  # with if_tsresol = 9: nanoseconds since 1970, high word
    "timestamp_lower" / cs.Int32ul,
    "captured_packet_length" / cs.Int32ul,
    "original_packet_length" / cs.Int32ul,
)

enhanced_packet_block_body = cs.Struct(
    *_EPB_FIXED,
    "packet_data" / cs.Bytes(cs.this.captured_packet_length),
    cs.Padding(lambda ctx: -ctx.captured_packet_length % 4),
    "options" / options,
)

_block_body = cs.Switch(cs.this.block_type, {
    BLOCK_TYPE_SHB: section_header_block_body,
    BLOCK_TYPE_IDB: interface_description_block_body,
    BLOCK_TYPE_EPB: enhanced_packet_block_body,
}, cs.GreedyBytes)  # fmt: skip


def _total_length(ctx) -> int:
    body = _block_body.build(ctx.body, block_type=ctx.block_type)
    return BLOCK_HEADER_SIZE + len(body) + BLOCK_TRAILER_SIZE


block = cs.Struct(
    "block_type" / cs.Int32ul,
    "block_total_length" / cs.Rebuild(cs.Int32ul, _total_length),
    "body" / cs.FixedSized(cs.this.block_total_length - BLOCK_HEADER_SIZE - BLOCK_TRAILER_SIZE, _block_body),
    "block_total_length_trailer" / cs.Rebuild(cs.Int32ul, cs.this.block_total_length),
)

pcapng_file = cs.GreedyRange(block)

# The EPB up to its packet data, for the writer's derived struct.
enhanced_packet_block_header = cs.Struct(
    "block_type" / cs.Int32ul,
    "block_total_length" / cs.Int32ul,
    *_EPB_FIXED,
)
block_trailer = cs.Struct("block_total_length" / cs.Int32ul)
