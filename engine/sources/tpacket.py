"""The ``tpacket_v3`` live backend: a PACKET_MMAP RX ring of blocks (SPEC §13.2).

The kernel fills a block with frames and hands it over (``block_status`` gets
TP_STATUS_USER) when it is full or ``block_timeout_ms`` has passed.  Every
header is read through layouts derived from the ``formats/linux_packet``
schemas.  Each frame's bytes are copied out before the block goes back to the
kernel (SPEC §18), and a block goes back as soon as it has been read, so the
kernel can refill it while the frames are constricted and written.
"""

from __future__ import annotations

import errno
import mmap
import select
import struct

from pcapconstrictor.formats import derived
from pcapconstrictor.formats import linux_packet as lp

from .cooked_capture import ETHERNET, SLL2_HEADER_SIZE, CaptureLink, sll2_header
from .packet_socket import CaptureError, PacketSocket, os_failure, with_vlan_tag
from .tpacket_frames import HDR_SIZE, SLL_AT, block_frames

_REQ = derived.linux_packet.tpacket_req3
_BLOCK = derived.linux_packet.tpacket_block_desc
_HDR = derived.linux_packet.tpacket3_hdr
_SLL = derived.linux_packet.sockaddr_ll
METADATA_SIZE = lp.tpacket_align(_HDR.size) + lp.tpacket_align(_SLL.size)  # 80 (§13.2 rule 5)
_STATUS_AT = _BLOCK.offset("block_status")
_BLOCK_STATUS = _BLOCK.reader("block_status")
_KERNEL = struct.pack(_BLOCK.byte_order + _BLOCK.fields["block_status"].code, lp.TP_STATUS_KERNEL)
_NUM_PKTS = _BLOCK.fields["num_pkts"].index
_FIRST_PKT = _BLOCK.fields["offset_to_first_pkt"].index
_SLL_FIELDS = [_SLL.reader(name) for name in ("sll_protocol", "sll_ifindex", "sll_hatype", "sll_pkttype")]
_HALEN_AT, _ADDR_AT = SLL_AT + _SLL.offset("sll_halen"), SLL_AT + _SLL.offset("sll_addr")
_U32_MAX = 2**32 - 1


def validate_ring(block_size: int, block_count: int, frame_size: int) -> None:
    """§13.2 checks 2-5, before any socket call."""
    checks = (
        (block_size > 0, "capture.ring_block_size must be greater than 0"),
        (block_count > 0, "capture.ring_block_count must be greater than 0"),
        (frame_size > 0, "capture.ring_frame_size must be greater than 0"),
        (frame_size > 0 and block_size % frame_size == 0,
         "capture.ring_block_size must be a multiple of capture.ring_frame_size"),
        (block_size % mmap.PAGESIZE == 0,
         "capture.ring_block_size must be aligned to the system page size"),
        (frame_size % lp.TPACKET_ALIGNMENT == 0,
         "capture.ring_frame_size must be aligned to TPACKET_ALIGNMENT"),
        (frame_size >= METADATA_SIZE, "capture.ring_frame_size is too small for TPACKET_V3 metadata"),
    )  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise CaptureError(message)


MEMINFO = "/proc/meminfo"


def memory_available() -> int | None:
    """The kernel's estimate of the memory a new allocation can get (MemAvailable), in bytes."""
    try:
        with open(MEMINFO) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_ring_memory(block_size: int, block_count: int, frame_size: int, rings: int,
                      max_ring_bytes: int) -> None:  # fmt: skip
    """Issue 13: refuse ``rings`` rings larger than ``max_ring_bytes`` (0: half of
    MemAvailable) before asking the kernel, which would pin them and run the host out of
    memory (a typo of ``ring_block_count`` does it).  §13.2's own checks come first."""
    validate_ring(block_size, block_count, frame_size)
    if max_ring_bytes:
        bound, which = max_ring_bytes, "capture.max_ring_bytes"
    else:
        available = memory_available()
        if available is None:  # no /proc/meminfo: the kernel is the only judge
            return
        bound, which = available // 2, "half of MemAvailable"
    total = block_size * block_count * rings
    if total > bound:
        workers = f" x {rings} workers" if rings > 1 else ""
        raise CaptureError(
            f"the tpacket_v3 ring needs {total} bytes (ring_block_size x ring_block_count{workers}), "
            f"more than {bound} bytes ({which}); lower capture.ring_block_count or "
            "capture.ring_block_size, or set capture.max_ring_bytes"
        )


