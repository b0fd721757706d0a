"""Issue 8, capture filters: tcpdump expressions compiled by the system libpcap to classic BPF,
attached to the live socket before bind(), run offline by our cBPF interpreter.

The judges are tcpdump itself: ``tcpdump -ddd`` for the bytecode, ``tcpdump -r IN -w OUT EXPR``
for which frames an expression selects, and tcpdump beside a live capture for what the kernel
let through.
"""

from __future__ import annotations

import ctypes.util
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns import CAP4, CAP_IF, read_pcap, start_tcpdump, stats_block, stop, wait_for_line

from conftest import GOLDEN, GOLDEN_CASES, ROOT, run_cli
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sources import capture_filter as bpf
from pcapconstrictor.formats import bpf as fb
from tests import packets as p

EXPRESSIONS = [
    "tcp port 443",
    "udp",
    "ip6",
    "icmp or icmp6",
    "not arp",
    "vlan",
    "vlan 42 and tcp",
    "host 192.0.2.1",
    "net 198.51.100.0/24",
    "ip6 and src host 2001:db8::1",
    "ip[6:2] & 0x1fff != 0",
    "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0",
    "tcp[((tcp[12:1] & 0xf0) >> 2):1] = 0x17",
    "udp[8] & 0x80 != 0",
    "greater 200",
    "less 100",
    "ether broadcast",
    "ether multicast",
    "ether host 02:00:00:00:00:01",
    "portrange 400-500",
    "ip proto 1",
    "ip6 and tcp dst port 22",
    "len >= 60 and len <= 1000",
    "ip[0] & 0xf > 5",
    "(tcp or udp) and (port 443 or port 53) and not src net 192.0.2.0/28",
]
SNAPLENS = (65535, 262144, 96)
RECORDER = (sys.executable, "-m", "pcapconstrictor.engine")


def tcpdump_or_skip() -> str:
    path = shutil.which("tcpdump")
    if path is None:
        pytest.skip("tcpdump is not installed (Debian package tcpdump)")
    return path


def tcpdump_ddd(expression: str, snaplen: int) -> list[tuple[int, int, int, int]]:
    out = subprocess.run([tcpdump_or_skip(), "-y", "EN10MB", "-s", str(snaplen), "-ddd", expression],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert out.returncode == 0, out.stderr
    count, *lines = out.stdout.split("\n")
    program = [tuple(map(int, line.split())) for line in lines if line]
    assert len(program) == int(count)
    return program  # type: ignore[return-value]


# --- compiling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("snaplen", SNAPLENS)
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_bytecode_equals_tcpdump_ddd(expression, snaplen):
    assert bpf.compile_filter(expression, snaplen) == tcpdump_ddd(expression, snaplen)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [("tcp prot 80", "syntax error"), ("port 99999", "port 99999"),
     ("ether host 02:00", "illegal link layer address")],
)  # fmt: skip
def test_a_filter_that_does_not_compile_names_the_expression_and_its_problem(expression, problem):
    with pytest.raises(bpf.FilterError) as info:
        bpf.compile_filter(expression, 65535)
    assert str(info.value).startswith(f"'{expression}': ")
    assert problem in str(info.value)


def test_a_bad_filter_fails_the_run_before_any_output_exists(tmp_path):
    output = tmp_path / "out.pcap"
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\noutput = {output}\nfilter = tcp prot 80\n")
    result = run_cli("--config", str(config), "--offline-input", str(GOLDEN / "tls_test_2" / "input.pcap"))
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "Capture filter error: 'tcp prot 80': can't parse filter expression: syntax error\n"
    )
    assert result.stdout == b""
    assert not output.exists()


def test_missing_libpcap_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(bpf, "LIBPCAP_NAMES", ("libpcap-not-installed.so.0.8",))
    bpf.libpcap.cache_clear()
    try:
        with pytest.raises(bpf.FilterError) as info:
            bpf.compile_filter("tcp", 65535)
    finally:
        bpf.libpcap.cache_clear()
    assert "libpcap" in str(info.value) and "libpcap0.8" in str(info.value)


def test_an_empty_expression_is_no_filter():
    assert bpf.capture_filter("  ", 65535) is None


def test_the_kernel_copy_keeps_whole_frames_and_rejections():
    program = bpf.compile_filter("udp", 65535)
    kernel = bpf.for_kernel(program)
    returns = [(insn, kept) for insn, kept in zip(program, kernel, strict=True) if insn[0] == fb.BPF_RET]
    assert {(i[3], k[3]) for i, k in returns} == {(65535, bpf.KERNEL_ACCEPT), (0, 0)}
    assert [i for i in program if i[0] != fb.BPF_RET] == [k for k in kernel if k[0] != fb.BPF_RET]


