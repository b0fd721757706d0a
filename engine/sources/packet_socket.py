"""The AF_PACKET socket both live backends share (SPEC §13, §13.3).

Interface lookup, socket, bind, promiscuous membership, kernel statistics and
the two things upstream gets wrong on every interface: frames of other
interfaces queued before bind() and 802.1Q tags the kernel strips off
(DECISIONS.md #2, #4).  Error texts are upstream's; ``str(CaptureError)`` is
what follows ``Live capture error: ``.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from pcapconstrictor.formats.derived import linux_packet as lp

from .capture_filter import attach as attach_filter
from .cooked_capture import ETHERNET, CaptureLink, bind_every_interface, kernel_program, loopback_index

_MREQ = lp.packet_mreq.struct
_STATS = lp.tpacket_stats
_STATS_V3 = lp.tpacket_stats_v3
_FANOUT = struct.Struct("=I")  # the PACKET_FANOUT argument: group id | (type | flags) << 16
ARPHRD_LOOPBACK = 772  # linux/if_arp.h
_VLAN_AT = 2 * lp.ETH_ALEN  # the tag goes between the MAC addresses and the EtherType


class CaptureError(Exception):
    """A backend failure with upstream's text; ``hint`` is an extra line for the user."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def os_failure(what: str, exc: OSError) -> CaptureError:
    """``<what>: <strerror>``, with a permission hint on EPERM/EACCES."""
    hint = None
    if exc.errno in (errno.EPERM, errno.EACCES):
        hint = ("live capture needs CAP_NET_RAW: run it with sudo, or grant the capability to this "
                "process only (README: Live capture, Permissions)")  # fmt: skip
    return CaptureError(f"{what}: {exc.strerror or exc}", hint)


def interface_index(name: str) -> int:
    if not name:
        raise CaptureError("missing interface name")
    try:
        return socket.if_nametoindex(name)
    except (OSError, ValueError) as exc:
        # CPython drops the errno; glibc's if_nametoindex reports ENODEV for an unknown name.
        reason = getattr(exc, "strerror", None) or os.strerror(errno.ENODEV)
        raise CaptureError(f"if_nametoindex failed for interface '{name}': {reason}") from None


def with_vlan_tag(frame: bytes, tci: int, tpid: int) -> bytes:
    """Put back the 802.1Q tag the kernel moved out of the frame, as libpcap does."""
    tag = ((tpid or lp.ETH_P_8021Q) << 16 | tci).to_bytes(4, "big")
    return frame[:_VLAN_AT] + tag + frame[_VLAN_AT:]