class TpacketCapture:
    name = "tpacket_v3"
    flush_each_batch = True  # a block is the unit the kernel hands over: flush after each

    def __init__(self, interface: str, promiscuous: bool, block_size: int, block_count: int,
                 frame_size: int, block_timeout_ms: int, capture_filter=None,
                 link: CaptureLink = ETHERNET) -> None:  # fmt: skip
        if not interface:
            raise CaptureError("missing interface name")
        validate_ring(block_size, block_count, frame_size)
        self.block_size = block_size
        self.block_count = block_count
        self.receive_errors = 0
        self.link_down_events = 0  # ENETDOWN reports: the interface went down (engine/link_state.py)
        # a stop waits this long once for the block being filled: the kernel hands it over then
        self.drain_wait_ms = block_timeout_ms + 50
        self._block = 0  # the next block to read, in ring order
        self.ring: mmap.mmap | None = None
        self.linktype = link.linktype
        self._cooked = link.cooked
        self._vlan_tags = link.ethernet  # a tag goes back into an Ethernet header only (as libpcap)
        self.packet_socket = PacketSocket(interface, capture_filter, link)
        try:
            self._map_ring(block_size, block_count, frame_size, block_timeout_ms)
            self.packet_socket.bind(promiscuous)
        except CaptureError:
            self.close()
            raise
        self._skip_outgoing = self.packet_socket.skip_outgoing
        self._user_filter = self.packet_socket.user_filter
        self._poll = select.poll()
        self._poll.register(self.packet_socket.fileno(), select.POLLIN | select.POLLERR)

    def _map_ring(self, block_size: int, block_count: int, frame_size: int, timeout_ms: int) -> None:
        ps = self.packet_socket
        ps.set_option(lp.SOL_PACKET, lp.PACKET_VERSION, lp.TPACKET_V3,
                      "failed to set PACKET_VERSION to TPACKET_V3")  # fmt: skip
        frames = (block_size // frame_size) * block_count
        if not 1 <= frames <= _U32_MAX:
            raise CaptureError("invalid TPACKET_V3 ring layout: frame count is out of range")
        request = _REQ.struct.pack(block_size, block_count, frame_size, frames, timeout_ms, 0, 0)
        ps.set_option(lp.SOL_PACKET, lp.PACKET_RX_RING, request, "failed to configure PACKET_RX_RING")
        try:
            self.ring = mmap.mmap(ps.fileno(), block_size * block_count, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)  # fmt: skip
        except OSError as exc:
            raise os_failure("failed to mmap PACKET_RX_RING", exc) from None

    def receive(self, timeout_ms: int) -> list[tuple[int, bytes, int]]:
        """The frames of the next block; if the kernel has not handed it over yet,
        wait up to ``timeout_ms`` for it.  An empty list is a timeout."""
        base = self._block * self.block_size
        if not self._ready(base):
            if timeout_ms <= 0:
                return []
            self._wait(timeout_ms)
            if not self._ready(base):
                return []
        frames = self._read_block(base)
        self._release_block(base)
        return frames

    def _ready(self, base: int) -> bool:
        return bool(_BLOCK_STATUS(self.ring, base) & lp.TP_STATUS_USER)

    def _wait(self, timeout_ms: int) -> None:
        try:
            events = self._poll.poll(timeout_ms)
        except OSError as exc:
            self.receive_errors += 1
            raise CaptureError(f"failed to poll TPACKET_V3 socket: {exc.strerror}") from None
        for _fd, revents in events:
            if revents & select.POLLERR and self.packet_socket.take_error() == errno.ENETDOWN:
                self.link_down_events += 1  # not an error: the frames already in the ring stay
            elif revents & (select.POLLERR | select.POLLNVAL | select.POLLHUP):
                self.receive_errors += 1
                raise CaptureError("TPACKET_V3 poll reported a socket error")

    def _read_block(self, base: int) -> list[tuple[int, bytes, int]]:
        """Copy the block's frames out (§13.2 steps 2 and 4)."""
        ring = self.ring
        words = _BLOCK.struct.unpack_from(ring, base)
        count, first = words[_NUM_PKTS], words[_FIRST_PKT]
        end = base + self.block_size
        if count == 0:
            return []
        if first + HDR_SIZE > self.block_size or count > self.block_size // HDR_SIZE:
            self.receive_errors += 1  # a corrupt descriptor: discard the block
            return []
        cooked = self._cooked_frame if self._cooked else None
        retag = with_vlan_tag if self._vlan_tags else None
        frames, errors = block_frames(ring, base + first, end, count, self._skip_outgoing, retag, cooked,
                                      SLL2_HEADER_SIZE)  # fmt: skip
        self.receive_errors += errors
        if self._user_filter is not None:
            frames = list(self._user_filter.select(frames))
        return frames

    def _cooked_frame(self, at: int, frame: bytes) -> bytes | None:
        """``any``: the packet behind the LINUX_SLL2 header built from the sockaddr_ll after its
        tpacket3_hdr at ``at``, or None for lo's outgoing copy (DECISIONS #4)."""
        ring = self.ring
        protocol, ifindex, hatype, pkttype = (read(ring, at + SLL_AT) for read in _SLL_FIELDS)
        if pkttype == lp.PACKET_OUTGOING and ifindex == self.packet_socket.loopback_index:
            return None
        address = ring[at + _ADDR_AT : at + _ADDR_AT + 8]
        return sll2_header(protocol, ifindex, hatype, pkttype, ring[at + _HALEN_AT], address) + frame

    def _release_block(self, base: int) -> None:
        """Give the block back (TP_STATUS_KERNEL) and move on to the next one.  Every
        frame was copied by the slices in _read_block, so nothing points into the block.
        CPython has no memory fence to offer: the copies are calls that returned long
        before this store, and x86 (TSO) never moves a load after a later store."""
        self.ring[base + _STATUS_AT : base + _STATUS_AT + 4] = _KERNEL
        self._block = (self._block + 1) % self.block_count

    def kernel_statistics(self) -> tuple[int, int] | None:
        return self.packet_socket.read_statistics(v3=True)

    def close(self) -> None:
        """Drop the membership, unmap the ring, close (the kernel frees the ring)."""
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        self.packet_socket.close()

