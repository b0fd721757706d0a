"""Which reader an offline input needs (issue 15): classic PCAP or pcapng, told apart by the
first four bytes, as libpcap and Wireshark do."""

from __future__ import annotations

import sys

from pcapconstrictor.formats import pcapng as ng

from .pcap_reader import PcapReader
from .pcapng_reader import PcapngReader

_PCAPNG_MAGIC = ng.BLOCK_TYPE_SHB.to_bytes(4, "big")  # a palindrome: either byte order


def open_offline_input(path: str) -> PcapReader | PcapngReader:
    """The reader for ``path`` (``'-'``: standard input, looked at without consuming it);
    raises PcapReadError as the readers do."""
    if _starts_with_pcapng_magic(path):
        return PcapngReader(path)
    return PcapReader(path)


def _starts_with_pcapng_magic(path: str) -> bool:
    if path == "-":
        peek = getattr(sys.stdin.buffer, "peek", None)
        return peek is not None and peek(4)[:4] == _PCAPNG_MAGIC
    try:
        with open(path, "rb") as f:
            return f.read(4) == _PCAPNG_MAGIC
    except OSError:
        return False  # the classic reader reports it in the usual words
