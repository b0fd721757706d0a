"""Runs of PCAP records decided and written in place (issue 21, zero-copy framing).

A compiled install reads a little-endian microsecond PCAP as runs of records left in the
read buffer (engine/sources/pcap_records.py); the typed evaluator decides them in place and
the writer copies them, rewriting only the headers of cut records.  Whatever the input,
the output file, the stats and the counters must be byte for byte those of the frame-by-frame
path.  The pure install takes the frame path (reading headers byte by byte is slower there),
so these tests switch the run path on themselves and run on both installs.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from packets import tcp4_frame
from test_typed_policy import CAPTURES, CONFIGS

from pcapconstrictor.engine.config import output_snaplen, parse_config_text
from pcapconstrictor.engine.run import pipeline as pipeline_module
from pcapconstrictor.engine.run.policy_select import evaluator_for, prepare_policy
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sources import pcap_reader
from pcapconstrictor.engine.sources.pcap_reader import PcapReader, PcapReadError
from pcapconstrictor.engine.sources.pcap_records import PcapRecords, whole_records

PCAPS = [p for p in CAPTURES if p.suffix == ".pcap"]


def _run(path: Path | str, out: Path, config_text: str, runs: bool, monkeypatch,
         writer_for=None) -> tuple:  # fmt: skip
    """Output bytes, stats, decision counts and batch kinds of one offline run over ``path``
    (``writer_for(reader)``: the writer, else a PcapWriter as the offline command opens)."""
    monkeypatch.setattr(pipeline_module, "RECORD_RUNS", runs)
    config = parse_config_text(config_text, "(test)")
    evaluator = evaluator_for(prepare_policy(config), config)
    kinds, error = [], None
    if writer_for is None:
        def writer_for(reader):
            return PcapWriter(str(out), output_snaplen(config), linktype=reader.linktype)
    with PcapReader(str(path)) as reader, writer_for(reader) as writer:
        pipeline = pipeline_module.Pipeline(evaluator, writer)
        assert pipeline.takes_records is (runs and writer.takes_records)
        try:
            for batch in pipeline_module.batches_for(pipeline, reader):
                kinds.append(type(batch).__name__)
                pipeline.run_batch(batch)
        except PcapReadError as e:
            error = str(e)
    return out.read_bytes(), pipeline.stats(), pipeline.counts, error, kinds


@pytest.mark.parametrize("config_name", ["defaults", "budgets", "ports_and_sizes"])
def test_every_fixture_gives_the_same_file_and_stats_on_both_paths(config_name, tmp_path, monkeypatch):
    assert len(PCAPS) > 15
    taken = 0
    for path in PCAPS:
        frames = _run(path, tmp_path / "frames.pcap", CONFIGS[config_name], False, monkeypatch)
        runs = _run(path, tmp_path / "runs.pcap", CONFIGS[config_name], True, monkeypatch)
        assert runs[:4] == frames[:4], path
        assert "PcapRecords" not in frames[4]
        taken += "PcapRecords" in runs[4]
    assert taken > len(PCAPS) // 2  # most fixtures are little-endian microsecond files


def _pcap(records: list[tuple[int, int, bytes, int]]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    for sec, usec, data, orig in records:
        out += struct.pack("<IIII", sec, usec, len(data), orig) + data
    return out


def _tls_records(count: int) -> list[tuple[int, int, bytes, int]]:
    """A TLS flow: a handshake record, then Application Data segments (cut by final_only)."""
    hello = b"\x16\x03\x01\x00\x04" + bytes(4)
    out = [(1, 0, tcp4_frame(hello, dport=443, seq=1), 0)]
    seq = 1 + len(hello)
    for i in range(count):
        payload = b"\x17\x03\x03" + (300).to_bytes(2, "big") + bytes(300)
        out.append((2 + i, 10 * i, tcp4_frame(payload, dport=443, seq=seq), 0))
        seq += len(payload)
    return [(s, u, d, len(d) + 4 * (i % 2)) for i, (s, u, d, _) in enumerate(out)]  # some orig > incl


def test_irregular_records_and_chunk_ends_split_the_runs_not_the_output(tmp_path, monkeypatch):
    records = _tls_records(40)
    records.insert(10, (5, 1_000_001, tcp4_frame(bytes(50), dport=80), 104))  # ts_usec >= 10**6
    path = tmp_path / "in.pcap"
    path.write_bytes(_pcap(records))
    monkeypatch.setattr(pcap_reader, "CHUNK_SIZE", 1000)  # records straddle every chunk end
    frames = _run(path, tmp_path / "frames.pcap", "", False, monkeypatch)
    runs = _run(path, tmp_path / "runs.pcap", "", True, monkeypatch)
    assert runs[:4] == frames[:4]
    assert frames[1].counters["tls_appdata_constricted"] == 40
    assert runs[4].count("PcapRecords") > 5 and "RecordBatch" in runs[4]


def test_a_bad_record_after_a_run_is_refused_after_the_run_is_written(tmp_path, monkeypatch):
    records = _tls_records(5)
    data = bytearray(_pcap(records))
    data += struct.pack("<IIII", 9, 0, 100, 50) + bytes(100)  # incl_len > orig_len
    path = tmp_path / "in.pcap"
    path.write_bytes(bytes(data))
    frames = _run(path, tmp_path / "frames.pcap", "", False, monkeypatch)
    runs = _run(path, tmp_path / "runs.pcap", "", True, monkeypatch)
    assert runs[:4] == frames[:4]
    assert runs[1].packets_total == 6 and "packet 7" in runs[3]


def test_whole_records_stops_where_a_record_is_cut_short_or_irregular():
    body = _pcap(_tls_records(3))[24:]
    assert whole_records(body, 0, 262144) == (len(body), 4)
    assert whole_records(body[:-1], 0, 262144)[1] == 3
    assert whole_records(body, 0, 40)[1] == 0  # the first record is longer than the bound
    assert whole_records(body, len(body), 262144) == (len(body), 0)


def test_a_run_gives_its_frames_to_whoever_needs_them():
    records = _tls_records(3)
    body = _pcap(records)[24:]
    run = PcapRecords(body, 0, len(body), 4, 1)
    assert len(run) == 4
    assert run.frames() == [((s * 10**6 + u) * 1000, d, o) for s, u, d, o in records]


def test_the_plain_pcap_and_pcapng_writers_take_runs_not_one_with_the_inputs_header(tmp_path, monkeypatch):
    """A classic output with its input's header takes runs only for a little-endian
    microsecond input (tests below); a pcapng output wraps each record in a block."""
    from pcapconstrictor.engine.sinks.pcapng_writer import PcapngWriter

    monkeypatch.setattr(pipeline_module, "RECORD_RUNS", True)
    config = parse_config_text("", "(test)")
    evaluator = evaluator_for(prepare_policy(config), config)
    ng_writer = PcapngWriter(str(tmp_path / "a.pcapng"), 262144, comment="", application="test")
    with PcapWriter(str(tmp_path / "a.pcap"), 262144) as plain, ng_writer as ng:
        assert pipeline_module.Pipeline(evaluator, plain).takes_records
        assert pipeline_module.Pipeline(evaluator, ng).takes_records


@pytest.mark.parametrize("config_name", ["defaults", "budgets"])
def test_a_pcapng_output_of_runs_is_the_pcapng_output_of_their_frames(config_name, tmp_path, monkeypatch):
    from pcapconstrictor.engine.sinks.pcapng_writer import PcapngWriter

    def pcapng_for(out):
        return lambda reader: PcapngWriter(str(out), 262144, comment="c", application="a",
                                           linktype=reader.linktype)  # fmt: skip

    taken = 0
    for path in PCAPS:
        frames = _run(path, tmp_path / "f.pcapng", CONFIGS[config_name], False, monkeypatch,
                      pcapng_for(tmp_path / "f.pcapng"))  # fmt: skip
        runs = _run(path, tmp_path / "r.pcapng", CONFIGS[config_name], True, monkeypatch,
                    pcapng_for(tmp_path / "r.pcapng"))  # fmt: skip
        assert runs[:4] == frames[:4], path
        taken += "PcapRecords" in runs[4]
    assert taken > len(PCAPS) // 2


def test_the_writer_finishes_a_run_that_the_os_takes_in_small_pieces(tmp_path, monkeypatch):
    """writev may write less than it is given (a signal, a nearly full disk): the rest follows."""
    import os

    real = os.writev
    calls = []

    def some(fd, parts):
        calls.append(len(parts))
        first = bytes(parts[0])[:7] if parts and len(parts[0]) else b""
        return real(fd, [first]) if first else real(fd, parts[:2])

    path = tmp_path / "in.pcap"
    path.write_bytes(_pcap(_tls_records(30)))
    expected = _run(path, tmp_path / "frames.pcap", "", False, monkeypatch)
    monkeypatch.setattr(os, "writev", some)
    got = _run(path, tmp_path / "runs.pcap", "", True, monkeypatch)
    assert got[:4] == expected[:4]
    assert len(calls) > 100  # the file went out 7 bytes at a time


def test_the_main_tools_writer_takes_runs_of_a_little_endian_microsecond_input(tmp_path, monkeypatch):
    """``constrict`` keeps its input's file header; its records are ours when the input's are."""
    from pcapconstrictor.engine.sinks.input_header_pcap_writer import InputHeaderPcapWriter

    records = _tls_records(20)
    big = struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1) + b"".join(
        struct.pack(">IIII", sec, usec, len(data), orig) + data for sec, usec, data, orig in records)
    nano = struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1) + _pcap(records)[24:]
    (tmp_path / "big.pcap").write_bytes(big)
    (tmp_path / "nano.pcap").write_bytes(nano)
    taken = 0
    for path in [*PCAPS, tmp_path / "big.pcap", tmp_path / "nano.pcap"]:
        def keep_header(reader, out=tmp_path / "main.pcap"):
            return InputHeaderPcapWriter(str(out), reader)

        frames = _run(path, tmp_path / "main.pcap", "", False, monkeypatch, keep_header)
        runs = _run(path, tmp_path / "main.pcap", "", True, monkeypatch, keep_header)
        assert runs[:4] == frames[:4], path
        taken += "PcapRecords" in runs[4]
        with PcapReader(str(path)) as reader:
            writer = keep_header(reader)
            assert writer.takes_records == (not reader.big_endian and not reader.nanosecond)
            writer.close()
    assert taken > len(PCAPS) // 2

