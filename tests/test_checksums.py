"""Checksum recomputation of reinflated frames (SPEC §15.6): rewrite what is complete, count and
leave alone what is not."""

from __future__ import annotations

import pytest

from conftest import GOLDEN
from pcapconstrictor.engine.analysis.checksums import Skip, internet_checksum, recompute_checksums
from pcapconstrictor.engine.sources.pcap_reader import PcapReader


def golden_frames(name: str) -> list[bytes]:
    with PcapReader(str(GOLDEN / "ipv6_ipv4_test_1" / name)) as reader:
        return [bytes(data) for _, data, _ in reader]


def test_recomputing_valid_checksums_changes_nothing():
    for frame in golden_frames("reinflated_recompute_checksum.pcap"):
        copy = bytearray(frame)
        try:
            recompute_checksums(copy, 1)
        except Skip:
            continue
        assert bytes(copy) == frame


def test_a_zeroed_ipv4_header_checksum_is_restored():
    frame = next(f for f in golden_frames("reinflated_recompute_checksum.pcap") if f[12:14] == b"\x08\x00")
    broken = bytearray(frame)
    broken[24:26] = b"\0\0"
    assert recompute_checksums(broken, 1).startswith("ipv4/")
    assert bytes(broken) == frame
    assert internet_checksum(broken[14:34]) == 0


def test_an_ipv4_fragment_is_skipped_and_left_alone():
    frame = bytearray(next(f for f in golden_frames("input.pcap") if f[12:14] == b"\x08\x00" and f[23] == 17))
    frame[20] |= 0x20  # more fragments
    before = bytes(frame)
    with pytest.raises(Skip, match="fragment"):
        recompute_checksums(frame, 1)
    assert bytes(frame) == before


def test_a_udp_length_that_disagrees_with_the_ip_length_is_skipped():
    frame = bytearray(next(f for f in golden_frames("input.pcap") if f[12:14] == b"\x08\x00" and f[23] == 17))
    frame[38:40] = (int.from_bytes(frame[38:40], "big") - 1).to_bytes(2, "big")
    with pytest.raises(Skip, match="length_mismatch"):
        recompute_checksums(frame, 1)


def test_other_link_types_are_skipped():
    with pytest.raises(Skip, match="unsupported_link_type"):
        recompute_checksums(bytearray(60), 101)