# --- the interpreter -----------------------------------------------------------------------------


def frames() -> list[tuple[bytes, int]]:
    """(captured bytes, wire length): every kind the expressions above tell apart, plus short,
    cut and malformed frames whose loads fall outside the captured bytes."""
    tls = p.tls_record(p.APPDATA, 300)
    out = [
        p.tcp4_frame(tls, dport=443),
        p.tcp4_frame(b"GET /", dport=80, flags=p.SYN),
        p.tcp4_frame(tls, sport=443, dport=50000, src=p.SERVER4, dst=p.CLIENT4, flags=p.FIN_ACK),
        p.tcp4_frame(b"x", dport=22, options=b"\x01\x01\x01\x00"),
        p.udp4_frame(p.quic_initial(b"\x01" * 8, b"\x02" * 8), dport=443),
        p.udp4_frame(p.quic_short(b"\x01" * 8), dport=443),
        p.udp4_frame(b"\x00" * 30, dport=53, src=bytes([192, 0, 2, 3])),
        p.udp4_frame(b"\x00" * 30, dport=450),
        p.udp6_frame(b"\x00" * 600, dport=443),
        p.ethernet(0x86DD, p.ipv6(6, p.tcp(40000, 22, b"ssh"))),
        p.ethernet(0x86DD, p.ipv6(58, b"\x80\x00" + b"\x00" * 30)),
        p.ethernet(0x0800, p.ipv4(1, b"\x08\x00" + b"\x00" * 30)),
        p.ethernet(0x0800, p.ipv4(17, b"\x00" * 40, more_fragments=1, fragment_offset=0)),
        p.ethernet(0x0800, p.ipv4(17, b"\x00" * 40, fragment_offset=185)),
        p.ethernet(0x0806, b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20),
        p.ethernet(0x0800, p.ipv4(6, p.tcp(50000, 443, tls)), vlans=((0x8100, 42),)),
        p.ethernet(0x0800, p.ipv4(17, p.udp(5, 443, b"q" * 20)), vlans=((0x88A8, 43), (0x8100, 42))),
        b"\xff" * 6 + p.MAC_A + b"\x08\x00" + p.ipv4(17, p.udp(68, 67, b"\x00" * 250)),
        b"\x01\x00\x5e\x00\x00\x01" + p.MAC_A + b"\x08\x00" + p.ipv4(2, b"\x00" * 8),
        p.ethernet(0x0800, b"\x45\x00"),  # IPv4 cut inside its header
        b"\x02\x00",  # shorter than an Ethernet header
    ]
    cases = [(frame, len(frame)) for frame in out]
    cases += [(frame[:60], len(frame)) for frame in out if len(frame) > 60]  # snapped at 60 bytes
    return cases


def write_capture(path: Path, cases: list[tuple[bytes, int]]) -> Path:
    with PcapWriter(str(path), 65535) as writer:
        for index, (data, wirelen) in enumerate(cases):
            writer.write((1_700_000_000 + index) * 10**9, data, len(data), wirelen)
    return path