class PacketSocket:
    """An AF_PACKET socket for one interface, or for every one (``any``, ifindex 0).

    Created with protocol 0, so the kernel queues nothing until bind() names the
    interface *and* ETH_P_ALL: no frame of another interface can be queued
    before bind (upstream opens with ETH_P_ALL and reads those frames)."""

    def __init__(self, interface: str, capture_filter=None, link: CaptureLink = ETHERNET) -> None:
        self.interface = interface
        self.link = link
        self.ifindex = 0 if link.cooked else interface_index(interface)
        self.promiscuous = False
        self.skip_outgoing = False  # software filter when PACKET_IGNORE_OUTGOING is missing
        # ``any``: lo's outgoing copies are skipped by index (DECISIONS #4), as libpcap does
        self.loopback_index = loopback_index() if link.cooked else 0
        self.user_filter = None  # a filter the kernel cannot run on cooked frames: run on each frame
        self.kernel_packets = self.kernel_drops = 0
        self._stats_failed = False
        try:
            self.sock = socket.socket(socket.AF_PACKET, link.socket_type, 0)
        except OSError as exc:
            raise os_failure("failed to create AF_PACKET socket", exc) from None
        program = capture_filter.program if capture_filter is not None else None
        if program is not None and link.cooked:
            program = kernel_program(program)
            if program is None:
                self.user_filter = capture_filter
        if program is not None:  # issue 8: before bind(), so no unwanted frame is ever queued
            try:
                attach_filter(self.sock, program)
            except OSError as exc:
                self.sock.close()
                what = f"failed to attach capture filter '{capture_filter.expression}'"
                raise os_failure(what, exc) from None

    def fileno(self) -> int:
        return self.sock.fileno()

    def set_option(self, level: int, option: int, value: int | bytes, what: str) -> None:
        try:
            self.sock.setsockopt(level, option, value)
        except OSError as exc:
            raise os_failure(what, exc) from None

    def bind(self, promiscuous: bool) -> None:
        """bind() to the interface, then the optional promiscuous membership (§13.3)."""
        try:
            if self.link.cooked:
                bind_every_interface(self.sock)
            else:
                self.sock.bind((self.interface, lp.ETH_P_ALL))
        except OSError as exc:
            what = f"failed to bind AF_PACKET socket to interface '{self.interface}'"
            raise os_failure(what, exc) from None
        if promiscuous and self.ifindex:  # ``any`` has no promiscuous mode (the caller warns)
            self.set_option(lp.SOL_PACKET, lp.PACKET_ADD_MEMBERSHIP, self._mreq(),
                            f"failed to enable promiscuous mode on interface '{self.interface}'")  # fmt: skip
            self.promiscuous = True
        if self.ifindex and self.sock.getsockname()[3] == ARPHRD_LOOPBACK:
            # DECISIONS #4: lo hands every frame to taps twice (outgoing, incoming); keep one.
            try:
                self.sock.setsockopt(lp.SOL_PACKET, lp.PACKET_IGNORE_OUTGOING, 1)
            except OSError:  # kernel < 4.20: the backend drops PACKET_OUTGOING frames itself
                self.skip_outgoing = True

    def _mreq(self) -> bytes:
        return _MREQ.pack(self.ifindex, lp.PACKET_MR_PROMISC, 0, b"")

    def join_fanout(self, group: int, mode: int) -> None:
        """PACKET_FANOUT: share the interface's frames with the other sockets of ``group``
        (``mode``: type | flags).  After bind(): the kernel only adds a bound socket."""
        value = _FANOUT.pack(group & 0xFFFF | mode << 16)  # bytes: the flags overflow a C int
        self.set_option(lp.SOL_PACKET, lp.PACKET_FANOUT, value, "failed to join PACKET_FANOUT group")

    def create_fanout(self, mode: int) -> int:
        """A new PACKET_FANOUT group with an id the kernel picks among unused ones (so it
        cannot be another program's group), this socket its first member; returns the id."""
        value = _FANOUT.pack((mode | lp.PACKET_FANOUT_FLAG_UNIQUEID) << 16)
        self.set_option(lp.SOL_PACKET, lp.PACKET_FANOUT, value, "failed to create a PACKET_FANOUT group")
        try:
            raw = self.sock.getsockopt(lp.SOL_PACKET, lp.PACKET_FANOUT, _FANOUT.size)
        except OSError as exc:
            raise os_failure("failed to read the PACKET_FANOUT group id", exc) from None
        return _FANOUT.unpack(raw)[0] & 0xFFFF

    def take_error(self) -> int:
        """The socket's pending error (SO_ERROR, cleared by reading it): ENETDOWN after the
        interface went down or was deleted; 0 if none."""
        try:
            return self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError as exc:
            return exc.errno or errno.EIO

    def read_statistics(self, v3: bool) -> tuple[int, int] | None:
        """Running totals of PACKET_STATISTICS (tp_packets includes the drops).  The
        kernel resets its counters on each read, so every read is added up here."""
        layout = _STATS_V3 if v3 else _STATS
        if not self._stats_failed:
            try:
                raw = self.sock.getsockopt(lp.SOL_PACKET, lp.PACKET_STATISTICS, layout.size)
            except OSError:
                self._stats_failed = True
            else:
                packets, drops = layout.struct.unpack(raw)[:2]
                self.kernel_packets += packets
                self.kernel_drops += drops
        return None if self._stats_failed else (self.kernel_packets, self.kernel_drops)

    def close(self) -> None:
        if self.sock.fileno() < 0:
            return
        if self.promiscuous:
            try:
                self.sock.setsockopt(lp.SOL_PACKET, lp.PACKET_DROP_MEMBERSHIP, self._mreq())
            except OSError:
                pass  # closing the socket drops it anyway
            self.promiscuous = False
        self.sock.close()
