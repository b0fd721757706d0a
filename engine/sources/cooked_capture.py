"""Capturing what has no Ethernet header (issue 15 #5): layer-3 interfaces and ``any``.

How an interface is captured is its :class:`CaptureLink`: the AF_PACKET socket type and the link
type of the saved frames, chosen as libpcap chooses them (pcap-linux.c):

- Ethernet and loopback: ``SOCK_RAW``, the frame as on the wire, LINKTYPE_ETHERNET;
- layer-3 interfaces (tun, wireguard, ipip, ip6tnl, sit, gre): ``SOCK_DGRAM``, which hands over
  the IP packet with any link header taken off, LINKTYPE_RAW;
- ``any``: ``SOCK_DGRAM`` on every interface, each packet saved behind a LINUX_SLL2 header that
  is built here from the packet's ``sockaddr_ll`` (interface index, packet type, ARPHRD type,
  link-layer address, protocol), as libpcap builds it.

A capture filter for cooked frames is compiled for LINUX_SLL2, but the kernel runs it on the
packet without that header: :func:`kernel_program` moves its loads as libpcap's fix_offset()
does, and when a load reads a header field the kernel cannot give, the filter runs in user
space on the built frames instead.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from dataclasses import dataclass

from pcapconstrictor.formats import bpf as fb
from pcapconstrictor.formats import derived, link
from pcapconstrictor.formats import linux_packet as lp
from pcapconstrictor.formats import netdevice as nd

from .capture_filter import Instruction
from .interfaces import ANY, describe

_SLL2 = derived.link.linux_sll2_header
SLL2_HEADER_SIZE = _SLL2.size  # 20
_PACK_SLL2 = _SLL2.whole_struct().pack
_ADDRESS_SIZE = _SLL2.fields["link_layer_address"].size  # 8
assert list(_SLL2.fields) == ["protocol_type", "reserved", "interface_index", "arphrd_type", "packet_type",
                              "link_layer_address_length", "link_layer_address"], _SLL2.fields  # fmt: skip
# The SLL2 fields the kernel can give a filter as ancillary data (libpcap's fix_offset()).
_ANCILLARY = {
    _SLL2.offset("protocol_type"): fb.SKF_AD_OFF + fb.SKF_AD_PROTOCOL,
    _SLL2.offset("interface_index"): fb.SKF_AD_OFF + fb.SKF_AD_IFINDEX,
    _SLL2.offset("packet_type"): fb.SKF_AD_OFF + fb.SKF_AD_PKTTYPE,
}
_PACKET_MODES = (fb.BPF_ABS, fb.BPF_IND, fb.BPF_MSH)


@dataclass(frozen=True)
class CaptureLink:
    """What the socket hands over and what the file says it is."""

    linktype: int  # LINKTYPE_* of the saved frames
    socket_type: int  # SOCK_RAW: from the link header; SOCK_DGRAM: from the network header

    @property
    def cooked(self) -> bool:
        """Frames get a LINUX_SLL2 header built from their sockaddr_ll."""
        return self.linktype == link.LINKTYPE_LINUX_SLL2

    @property
    def ethernet(self) -> bool:
        return self.linktype == link.LINKTYPE_ETHERNET


ETHERNET = CaptureLink(link.LINKTYPE_ETHERNET, socket.SOCK_RAW)
RAW_IP = CaptureLink(link.LINKTYPE_RAW, socket.SOCK_DGRAM)
EVERY_INTERFACE = CaptureLink(link.LINKTYPE_LINUX_SLL2, socket.SOCK_DGRAM)


def capture_link(interface: str) -> CaptureLink:
    """How ``interface`` is captured.  An interface that does not exist (or that
    interfaces.link_type_problem refuses) is taken as Ethernet: opening it reports that."""
    if interface == ANY:
        return EVERY_INTERFACE
    try:
        arphrd = describe(interface).arphrd
    except (OSError, ValueError):
        return ETHERNET
    return RAW_IP if arphrd in nd.LAYER3 else ETHERNET


def sll2_header(protocol: int, ifindex: int, hatype: int, pkttype: int, halen: int, address: bytes) -> bytes:
    """The LINUX_SLL2 header of one packet, from its sockaddr_ll fields (``protocol`` in host
    order); an address longer than 8 bytes is cut to 8, its length kept, as libpcap does."""
    return _PACK_SLL2(protocol, 0, ifindex, hatype, pkttype, halen,
                      address[: min(halen, _ADDRESS_SIZE)].ljust(_ADDRESS_SIZE, b"\0"))  # fmt: skip


def kernel_program(program: tuple[Instruction, ...] | list[Instruction]) -> list[Instruction] | None:
    """``program`` (compiled for LINUX_SLL2) for a SOCK_DGRAM socket, whose packets start at
    the network header: packet loads move back by the header's size, loads of the protocol,
    interface index and packet type become the kernel's ancillary loads.  None when a load
    reads another header field (the link-layer address): the filter then runs in user space."""
    fixed = []
    for code, jt, jf, k in program:
        loads_packet = fb.bpf_class(code) in (fb.BPF_LD, fb.BPF_LDX) and fb.bpf_mode(code) in _PACKET_MODES
        if loads_packet and k < fb.SKF_AD_OFF:  # an ancillary load already stays as it is
            if k >= SLL2_HEADER_SIZE:
                k -= SLL2_HEADER_SIZE
            elif k in _ANCILLARY:
                k = _ANCILLARY[k]
            else:
                return None
        fixed.append((code, jt, jf, k))
    return fixed


def loopback_index() -> int:
    """The index of ``lo``, whose outgoing copies ``any`` skips (DECISIONS #4); 0 if none."""
    try:
        return socket.if_nametoindex("lo")
    except OSError:
        return 0


def bind_every_interface(sock: socket.socket) -> None:
    """bind() to interface index 0 with ETH_P_ALL: every interface, as libpcap's ``any``.
    Python's bind() wants an interface name, so the sockaddr_ll goes through libc."""
    address = lp.sockaddr_ll.build(dict(sll_family=socket.AF_PACKET, sll_protocol=lp.ETH_P_ALL,
                                        sll_ifindex=0, sll_hatype=0, sll_pkttype=0, sll_halen=0,
                                        sll_addr=bytes(8)))  # fmt: skip
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.bind(sock.fileno(), ctypes.c_char_p(address), len(address)) != 0:
        code = ctypes.get_errno() or errno.EINVAL
        raise OSError(code, os.strerror(code))


class InterfaceIndexes:
    """Interface names (what Python's recvmsg() gives for a sockaddr_ll) back to indexes, for
    the SLL2 header; looked up once per name."""

    def __init__(self) -> None:
        self._known: dict[str, int] = {"": 0}

    def __getitem__(self, name: str) -> int:
        index = self._known.get(name)
        if index is None:
            try:
                index = socket.if_nametoindex(name)
            except OSError:
                index = 0  # gone since the packet was received
            self._known[name] = index
        return index
