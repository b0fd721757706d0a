"""Classic PCAP reader (SPEC.md §12.1) and writer (SPEC.md §11, DECISIONS.md #5).

Test files are built here with plain ``struct.pack`` on purpose: an encoding
independent of the schema the reader and writer derive their layouts from.
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
import tracemalloc
import types
from pathlib import Path

import pytest

from pcapconstrictor.engine.sinks.pcap_writer import PcapWriteError, PcapWriter
from pcapconstrictor.engine.sources import pcap_reader
from pcapconstrictor.engine.sources.pcap_reader import PcapReader, PcapReadError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TRUNCATED = FIXTURES / "upstream_extra" / "truncated_tail_test_1.pcap"
PCAPNG = FIXTURES / "upstream_extra" / "tls_quic_test_1.pcapng"
GOLDEN_INPUTS = sorted((FIXTURES / "golden").glob("*/input.pcap"))

MAGIC = {  # (big_endian, nanosecond) -> magic as written
    (False, False): b"\xd4\xc3\xb2\xa1",
    (True, False): b"\xa1\xb2\xc3\xd4",
    (False, True): b"\x4d\x3c\xb2\xa1",
    (True, True): b"\xa1\xb2\x3c\x4d",
}


def global_header(
    big_endian: bool = False,
    nanosecond: bool = False,
    version: tuple[int, int] = (2, 4),
    snaplen: int = 65535,
    linktype: int = 1,
) -> bytes:
    order = ">" if big_endian else "<"
    rest = struct.pack(order + "HHiIII", *version, 0, 0, snaplen, linktype)
    return MAGIC[(big_endian, nanosecond)] + rest


def record(
    sec: int, frac: int, data: bytes, orig: int | None = None, caplen: int | None = None,
    big_endian: bool = False,
) -> bytes:
    order = ">" if big_endian else "<"
    caplen = len(data) if caplen is None else caplen
    orig = caplen if orig is None else orig
    return struct.pack(order + "IIII", sec, frac, caplen, orig) + data


def write_file(tmp_path: Path, content: bytes, name: str = "in.pcap") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def read_all(path: str) -> list[tuple[int, bytes, int]]:
    with PcapReader(path) as reader:
        return list(reader)


def read_until_error(path: str) -> tuple[list[tuple[int, bytes, int]], str]:
    records: list[tuple[int, bytes, int]] = []
    with PcapReader(path) as reader, pytest.raises(PcapReadError) as err:
        for rec in reader:
            records.append(rec)
    return records, str(err.value)


def open_error(path: str) -> str:
    with pytest.raises(PcapReadError) as err:
        PcapReader(path)
    return str(err.value)


# --- reader: opening and the global header ----------------------------------------------


def test_missing_input_reports_failed_to_read_input_file_size(tmp_path: Path) -> None:
    assert open_error(str(tmp_path / "absent.pcap")) == "failed to read input file size"


def test_directory_input_reports_failed_to_read_input_file_size(tmp_path: Path) -> None:
    assert open_error(str(tmp_path)) == "failed to read input file size"


def test_unopenable_input_reports_failed_to_open_input_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_file(tmp_path, global_header())

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pcap_reader, "open", refuse, raising=False)
    assert open_error(path) == "failed to open input file"


@pytest.mark.parametrize("size", [0, 3, 23])
def test_input_shorter_than_global_header_reports_eof(tmp_path: Path, size: int) -> None:
    path = write_file(tmp_path, global_header()[:size])
    assert open_error(path) == "file offset 0: unexpected EOF while reading PCAP global header"


def test_short_input_is_eof_even_with_a_pcapng_magic(tmp_path: Path) -> None:
    path = write_file(tmp_path, PCAPNG.read_bytes()[:20])
    assert open_error(path) == "file offset 0: unexpected EOF while reading PCAP global header"


def test_pcapng_fixture_is_rejected_with_the_pcapng_message() -> None:
    assert open_error(str(PCAPNG)) == (
        "file offset 0: pcapng is not supported by this offline feed mode"
    )


def test_unknown_magic_is_rejected(tmp_path: Path) -> None:
    path = write_file(tmp_path, b"\xa1\xb2\xc3\xd5" + global_header()[4:])
    assert open_error(path) == "file offset 0: unsupported classic PCAP magic number"


@pytest.mark.parametrize("big_endian", [False, True])
def test_version_other_than_2_x_is_rejected_at_offset_4(tmp_path: Path, big_endian: bool) -> None:
    path = write_file(tmp_path, global_header(big_endian, version=(3, 4)))
    assert open_error(path) == "file offset 4: unsupported classic PCAP version 3.4"


@pytest.mark.parametrize("minor", [0, 1, 2])
def test_version_before_2_3_has_orig_len_before_incl_len_as_libpcap_reads_it(tmp_path: Path,
                                                                              minor: int) -> None:
    """libpcap swaps the two length words of files older than 2.3 (issue 15: a 2.1 file)."""
    old_record = struct.pack("<IIII", 7, 5, 60, 10) + b"x" * 10  # orig_len 60, incl_len 10
    path = write_file(tmp_path, global_header(version=(2, minor)) + old_record)
    assert read_all(path) == [(7_000_005_000, b"x" * 10, 60)]


def test_version_2_3_swaps_lengths_only_where_incl_len_exceeds_orig_len(tmp_path: Path) -> None:
    swapped = struct.pack("<IIII", 1, 0, 60, 10) + b"a" * 10
    plain = struct.pack("<IIII", 2, 0, 4, 60) + b"b" * 4
    path = write_file(tmp_path, global_header(version=(2, 3)) + swapped + plain)
    assert read_all(path) == [(1_000_000_000, b"a" * 10, 60), (2_000_000_000, b"b" * 4, 60)]


def test_version_is_checked_before_snaplen_and_linktype(tmp_path: Path) -> None:
    path = write_file(tmp_path, global_header(version=(1, 0), snaplen=0, linktype=0))
    assert open_error(path) == "file offset 4: unsupported classic PCAP version 1.0"


def test_snaplen_zero_is_rejected_at_offset_16(tmp_path: Path) -> None:
    path = write_file(tmp_path, global_header(snaplen=0, linktype=113))
    assert open_error(path) == "file offset 16: invalid PCAP snaplen 0"


@pytest.mark.parametrize("linktype", [0, 101, 113, 276, 147])
def test_non_ethernet_linktype_is_read_and_named_on_every_batch(tmp_path: Path, linktype: int) -> None:
    path = write_file(tmp_path, global_header(big_endian=True, linktype=linktype)
                      + struct.pack(">IIII", 1, 0, 3, 3) + b"abc")  # fmt: skip
    with PcapReader(path) as reader:
        batches = list(reader.batches())
    assert reader.linktype == linktype
    assert [b.linktype for b in batches] == [linktype] and batches[0] == [(1_000_000_000, b"abc", 3)]


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_header_fields_of_every_byte_order_and_precision(
    tmp_path: Path, big_endian: bool, nanosecond: bool
) -> None:
    path = write_file(tmp_path, global_header(big_endian, nanosecond, snaplen=262144))
    with PcapReader(path) as reader:
        assert (reader.big_endian, reader.nanosecond) == (big_endian, nanosecond)
        assert (reader.snaplen, reader.linktype) == (262144, 1)
        assert list(reader) == []


# --- reader: records -----------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True])
def test_microsecond_records_in_either_byte_order(tmp_path: Path, big_endian: bool) -> None:
    content = global_header(big_endian) + b"".join(
        [
            record(1_700_000_000, 999_999, b"\x01" * 60, orig=1514, big_endian=big_endian),
            record(1_700_000_001, 5, b"", big_endian=big_endian),
        ]
    )
    assert read_all(write_file(tmp_path, content)) == [
        (1_700_000_000_999_999_000, b"\x01" * 60, 1514),
        (1_700_000_001_000_005_000, b"", 0),
    ]


@pytest.mark.parametrize("big_endian", [False, True])
def test_nanosecond_records_in_either_byte_order(tmp_path: Path, big_endian: bool) -> None:
    content = global_header(big_endian, nanosecond=True) + record(
        1_700_000_000, 123_456_789, b"abc", orig=3, big_endian=big_endian
    )
    assert read_all(write_file(tmp_path, content)) == [(1_700_000_000_123_456_789, b"abc", 3)]


def test_microsecond_fraction_of_a_million_or_more_carries_into_seconds(tmp_path: Path) -> None:
    content = global_header() + record(10, 2_500_000, b"x")
    assert read_all(write_file(tmp_path, content))[0][0] == 12_500_000_000


def test_caplen_larger_than_file_snaplen_is_accepted(tmp_path: Path) -> None:
    content = global_header(snaplen=16) + record(0, 0, bytes(100))
    assert read_all(write_file(tmp_path, content)) == [(0, bytes(100), 100)]


def test_cut_record_header_reports_trailing_bytes_after_good_records(tmp_path: Path) -> None:
    content = global_header() + record(1, 2, b"abcd") + b"\x00" * 5
    records, error = read_until_error(write_file(tmp_path, content))
    assert records == [(1_000_002_000, b"abcd", 4)]
    assert error == (
        "file offset 44: unexpected EOF while reading packet header; "
        "5 trailing byte(s) could not be processed"
    )


def test_caplen_exceeding_origlen_names_packet_index_and_offset(tmp_path: Path) -> None:
    content = global_header() + record(0, 0, b"ab") + record(0, 0, b"abcdef", orig=5)
    records, error = read_until_error(write_file(tmp_path, content))
    assert len(records) == 1
    assert error == "packet 2 at file offset 42: captured length 6 exceeds original length 5"


def test_caplen_over_origlen_is_reported_before_a_missing_payload(tmp_path: Path) -> None:
    content = global_header() + record(0, 0, b"ab", caplen=100, orig=99)
    _, error = read_until_error(write_file(tmp_path, content))
    assert error == "packet 1 at file offset 24: captured length 100 exceeds original length 99"


def test_cut_payload_reports_expected_available_and_missing_bytes(tmp_path: Path) -> None:
    content = global_header() + record(0, 0, b"a") + record(0, 0, b"b") + record(
        0, 0, b"xyz", caplen=10
    )
    records, error = read_until_error(write_file(tmp_path, content))
    assert [r[1] for r in records] == [b"a", b"b"]
    assert error == (
        "packet 3 at file offset 58: unexpected EOF while reading packet payload; "
        "expected 10 byte(s), available 3 byte(s), missing 7 byte(s)"
    )


@pytest.mark.parametrize("snaplen", [16, 65535, 262144])
def test_a_record_longer_than_libpcaps_262144_bytes_is_refused_before_its_payload(
    tmp_path: Path, snaplen: int
) -> None:
    largest = record(0, 0, bytes(262144))
    content = global_header(snaplen=snaplen) + largest + record(0, 0, bytes(262145))
    records, error = read_until_error(write_file(tmp_path, content))
    assert [len(r[1]) for r in records] == [262144]
    assert error == (
        f"packet 2 at file offset {24 + len(largest)}: "
        "captured length 262145 exceeds the maximum record length 262144"
    )


def test_a_file_snaplen_above_262144_raises_the_record_bound_to_it(tmp_path: Path) -> None:
    largest, beyond = record(0, 0, bytes(300_000)), record(0, 0, b"", caplen=300_001)
    content = global_header(snaplen=300_000) + largest + beyond
    records, error = read_until_error(write_file(tmp_path, content))
    assert [len(r[1]) for r in records] == [300_000]
    assert error.endswith("captured length 300001 exceeds the maximum record length 300000")


def test_truncated_fixture_yields_three_records_then_the_payload_eof_error() -> None:
    records, error = read_until_error(str(TRUNCATED))
    assert len(records) == 3
    assert error == (
        "packet 4 at file offset 2750: unexpected EOF while reading packet payload; "
        "expected 4438 byte(s), available 1774 byte(s), missing 2664 byte(s)"
    )


def test_huge_missing_caplen_is_reported_without_allocating_it(tmp_path: Path) -> None:
    caplen = 0xFFFF_FFF0  # within the bound a 4 GiB file snaplen sets
    content = global_header(snaplen=0xFFFF_FFFF) + record(0, 0, b"tail", caplen=caplen)
    tracemalloc.start()
    try:
        _, error = read_until_error(write_file(tmp_path, content))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    assert error == (
        "packet 1 at file offset 24: unexpected EOF while reading packet payload; "
        f"expected {caplen} byte(s), available 4 byte(s), missing {caplen - 4} byte(s)"
    )


def test_huge_missing_caplen_on_stdin_is_reported_without_allocating_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplen = 0xFFFF_FFF0
    content = global_header(snaplen=0xFFFF_FFFF) + record(0, 0, b"tail", caplen=caplen)
    monkeypatch.setattr("sys.stdin", types.SimpleNamespace(buffer=io.BytesIO(content)))
    tracemalloc.start()
    try:
        _, error = read_until_error("-")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 << 20
    assert error == (
        "packet 1 at file offset 24: unexpected EOF while reading packet payload; "
        f"expected {caplen} byte(s), available 4 byte(s), missing {caplen - 4} byte(s)"
    )


@pytest.mark.parametrize("chunk_size", [1, 7, 16, 17, 100, 4096])
def test_records_spanning_chunk_boundaries_read_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_size: int
) -> None:
    expected = read_all(str(GOLDEN_INPUTS[0]))
    monkeypatch.setattr(pcap_reader, "CHUNK_SIZE", chunk_size)
    assert read_all(str(GOLDEN_INPUTS[0])) == expected


def test_dash_reads_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    content = global_header() + record(3, 4, b"frame")
    monkeypatch.setattr("sys.stdin", types.SimpleNamespace(buffer=io.BytesIO(content)))
    assert read_all("-") == [(3_000_004_000, b"frame", 5)]


# --- writer ---------------------------------------------------------------------------------


def test_empty_capture_is_a_24_byte_little_endian_microsecond_header(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    with PcapWriter(str(path), snaplen=262144) as writer:
        pass
    expected = "d4c3b2a1 0200 0400 00000000 00000000 00000400 01000000"
    assert path.read_bytes() == bytes.fromhex(expected)
    assert (writer.records, writer.bytes_written) == (0, 24)


def test_global_header_is_on_disk_as_soon_as_the_writer_opens(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    writer = PcapWriter(str(path), snaplen=65535)
    try:
        assert path.stat().st_size == 24
    finally:
        writer.close()


@pytest.mark.parametrize("incl_len", [6, 4])
def test_a_view_is_copied_when_written_not_when_flushed(tmp_path: Path, incl_len: int) -> None:
    # records are batched until a flush; a source may refill the memory a view shows
    path = tmp_path / "out.pcap"
    memory = bytearray(b"abcdef")
    with PcapWriter(str(path), snaplen=65535) as writer:
        writer.write(0, memoryview(memory), incl_len, 6)
        memory[:] = b"XXXXXX"
    assert path.read_bytes()[40:] == b"abcdef"[:incl_len]


def test_nanoseconds_are_truncated_to_microseconds(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    with PcapWriter(str(path), snaplen=65535) as writer:
        writer.write(7 * 10**9 + 123_456_789, b"abc", 3, 3)
    assert path.read_bytes()[24:40] == struct.pack("<IIII", 7, 123_456, 3, 3)


def test_ts_sec_wraps_modulo_2_to_the_32(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    with PcapWriter(str(path), snaplen=65535) as writer:
        writer.write((2**32 + 5) * 10**9 + 1_000, b"", 0, 0)
    assert path.read_bytes()[24:32] == struct.pack("<II", 5, 1)


def test_record_keeps_the_first_incl_len_bytes_and_orig_len_at_least_incl_len(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.pcap"
    with PcapWriter(str(path), snaplen=65535) as writer:
        writer.write(0, memoryview(b"abcdefgh"), 3, 1500)
        writer.write(0, b"abcdefgh", 8, 2)
    body = path.read_bytes()[24:]
    assert body == struct.pack("<IIII", 0, 0, 3, 1500) + b"abc" + struct.pack(
        "<IIII", 0, 0, 8, 8
    ) + b"abcdefgh"
    assert (writer.records, writer.bytes_written) == (2, 24 + 16 + 3 + 16 + 8)


def test_incl_len_beyond_the_data_is_a_value_error(tmp_path: Path) -> None:
    with PcapWriter(str(tmp_path / "out.pcap"), snaplen=65535) as writer:
        with pytest.raises(ValueError):
            writer.write(0, b"abc", 4, 4)
        assert writer.records == 0


def test_only_whole_records_reach_the_file_between_flushes(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    with PcapWriter(str(path), snaplen=65535, buffer_size=100) as writer:
        for _ in range(10):
            writer.write(0, bytes(30), 30, 30)
            assert (path.stat().st_size - 24) % 46 == 0
    assert path.stat().st_size == 24 + 10 * 46


@pytest.mark.parametrize("golden_input", GOLDEN_INPUTS, ids=lambda p: p.parent.name)
def test_read_then_write_reproduces_the_golden_input_byte_for_byte(
    tmp_path: Path, golden_input: Path
) -> None:
    out = tmp_path / "copy.pcap"
    with PcapReader(str(golden_input)) as reader, PcapWriter(str(out), reader.snaplen) as writer:
        for ts_ns, data, orig_len in reader:
            writer.write(ts_ns, data, len(data), orig_len)
    assert out.read_bytes() == golden_input.read_bytes()


def test_dash_writes_standard_output(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = io.BytesIO()
    monkeypatch.setattr("sys.stdout", types.SimpleNamespace(buffer=stdout))
    with PcapWriter("-", snaplen=65535) as writer:
        writer.write(1_000, b"ab", 2, 2)
    assert stdout.getvalue()[24:] == struct.pack("<IIII", 0, 1, 2, 2) + b"ab"
    assert not stdout.closed


def test_write_failure_names_the_file_and_the_os_error() -> None:
    # /dev/full accepts open() and fails every write with ENOSPC; the header
    # write at open is the first to fail.
    with pytest.raises(PcapWriteError) as err:
        PcapWriter("/dev/full", snaplen=65535)
    assert str(err.value) == "failed to write output file '/dev/full': No space left on device"


def test_open_failure_names_the_file_and_the_os_error() -> None:
    with pytest.raises(PcapWriteError) as err:
        PcapWriter("/dev/full/out.pcap", snaplen=65535)
    assert str(err.value) == "failed to open output file '/dev/full/out.pcap': Not a directory"


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not on PATH")
def test_tshark_reads_a_written_file(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    frame = bytes.fromhex("ffffffffffff 020000000001 0806") + bytes(46)
    with PcapWriter(str(path), snaplen=65535) as writer:
        writer.write(1_700_000_000_123_456_789, frame, 60, 60)
        writer.write(1_700_000_001_000_000_000, frame, 20, 60)
    result = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.cap_len", "-e", "frame.len",
         "-e", "frame.time_epoch"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[:2] for row in rows] == [["60", "60"], ["20", "60"]]
    assert rows[0][2].startswith("1700000000.123456")
