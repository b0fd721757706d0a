"""The frames of a TPACKET_V3 block, copied out of the ring (engine/sources/tpacket_frames.py).

A block is built here in an anonymous mmap, as the kernel lays it out (tpacket3_hdr, then the
sockaddr_ll, then the frame at tp_mac, headers chained by tp_next_offset); the live tests
(tests/test_live_capture.py) read real ones.  Compiled in a compiled install.
"""

from __future__ import annotations

import mmap

from pcapconstrictor.engine.sources.packet_socket import with_vlan_tag
from pcapconstrictor.engine.sources.tpacket_frames import HDR_SIZE, PKTTYPE_AT, block_frames
from pcapconstrictor.formats.derived import linux_packet as lp

HDR = lp.tpacket3_hdr.whole_struct()
MAC = 80  # where each frame starts after its header (tp_mac)
STEP = 256  # one header and frame after another (tp_next_offset)


def ring_of(frames: list[dict]) -> mmap.mmap:
    """A block of ``frames`` (dicts of tpacket3_hdr fields: data, sec, nsec, length, status,
    tci, tpid, pkttype, next) from offset 0."""
    ring = mmap.mmap(-1, STEP * (len(frames) + 1))
    for i, f in enumerate(frames):
        at = i * STEP
        data = f["data"]
        HDR.pack_into(ring, at, f.get("next", STEP), f.get("sec", 1_700_000_000), f.get("nsec", i),
                      f.get("snaplen", len(data)), f.get("length", len(data)), f.get("status", 1), MAC, 0, 0,
                      f.get("tci", 0), f.get("tpid", 0), 0, b"")  # fmt: skip
        ring[at + PKTTYPE_AT] = f.get("pkttype", lp.PACKET_HOST)
        ring[at + MAC : at + MAC + len(data)] = data
    return ring


def frame(n: int) -> bytes:
    return bytes([n]) * 12 + b"\x08\x00" + bytes(range(n, n + 30))


def test_every_frame_of_the_chain_is_copied_with_its_time_and_wire_length():
    ring = ring_of([{"data": frame(1)}, {"data": frame(2), "length": 1500}, {"data": frame(3)}])
    frames, errors = block_frames(ring, 0, len(ring), 3, False, None, None, 0)
    assert errors == 0
    assert frames == [(1_700_000_000_000_000_000, frame(1), 44), (1_700_000_000_000_000_001, frame(2), 1500),
                      (1_700_000_000_000_000_002, frame(3), 44)]  # fmt: skip
    assert all(type(data) is bytes for _, data, _ in frames)  # copies: the block goes back


def test_outgoing_frames_are_left_out_when_asked_and_vlan_tags_go_back_in():
    ring = ring_of([{"data": frame(1), "pkttype": lp.PACKET_OUTGOING},
                    {"data": frame(2), "status": 1 | lp.TP_STATUS_VLAN_VALID, "tci": 7},
                    {"data": frame(3), "status": 1 | lp.TP_STATUS_VLAN_VALID | lp.TP_STATUS_VLAN_TPID_VALID,
                     "tci": 9, "tpid": 0x88A8}])  # fmt: skip
    frames, errors = block_frames(ring, 0, len(ring), 3, True, with_vlan_tag, None, 0)
    assert errors == 0
    assert [(data, length) for _, data, length in frames] == [
        (with_vlan_tag(frame(2), 7, 0), 48), (with_vlan_tag(frame(3), 9, 0x88A8), 48)]
    assert frames[0][1][12:16] == b"\x81\x00\x00\x07" and frames[1][1][12:16] == b"\x88\xa8\x00\x09"
    untagged, _ = block_frames(ring, 0, len(ring), 3, False, None, None, 0)
    assert [data for _, data, _ in untagged] == [frame(1), frame(2), frame(3)]


def test_a_cooked_capture_makes_each_frame_or_leaves_it_out():
    ring = ring_of([{"data": frame(1)}, {"data": frame(2)}])
    seen = []

    def cooked(at: int, data: bytes) -> bytes | None:
        seen.append(at)
        return None if at else b"SLL2" + data

    frames, errors = block_frames(ring, 0, len(ring), 2, False, with_vlan_tag, cooked, 20)
    assert errors == 0 and seen == [0, STEP]
    assert frames == [(1_700_000_000_000_000_000, b"SLL2" + frame(1), 64)]


def test_a_header_that_points_outside_the_block_ends_the_walk_as_an_error():
    bad_length = ring_of([{"data": frame(1)}, {"data": frame(2), "length": 10}, {"data": frame(3)}])
    frames, errors = block_frames(bad_length, 0, len(bad_length), 3, False, None, None, 0)
    assert [data for _, data, _ in frames] == [frame(1)] and errors == 1
    no_next = ring_of([{"data": frame(1), "next": 0}, {"data": frame(2)}])
    frames, errors = block_frames(no_next, 0, len(no_next), 2, False, None, None, 0)
    assert [data for _, data, _ in frames] == [frame(1)] and errors == 1
    past_end = ring_of([{"data": frame(1)}, {"data": frame(2)}])
    frames, errors = block_frames(past_end, 0, STEP + HDR_SIZE - 1, 2, False, None, None, 0)
    assert [data for _, data, _ in frames] == [frame(1)] and errors == 1
    frames, errors = block_frames(past_end, 0, MAC + 10, 1, False, None, None, 0)  # frame past the end
    assert frames == [] and errors == 1
