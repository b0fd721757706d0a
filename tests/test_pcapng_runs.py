"""Runs of pcapng packets read in place and frames written a batch at a time (issue 21).

The pcapng reader walks runs of Enhanced Packet Blocks in the read buffer
(engine/sources/pcapng_packets.py) and the writers encode a batch of frames in one call
(engine/sinks/frame_records.py); both are compiled in a compiled install.  Here long
synthetic files, in both byte orders, with blocks a pcapng output carries over lying between
the packets, are read and written back, and checked against an independent struct parse.
"""

from __future__ import annotations

import io
import random
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_cli, tshark_count
from pcapconstrictor.engine.run.pipeline import Pipeline
from pcapconstrictor.engine.sinks.frame_records import (
    bare_tail_le,
    block_head,
    block_head_le,
    block_tail,
    epb_records,
    kept_payloads,
    pcap_records,
    record_bytes,
    record_le,
)
from pcapconstrictor.engine.sources.pcap_reader import PcapReadError
from pcapconstrictor.engine.sources.pcapng_packets import Interface, PcapngRecords, timestamp_ns
from pcapconstrictor.engine.sources.pcapng_reader import BATCH_FRAMES, PcapngReader
from pcapconstrictor.formats.derived import pcap
from pcapconstrictor.formats.derived import pcapng as ng

_RECORD = pcap.pcaprec_hdr_le.whole_struct()
_EPB_HEAD = ng.LITTLE.enhanced_packet_block_header.whole_struct()
_EPB_TAIL = ng.LITTLE.block_trailer.whole_struct()
ETH_UDP = bytes.fromhex("020202020202 020202020203 0800")


def _block(order: str, block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def _udp_frame(size: int, rng: random.Random) -> bytes:
    payload = rng.randbytes(size)
    udp = struct.pack(">HHHH", 5000, 6000, 8 + size, 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]))  # fmt: skip
    return ETH_UDP + ip + udp


