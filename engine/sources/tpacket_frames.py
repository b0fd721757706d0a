"""The frames of one TPACKET_V3 block, copied out of the ring (issue 21: the live path).

engine/sources/tpacket.py hands each block the kernel has filled to :func:`block_frames`,
which walks its ``tpacket3_hdr`` chain and copies every frame out before the block goes back
(SPEC §13.2 steps 2 and 4, §18).  Compiled with mypyc (engine/compiled.py): the walk was the
live recorder's largest interpreted loop.  Headers are read through the layout derived from
formats/linux_packet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from pcapconstrictor.formats.derived import linux_packet as lp

_HDR: Final = lp.tpacket3_hdr
HDR_SIZE: Final = _HDR.size  # 48
_UNPACK: Final = _HDR.whole_struct().unpack_from
# the packet's sockaddr_ll follows its header, at TPACKET_ALIGN(HDR_SIZE)
SLL_AT: Final = (HDR_SIZE + lp.TPACKET_ALIGNMENT - 1) & ~(lp.TPACKET_ALIGNMENT - 1)
PKTTYPE_AT: Final = SLL_AT + lp.sockaddr_ll.offset("sll_pkttype")
_OUTGOING: Final = lp.PACKET_OUTGOING
_VLAN_VALID: Final = lp.TP_STATUS_VLAN_VALID
_TPID_VALID: Final = lp.TP_STATUS_VLAN_TPID_VALID
# block_frames unpacks tpacket3_hdr positionally: fail at import if the schema's order changes
assert list(_HDR.fields) == ["tp_next_offset", "tp_sec", "tp_nsec", "tp_snaplen", "tp_len", "tp_status",
                             "tp_mac", "tp_net", "tp_rxhash", "tp_vlan_tci", "tp_vlan_tpid", "hv1_padding",
                             "tp_padding"], _HDR.fields  # fmt: skip

Cooked = Callable[[int, bytes], "bytes | None"]  # (header offset, frame) -> frame behind LINUX_SLL2
Retag = Callable[[bytes, int, int], bytes]  # (frame, tci, tpid) -> frame with its 802.1Q tag


def block_frames(ring: Any, at: int, end: int, count: int, skip_outgoing: bool, retag: Retag | None,
                 cooked: Cooked | None,
                 cooked_extra: int) -> tuple[list[tuple[int, bytes, int]], int]:  # fmt: skip
    """``(frames, errors)``: ``(ts_ns, frame, wire length)`` of the ``count`` packets whose
    headers chain from ``at`` in the block that ends at ``end``, copied out of ``ring``; a
    header that points outside the block ends the walk (an error: the rest of the block cannot
    be trusted).  ``skip_outgoing``: leave out the frames the host sent; ``retag``: put back
    the 802.1Q tag the kernel took out (packet_socket.with_vlan_tag); ``cooked``: make each
    frame a LINUX_SLL2 one (``cooked_extra`` bytes longer on the wire), None to leave it
    out."""
    frames: list[tuple[int, bytes, int]] = []
    errors = 0
    for remaining in range(count - 1, -1, -1):
        fields: tuple[int, int, int, int, int, int, int, int, int, int, int, int, bytes] = _UNPACK(ring, at)
        next_offset, sec, nsec, snaplen, length, status, mac, _, _, tci, tpid, _, _ = fields
        start = at + mac
        if start + snaplen > end or snaplen > length:
            errors += 1
            break
        if not (skip_outgoing and ring[at + PKTTYPE_AT] == _OUTGOING):
            frame: bytes = ring[start : start + snaplen]
            ts_ns = sec * 1_000_000_000 + nsec
            if cooked is not None:
                made = cooked(at, frame)
                if made is not None:
                    frames.append((ts_ns, made, length + cooked_extra))
            elif retag is not None and status & _VLAN_VALID and snaplen >= 12:
                tagged = retag(frame, tci, tpid if status & _TPID_VALID else 0)
                frames.append((ts_ns, tagged, length + 4))
            else:
                frames.append((ts_ns, frame, length))
        if not remaining:
            break
        at += next_offset
        if next_offset == 0 or at + HDR_SIZE > end:
            errors += 1
            break
    return frames, errors
