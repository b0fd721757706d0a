"""Fuzzing the classic PCAP reader on mutated files (issue 6, part 1b; SPEC §12.1).

The oracle is a direct reading of SPEC §12.1 (plus libpcap's bound on a record's length,
ours), written here with ``struct`` and no buffering:
for any file the reader must yield exactly the records that reading yields and then stop
cleanly or raise the same :class:`PcapReadError`, with the same text, which must have one of
the documented forms.  Nothing else may escape.  Both the file path and standard input are
checked, since the reader bounds its reads differently for each.
"""

from __future__ import annotations

import io
import random
import re
import struct
import sys
import types
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import GOLDEN, GOLDEN_CASES
from pcapconstrictor.engine.sources.pcap_reader import PcapReader, PcapReadError

MAGICS = {  # first four bytes -> (struct byte order, ns per fraction unit, fractions per second)
    b"\xd4\xc3\xb2\xa1": ("<", 1000, 10**6),
    b"\xa1\xb2\xc3\xd4": (">", 1000, 10**6),
    b"\x4d\x3c\xb2\xa1": ("<", 1, 10**9),
    b"\xa1\xb2\x3c\x4d": (">", 1, 10**9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"

# Every message SPEC §12.1 documents, as it may appear for a file that exists.
ERROR_FORMS = [
    re.compile(p)
    for p in (
        r"file offset 0: pcapng is not supported by this offline feed mode",
        r"file offset 0: unsupported classic PCAP magic number",
        r"file offset 0: unexpected EOF while reading PCAP global header",
        r"file offset 4: unsupported classic PCAP version (\d+)\.(\d+)",
        r"file offset 16: invalid PCAP snaplen 0",
        r"file offset (?P<offset>\d+): unexpected EOF while reading packet header; "
        r"(?P<trailing>\d+) trailing byte\(s\) could not be processed",
        r"packet (?P<index>\d+) at file offset (?P<offset>\d+): "
        r"captured length (?P<caplen>\d+) exceeds original length (?P<orig>\d+)",
        r"packet (?P<index>\d+) at file offset (?P<offset>\d+): "
        r"captured length (?P<longest>\d+) exceeds the maximum record length (?P<bound>\d+)",
        r"packet (?P<index>\d+) at file offset (?P<offset>\d+): unexpected EOF while reading packet "
        r"payload; expected (?P<expected>\d+) byte\(s\), available (?P<available>\d+) byte\(s\), "
        r"missing (?P<missing>\d+) byte\(s\)",
    )
]


def documented_form(message: str) -> re.Match:
    """The §12.1 form ``message`` has, with its numbers consistent; fails the test if none."""
    for form in ERROR_FORMS:
        match = form.fullmatch(message)
        if match:
            groups = match.groupdict()
            if "trailing" in groups:
                assert 1 <= int(groups["trailing"]) <= 15, message
            if "caplen" in groups:
                assert int(groups["caplen"]) > int(groups["orig"]), message
            if "bound" in groups:
                assert int(groups["longest"]) > int(groups["bound"]) >= 262144, message
            if "missing" in groups:
                expected, available = int(groups["expected"]), int(groups["available"])
                assert available < expected and int(groups["missing"]) == expected - available, message
            if "offset" in groups:
                assert int(groups["offset"]) >= 24, message
            return match
    raise AssertionError(f"not a documented reader error: {message!r}")


def reference_read(content: bytes) -> tuple[list[tuple[int, bytes, int]], str | None]:
    """SPEC §12.1 read literally: the records, then the error text (None at a clean end)."""
    n = len(content)
    if n < 24:
        return [], "file offset 0: unexpected EOF while reading PCAP global header"
    if content[:4] == PCAPNG_SHB:
        return [], "file offset 0: pcapng is not supported by this offline feed mode"
    if content[:4] not in MAGICS:
        return [], "file offset 0: unsupported classic PCAP magic number"
    order, ns_per_unit, per_second = MAGICS[content[:4]]
    major, minor, _, _, snaplen, linktype = struct.unpack(order + "HHiIII", content[4:24])
    if major != 2:
        return [], f"file offset 4: unsupported classic PCAP version {major}.{minor}"
    if snaplen == 0:
        return [], "file offset 16: invalid PCAP snaplen 0"
    # any link type is read (issue 15); before 2.3 orig_len comes first, in 2.3 maybe (libpcap)
    records: list[tuple[int, bytes, int]] = []
    offset = 24
    while offset < n:
        if n - offset < 16:
            return records, (f"file offset {offset}: unexpected EOF while reading packet header; "
                             f"{n - offset} trailing byte(s) could not be processed")  # fmt: skip
        sec, frac, caplen, orig = struct.unpack(order + "IIII", content[offset : offset + 16])
        if minor < 3 or (minor == 3 and caplen > orig):
            caplen, orig = orig, caplen
        where = f"packet {len(records) + 1} at file offset {offset}"  # counted from 1 (DECISIONS #11)
        if caplen > orig:
            return records, f"{where}: captured length {caplen} exceeds original length {orig}"
        bound = max(snaplen, 262144)  # libpcap's (ours, not upstream's)
        if caplen > bound:
            return records, f"{where}: captured length {caplen} exceeds the maximum record length {bound}"
        available = n - offset - 16
        if available < caplen:
            return records, (f"{where}: unexpected EOF while reading packet payload; "
                             f"expected {caplen} byte(s), available {available} byte(s), "
                             f"missing {caplen - available} byte(s)")  # fmt: skip
        data = content[offset + 16 : offset + 16 + caplen]
        records.append(((sec * per_second + frac) * ns_per_unit, data, orig))
        offset += 16 + caplen
    return records, None


def read_all(source: str) -> tuple[list[tuple[int, bytes, int]], str | None]:
    """What PcapReader yields from ``source``; only a PcapReadError may end it early."""
    records: list[tuple[int, bytes, int]] = []
    try:
        with PcapReader(source) as reader:
            for record in reader:
                records.append(record)
    except PcapReadError as e:
        return records, str(e)
    return records, None


def check_reader_agrees(path: Path, content: bytes) -> None:
    expected = reference_read(content)
    path.write_bytes(content)
    got = read_all(str(path))
    assert got == expected
    real_stdin = sys.stdin
    sys.stdin = types.SimpleNamespace(buffer=io.BytesIO(content))  # read as '-', size unknown
    try:
        assert read_all("-") == expected
    finally:
        sys.stdin = real_stdin
    if expected[1] is not None:
        documented_form(expected[1])
    for _, data, orig in got[0]:
        assert len(data) <= orig  # a record never claims fewer bytes than it carries


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_reader") / "in.pcap"


# --- building and mutating files ---------------------------------------------------------------

def _golden_data() -> list[bytes]:
    frames = []
    for case in GOLDEN_CASES:
        with PcapReader(str(GOLDEN / case / "input.pcap")) as reader:
            frames += [data for _, data, _ in reader]
    return frames


GOLDEN_DATA = _golden_data()


@st.composite
def pcap_files(draw) -> bytes:
    """A valid classic PCAP of any byte order and precision: golden frames or random bytes,
    caplen equal to or below orig_len, fractions up to the precision's limit."""
    rnd = draw(st.randoms(use_true_random=True))
    magic = draw(st.sampled_from(sorted(MAGICS)))
    order, _, per_second = MAGICS[magic]
    snaplen = draw(st.sampled_from([65535, 1, 262144, 0xFFFF_FFFF]))
    out = magic + struct.pack(order + "HHiIII", 2, 4, rnd.randint(-(2**31), 2**31 - 1), 0, snaplen, 1)
    for _ in range(draw(st.integers(0, 6))):
        data = rnd.choice(GOLDEN_DATA) if rnd.random() < 0.7 else rnd.randbytes(rnd.randint(0, 300))
        orig = len(data) + rnd.choice([0, 0, 0, 1, 0xFFFF_FFFF - len(data)])
        sec = rnd.choice([0, 0xFFFF_FFFF, rnd.randint(0, 0xFFFF_FFFF)])
        frac = rnd.choice([0, per_second - 1, per_second, 0xFFFF_FFFF, rnd.randint(0, per_second)])
        out += struct.pack(order + "IIII", sec, frac, len(data), orig) + data
    return out


def record_field_offsets(content: bytes) -> list[int]:
    """File offsets of the caplen and orig_len words of each record, walking the caplens."""
    if content[:4] not in MAGICS:
        return []
    order = MAGICS[content[:4]][0]
    offsets, offset = [], 24
    while offset + 16 <= len(content):
        offsets += [offset + 8, offset + 12]
        offset += 16 + struct.unpack_from(order + "I", content, offset + 8)[0]
    return offsets


HEADER_FIELDS = {"magic": (0, 4), "version": (4, 2), "minor": (6, 2), "snaplen": (16, 4), "linktype": (20, 4)}
WORD_VALUES = [0, 1, 2, 4, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0x0A0D0D0A, 0xA1B2C3D4, 0xD4C3B2A1]

MUTATIONS = st.tuples(
    st.sampled_from(["truncate", "truncate", "record_length", "record_length", "header", "flip",
                     "delete", "insert", "append"]),
    st.integers(0, 1 << 20),
    st.sampled_from(WORD_VALUES) | st.integers(0, 0xFFFF_FFFF),
)  # fmt: skip


def mutate(content: bytes, mutation: tuple[str, int, int]) -> bytes:
    kind, position, value = mutation
    if kind == "truncate":
        return content[: position % (len(content) + 1)]
    if kind == "append":
        return content + value.to_bytes(4, "little")[: 1 + position % 4] * (1 + position % 7)
    if kind == "header":
        off, size = list(HEADER_FIELDS.values())[position % len(HEADER_FIELDS)]
        if len(content) < off + size:
            return content
        word = (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")
        return content[:off] + word + content[off + size :]
    if kind == "record_length":
        offsets = record_field_offsets(content)
        if not offsets:
            return content
        off = offsets[position % len(offsets)]
        order = "<" if MAGICS[content[:4]][0] == "<" else ">"
        current = struct.unpack_from(order + "I", content, off)[0]
        new = {0: current - 1, 1: current + 1}.get(value % 4, value) & 0xFFFF_FFFF  # near the truth or not
        return content[:off] + struct.pack(order + "I", new) + content[off + 4 :]
    if not content:
        return content
    at = position % len(content)
    if kind == "flip":
        return content[:at] + bytes([content[at] ^ (1 << value % 8)]) + content[at + 1 :]
    if kind == "delete":
        return content[:at] + content[at + 1 + value % 16 :]
    return content[:at] + value.to_bytes(4, "little")[: 1 + position % 4] + content[at:]


# --- the fuzz targets -------------------------------------------------------------------------


@given(content=pcap_files(), mutations=st.lists(MUTATIONS, max_size=4))
def test_mutated_pcap_files_yield_the_spec_records_then_a_documented_error(work, content, mutations):
    for mutation in mutations:
        content = mutate(content, mutation)
    check_reader_agrees(work, content)


@given(head=st.sampled_from([b"", *MAGICS, PCAPNG_SHB]), content=st.binary(max_size=400))
def test_arbitrary_bytes_yield_the_spec_records_or_a_documented_error(work, head, content):
    check_reader_agrees(work, head + content)


@given(content=pcap_files(), tail=st.binary(max_size=64))
def test_valid_files_read_back_every_record_and_garbage_after_them_is_reported(work, content, tail):
    assert reference_read(content)[1] is None  # the generator builds valid files
    check_reader_agrees(work, content)
    check_reader_agrees(work, content + tail)


# --- exhaustive, deterministic ----------------------------------------------------------------


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_a_golden_input_cut_at_every_offset_reads_as_the_spec_says(case, tmp_path):
    content = (GOLDEN / case / "input.pcap").read_bytes()
    path = tmp_path / "cut.pcap"
    step = 1 if len(content) < 10_000 else len(content) // 400  # every offset of the small file
    offsets = list(range(0, len(content) + 1, step))
    offsets += [o for o in record_field_offsets(content) for o in (o - 8, o + 8, o + 9)]  # record edges
    for cut in sorted(set(o for o in offsets if 0 <= o <= len(content))):
        check_reader_agrees(path, content[:cut])


def test_every_record_length_word_of_a_golden_input_set_to_extremes_reads_as_the_spec_says(tmp_path):
    content = (GOLDEN / "tls_test_2" / "input.pcap").read_bytes()
    path = tmp_path / "bad.pcap"
    rnd = random.Random(6)
    for off in record_field_offsets(content):
        current = int.from_bytes(content[off : off + 4], "little")
        for value in (0, current - 1, current + 1, 0x7FFF_FFFF, 0xFFFF_FFFF, rnd.randint(0, 0xFFFF_FFFF)):
            word = (value & 0xFFFF_FFFF).to_bytes(4, "little")
            check_reader_agrees(path, content[:off] + word + content[off + 4 :])
