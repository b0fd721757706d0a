"""The ``recvmsg`` live backend: one recvmsg() per frame (SPEC §13.1).

Unlike upstream's recvfrom() it asks for what the saved frame needs to be
true: ``MSG_TRUNC`` so a frame longer than the buffer still reports its wire
length (DECISIONS.md #3), ``SO_TIMESTAMPNS_NEW`` for the kernel's receive time
(#8) and ``PACKET_AUXDATA`` for the 802.1Q tag the kernel strips (#2).
recv_into() is about twice as fast but can carry none of that (bench/live_recv.py);
the tpacket_v3 backend is the fast path.

The socket is non-blocking: :meth:`RecvmsgCapture.receive` takes every frame
already queued, and only when there is none waits in poll() for at most the
caller's timeout, which is how the live loop notices a stop request, a deadline
or a flush due while the link is idle (CPython retries EINTR, SPEC §18).
"""

from __future__ import annotations

import errno
import select
import socket
import time

from pcapconstrictor.formats.derived import linux_packet as lp

from .cooked_capture import ETHERNET, SLL2_HEADER_SIZE, CaptureLink, InterfaceIndexes, sll2_header
from .packet_socket import CaptureError, PacketSocket, with_vlan_tag

BATCH = 1024  # frames per receive() at most, so a flood cannot starve the live loop
RECEIVE_BUFFER = 32 << 20  # SO_RCVBUF(FORCE): the 208 KiB default drops at ~150k frames/s
_AUX = lp.tpacket_auxdata
_TIMESPEC = lp.kernel_timespec
_ANCILLARY_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_AUX.size)
_RETRY_ERRNOS = (errno.ENOBUFS, errno.ENOMEM)  # counted, not fatal (§13.1)
# _take unpacks tpacket_auxdata positionally: fail at import if the schema's order changes.
assert list(_AUX.fields) == ["tp_status", "tp_len", "tp_snaplen", "tp_mac", "tp_net", "tp_vlan_tci",
                             "tp_vlan_tpid"], _AUX.fields  # fmt: skip


