"""Issue 8, pcapng output: one Section Header Block naming the tool and the policy, one
Interface Description Block (if_name, if_tsresol = 9, snaplen, if_filter), Enhanced Packet
Blocks with nanosecond timestamps and the original length.

Judges: capinfos and tshark read every file; the records must be the classic PCAP output's
records with the nanoseconds the input had.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns import CAP4, CAP_IF, read_pcap, stop, wait_for_line

from conftest import GOLDEN, GOLDEN_CASES, run_cli
from pcapconstrictor.formats import pcapng as ng

RECORDER = (sys.executable, "-m", "pcapconstrictor.engine")
BASE_NS = 1_700_000_000_123_456_789


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package tshark)")
    return path


def capinfos(path: Path) -> str:
    result = subprocess.run([tool("capinfos"), "-M", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    args = [tool("tshark"), "-r", str(path), "-T", "fields"]
    for field in fields:
        args += ["-e", field]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line.split("\t") for line in result.stdout.splitlines()]


def nanosecond_copy(source: Path, target: Path, step_ns: int = 1_000_000_007) -> list[int]:
    """``source``'s records in a nanosecond PCAP (written here with plain struct), timestamps
    BASE_NS + i * step_ns; returns them."""
    _, records = read_pcap(source)
    out = [struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)]
    stamps = []
    for index, record in enumerate(records):
        ts = BASE_NS + index * step_ns
        stamps.append(ts)
        header = struct.pack("<IIII", ts // 10**9, ts % 10**9, record.incl_len, record.orig_len)
        out.append(header + record.data)
    target.write_bytes(b"".join(out))
    return stamps


def constrict(tmp_path: Path, case: str, output: Path, *extra: str, source: Path | None = None):
    config = tmp_path / f"{case}.ini"
    config.write_text((GOLDEN / case / "config.ini").read_text() + "\n[capture]\ninterface = eth7\n")
    source = source or GOLDEN / case / "input.pcap"
    result = run_cli("--config", str(config), "--offline-input", str(source), "--output", str(output), *extra)
    assert result.returncode == 0, result.stderr
    return result


def blocks(path: Path):
    """The file parsed with the formats/pcapng schema (and built back byte for byte)."""
    raw = path.read_bytes()
    parsed = ng.pcapng_file.parse(raw)
    assert ng.pcapng_file.build(parsed) == raw
    return parsed


def options(block) -> dict[int, bytes]:
    return {o.option_code: o.option_value for o in block.body.options}


# --- what capinfos and tshark show ---------------------------------------------------------------


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_capinfos_shows_nanosecond_resolution_the_interface_the_tool_and_the_policy(tmp_path, case):
    output = tmp_path / "out.pcapng"
    constrict(tmp_path, case, output)
    info = capinfos(output)
    assert re.search(r"File type:\s+(Wireshark/... - )?pcapng\n", info), info
    assert re.search(r"File timestamp precision:\s+nanoseconds \(9\)", info), info
    assert re.search(r"Capture application:\s+pcapconstrictor-afpacket 0\.1\.0", info), info
    assert re.search(r"Capture comment:\s+Constricted by pcapconstrictor-afpacket 0\.1\.0 with policy "
                     r"final_only \(shipped\)", info), info  # fmt: skip
    assert "Number of interfaces in file: 1" in info
    assert re.search(r"Name = eth7\n", info), info
    assert re.search(r"Time precision = nanoseconds \(9\)", info), info
    header, classic = read_pcap(GOLDEN / case / "constricted.pcap")
    assert re.search(rf"Capture length = {header[5]}\n", info), info  # the classic header's snaplen
    assert re.search(rf"Number of packets:\s+{len(classic)}\n", info), info


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_records_are_the_classic_outputs_with_whole_nanoseconds(tmp_path, case):
    source = tmp_path / "ns.pcap"
    stamps = nanosecond_copy(GOLDEN / case / "input.pcap", source)
    output = tmp_path / "out.pcapng"
    constrict(tmp_path, case, output, source=source)
    _, classic = read_pcap(GOLDEN / case / "constricted.pcap")  # the golden: same frames, same cuts
    rows = tshark_fields(output, "frame.interface_name", "frame.time_epoch", "frame.len", "frame.cap_len")
    assert [row[0] for row in rows] == ["eth7"] * len(classic)
    assert [row[1].replace(".", "") for row in rows] == [str(ts) for ts in stamps]
    assert [(int(row[2]), int(row[3])) for row in rows] == [(r.orig_len, r.incl_len) for r in classic]
    epbs = [b for b in blocks(output) if b.block_type == ng.BLOCK_TYPE_EPB]
    assert [(b.body.timestamp_upper << 32 | b.body.timestamp_lower) for b in epbs] == stamps
    assert [(b.body.captured_packet_length, b.body.original_packet_length, b.body.packet_data)
            for b in epbs] == [(r.incl_len, r.orig_len, r.data) for r in classic]  # fmt: skip


def test_the_file_is_one_section_one_interface_then_packets(tmp_path):
    output = tmp_path / "out.pcapng"
    constrict(tmp_path, "tls_test_2", output, "--filter", "tcp")
    shb, idb, *epbs = blocks(output)
    assert shb.block_type == ng.BLOCK_TYPE_SHB and shb.body.byte_order_magic == ng.BYTE_ORDER_MAGIC
    assert (shb.body.major_version, shb.body.minor_version, shb.body.section_length) == (1, 0, -1)
    assert options(shb)[ng.OPT_COMMENT].startswith(b"Constricted by pcapconstrictor-afpacket")
    assert idb.block_type == ng.BLOCK_TYPE_IDB
    golden_snaplen = read_pcap(GOLDEN / "tls_test_2" / "constricted.pcap")[0][5]
    assert (idb.body.linktype, idb.body.snaplen) == (1, golden_snaplen)
    assert options(idb) == {ng.IF_NAME: b"eth7", ng.IF_TSRESOL: b"\x09", ng.IF_FILTER: b"\x00tcp",
                            ng.OPT_ENDOFOPT: b""}  # fmt: skip
    assert epbs and {b.block_type for b in epbs} == {ng.BLOCK_TYPE_EPB}
    assert {b.body.interface_id for b in epbs} == {0}
    assert all(b.block_total_length % 4 == 0 for b in epbs)
    tshark_filter = subprocess.run([tool("capinfos"), "-I", str(output)], capture_output=True, text=True)
    assert "Filter string = tcp" in tshark_filter.stdout


def test_policy_from_a_rule_file_is_named_in_the_section_comment(tmp_path):
    output = tmp_path / "out.pcapng"
    rules = Path(__file__).resolve().parent.parent / "rules" / "stream.rules"
    constrict(tmp_path, "tls_test_2", output, "--rules", str(rules))
    assert f"with policy rules {rules}:" in options(blocks(output)[0])[ng.OPT_COMMENT].decode()


# --- choosing the format -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "setting", "magic"),
    [("out.pcapng", None, b"\x0a\x0d\x0d\x0a"), ("out.PCAPNG", None, b"\x0a\x0d\x0d\x0a"),
     ("out.pcap", None, b"\xd4\xc3\xb2\xa1"), ("out.cap", None, b"\xd4\xc3\xb2\xa1"),
     ("out.pcap", "pcapng", b"\x0a\x0d\x0d\x0a"), ("out.pcapng", "pcap", b"\xd4\xc3\xb2\xa1")],
)  # fmt: skip
def test_format_follows_the_extension_unless_capture_format_says(tmp_path, name, setting, magic):
    config = tmp_path / "c.ini"
    chosen = f"format = {setting}\n" if setting else ""
    config.write_text(f"[capture]\noutput = {tmp_path / name}\n{chosen}")
    result = run_cli("--config", str(config), "--offline-input", str(GOLDEN / "tls_test_2" / "input.pcap"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / name).read_bytes()[:4] == magic


def test_an_unknown_format_is_a_configuration_error(tmp_path):
    config = tmp_path / "c.ini"
    config.write_text("[capture]\nformat = erf\n")
    result = run_cli("--config", str(config), "--offline-input", "in.pcap")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"Configuration error: {config}:2: invalid value for capture.format; "
        "expected auto, pcap, or pcapng: format = erf\n"
    )


def test_classic_pcap_output_is_unchanged_byte_for_byte(tmp_path):
    for case in GOLDEN_CASES:
        output = tmp_path / f"{case}.pcap"
        result = run_cli("--config", str(GOLDEN / case / "config.ini"), "--offline-input",
                         str(GOLDEN / case / "input.pcap"), "--output", str(output))  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert output.read_bytes() == (GOLDEN / case / "constricted.pcap").read_bytes()


def test_an_empty_capture_is_a_valid_pcapng_with_no_packet(tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    output = tmp_path / "out.pcapng"
    constrict(tmp_path, "tls_test_2", output, source=empty)
    assert [b.block_type for b in blocks(output)] == [ng.BLOCK_TYPE_SHB, ng.BLOCK_TYPE_IDB]
    assert re.search(r"Number of packets:\s+0\n", capinfos(output))


# --- live --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["recvmsg", "tpacket_v3"])
def test_live_pcapng_names_the_interface_and_keeps_kernel_nanoseconds(ns, tmp_path, backend):
    output = tmp_path / "live.pcapng"
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\ninterface = {CAP_IF}\nbackend = {backend}\noutput = {output}\n")
    recorder = ns.start(ns.capture, *RECORDER, "--config", str(config), "udp")
    wait_for_line(recorder, "stdout", "Press Ctrl+C to stop.\n")
    ns.traffic(ns.peer, "udp", CAP4, "9", "12", "300")
    time.sleep(0.5)
    _, stderr = stop(recorder)
    assert recorder.returncode == 0, stderr
    info = capinfos(output)
    assert re.search(rf"Name = {CAP_IF}\n", info) and "Filter string = udp" in info, info
    assert re.search(r"Time precision = nanoseconds \(9\)", info), info
    rows = tshark_fields(output, "frame.interface_name", "frame.time_epoch", "frame.len")
    assert len(rows) == 12 and {row[0] for row in rows} == {CAP_IF}
    assert {int(row[2]) for row in rows} == {14 + 20 + 8 + 300}
    nanos = [int(row[1].split(".")[1]) for row in rows]
    assert any(n % 1000 for n in nanos)  # kernel timestamps carry nanoseconds, not whole microseconds
