"""Classic BPF: instruction encoding (linux/filter.h, linux/bpf_common.h, pcap/bpf.h) and the
structures that carry a program to the kernel (``SO_ATTACH_FILTER``) and back from libpcap.

``struct sock_filter`` (kernel) and ``struct bpf_insn`` (libpcap) are the same 8 bytes;
``struct sock_fprog`` and ``struct bpf_program`` hold a count and a pointer, whose size is the
platform's.
"""

import struct

import construct as cs

_POINTER_SIZE = struct.calcsize("P")
_POINTER = cs.Int64un if _POINTER_SIZE == 8 else cs.Int32un

# SOL_SOCKET options, asm-generic/socket.h (x86, arm, arm64, riscv, powerpc, s390).
SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
BPF_MAXINSNS = 4096  # the kernel refuses longer classic programs
BPF_MEMWORDS = 16  # scratch memory M[0..15]
# Ancillary loads (linux/filter.h): an absolute load at SKF_AD_OFF + n reads skb metadata, not
# packet bytes; libpcap maps a cooked header's fields onto them for the kernel.
SKF_AD_OFF = -0x1000 & 0xFFFFFFFF
SKF_AD_PROTOCOL = 0
SKF_AD_PKTTYPE = 4
SKF_AD_IFINDEX = 8

sock_filter = cs.Struct(
    "code" / cs.Int16un,
    "jt" / cs.Int8un,
    "jf" / cs.Int8un,
    "k" / cs.Int32un,
)

sock_fprog = cs.Struct(
    "len" / cs.Int16un,
    cs.Padding(_POINTER_SIZE - 2),
    "filter" / _POINTER,
)

bpf_program = cs.Struct(
    "bf_len" / cs.Int32un,
    cs.Padding(_POINTER_SIZE - 4),
    "bf_insns" / _POINTER,
)

# --- opcode fields ---------------------------------------------------------------------------
# class: the low 3 bits
BPF_LD, BPF_LDX, BPF_ST, BPF_STX, BPF_ALU, BPF_JMP, BPF_RET, BPF_MISC = range(8)
# ld/ldx size
BPF_W, BPF_H, BPF_B = 0x00, 0x08, 0x10
# ld/ldx mode
BPF_IMM, BPF_ABS, BPF_IND, BPF_MEM, BPF_LEN, BPF_MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
# alu/jmp operation
BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70,
)  # fmt: skip
BPF_NEG, BPF_MOD, BPF_XOR = 0x80, 0x90, 0xA0
BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET = 0x00, 0x10, 0x20, 0x30, 0x40
# operand source (alu, jmp) and return value source
BPF_K, BPF_X = 0x00, 0x08
BPF_A = 0x10
# misc
BPF_TAX, BPF_TXA = 0x00, 0x80


# The parts of an opcode: BPF_CLASS(code) is code & BPF_CLASS_MASK, and so on (bpf_common.h).
BPF_CLASS_MASK = 0x07
BPF_SIZE_MASK = 0x18
BPF_MODE_MASK = 0xE0
BPF_OP_MASK = 0xF0
BPF_SRC_MASK = 0x08
BPF_RVAL_MASK = 0x18
BPF_MISCOP_MASK = 0xF8


def bpf_class(code: int) -> int:
    return code & BPF_CLASS_MASK


def bpf_size(code: int) -> int:
    return code & BPF_SIZE_MASK


def bpf_mode(code: int) -> int:
    return code & BPF_MODE_MASK


def bpf_op(code: int) -> int:
    return code & BPF_OP_MASK


def bpf_src(code: int) -> int:
    return code & BPF_SRC_MASK


def bpf_rval(code: int) -> int:
    return code & BPF_RVAL_MASK


def bpf_miscop(code: int) -> int:
    return code & BPF_MISCOP_MASK
