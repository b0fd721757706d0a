"""Capture filters (issue 8): tcpdump expressions compiled to classic BPF by the system libpcap,
attached to the live socket, and run offline by a small cBPF interpreter.

libpcap is loaded with ctypes from its runtime package (Debian ``libpcap0.8``, present wherever
tcpdump is): no compiler and no headers at install time.  ``pcap_open_dead`` + ``pcap_compile``
give the same program ``tcpdump -y EN10MB -s SNAPLEN -ddd EXPR`` prints.  The interpreter follows
the kernel's and libpcap's semantics: a load outside the frame rejects it, division by zero
rejects it, any non-zero return value accepts it.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from dataclasses import dataclass
from functools import cache

from pcapconstrictor.formats.derived import bpf as fb

from .record_batch import RecordBatch

DLT_EN10MB = 1
NETMASK = 0  # as tcpdump when it reads a file: "ip broadcast" means 255.255.255.255 (or 0.0.0.0)
KERNEL_ACCEPT = 0xFFFFFFFF  # "keep the whole frame": the policy, not the filter, does the snap clamp
LIBPCAP_NAMES = ("libpcap.so.0.8", "libpcap.so.1")
_INSN = fb.sock_filter
_FPROG = fb.sock_fprog
_PROGRAM = fb.bpf_program
_U32 = 0xFFFFFFFF
assert list(_INSN.fields) == ["code", "jt", "jf", "k"], _INSN.fields

Instruction = tuple[int, int, int, int]  # (code, jt, jf, k), as tcpdump -ddd prints them


class FilterError(Exception):
    """A filter that cannot be used; ``str()`` says why in the user's terms."""


# --- compiling with libpcap --------------------------------------------------------------------


@cache
def libpcap() -> ctypes.CDLL:
    """The system libpcap, its compile functions typed; FilterError if it is not installed."""
    import ctypes.util  # only when a filter is compiled: it imports subprocess and tempfile

    names = [n for n in (ctypes.util.find_library("pcap"), *LIBPCAP_NAMES) if n]
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    else:
        raise FilterError("capture filters need the libpcap runtime, which is not installed "
                          "(Debian package libpcap0.8, which tcpdump also installs)")  # fmt: skip
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                 ctypes.c_uint32]  # fmt: skip
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.c_void_p]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    return lib


# pcap_open_dead takes the platform's DLT_*, which differs from the file's LINKTYPE_* only
# below 104 (pcap/dlt.h); on Linux that is raw IP alone.
_DLT_OF_LINKTYPE = {101: 12}


def compile_filter(expression: str, snaplen: int, optimize: bool = True,
                   linktype: int = DLT_EN10MB) -> list[Instruction]:  # fmt: skip
    """The classic BPF program of a tcpdump expression, for frames of ``linktype`` (a
    LINKTYPE_* value, Ethernet unless told) cut to ``snaplen``."""
    lib = libpcap()
    handle = lib.pcap_open_dead(_DLT_OF_LINKTYPE.get(linktype, linktype), snaplen)
    if not handle:
        raise FilterError("libpcap could not create a handle to compile the capture filter")
    program = ctypes.create_string_buffer(_PROGRAM.size)
    try:
        text = expression.encode("utf-8", "surrogateescape")
        if lib.pcap_compile(handle, program, text, int(optimize), NETMASK) != 0:
            reason = (lib.pcap_geterr(handle) or b"unknown error").decode("utf-8", "replace")
            raise FilterError(f"'{expression}': {reason}")
        count, address = _PROGRAM.struct.unpack(program.raw)
        try:
            raw = ctypes.string_at(address, count * _INSN.size)
        finally:
            lib.pcap_freecode(program)
    finally:
        lib.pcap_close(handle)
    instructions = list(_INSN.struct.iter_unpack(raw))
    validate(instructions)
    return instructions