def tcpdump_selects(source: Path, expression: str, out: Path) -> Path:
    result = subprocess.run([tcpdump_or_skip(), "-r", str(source), "-w", str(out), expression],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return write_capture(tmp_path_factory.mktemp("bpf") / "synthetic.pcap", frames())


INPUTS = {"synthetic": None, **{case: GOLDEN / case / "input.pcap" for case in GOLDEN_CASES}}


@pytest.mark.parametrize("expression", EXPRESSIONS)
@pytest.mark.parametrize("source", sorted(INPUTS))
def test_the_interpreter_selects_the_frames_tcpdump_selects(tmp_path, synthetic, source, expression):
    path = INPUTS[source] or synthetic
    _, records = read_pcap(path)
    program = bpf.compile_filter(expression, 65535)
    ours = [r for r in records if bpf.run(program, r.data, r.orig_len)]
    _, theirs = read_pcap(tcpdump_selects(path, expression, tmp_path / "tcpdump.pcap"))
    assert ours == theirs


def run_program(program, data: bytes, wirelen: int | None = None) -> int:
    bpf.validate(program)
    return bpf.run(program, data, len(data) if wirelen is None else wirelen)


def ld(size: int, mode: int, k: int) -> tuple[int, int, int, int]:
    return (fb.BPF_LD | size | mode, 0, 0, k)


RET_A = (fb.BPF_RET | fb.BPF_A, 0, 0, 0)
RET_0 = (fb.BPF_RET | fb.BPF_K, 0, 0, 0)


def test_a_load_past_the_captured_bytes_rejects_the_frame():
    frame = bytes(range(20))
    assert run_program([ld(fb.BPF_W, fb.BPF_ABS, 16), RET_A], frame) == 0x10111213
    assert run_program([ld(fb.BPF_W, fb.BPF_ABS, 17), RET_A], frame) == 0  # would need byte 20
    assert run_program([ld(fb.BPF_B, fb.BPF_ABS, 0xFFFFF000), RET_A], frame) == 0  # kernel ancillary
    indirect = [(fb.BPF_LDX | fb.BPF_IMM, 0, 0, 18), ld(fb.BPF_H, fb.BPF_IND, 0), RET_A]
    assert run_program(indirect, frame) == 0x1213
    assert run_program([(fb.BPF_LDX | fb.BPF_IMM, 0, 0, 19), *indirect[1:]], frame) == 0


def test_msh_loads_four_times_the_low_nibble():
    program = [(fb.BPF_LDX | fb.BPF_B | fb.BPF_MSH, 0, 0, 1), (fb.BPF_MISC | fb.BPF_TXA, 0, 0, 0), RET_A]
    assert run_program(program, b"\x00\x46") == 24
    assert run_program(program, b"\x00") == 0


@pytest.mark.parametrize(
    ("op", "a", "operand", "result"),
    [(fb.BPF_ADD, 0xFFFFFFFF, 2, 1), (fb.BPF_SUB, 1, 2, 0xFFFFFFFF), (fb.BPF_MUL, 0x10000, 0x10000, 0),
     (fb.BPF_DIV, 7, 2, 3), (fb.BPF_MOD, 7, 4, 3), (fb.BPF_OR, 5, 2, 7), (fb.BPF_AND, 6, 3, 2),
     (fb.BPF_XOR, 6, 3, 5), (fb.BPF_LSH, 1, 31, 0x80000000), (fb.BPF_RSH, 0x80000000, 31, 1)],
)  # fmt: skip
def test_alu_operations_are_32_bit_with_constant_and_register_operands(op, a, operand, result):
    load = (fb.BPF_LD | fb.BPF_IMM, 0, 0, a)
    assert run_program([load, (fb.BPF_ALU | op | fb.BPF_K, 0, 0, operand), RET_A], b"") == result
    with_x = [load, (fb.BPF_LDX | fb.BPF_IMM, 0, 0, operand), (fb.BPF_ALU | op | fb.BPF_X, 0, 0, 0), RET_A]
    assert run_program(with_x, b"") == result


def test_division_by_zero_rejects_the_frame():
    program = [(fb.BPF_LD | fb.BPF_IMM, 0, 0, 9), (fb.BPF_ALU | fb.BPF_DIV | fb.BPF_X, 0, 0, 0), RET_A]
    assert run_program(program, b"") == 0


def test_negation_length_and_scratch_memory():
    program = [
        (fb.BPF_LD | fb.BPF_W | fb.BPF_LEN, 0, 0, 0),  # A = wire length
        (fb.BPF_ST, 0, 0, 15),
        (fb.BPF_ALU | fb.BPF_NEG, 0, 0, 0),
        (fb.BPF_LDX | fb.BPF_MEM, 0, 0, 15),  # X = wire length
        (fb.BPF_ALU | fb.BPF_ADD | fb.BPF_X, 0, 0, 0),  # -len + len = 0
        (fb.BPF_JMP | fb.BPF_JEQ | fb.BPF_K, 1, 0, 0),
        RET_0,
        (fb.BPF_STX, 0, 0, 3),
        (fb.BPF_LD | fb.BPF_MEM, 0, 0, 3),  # A = wire length again
        (fb.BPF_ALU | fb.BPF_SUB | fb.BPF_K, 0, 0, 1493),
        RET_A,
    ]
    assert run_program(program, b"abc", wirelen=1500) == 7


def test_jumps_compare_unsigned_and_test_bits():
    def jump(op: int, a: int, k: int) -> int:
        return run_program([(fb.BPF_LD | fb.BPF_IMM, 0, 0, a), (fb.BPF_JMP | op | fb.BPF_K, 1, 0, k),
                            RET_0, (fb.BPF_RET | fb.BPF_K, 0, 0, 1)], b"")  # fmt: skip

    assert jump(fb.BPF_JGT, 0xFFFFFFFF, 1) == 1  # unsigned: not -1 > 1
    assert jump(fb.BPF_JGE, 5, 5) == 1 and jump(fb.BPF_JGT, 5, 5) == 0
    assert jump(fb.BPF_JSET, 6, 2) == 1 and jump(fb.BPF_JSET, 6, 1) == 0
    always = [(fb.BPF_JMP | fb.BPF_JA, 0, 0, 1), RET_0, (fb.BPF_RET | fb.BPF_K, 0, 0, 9)]
    assert run_program(always, b"") == 9


@pytest.mark.parametrize(
    ("program", "problem"),
    [([(fb.BPF_JMP | fb.BPF_JEQ | fb.BPF_K, 0, 1, 0), RET_A], "jumps past the end"),
     ([(fb.BPF_ST, 0, 0, 16), RET_A], "scratch word 16"),
     ([(fb.BPF_LD | fb.BPF_IMM, 0, 0, 1)], "must end with a return"),
     ([], "1 to 4096 instructions"),
     ([(fb.BPF_ALU | fb.BPF_NEG | fb.BPF_X, 0, 0, 0), RET_A], "unknown opcode 0x008c")],
)  # fmt: skip
def test_programs_the_kernel_would_refuse_are_refused(program, problem):
    with pytest.raises(bpf.FilterError, match=problem):
        bpf.validate(program)


# --- offline runs -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", GOLDEN_CASES)
@pytest.mark.parametrize("how", ["--filter", "trailing", "config"])
def test_offline_filter_gives_what_a_tcpdump_filtered_input_gives(tmp_path, case, how):
    """The policy sees exactly the selected frames: constricting the input with a filter is
    byte for byte constricting tcpdump's selection of it."""
    expression = "tcp port 443 or (udp and not src port 443)"
    source = GOLDEN / case / "input.pcap"
    selected = tcpdump_selects(source, expression, tmp_path / "selected.pcap")
    config = GOLDEN / case / "config.ini"
    ours, expected = tmp_path / "ours.pcap", tmp_path / "expected.pcap"
    args = ["--config", str(config), "--offline-input", str(source), "--output", str(ours)]
    if how == "--filter":
        args += ["--filter", expression]
    elif how == "trailing":
        args += expression.split()
    else:
        filtered_config = tmp_path / "filtered.ini"
        filtered_config.write_text(config.read_text() + f"\n[capture]\nfilter = {expression}\n")
        args[1] = str(filtered_config)
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    reference = run_cli("--config", str(config), "--offline-input", str(selected), "--output", str(expected))
    assert reference.returncode == 0, reference.stderr
    assert ours.read_bytes() == expected.read_bytes()
    assert 0 < len(read_pcap(ours)[1]) < len(read_pcap(source)[1])
    # the stats block (after the three input/output lines) counts the selected frames only,
    # then says how many the filter rejected
    ours_block = result.stdout.decode().splitlines()[3:]
    assert ours_block[:-1] == reference.stdout.decode().splitlines()[3:]
    assert ours_block[-1] == f"filtered_out: {len(read_pcap(source)[1]) - len(read_pcap(ours)[1])}"


def test_filter_option_and_trailing_expression_together_are_a_usage_error():
    config = ROOT / "examples" / "config.ini"
    result = run_cli("--config", str(config), "--offline-input", "x.pcap", "--filter", "udp", "tcp")
    assert result.returncode == 1
    assert result.stderr.decode().startswith("Usage:\n")


# --- live: the kernel runs the same program ------------------------------------------------------


@pytest.mark.parametrize("backend", ["recvmsg", "tpacket_v3"])
def test_live_and_offline_filtering_select_the_same_frames(ns, tmp_path, backend):
    expression = "udp dst port 9 and greater 100"
    output, everything = tmp_path / "live.pcap", tmp_path / "tcpdump.pcap"
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\ninterface = {CAP_IF}\nbackend = {backend}\noutput = {output}\n")
    tcpdump = start_tcpdump(ns, CAP_IF, everything)
    recorder = ns.start(ns.capture, *RECORDER, "--config", str(config), *expression.split())
    banner = wait_for_line(recorder, "stdout", "Press Ctrl+C to stop.\n")
    assert f"filter: {expression}\n" in banner
    for port, size in (("9", "200"), ("9", "20"), ("10", "200")):
        ns.traffic(ns.peer, "udp", CAP4, port, "15", size)
    time.sleep(0.5)
    stdout, stderr = stop(recorder)
    stop(tcpdump)
    assert recorder.returncode == 0, stderr
    _, ours = read_pcap(output)
    offline = tmp_path / "offline.pcap"
    result = run_cli("--config", str(config), "--offline-input", str(everything), "--output", str(offline),
                     "--filter", expression)  # fmt: skip
    assert result.returncode == 0, result.stderr
    _, selected = read_pcap(offline)
    assert len(read_pcap(everything)[1]) >= 45
    assert len(ours) == 15
    assert [(r.incl_len, r.orig_len, r.data) for r in ours] == [
        (r.incl_len, r.orig_len, r.data) for r in selected
    ]
    # the kernel dropped the rest before the socket: it never counted them for us
    assert stats_block(stdout)["kernel_packets"] == 15