def _section(big: bool, rng: random.Random, packets: int, first_ticks: int) -> tuple[bytes, list]:
    """A section (SHB, one nanosecond Ethernet IDB) of ``packets`` EPBs, some with options and
    some cut short (incl < orig), with an ISB every 97 packets and an NRB after the 150th;
    and the packets as ``(ticks, data, orig, options)``."""
    order = ">" if big else "<"
    shb = struct.pack(order + "IHHq", ng.BYTE_ORDER_MAGIC, 1, 0, -1)
    tsresol = struct.pack(order + "HH", ng.IF_TSRESOL, 1) + b"\x09\0\0\0"
    tsresol += struct.pack(order + "HH", 0, 0)
    out = [_block(order, ng.BLOCK_TYPE_SHB, shb),
           _block(order, ng.BLOCK_TYPE_IDB, struct.pack(order + "HHI", 1, 0, 0) + tsresol)]
    expected = []
    for i in range(packets):
        data = _udp_frame(rng.randrange(0, 90), rng)
        orig = len(data) + (rng.randrange(1, 40) if i % 7 == 0 else 0)
        options = b""
        if i % 5 == 0:  # opt_comment "p<i>", then opt_endofopt
            text = f"p{i}".encode()
            options = (struct.pack(order + "HH", ng.OPT_COMMENT, len(text)) + text + b"\0" * (-len(text) % 4)
                       + struct.pack(order + "HH", 0, 0))  # fmt: skip
        ticks = first_ticks + i * 1_000_003
        head = struct.pack(order + "IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), orig)
        out.append(_block(order, ng.BLOCK_TYPE_EPB, head + data + b"\0" * (-len(data) % 4) + options))
        expected.append((ticks, data, orig, options))
        if i % 97 == 96:
            body = struct.pack(order + "III", 0, 0, i) + struct.pack(order + "HH", 0, 0)
            out.append(_block(order, ng.BLOCK_TYPE_ISB, body))
        if i == 150:
            out.append(_block(order, ng.BLOCK_TYPE_NRB, struct.pack(order + "HH", 0, 0)))
    return b"".join(out), expected


def _file(tmp_path: Path, packets: int = 600) -> tuple[Path, bytes, list]:
    rng = random.Random(21)
    little, first = _section(False, rng, packets, 1_700_000_000_000_000_000)
    big, second = _section(True, rng, packets, 1_700_000_100_000_000_000)
    path = tmp_path / "in.pcapng"
    path.write_bytes(little + big)
    return path, little + big, first + second


def _blocks(raw: bytes) -> list[tuple[int, bytes]]:
    """``(block type, whole block)`` of each block, by an independent struct walk."""
    out, pos, order = [], 0, "<"
    while pos < len(raw):
        if raw[pos : pos + 4] == b"\n\r\r\n":
            order = ">" if raw[pos + 8 : pos + 12] == b"\x1a\x2b\x3c\x4d" else "<"
        block_type, length = struct.unpack_from(order + "II", raw, pos)
        out.append((block_type, raw[pos : pos + length]))
        pos += length
    return out


def test_runs_of_packets_read_as_an_independent_parse_reads_them(tmp_path):
    path, raw, expected = _file(tmp_path)
    with PcapngReader(str(path)) as reader:
        batches = list(reader.batches())
    frames = [f for b in batches for f in b]
    assert len(batches) < len(frames) / 50  # read in runs, not block by block
    assert [(ts, bytes(d), orig) for ts, d, orig in frames] == [(t, d, o) for t, d, o, _ in expected]
    assert [(p.ticks, p.options, p.interface_id) for _, p, _ in frames] == [
        (t, opt, 0) for t, _, _, opt in expected]
    numbers = [n for n, (t, _) in enumerate(_blocks(raw), 1) if t == ng.BLOCK_TYPE_EPB]
    assert [p.block for _, p, _ in frames] == numbers


def _constrict(tmp_path: Path, source: Path, out: Path, extra: str = "") -> None:
    (tmp_path / "c.ini").write_text(f"[capture]\noutput = {out}\n{extra}")
    done = run_cli("--config", str(tmp_path / "c.ini"), "--offline-input", str(source))
    assert done.returncode == 0, done.stderr.decode()


def test_a_pcapng_output_holds_every_block_in_its_place_and_the_packets_as_they_came(tmp_path):
    path, raw, expected = _file(tmp_path)
    out = tmp_path / "out.pcapng"
    _constrict(tmp_path, path, out)
    given, written = _blocks(raw), _blocks(out.read_bytes())
    assert [t for t, _ in written] == [t for t, _ in given]
    # UDP to no known port is kept whole: every packet, ISB and NRB block is the input's
    kept = (ng.BLOCK_TYPE_EPB, ng.BLOCK_TYPE_ISB, ng.BLOCK_TYPE_NRB)
    assert [b for t, b in written if t in kept] == [b for t, b in given if t in kept]
    assert tshark_count(out) == len(expected)


def test_a_classic_output_of_the_runs_has_each_packet_in_whole_microseconds(tmp_path):
    path, _, expected = _file(tmp_path)
    out = tmp_path / "out.pcap"
    _constrict(tmp_path, path, out, "format = pcap\n")
    data, pos, records = out.read_bytes(), 24, []
    while pos < len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, pos)
        records.append((sec, usec, data[pos + 16 : pos + 16 + incl], orig))
        pos += 16 + incl
    assert records == [(t // 10**9, t // 1000 % 10**6, d, o) for t, d, o, _ in expected]


def test_a_run_stops_at_a_full_batch_and_goes_on_in_the_next(tmp_path):
    path, _, expected = _file(tmp_path, packets=BATCH_FRAMES + 10)
    with PcapngReader(str(path)) as reader:
        sizes = [len(b) for b in reader.batches()]
    assert max(sizes) == BATCH_FRAMES and sum(sizes) == len(expected)


def test_frames_longer_than_their_data_or_counts_that_differ_are_refused_before_any_part():
    frames = [(1_000, b"abcd", 4), (2_000, memoryview(b"efgh"), 9)]
    with pytest.raises(ValueError, match="incl_len 5 exceeds the 4 byte"):
        kept_payloads(frames, [4, 5])
    with pytest.raises(ValueError, match="1 length"):
        kept_payloads(frames, [4])
    payloads = kept_payloads(frames, [4, 2])
    assert payloads[0] is frames[0][1] and payloads[1] == b"ef" and type(payloads[1]) is bytes


def test_records_and_blocks_encode_time_lengths_and_padding():
    frames = [(1_700_000_000_123_456_789, b"abcde", 3), (-1, b"xy", 2)]
    parts: list = []
    assert pcap_records(frames, [5, 1], kept_payloads(frames, [5, 1]), parts) == 16 + 5 + 16 + 1
    assert parts[0] == struct.pack("<IIII", 1_700_000_000, 123_456, 5, 5)  # orig never below incl
    assert parts[2] == struct.pack("<IIII", 0xFFFFFFFF, 999_999, 1, 2)  # floor, as divmod
    parts = []
    added = pcap_records(frames, [5, 2], kept_payloads(frames, [5, 2]), parts, big=True, nanosecond=True)
    assert added == 16 + 5 + 16 + 2
    assert parts[0] == struct.pack(">IIII", 1_700_000_000, 123_456_789, 5, 5)
    parts = []
    assert epb_records(frames[:1], [5], kept_payloads(frames[:1], [5]), parts) == (1, 40)
    ticks = 1_700_000_000_123_456_789
    head = struct.pack("<IIIIIII", 6, 40, 0, ticks >> 32, ticks & 0xFFFFFFFF, 5, 5)
    assert b"".join(parts) == head + b"abcde\0\0\0" + struct.pack("<I", 40)


# --- runs of blocks written back in place (PcapngRecords) ---------------------------------------

RUN_BATCH = Pipeline.run_batch
BUDGET = "[flow]\nbudget_bytes = 60\nbudget_keep_bytes = 4\n"  # cuts most of the synthetic UDP


def _offline(tmp_path: Path, source: Path, name: str, runs: bool, monkeypatch, extra: str = "") -> tuple:
    """Output bytes and stats text of an in-process offline run, runs of blocks on or off."""
    from pcapconstrictor.engine.commands.cli import main
    from pcapconstrictor.engine.run import pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "BLOCK_RUNS", runs)
    kinds: list[str] = []

    def run_batch(self, frames):
        kinds.append(type(frames).__name__)
        return RUN_BATCH(self, frames)

    monkeypatch.setattr(pipeline_module.Pipeline, "run_batch", run_batch)
    out = tmp_path / name
    config = tmp_path / f"{name}.ini"
    config.write_text(f"[capture]\noutput = {out}\n[stats]\nenabled = true\n{extra}")
    assert main(["--config", str(config), "--offline-input", str(source)]) == 0
    return out.read_bytes(), kinds


@pytest.mark.parametrize("extra", ["", BUDGET, BUDGET + "[capture]\ndefault_snaplen = 60\n"])
def test_runs_of_blocks_give_the_file_the_frame_path_gives(tmp_path, monkeypatch, capsys, extra):
    path, _, expected = _file(tmp_path)
    frames, kinds = _offline(tmp_path, path, "frames.pcapng", False, monkeypatch, extra)
    frame_stats = capsys.readouterr().out
    runs, run_kinds = _offline(tmp_path, path, "runs.pcapng", True, monkeypatch, extra)
    assert "PcapngRecords" not in kinds and run_kinds.count("PcapngRecords") >= 1
    assert runs == frames
    assert capsys.readouterr().out.replace("runs.pcapng", "frames.pcapng") == frame_stats
    if extra:  # the budget cut packets: the cut blocks were rebuilt, and tshark reads them
        assert len(runs) < len(path.read_bytes()) - 10_000
    assert tshark_count(tmp_path / "runs.pcapng") == len(expected)


def test_a_block_with_padding_not_zero_or_orig_below_incl_is_written_as_the_frame_path_writes_it(
        tmp_path, monkeypatch, capsys):  # fmt: skip
    path, raw, _ = _file(tmp_path, packets=50)
    blocks = _blocks(raw)
    odd = bytearray()
    for n, (block_type, block) in enumerate(blocks):
        block = bytearray(block)
        if block_type == ng.BLOCK_TYPE_EPB and n % 3 == 0:
            incl = struct.unpack_from("<I", block, 20)[0]
            if incl % 4:  # non-zero padding after the packet
                block[28 + incl] = 0xAA
        if block_type == ng.BLOCK_TYPE_EPB and n % 5 == 1 and n < len(blocks) // 2:
            struct.pack_into("<I", block, 24, 1)  # orig_len 1, below incl_len (little-endian half)
        odd += block
    path.write_bytes(bytes(odd))
    frames, _ = _offline(tmp_path, path, "frames.pcapng", False, monkeypatch)
    capsys.readouterr()
    runs, run_kinds = _offline(tmp_path, path, "runs.pcapng", True, monkeypatch)
    assert runs == frames and "RecordBatch" in run_kinds and "PcapngRecords" in run_kinds


def test_the_shared_pcapng_capture_gives_the_same_file_on_both_paths(tmp_path, monkeypatch):
    from conftest import FIXTURES

    source = FIXTURES / "external" / "zeek_merlinc2_Zeek_example.pcapng"
    frames, _ = _offline(tmp_path, source, "frames.pcapng", False, monkeypatch, "[tls]\nports = 443, 110\n")
    runs, kinds = _offline(tmp_path, source, "runs.pcapng", True, monkeypatch, "[tls]\nports = 443, 110\n")
    assert runs == frames and "PcapngRecords" in kinds


@pytest.mark.parametrize("extra", ["", BUDGET])
def test_runs_of_blocks_to_a_classic_output_give_the_file_the_frame_path_gives(tmp_path, monkeypatch, extra):
    path, _, expected = _file(tmp_path)
    extra += "[capture]\nformat = pcap\n"
    frames, kinds = _offline(tmp_path, path, "frames.pcap", False, monkeypatch, extra)
    runs, run_kinds = _offline(tmp_path, path, "runs.pcap", True, monkeypatch, extra)
    assert "PcapngRecords" not in kinds and "PcapngRecords" in run_kinds
    assert runs == frames and frames[:4] == b"\xd4\xc3\xb2\xa1"
    assert tshark_count(tmp_path / "runs.pcap") == len(expected)


# --- runs against the block-by-block reader on damaged files ------------------------------------

_BASE = b""


def _base() -> bytes:
    global _BASE
    if not _BASE:
        rng = random.Random(7)
        little, _ = _section(False, rng, 60, 1_700_000_000_000_000_000)
        big, _ = _section(True, rng, 60, 1_700_000_100_000_000_000)
        _BASE = little + big
    return _BASE


def _read(content: bytes, runs: bool) -> tuple[list, str | None]:
    """Every packet (time, bytes, orig_len, block number, interface, ticks, options) and the
    error, reading runs of blocks (made into frames) or block by block."""
    out, error = [], None
    with PcapngReader("(test)", io.BytesIO(content)) as reader:
        try:
            for batch in reader.batches(records=runs):
                frames = batch.frames() if isinstance(batch, PcapngRecords) else batch
                out += [(ts, bytes(p), orig, p.block, p.interface_id, p.ticks, p.options)
                        for ts, p, orig in frames]  # fmt: skip
        except PcapReadError as e:
            error = str(e)
    return out, error


@settings(max_examples=300, deadline=None)
@given(mutations=st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 255)), max_size=6),
       cut=st.integers(0, 20_000))  # fmt: skip
