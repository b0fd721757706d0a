"""Input records copied whole (engine/record_batch.py): the PCAP writer's fast
path must write exactly what it writes for the same frames as a plain list.

Inputs are built with plain ``struct.pack`` (independent of the schemas); the
expected output is computed here from SPEC §11 directly.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sources import pcap_reader
from pcapconstrictor.engine.sources.pcap_reader import PcapReader

MAGIC = {(False, False): 0xA1B2C3D4, (False, True): 0xA1B23C4D}


def pcap(records: list[tuple[int, int, bytes, int]], *, nanosecond: bool = False,
         big_endian: bool = False) -> bytes:  # fmt: skip
    order = ">" if big_endian else "<"
    out = struct.pack(order + "IHHiIII", MAGIC[(False, nanosecond)], 2, 4, 0, 0, 65535, 1)
    for sec, frac, data, orig in records:
        out += struct.pack(order + "IIII", sec, frac, len(data), orig) + data
    return out


def expected_output(records: list[tuple[int, int, bytes, int]], cuts: list[int],
                    nanosecond: bool = False) -> bytes:  # fmt: skip
    """SPEC §11: LE microsecond header, each record cut to its length, the
    timestamp truncated to whole microseconds and carried into seconds."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    for (sec, frac, data, orig), n in zip(records, cuts, strict=True):
        ns = sec * 10**9 + (frac if nanosecond else frac * 1000)
        s, usec = divmod(ns // 1000, 10**6)
        out += struct.pack("<IIII", s & 0xFFFFFFFF, usec, n, max(orig, n)) + data[:n]
    return out


def rewrite(path: str, out: Path, cut, as_plain_lists: bool = False) -> tuple[bytes, list[bool]]:
    """Read ``path`` in batches, write each frame cut to ``cut(i, data)``;
    returns the output file and, per batch, whether it carried its records."""
    carried = []
    i = 0
    with PcapReader(path) as reader, PcapWriter(str(out), 262144) as writer:
        for batch in reader.batches():
            carried.append(getattr(batch, "records", None) is not None)
            lengths = [cut(i + k, data) for k, (_, data, _) in enumerate(batch)]
            i += len(batch)
            writer.write_batch(list(batch) if as_plain_lists else batch, lengths)
    return out.read_bytes(), carried


records_strategy = st.lists(
    st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 999_999), st.binary(max_size=60),
              st.integers(0, 40)),  # fmt: skip
    max_size=40,
).map(lambda rs: [(sec, usec, data, len(data) + extra) for sec, usec, data, extra in rs])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=records_strategy, chunk=st.sampled_from([1, 16, 40, 100, 1 << 20]), data=st.data())
def test_records_copied_whole_give_the_bytes_of_a_record_by_record_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, records, chunk, data
) -> None:
    cuts = [data.draw(st.integers(0, len(d)), label="cut") if data.draw(st.booleans()) else len(d)
            for _, _, d, _ in records]  # fmt: skip
    src = tmp_path / "in.pcap"
    src.write_bytes(pcap(records))
    monkeypatch.setattr(pcap_reader, "CHUNK_SIZE", chunk)
    fast, carried = rewrite(str(src), tmp_path / "fast.pcap", lambda i, _: cuts[i])
    plain, _ = rewrite(str(src), tmp_path / "plain.pcap", lambda i, _: cuts[i], as_plain_lists=True)
    assert fast == plain == expected_output(records, cuts)
    if records and chunk == 1 << 20:
        assert carried == [True]  # the fast path was taken, not just the fallback


def test_a_whole_run_of_records_is_written_as_it_was_read(tmp_path: Path) -> None:
    records = [(1, 2, b"abc", 3), (1, 3, b"defgh", 70), (2, 999_999, b"", 4)]
    src = tmp_path / "in.pcap"
    src.write_bytes(pcap(records))
    out, carried = rewrite(str(src), tmp_path / "out.pcap", lambda i, d: len(d))
    assert carried == [True]
    assert out[24:] == src.read_bytes()[24:]


def test_microseconds_past_a_second_are_carried_not_copied(tmp_path: Path) -> None:
    # usec >= 10**6 is readable, but the writer normalizes it (§11.3): such a
    # chunk must not be copied as it was read.
    records = [(5, 1, b"ok", 2), (5, 1_500_000, b"carry", 5)]
    src = tmp_path / "in.pcap"
    src.write_bytes(pcap(records))
    out, carried = rewrite(str(src), tmp_path / "out.pcap", lambda i, d: len(d))
    assert carried == [False]
    assert out == expected_output(records, [2, 5])
    assert struct.unpack_from("<II", out, 24 + 16 + 2) == (6, 500_000)


@pytest.mark.parametrize("nanosecond, big_endian", [(True, False), (False, True)])
def test_other_input_formats_never_carry_records(tmp_path: Path, nanosecond: bool, big_endian: bool) -> None:
    records = [(7, 123_456_789 if nanosecond else 123_456, b"frame", 9)]
    src = tmp_path / "in.pcap"
    src.write_bytes(pcap(records, nanosecond=nanosecond, big_endian=big_endian))
    out, carried = rewrite(str(src), tmp_path / "out.pcap", lambda i, d: len(d))
    assert carried == [False]
    assert out == expected_output(records, [5], nanosecond=nanosecond)
