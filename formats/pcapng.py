"""pcapng blocks, in both byte orders.

Field and option names follow draft-ietf-opsawg-pcapng (§4 general block structure, §3.5
options, §4.1 SHB, §4.2 IDB, §4.3 EPB, §4.4 SPB, §4.5 NRB, §4.7 DSB, Appendix A the obsolete
Packet Block).  A section's byte order is that of its SHB, so every schema exists twice,
built by one function: ``LITTLE`` and ``BIG`` (``schemas(big_endian)``).  The module-level
names are the little-endian ones the writer builds with; ``block`` parses or builds any
block; per-record paths read and pack through layouts derived from the ``*_header`` structs.
"""

from types import SimpleNamespace

import construct as cs

BLOCK_TYPE_SHB = 0x0A0D0D0A  # a palindrome: found before the byte order is known
BLOCK_TYPE_IDB = 0x00000001
BLOCK_TYPE_PB = 0x00000002  # obsolete Packet Block (Appendix A)
BLOCK_TYPE_SPB = 0x00000003
BLOCK_TYPE_NRB = 0x00000004
BLOCK_TYPE_ISB = 0x00000005
BLOCK_TYPE_EPB = 0x00000006
BLOCK_TYPE_DSB = 0x0000000A
BYTE_ORDER_MAGIC = 0x1A2B3C4D
SECTION_LENGTH_UNKNOWN = -1

OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_HARDWARE = 2
SHB_OS = 3
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9  # one byte: 10^-value seconds when the top bit is clear, 2^-value when set
IF_FILTER = 11  # first byte 0: a libpcap filter string follows
IF_TSOFFSET = 14  # int64 seconds added to every timestamp of the interface
IF_FILTER_LIBPCAP = 0
IF_TSRESOL_DEFAULT = 6  # microseconds when the option is absent
LINKTYPE_ETHERNET = 1

# Block header and trailer (§4): the length counts the whole block, both copies included.
BLOCK_HEADER_SIZE = 8
BLOCK_TRAILER_SIZE = 4


def _build(u16: cs.Construct, u32: cs.Construct, i64: cs.Construct) -> SimpleNamespace:
    """Every schema for one byte order (``u16``/``u32``/``i64`` of that order)."""
    ns = SimpleNamespace()
    ns.option = cs.Struct(
        "option_code" / u16,
        "option_length" / cs.Rebuild(u16, cs.len_(cs.this.option_value)),
        "option_value" / cs.Bytes(cs.this.option_length),
        cs.Padding(lambda ctx: -ctx.option_length % 4),
    )
    ns.options = cs.GreedyRange(ns.option)  # ends with opt_endofopt; a block may have none at all
    ns.if_tsoffset = i64
    ns.section_header_block_body = cs.Struct(
        "byte_order_magic" / u32,
        "major_version" / u16,
        "minor_version" / u16,
        "section_length" / i64,
        "options" / ns.options,
    )
    ns.interface_description_block_body = cs.Struct(
        "linktype" / u16,
        "reserved" / u16,
        "snaplen" / u32,
        "options" / ns.options,
    )
    epb_fixed = (
        "interface_id" / u32,
        "timestamp_upper" / u32,  # ticks of the interface's if_tsresol since 1970, high word
        "timestamp_lower" / u32,
        "captured_packet_length" / u32,
        "original_packet_length" / u32,
    )
    ns.enhanced_packet_block_fixed = cs.Struct(*epb_fixed)
    ns.enhanced_packet_block_body = cs.Struct(
        *epb_fixed,
        "packet_data" / cs.Bytes(cs.this.captured_packet_length),
        cs.Padding(lambda ctx: -ctx.captured_packet_length % 4),
        "options" / ns.options,
    )
    ns.simple_packet_block_fixed = cs.Struct("original_packet_length" / u32)
    ns.packet_block_fixed = cs.Struct(
        "interface_id" / u16,
        "drops_count" / u16,
        "timestamp_upper" / u32,
        "timestamp_lower" / u32,
        "captured_packet_length" / u32,
        "original_packet_length" / u32,
    )
    ns.decryption_secrets_block_fixed = cs.Struct("secrets_type" / u32, "secrets_length" / u32)
    body = cs.Switch(cs.this.block_type, {
        BLOCK_TYPE_SHB: ns.section_header_block_body,
        BLOCK_TYPE_IDB: ns.interface_description_block_body,
        BLOCK_TYPE_EPB: ns.enhanced_packet_block_body,
    }, cs.GreedyBytes)  # fmt: skip

    def total_length(ctx) -> int:
        return BLOCK_HEADER_SIZE + len(body.build(ctx.body, block_type=ctx.block_type)) + BLOCK_TRAILER_SIZE

    ns.block = cs.Struct(
        "block_type" / u32,
        "block_total_length" / cs.Rebuild(u32, total_length),
        "body" / cs.FixedSized(cs.this.block_total_length - BLOCK_HEADER_SIZE - BLOCK_TRAILER_SIZE, body),
        "block_total_length_trailer" / cs.Rebuild(u32, cs.this.block_total_length),
    )
    ns.pcapng_file = cs.GreedyRange(ns.block)
    ns.block_header = cs.Struct("block_type" / u32, "block_total_length" / u32)
    # The EPB up to its packet data, for the writers' derived struct.
    ns.enhanced_packet_block_header = cs.Struct(
        "block_type" / u32,
        "block_total_length" / u32,
        *epb_fixed,
    )
    ns.block_trailer = cs.Struct("block_total_length" / u32)
    return ns


LITTLE = _build(cs.Int16ul, cs.Int32ul, cs.Int64sl)
BIG = _build(cs.Int16ub, cs.Int32ub, cs.Int64sb)


def schemas(big_endian: bool) -> SimpleNamespace:
    """The schemas of a section whose SHB says it is big-endian or not."""
    return BIG if big_endian else LITTLE


option = LITTLE.option
options = LITTLE.options
section_header_block_body = LITTLE.section_header_block_body
interface_description_block_body = LITTLE.interface_description_block_body
enhanced_packet_block_body = LITTLE.enhanced_packet_block_body
block = LITTLE.block
pcapng_file = LITTLE.pcapng_file
enhanced_packet_block_header = LITTLE.enhanced_packet_block_header
block_trailer = LITTLE.block_trailer