def test_a_damaged_file_reads_the_same_in_runs_and_block_by_block(mutations, cut):
    content = bytearray(_base())
    for at, value in mutations:
        content[at % len(content)] = value
    content = bytes(content[: len(content) - cut % 2000 if cut % 3 else len(content)])
    try:
        by_block = _read(content, False)
    except PcapReadError as e:  # not even a section header: the same for both
        with pytest.raises(PcapReadError, match=re.escape(str(e))):
            _read(content, True)
        return
    assert _read(content, True) == by_block


@given(ticks=st.one_of(st.integers(0, 1 << 64), st.sampled_from([(1 << 53) - 1, 1 << 53, 1 << 63])),
       per=st.sampled_from([0, 1, 2, 10, 1000, 1023, 1024, 1_000_000, 1_000_000_000]),
       offset_s=st.integers(-(1 << 63), (1 << 63) - 1))  # fmt: skip
def test_a_packet_time_is_its_ticks_times_the_tick_plus_the_offset_whatever_their_size(ticks, per, offset_s):
    """timestamp_ns takes a machine multiplication where it cannot overflow: the same exact
    value as plain integers on either side of that bound (a tick of 1, 1024 ns and over,
    2**53 ticks and over, a 64-bit offset)."""
    offset_ns = offset_s * 1_000_000_000
    units = 1_000_000_000 // per if per else 1 << 20  # per 0: a binary resolution (2**-20 s)
    iface = Interface(1, 65535, units, offset_ns, per)
    expected = (ticks * per if per else ticks * 1_000_000_000 // units) + offset_ns
    assert timestamp_ns(iface, ticks) == expected


@given(units=st.one_of(st.integers(-(1 << 64), 1 << 64), st.sampled_from([0, (1 << 62) - 1, 1 << 62])),
       per_second=st.sampled_from([1_000_000, 1_000_000_000]),
       n=st.integers(0, (1 << 32) - 1),
       orig=st.one_of(st.integers(0, (1 << 32) - 1), st.sampled_from([(1 << 31) - 1, 1 << 31])))  # fmt: skip
def test_a_little_endian_record_header_is_the_struct_one_whatever_its_values(units, per_second, n, orig):
    """record_le builds the header from two native integers where they cannot overflow: the
    same bytes as the schema's struct on either side of that bound."""
    assert record_le(units, per_second, n, orig) == record_bytes(_RECORD.pack, units, per_second, n, orig)


_U32 = st.integers(0, (1 << 32) - 1)


@given(ticks=st.one_of(st.integers(0, (1 << 64) - 1), st.sampled_from([0, (1 << 62) - 1, 1 << 62])),
       n=st.one_of(st.integers(0, 65535), st.sampled_from([(1 << 31) - 1, 1 << 31])),
       orig=st.one_of(_U32, st.sampled_from([(1 << 31) - 1, 1 << 31])),
       iface=st.one_of(st.integers(0, 3), st.sampled_from([(1 << 31) - 1, 1 << 31, (1 << 32) - 1])),
       after_n=st.integers(-1, 70000), options=st.integers(0, 64))  # fmt: skip
def test_a_little_endian_block_head_with_the_last_tail_is_the_schemas_structs_whatever_its_values(
    ticks, n, orig, iface, after_n, options
):
    """block_head_le packs the header's fields in pairs, after the block before's padding and
    trailer, where they cannot overflow: the same bytes as the schema's structs laid one after
    the other, on either side of its bounds (ticks 2**62, lengths and interface 2**31)."""
    size = min(28 + n + (-n & 3) + 4 * options + 4, (1 << 32) - 1)
    after_size = 32 + max(after_n, 0) + (-after_n & 3)
    head = _EPB_HEAD.pack(6, size, iface, ticks >> 32, ticks & 0xFFFFFFFF, n, max(n, orig))
    tail = b"\0" * (-after_n & 3) + _EPB_TAIL.pack(after_size) if after_n >= 0 else b""
    assert block_head_le(size, iface, ticks, n, orig, after_n, after_size) == tail + head
    assert block_head(_EPB_HEAD.pack, size, iface, ticks, n, orig) == head
    if after_n >= 0:
        assert bare_tail_le(after_n, after_size) == tail
        assert block_tail(_EPB_TAIL.pack, after_n, b"", after_size) == tail