def validate(program: list[Instruction]) -> None:
    """What the kernel checks before it attaches a program (net/core/filter.c), so the
    interpreter never jumps or indexes out of the program or the scratch memory."""
    if not 0 < len(program) <= fb.BPF_MAXINSNS:
        limit = fb.BPF_MAXINSNS
        raise FilterError(f"a classic BPF program has 1 to {limit} instructions, not {len(program)}")
    for pc, (code, jt, jf, k) in enumerate(program):
        if code not in _KNOWN:
            raise FilterError(f"BPF instruction {pc} has an unknown opcode {code:#06x}")
        kind = code & fb.BPF_CLASS_MASK
        if kind == fb.BPF_JMP:
            targets = (k,) if (code & fb.BPF_OP_MASK) == fb.BPF_JA else (jt, jf)
            if any(pc + 1 + t >= len(program) for t in targets):
                raise FilterError(f"BPF instruction {pc} jumps past the end of the program")
        mode = code & fb.BPF_MODE_MASK
        stores = kind in (fb.BPF_ST, fb.BPF_STX)
        uses_memory = stores or kind in (fb.BPF_LD, fb.BPF_LDX) and mode == fb.BPF_MEM
        if uses_memory and k >= fb.BPF_MEMWORDS:
            raise FilterError(f"BPF instruction {pc} uses scratch word {k} (there are {fb.BPF_MEMWORDS})")
    if (program[-1][0] & fb.BPF_CLASS_MASK) != fb.BPF_RET:
        raise FilterError("a classic BPF program must end with a return instruction")


def for_kernel(program: list[Instruction]) -> list[Instruction]:
    """The program with every accepting ``ret #k`` made ``ret #0xffffffff``, as libpcap does
    on Linux: the kernel then never cuts the frame, so MSG_TRUNC and tp_len still give its
    wire length (DECISIONS #3); the snap lengths are applied after the policy as always."""
    ret_k = fb.BPF_RET | fb.BPF_K
    return [(c, jt, jf, KERNEL_ACCEPT if c == ret_k and k else k) for c, jt, jf, k in program]


def attach(sock, program: list[Instruction]) -> None:
    """``setsockopt(SOL_SOCKET, SO_ATTACH_FILTER, sock_fprog)``; raises OSError.  The kernel
    copies the instructions, so the buffer only has to live through the call."""
    code = b"".join(_INSN.struct.pack(*insn) for insn in for_kernel(program))
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = _FPROG.struct.pack(len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, fb.SO_ATTACH_FILTER, fprog)


# --- the offline interpreter -----------------------------------------------------------------

_LD_W_ABS = fb.BPF_LD | fb.BPF_W | fb.BPF_ABS
_LD_H_ABS = fb.BPF_LD | fb.BPF_H | fb.BPF_ABS
_LD_B_ABS = fb.BPF_LD | fb.BPF_B | fb.BPF_ABS
_LD_W_IND = fb.BPF_LD | fb.BPF_W | fb.BPF_IND
_LD_H_IND = fb.BPF_LD | fb.BPF_H | fb.BPF_IND
_LD_B_IND = fb.BPF_LD | fb.BPF_B | fb.BPF_IND
_LD_LEN = fb.BPF_LD | fb.BPF_W | fb.BPF_LEN
_LDX_LEN = fb.BPF_LDX | fb.BPF_W | fb.BPF_LEN
_LD_IMM = fb.BPF_LD | fb.BPF_IMM
_LDX_IMM = fb.BPF_LDX | fb.BPF_IMM
_LD_MEM = fb.BPF_LD | fb.BPF_MEM
_LDX_MEM = fb.BPF_LDX | fb.BPF_MEM
_LDX_MSH = fb.BPF_LDX | fb.BPF_B | fb.BPF_MSH
_RET_K = fb.BPF_RET | fb.BPF_K
_RET_A = fb.BPF_RET | fb.BPF_A
_MISC_TAX = fb.BPF_MISC | fb.BPF_TAX
_MISC_TXA = fb.BPF_MISC | fb.BPF_TXA
_LOADS = {_LD_W_ABS: 4, _LD_H_ABS: 2, _LD_B_ABS: 1, _LD_W_IND: 4, _LD_H_IND: 2, _LD_B_IND: 1}
_ALU_OPS = (fb.BPF_ADD, fb.BPF_SUB, fb.BPF_MUL, fb.BPF_DIV, fb.BPF_OR, fb.BPF_AND, fb.BPF_LSH, fb.BPF_RSH,
            fb.BPF_MOD, fb.BPF_XOR)  # fmt: skip
_KNOWN = {
    *_LOADS, _LD_LEN, _LDX_LEN, _LD_IMM, _LDX_IMM, _LD_MEM, _LDX_MEM, _LDX_MSH, _RET_K, _RET_A,
    _MISC_TAX, _MISC_TXA, fb.BPF_ST, fb.BPF_STX, fb.BPF_ALU | fb.BPF_NEG, fb.BPF_JMP | fb.BPF_JA,
    *(fb.BPF_ALU | op | src for op in _ALU_OPS for src in (fb.BPF_K, fb.BPF_X)),
    *(fb.BPF_JMP | op | src for op in (fb.BPF_JEQ, fb.BPF_JGT, fb.BPF_JGE, fb.BPF_JSET)
      for src in (fb.BPF_K, fb.BPF_X)),
}  # fmt: skip
_READ = {4: struct.Struct(">I").unpack_from, 2: struct.Struct(">H").unpack_from}


