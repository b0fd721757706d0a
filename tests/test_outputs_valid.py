"""Every PCAP the recorder writes is valid to independent tools (issue 6, part 2).

The offline CLI runs on the golden inputs and on fuzzed-but-valid captures (lying TLS record
lengths, odd QUIC headers, mutated and truncated frames, every input byte order and
precision, an empty input, jumbo frames, a tiny snap length).  Each output is judged by
``capinfos`` (record count, header snaplen) and ``tshark -r`` (every record's wire and
captured length, its timestamp), and compared with our own reader, with the input, and with
the stats the recorder printed.
"""

from __future__ import annotations

import random
import re
import shutil
import struct
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from test_fuzz_policy import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    golden_frames,
    ip_frame,
    length_fields,
    mutate,
    quic_datagram,
    tcp,
    tls_stream,
    udp,
)

from conftest import GOLDEN, GOLDEN_CASES, run_cli
from pcapconstrictor.engine.config import parse_config_text
from pcapconstrictor.engine.sources.pcap_reader import PcapReader

MAGICS = {  # (big endian, nanosecond) -> magic as written
    (False, False): b"\xd4\xc3\xb2\xa1",
    (True, False): b"\xa1\xb2\xc3\xd4",
    (False, True): b"\x4d\x3c\xb2\xa1",
    (True, True): b"\xa1\xb2\x3c\x4d",
}
DAMAGE = re.compile(r"damaged|corrupt|cut short|isn't a capture file|appears to have been cut", re.I)


def need_wireshark_tools() -> None:
    missing = [tool for tool in ("tshark", "capinfos") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian packages tshark, wireshark-common)")


