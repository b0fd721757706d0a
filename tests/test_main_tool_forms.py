"""The main PcapConstrictor tool's forms (issue 15 items 6-7, SPEC §14.4, §15): constrict,
reinflate and restore with the main tool's own config files and golden workflow."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from conftest import FIXTURES, GOLDEN, GOLDEN_CASES, run_cli, tshark_count
from pcapconstrictor.engine.sources.offline_input import open_offline_input

EXTRA = FIXTURES / "upstream_extra"


def records(path) -> list[tuple[int, bytes, int]]:
    with open_offline_input(str(path)) as reader:
        return [(ts, bytes(data), orig) for ts, data, orig in reader]


def constrict(tmp_path, source, config=None, *extra):
    out = tmp_path / "constricted.pcap"
    args = ["constrict", str(source), "-o", str(out), *extra]
    if config is not None:
        args += ["--config", str(config)]
    return run_cli(*args), out


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """The three stages of SPEC §14.4 for every golden scenario, chained as upstream runs them."""
    outputs = {}
    for case in GOLDEN_CASES:
        tmp = tmp_path_factory.mktemp(case)
        stages = {"constricted": tmp / "constricted.pcap"}
        done = run_cli("constrict", str(GOLDEN / case / "input.pcap"), "-o", str(stages["constricted"]),
                       "--config", str(GOLDEN / case / "constrict.ini"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        for policy in ("preserve", "recompute"):
            stages[policy] = tmp / f"reinflated_{policy}.pcap"
            done = run_cli("reinflate", str(stages["constricted"]), "-o", str(stages[policy]),
                           "--config", str(GOLDEN / case / f"reinflate_{policy}.ini"))  # fmt: skip
            assert done.returncode == 0, done.stderr
        outputs[case] = stages
    return outputs


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_constrict_with_the_main_tools_config_gives_its_golden_bytes(workflow, case):
    assert workflow[case]["constricted"].read_bytes() == (GOLDEN / case / "constricted.pcap").read_bytes()


@pytest.mark.parametrize("policy", ["preserve", "recompute"])
@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_reinflate_of_the_constricted_output_gives_the_main_tools_golden_bytes(workflow, case, policy):
    expected = GOLDEN / case / f"reinflated_{policy}_checksum.pcap"
    assert workflow[case][policy].read_bytes() == expected.read_bytes()


def checksum_statuses(path) -> dict[int, list[str]]:
    """tshark's verdict on each frame's IPv4, TCP and UDP checksums (0 bad, 1 good)."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (Debian package tshark)")
    out = subprocess.run(
        ["tshark", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
         "-o", "ip.check_checksum:TRUE", "-T", "fields", "-E", "separator=;", "-e", "frame.number",
         "-e", "ip.checksum.status", "-e", "tcp.checksum.status", "-e", "udp.checksum.status"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = (line.split(";") for line in out.stdout.splitlines())
    return {int(row[0]): [v for field in row[1:] for v in field.split(",") if v] for row in rows}


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_tshark_finds_every_recomputed_checksum_valid(workflow, case):
    statuses = checksum_statuses(workflow[case]["recompute"])
    assert [n for n, values in statuses.items() if "0" in values] == []
    assert sum(values.count("1") for values in statuses.values()) > len(statuses)  # IP and TCP/UDP judged


def test_padding_without_recompute_leaves_checksums_that_tshark_rejects(workflow):
    statuses = checksum_statuses(workflow["ipv6_ipv4_test_1"]["preserve"])
    assert [n for n, values in statuses.items() if "0" in values] != []


def test_reinflate_pads_every_cut_record_to_its_original_length_with_the_fill_byte(workflow):
    cut = records(workflow["tls_test_2"]["constricted"])
    padded = records(workflow["tls_test_2"]["preserve"])
    assert [len(d) for _, d, _ in padded] == [orig for _, _, orig in cut]
    for (_, short, orig), (_, whole, _) in zip(cut, padded, strict=True):
        assert whole == short + b"\xab" * (orig - len(short))


def test_random_fill_pads_to_the_original_length_and_restore_is_reinflate(tmp_path, workflow):
    config = tmp_path / "random.ini"
    config.write_text("[reinflate]\nfill_byte = random\n")
    out = tmp_path / "restored.pcap"
    done = run_cli("restore", str(workflow["tls_test_2"]["constricted"]), "-o", str(out),
                   "--config", str(config), "--stats")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"packets_reinflated: 6" in done.stdout
    padded = records(out)
    assert [len(d) for _, d, _ in padded] == [orig for _, _, orig in padded]
    assert padded != records(workflow["tls_test_2"]["preserve"])  # not the 0xAB filler


def test_a_packet_already_cut_in_the_input_passes_untouched(tmp_path):
    frames = records(GOLDEN / "tls_test_2" / "input.pcap")
    ts, data, orig = frames[5]  # packet 6: an Application Data record the golden run cuts to 199
    frames[5] = (ts, data[:1000], orig)
    source = tmp_path / "cut.pcap"
    write_pcap(source, frames)
    done, out = constrict(tmp_path, source, GOLDEN / "tls_test_2" / "constrict.ini", "--stats")
    assert done.returncode == 0, done.stderr
    assert records(out)[5] == (ts, data[:1000], orig)
    assert b"already_truncated: 1" in done.stdout


def test_tls_is_walked_on_every_tcp_port(tmp_path):
    source_frames = records(GOLDEN / "tls_test_2" / "input.pcap")
    frames = [(ts, moved_off_443(data), orig) for ts, data, orig in source_frames]
    source = tmp_path / "port8000.pcap"
    write_pcap(source, frames)
    done, out = constrict(tmp_path, source, GOLDEN / "tls_test_2" / "constrict.ini")
    assert done.returncode == 0, done.stderr
    cut = [n for n, (_, data, orig) in enumerate(records(out), 1) if len(data) < orig]
    assert cut == [6, 7, 9, 10, 12, 14]  # SPEC §14.3, as on port 443


def test_the_output_keeps_a_big_endian_nanosecond_input_header(tmp_path):
    frames = records(GOLDEN / "tls_test_2" / "input.pcap")
    source = tmp_path / "be_ns.pcap"
    header = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, -3600, 7, 65535, 1)
    body = b"".join(struct.pack(">IIII", ts // 10**9, ts % 10**9 + 123, len(d), o) + d for ts, d, o in frames)
    source.write_bytes(header + body)
    done, out = constrict(tmp_path, source, GOLDEN / "tls_test_2" / "constrict.ini")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:24] == header
    ours = records(out)
    assert [ts for ts, _, _ in ours] == [ts + 123 for ts, _, _ in frames]
    golden = records(GOLDEN / "tls_test_2" / "constricted.pcap")
    assert [len(d) for _, d, _ in ours] == [len(d) for _, d, _ in golden]


def test_the_main_tools_pcapng_fixture_constricts_to_pcapng(tmp_path):
    source = EXTRA / "tls_quic_test_1.pcapng"
    done, out = constrict(tmp_path, source, GOLDEN / "tls_test_2" / "constrict.ini")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    ours, theirs = records(out), records(source)
    assert tshark_count(out) == len(ours) == len(theirs) == 65
    assert sum(len(d) for _, d, _ in ours) < sum(len(d) for _, d, _ in theirs)
    assert [(ts, orig) for ts, _, orig in ours] == [(ts, orig) for ts, _, orig in theirs]


def test_an_input_with_a_cut_last_record_keeps_the_records_before_it_and_exits_1(tmp_path):
    done, out = constrict(tmp_path, EXTRA / "truncated_tail_test_1.pcap")
    assert done.returncode == 1
    assert b"Warning: output contains only packets successfully processed" in done.stderr
    assert len(records(out)) == 3


def test_the_same_file_for_input_and_output_is_refused(tmp_path):
    source = tmp_path / "in.pcap"
    shutil.copy(GOLDEN / "tls_test_2" / "input.pcap", source)
    done = run_cli("constrict", str(source), "-o", str(source))
    assert done.returncode == 1
    assert done.stderr == b"error: input and output paths refer to the same file\n"


def test_reinflate_takes_no_decision_log(tmp_path):
    done = run_cli("reinflate", "in.pcap", "-o", str(tmp_path / "o.pcap"), "--decision-log", "x.csv")
    assert done.returncode == 1
    assert b"unrecognized arguments: --decision-log" in done.stderr


def write_pcap(path, frames) -> None:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(header + b"".join(
        struct.pack("<IIII", ts // 10**9, ts % 10**9 // 1000, len(d), o) + d for ts, d, o in frames))


def moved_off_443(frame: bytes) -> bytes:
    """The IPv4/TCP frame with port 443 (either side) replaced by 8000."""
    ports = bytearray(frame[34:38])
    for at in (0, 2):
        if ports[at:at + 2] == (443).to_bytes(2, "big"):
            ports[at:at + 2] = (8000).to_bytes(2, "big")
    return frame[:34] + bytes(ports) + frame[38:]