def _alu(op: int, a: int, b: int) -> int | None:
    """One ALU operation on 32-bit words; None for a division by zero (rejects the frame)."""
    if op == fb.BPF_ADD:
        return (a + b) & _U32
    if op == fb.BPF_SUB:
        return (a - b) & _U32
    if op == fb.BPF_MUL:
        return (a * b) & _U32
    if op in (fb.BPF_DIV, fb.BPF_MOD):
        if b == 0:
            return None
        return a // b if op == fb.BPF_DIV else a % b
    if op == fb.BPF_OR:
        return a | b
    if op == fb.BPF_AND:
        return a & b
    if op == fb.BPF_XOR:
        return a ^ b
    if op == fb.BPF_LSH:
        return (a << b) & _U32 if b < 32 else 0
    if op == fb.BPF_RSH:
        return a >> b if b < 32 else 0
    if op == fb.BPF_NEG:
        return -a & _U32
    raise FilterError(f"unknown BPF ALU operation {op:#x}")


def _jump(op: int, a: int, b: int) -> bool:
    if op == fb.BPF_JEQ:
        return a == b
    if op == fb.BPF_JGT:
        return a > b
    if op == fb.BPF_JGE:
        return a >= b
    if op == fb.BPF_JSET:
        return bool(a & b)
    raise FilterError(f"unknown BPF jump {op:#x}")


def run(program: list[Instruction], data: bytes | memoryview, wirelen: int) -> int:
    """Run a validated program on one frame (``data`` as captured, ``wirelen`` its original
    length); the return value is the number of bytes to keep, 0 = reject."""
    a = x = pc = 0
    memory = [0] * fb.BPF_MEMWORDS
    size = len(data)
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        kind = code & 0x07
        if code in _LOADS:
            at = k if code & 0xE0 == fb.BPF_ABS else x + k
            width = _LOADS[code]
            if at + width > size:  # past the captured bytes (also the kernel's negative offsets)
                return 0
            a = data[at] if width == 1 else _READ[width](data, at)[0]
        elif kind == fb.BPF_JMP:
            op = code & 0xF0
            if op == fb.BPF_JA:
                pc += k
            else:
                pc += jt if _jump(op, a, x if code & fb.BPF_X else k) else jf
        elif code == _RET_K:
            return k
        elif code == _RET_A:
            return a
        elif code == _LDX_MSH:
            if k >= size:
                return 0
            x = (data[k] & 0x0F) << 2
        elif kind == fb.BPF_ALU:
            result = _alu(code & 0xF0, a, x if code & fb.BPF_X else k)
            if result is None:
                return 0
            a = result
        elif code == _LD_IMM:
            a = k
        elif code == _LDX_IMM:
            x = k
        elif code == _LD_MEM:
            a = memory[k]
        elif code == _LDX_MEM:
            x = memory[k]
        elif code == _LD_LEN:
            a = wirelen
        elif code == _LDX_LEN:
            x = wirelen
        elif kind == fb.BPF_ST:
            memory[k] = a
        elif kind == fb.BPF_STX:
            memory[k] = x
        elif code == _MISC_TAX:
            x = a
        elif code == _MISC_TXA:
            a = x
        else:
            raise FilterError(f"unknown BPF instruction {code:#06x} at {pc - 1}")


@dataclass(frozen=True)
class CaptureFilter:
    """A compiled capture filter: the expression as given and its program."""

    expression: str
    program: tuple[Instruction, ...]

    def select(self, frames):
        """The frames of ``(ts_ns, data, orig_len)`` the filter accepts, lazily."""
        program = self.program
        for frame in frames:
            if run(program, frame[1], frame[2]):  # type: ignore[arg-type]
                yield frame

    def select_batches(self, batches):
        """:meth:`select` over lists of frames: lists of the accepted ones."""
        for batch in batches:
            kept = RecordBatch(self.select(batch))
            if kept:
                kept.linktype = getattr(batch, "linktype", DLT_EN10MB)  # what the frames are
                yield kept


@cache
def capture_filter(expression: str, snaplen: int, linktype: int = DLT_EN10MB) -> CaptureFilter | None:
    """The compiled filter for frames of ``linktype``, or None for an empty expression (no
    filter).  Cached: a run compiles it once to fail early and uses it later."""
    expression = expression.strip()
    if not expression:
        return None
    return CaptureFilter(expression, tuple(compile_filter(expression, snaplen, linktype=linktype)))