class RecvmsgCapture:
    name = "recvmsg"
    flush_each_batch = False

    def __init__(self, interface: str, promiscuous: bool, max_capture_len: int, capture_filter=None,
                 link: CaptureLink = ETHERNET) -> None:  # fmt: skip
        self.linktype = link.linktype
        self._cooked = link.cooked
        self._vlan_tags = link.ethernet  # a tag goes back into an Ethernet header only (as libpcap)
        self._indexes = InterfaceIndexes()
        self.receive_errors = 0
        self.link_down_events = 0  # ENETDOWN reports: the interface went down (engine/link_state.py)
        self.drain_wait_ms = 0  # what the kernel holds is in the socket's queue already
        self.buffer_size = max(max_capture_len, 65535)
        self._pending_error: CaptureError | None = None
        self.packet_socket = PacketSocket(interface, capture_filter, link)
        try:
            self._configure(self.packet_socket)
            self.packet_socket.bind(promiscuous)
        except CaptureError:
            self.packet_socket.close()
            raise
        self._sock = self.packet_socket.sock
        self._skip_outgoing = self.packet_socket.skip_outgoing
        self._user_filter = self.packet_socket.user_filter
        self._buffer = bytearray(self.buffer_size)
        self._view = memoryview(self._buffer)
        self._poll = select.poll()
        self._poll.register(self._sock.fileno(), select.POLLIN)

    def _configure(self, ps: PacketSocket) -> None:
        sock = ps.sock
        try:
            sock.setsockopt(socket.SOL_SOCKET, lp.SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:  # no CAP_NET_ADMIN: as much as net.core.rmem_max allows
            ps.set_option(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER,
                          "failed to configure AF_PACKET receive buffer")  # fmt: skip
        try:
            sock.setsockopt(socket.SOL_SOCKET, lp.SO_TIMESTAMPNS_NEW, 1)
        except OSError:
            pass  # kernel < 5.1: frames get the user-space clock, as upstream
        ps.set_option(lp.SOL_PACKET, lp.PACKET_AUXDATA, 1, "failed to enable PACKET_AUXDATA")
        sock.setblocking(False)

    def receive(self, timeout_ms: int) -> list[tuple[int, bytes, int]]:
        """Frames already queued (at most BATCH); if none, wait up to ``timeout_ms``
        for some.  An empty list is a timeout.  Raises CaptureError."""
        frames = self._take()
        if not frames and timeout_ms > 0:
            try:
                ready = self._poll.poll(timeout_ms)
            except OSError as exc:
                self.receive_errors += 1
                raise CaptureError(f"failed to receive packet: {exc.strerror}") from None
            if ready:
                frames = self._take()
        return frames

    def _take(self) -> list[tuple[int, bytes, int]]:
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            raise error
        frames: list[tuple[int, bytes, int]] = []
        append = frames.append
        recvmsg_into = self._sock.recvmsg_into
        buffers = [self._buffer]
        view = self._view
        size = self.buffer_size
        skip_outgoing = self._skip_outgoing
        cooked, vlan_tags = self._cooked, self._vlan_tags
        unpack_aux = _AUX.struct.unpack
        unpack_time = _TIMESPEC.struct.unpack
        now_ns = time.time_ns
        for _ in range(BATCH):
            try:
                length, ancillary, _flags, address = recvmsg_into(buffers, _ANCILLARY_SPACE, socket.MSG_TRUNC)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENETDOWN:  # reported once; the queued frames follow
                    self.link_down_events += 1
                    continue
                self.receive_errors += 1
                if exc.errno in _RETRY_ERRNOS:
                    continue
                error = CaptureError(f"failed to receive packet: {exc.strerror}")
                if frames:  # hand over what was received; fail on the next call
                    self._pending_error = error
                    break
                raise error from None
            if skip_outgoing and address[2] == lp.PACKET_OUTGOING:
                continue
            ts_ns = 0
            tag = None
            for level, kind, data in ancillary:
                if level == lp.SOL_PACKET:
                    status, _len, _snap, _mac, _net, tci, tpid = unpack_aux(data)
                    if status & lp.TP_STATUS_VLAN_VALID:
                        tag = (tci, tpid if status & lp.TP_STATUS_VLAN_TPID_VALID else 0)
                elif kind == lp.SCM_TIMESTAMPNS_NEW:
                    sec, nsec = unpack_time(data)
                    ts_ns = sec * 1_000_000_000 + nsec
            frame = bytes(view[: length if length < size else size])
            if cooked:
                frame = self._cooked_frame(address, frame)
                if frame is None:
                    continue
                length += SLL2_HEADER_SIZE
            elif tag is not None and vlan_tags and len(frame) >= 12:
                frame = with_vlan_tag(frame, *tag)
                length += 4
            append((ts_ns or now_ns(), frame, length))
        if self._user_filter is not None:
            frames = list(self._user_filter.select(frames))
        return frames

    def _cooked_frame(self, address: tuple, frame: bytes) -> bytes | None:
        """``any``: the packet behind its LINUX_SLL2 header, or None for lo's outgoing copy.
        ``address`` is Python's sockaddr_ll: (interface name, protocol, type, ARPHRD, address)."""
        name, protocol, pkttype, hatype, hwaddr = address
        ifindex = self._indexes[name]
        if pkttype == lp.PACKET_OUTGOING and ifindex == self.packet_socket.loopback_index:
            return None
        return sll2_header(protocol, ifindex, hatype, pkttype, len(hwaddr), hwaddr) + frame

    def kernel_statistics(self) -> tuple[int, int] | None:
        return self.packet_socket.read_statistics(v3=False)

    def close(self) -> None:
        self.packet_socket.close()