def write_pcap(path: Path, records: list[tuple[int, bytes, int]], big_endian=False, nanosecond=False,
               snaplen=65535) -> None:  # fmt: skip
    """A classic PCAP of ``(ts_ns, data, orig_len)`` records, in any byte order and precision."""
    order = ">" if big_endian else "<"
    out = MAGICS[(big_endian, nanosecond)] + struct.pack(order + "HHiIII", 2, 4, 0, 0, snaplen, 1)
    for ts_ns, data, orig in records:
        sec, frac = divmod(ts_ns if nanosecond else ts_ns // 1000, 10**9 if nanosecond else 10**6)
        out += struct.pack(order + "IIII", sec, frac, len(data), orig) + data
    path.write_bytes(out)


def read_records(path: Path) -> list[tuple[int, bytes, int]]:
    with PcapReader(str(path)) as reader:
        return list(reader)


def tshark_records(path: Path) -> list[tuple[int, int, int]]:
    """(frame.len, frame.cap_len, timestamp in ns) of each record, as tshark reads them."""
    out = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.len", "-e", "frame.cap_len",
         "-e", "frame.time_epoch"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert not DAMAGE.search(out.stderr), out.stderr
    rows = []
    for line in out.stdout.splitlines():
        wire, captured, epoch = line.split("\t")
        rows.append((int(wire), int(captured), int(Decimal(epoch) * 10**9)))
    return rows


def capinfos(path: Path) -> list[tuple[str, str]]:
    """capinfos' (field, value) lines: record count (-c, exact with -M) and snaplen (-l)."""
    out = subprocess.run(["capinfos", "-M", "-c", "-l", str(path)], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert not DAMAGE.search(out.stderr + out.stdout), out.stderr
    pairs = (line.split(":", 1) for line in out.stdout.splitlines() if ":" in line)
    return [(k.strip(), v.strip()) for k, v in pairs]


def run_offline(tmp_path: Path, config_text: str, input_path: Path) -> tuple[Path, dict[str, int]]:
    out = tmp_path / f"{input_path.stem}.out.pcap"
    config = tmp_path / f"{input_path.stem}.ini"
    config.write_text(f"{config_text}\n[capture]\noutput = {out}\n")
    result = run_cli("--config", str(config), "--offline-input", str(input_path))
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "Offline feed completed."
    return out, {k: int(v) for k, v in (line.split(": ") for line in lines[3:])}


def judge(tmp_path: Path, config_text: str, input_path: Path) -> list[tuple[int, bytes, int]]:
    """Run the CLI and hold its output against capinfos, tshark, our reader, the input and the
    printed stats; return the output records."""
    config = parse_config_text(config_text, "judge.ini")
    snaplen = min(config["capture.default_snaplen"], config["capture.max_capture_len"])
    out, stats = run_offline(tmp_path, config_text, input_path)
    given = read_records(input_path)
    written = read_records(out)
    assert len(written) == len(given) == stats["packets_total"] == stats["packets_written"]
    info = capinfos(out)
    assert ("Number of packets", str(len(written))) in info
    assert ("Packet size limit", f"file hdr: {snaplen} bytes") in info
    seen = tshark_records(out)
    assert [(wire, captured) for wire, captured, _ in seen] == [(orig, len(d)) for _, d, orig in written]
    for (ts, data, orig), (out_ts, out_data, out_orig), (_, _, tshark_ts) in zip(given, written, seen,
                                                                                strict=True):  # fmt: skip
        assert out_data == data[: len(out_data)] and len(out_data) <= min(len(data), snaplen)
        assert out_orig == orig
        assert out_ts == tshark_ts == ts // 1000 * 1000  # whole microseconds (SPEC §11.3)
    assert stats["bytes_input"] == sum(len(d) for _, d, _ in given)
    assert stats["bytes_output"] == sum(len(d) for _, d, _ in written)
    assert out.stat().st_size == 24 + 16 * len(written) + stats["bytes_output"]
    return written


# --- the golden inputs -------------------------------------------------------------------------


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_constricted_golden_outputs_are_valid_to_capinfos_and_tshark(case, tmp_path):
    need_wireshark_tools()
    written = judge(tmp_path, (GOLDEN / case / "config.ini").read_text(), GOLDEN / case / "input.pcap")
    assert written == read_records(GOLDEN / case / "constricted.pcap")


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_outputs_with_the_default_config_are_valid_to_capinfos_and_tshark(case, tmp_path):
    need_wireshark_tools()
    judge(tmp_path, "", GOLDEN / case / "input.pcap")


# --- fuzzed but valid inputs -------------------------------------------------------------------

T0 = 1_700_000_000 * 10**9


def mutated_golden(rnd: random.Random) -> list[tuple[int, bytes, int]]:
    """Golden frames with some cut short (orig_len kept), flipped or with a length rewritten."""
    records = []
    for case in GOLDEN_CASES:
        for ts, data, orig in golden_frames(case):
            roll = rnd.random()
            if roll < 0.15:
                data = data[: rnd.randint(0, len(data))]
            elif roll < 0.3:
                kind = rnd.choice(["flip", "length", "delete", "insert"])
                value = rnd.choice([0, 0xFFFF, 21, 255, rnd.randint(0, 0xFFFF)])
                data = mutate(data, (kind, rnd.randint(0, 1 << 16), value))
                orig = len(data) if roll < 0.25 else max(orig, len(data))
            records.append((ts + rnd.randint(0, 999), data, orig))
    return records


def tls_and_quic_conversations(rnd: random.Random, count: int) -> list[tuple[int, bytes, int]]:
    """Whole TLS and QUIC conversations from the fuzz generators, without Hypothesis."""
    records, ts = [], T0
    shape = {"cid_length": "true", "varint_size": "mixed", "token_value": "true", "length_value": "true"}
    for n in range(count):
        v6 = rnd.random() < 0.5
        if n % 2:
            hello = bytes([0x16, 3, 1, 0, 4]) + rnd.randbytes(4)  # a Handshake record confirms the flow
            streams = [hello + tls_stream(rnd, rnd.choice(["true", "mixed"]), "tls") for _ in range(2)]
            pos = [0, 0]
            for _ in range(rnd.randint(2, 10)):
                d = rnd.randint(0, 1)
                chunk = streams[d][pos[d] : pos[d] + rnd.choice([100, 1460, 9000])]
                ports = (40000 + n, 443) if d == 0 else (443, 40000 + n)
                frame = ip_frame(v6, IPPROTO_TCP, d == 0, tcp(*ports, 1000 + pos[d], 0x18, chunk))
                pos[d] += len(chunk)
                ts += rnd.randint(1, 10**9)
                records.append((ts, frame, len(frame)))
        else:
            cids = [rnd.randbytes(8), rnd.randbytes(rnd.choice([0, 20]))]
            for _ in range(rnd.randint(2, 8)):
                forward = rnd.random() < 0.5
                ports = (50000 + n, 443) if forward else (443, 50000 + n)
                shape["cid_length"] = rnd.choice(["true", "true", 0, 20, 21, 255])
                frame = ip_frame(v6, IPPROTO_UDP, forward, udp(*ports, quic_datagram(rnd, cids, shape)))
                ts += rnd.randint(1, 10**9)
                records.append((ts, frame, len(frame) + rnd.choice([0, 0, 0, 4])))
    return records


GOLDEN_CONFIG = (GOLDEN / "tls_test_2" / "config.ini").read_text()
FUZZED_INPUTS = {  # name -> (records, big_endian, nanosecond, config text)
    "mutated_le_us": (lambda: mutated_golden(random.Random(1)), False, False, GOLDEN_CONFIG),
    "mutated_be_ns": (lambda: mutated_golden(random.Random(2)), True, True, ""),
    "conversations_be_us": (lambda: tls_and_quic_conversations(random.Random(3), 12), True, False,
                            GOLDEN_CONFIG),
    "conversations_le_ns_min_saved_0": (lambda: tls_and_quic_conversations(random.Random(4), 12), False, True,
                                        "[general]\nmin_saved_bytes_per_packet = 0\n[tls]\n"
                                        "app_data_keep_record_bytes = 0\n"
                                        "app_data_continuation_policy = stream\n"),
    "tiny_snaplen": (lambda: mutated_golden(random.Random(5)), False, False,
                     "[capture]\ndefault_snaplen = 60\nmax_capture_len = 1000\n"),
    "bulk_policy": (lambda: tls_and_quic_conversations(random.Random(6), 8), False, False,
                    "[tls]\napp_data_continuation_policy = bulk\n"),
    "empty": (lambda: [], False, False, ""),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FUZZED_INPUTS))
def test_outputs_of_fuzzed_valid_inputs_are_valid_to_capinfos_and_tshark(name, tmp_path):
    need_wireshark_tools()
    make, big_endian, nanosecond, config_text = FUZZED_INPUTS[name]
    records = make()
    input_path = tmp_path / f"{name}.pcap"
    write_pcap(input_path, records, big_endian, nanosecond)
    expected_input = [(ts if nanosecond else ts // 1000 * 1000, d, o) for ts, d, o in records]
    assert read_records(input_path) == expected_input
    written = judge(tmp_path, config_text, input_path)
    if name != "empty":
        # the inputs are meant to exercise the cuts, the length fields and the clamps
        assert any(len(d) < len(i) for (_, d, _), (_, i, _) in zip(written, records, strict=True))
        assert any(length_fields(d) for _, d, _ in records)
    else:
        assert written == [] and (tmp_path / "empty.out.pcap").stat().st_size == 24  # DECISIONS #5
