"""Interfaces (issue 8): ``--list-interfaces``, and the link-type check before a live capture.

Everything is read with the SIOCGIF* ioctls, which need no privilege and see the network
namespace the process is in.  Ethernet-framed interfaces (Ethernet, loopback) are captured as
Ethernet, layer-3 ones (tun, wireguard, ipip, ip6tnl, sit, gre) as raw IP, and libpcap's ``any``
pseudo-interface as LINUX_SLL2 (engine/sources/cooked_capture.py); anything else is refused.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import sys
from dataclasses import dataclass

from pcapconstrictor.formats.derived import netdevice as nd
from pcapconstrictor.formats.layout import Layout

_FLAGS = nd.ifreq_flags
_MTU = nd.ifreq_mtu
_HWADDR = nd.ifreq_hwaddr
_DATA = nd.ifreq_data
_ETHTOOL_VALUE = nd.ethtool_value
ETHERNET_FRAMED = (nd.ARPHRD_ETHER, nd.ARPHRD_LOOPBACK)
CAPTURABLE = (*ETHERNET_FRAMED, *nd.LAYER3)
ANY = "any"  # libpcap's pseudo-interface: every interface of the namespace


@dataclass(frozen=True)
class Interface:
    index: int
    name: str
    arphrd: int
    up: bool
    running: bool
    mtu: int

    @property
    def link_type(self) -> str:
        return nd.LINK_TYPE_NAMES.get(self.arphrd, f"ARPHRD {self.arphrd}")

    @property
    def capturable(self) -> bool:
        return self.arphrd in CAPTURABLE


def _ioctl(sock: socket.socket, request: int, layout: Layout, name: str) -> tuple:
    """One SIOCGIF* request: an ifreq holding only the name in, the filled one out."""
    request_buffer = name.encode()[: nd.IFNAMSIZ - 1].ljust(layout.size, b"\0")
    return layout.struct.unpack(fcntl.ioctl(sock, request, request_buffer))


def describe(name: str, index: int = 0) -> Interface:
    """One interface's link type, state and MTU; OSError (ENODEV) if there is no such one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        _, family, _ = _ioctl(sock, nd.SIOCGIFHWADDR, _HWADDR, name)
        _, flags = _ioctl(sock, nd.SIOCGIFFLAGS, _FLAGS, name)
        _, mtu = _ioctl(sock, nd.SIOCGIFMTU, _MTU, name)
    index = index or socket.if_nametoindex(name)
    return Interface(index, name, family, bool(flags & nd.IFF_UP), bool(flags & nd.IFF_RUNNING), mtu)


def interfaces() -> list[Interface]:
    """Every interface of this network namespace, by index."""
    found = []
    for index, name in sorted(socket.if_nameindex()):
        try:
            found.append(describe(name, index))
        except OSError:
            continue  # gone since the listing
    return found


def link_type_problem(name: str) -> str | None:
    """Why ``name`` cannot be captured, or None (also None when it does not exist: the
    backend then reports that in upstream's words).  ``any`` can always be captured."""
    if name == ANY:
        return None
    try:
        found = describe(name)
    except (OSError, ValueError):
        return None
    if found.capturable:
        return None
    return (f"interface '{name}' has link type {found.link_type} (ARPHRD {found.arphrd}); only "
            "Ethernet, loopback and layer-3 (raw IP) interfaces, or 'any', can be captured")  # fmt: skip


def capture_column(found: Interface) -> str:
    """The table's ``capture`` cell: whether, and as what, the interface is captured."""
    if found.arphrd in ETHERNET_FRAMED:
        return "yes"
    return "yes: raw IP" if found.arphrd in nd.LAYER3 else "no: unsupported link type"


# --- offloads (issue 18 #5) ------------------------------------------------------------------


@dataclass(frozen=True)
class Offloads:
    """What the interface merges before a capture socket sees a frame."""

    gro: bool  # received segments merged (generic receive offload)
    lro: bool  # the same done by the NIC (large receive offload)
    gso: bool  # frames this host sends are captured before they are segmented (GSO or TSO)

    @property
    def merges_received(self) -> bool:
        return self.gro or self.lro


def ethtool_value(name: str, command: int, value: int = 0) -> int:
    """One legacy ethtool command (``ETHTOOL_G*`` reads, ``ETHTOOL_S*`` sets ``value``) on
    interface ``name``; OSError when the interface or driver does not answer it."""
    request = ctypes.create_string_buffer(_ETHTOOL_VALUE.struct.pack(command, value), _ETHTOOL_VALUE.size)
    ifreq = _DATA.struct.pack(name.encode()[: nd.IFNAMSIZ - 1].ljust(nd.IFNAMSIZ, b"\0"),
                              ctypes.addressof(request))  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock, nd.SIOCETHTOOL, ifreq)
    return _ETHTOOL_VALUE.struct.unpack(request.raw)[1]


def offloads(name: str) -> Offloads | None:
    """The interface's merging offloads, or None when they cannot be read (no such interface,
    a driver without ethtool support)."""
    try:
        gro = ethtool_value(name, nd.ETHTOOL_GGRO)
        flags = ethtool_value(name, nd.ETHTOOL_GFLAGS)
        gso = ethtool_value(name, nd.ETHTOOL_GGSO) or ethtool_value(name, nd.ETHTOOL_GTSO)
    except (OSError, ValueError):
        return None
    return Offloads(bool(gro), bool(flags & nd.ETH_FLAG_LRO), bool(gso))


def offload_warning(name: str) -> str | None:
    """A stderr line when frames merged by GRO or LRO will reach the recorder: a TLS transfer
    then arrives as frames of up to 64 KB, each cut as one, and constriction saves far less.
    Not on loopback, whose frames are that large anyway (MTU 65536); GSO alone does not warn:
    it only touches what this host sends itself."""
    try:
        ethernet = describe(name).arphrd == nd.ARPHRD_ETHER  # others are refused, or loopback
    except (OSError, ValueError):
        return None
    found = offloads(name) if ethernet else None
    if found is None or not found.merges_received:
        return None
    merged = " and ".join(what for what, on in (("gro", found.gro), ("lro", found.lro)) if on)
    return (f"warning: interface '{name}' merges received frames before capture ({merged} on): "
            "merged frames of up to 64 KB reach the recorder and constriction saves less; "
            f"turn it off with: ethtool -K {name} gro off lro off")  # fmt: skip


def table(found: list[Interface]) -> str:
    rows = [("index", "name", "link type", "state", "mtu", "capture")]
    for i in found:
        state = ("up" if i.running else "up, no carrier") if i.up else "down"
        rows.append((str(i.index), i.name, i.link_type, state, str(i.mtu),
                     capture_column(i)))  # fmt: skip
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]) - 1)]
    return "".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
                   + "\n" for row in rows)  # fmt: skip


def list_interfaces() -> int:
    """``--list-interfaces``: the table on standard output, exit 0."""
    sys.stdout.write(table(interfaces()))
    return 0
