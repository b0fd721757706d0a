"""Which reader an offline input needs (issue 15): classic PCAP or pcapng, told apart by the
first four bytes, as libpcap and Wireshark do."""

from __future__ import annotations

import sys
from typing import BinaryIO

from pcapconstrictor.formats.derived import pcapng as ng

from .pcap_reader import PcapReader
from .pcapng_reader import PcapngReader

PCAPNG_MAGIC = ng.BLOCK_TYPE_SHB.to_bytes(4, "big")  # a palindrome: either byte order


def open_offline_input(path: str, stream: BinaryIO | None = None,
                       pcapng: bool | None = None) -> PcapReader | PcapngReader:
    """The reader for ``path`` (``'-'``: standard input, looked at without consuming it), or for
    ``stream`` (a decompressed file, whose format the caller tells); raises PcapReadError as the
    readers do."""
    if pcapng if pcapng is not None else _starts_with_pcapng_magic(path):
        return PcapngReader(path, stream)
    return PcapReader(path, stream)


def _starts_with_pcapng_magic(path: str) -> bool:
    if path == "-":
        peek = getattr(sys.stdin.buffer, "peek", None)
        return peek is not None and peek(4)[:4] == PCAPNG_MAGIC
    try:
        with open(path, "rb") as f:
            return f.read(4) == PCAPNG_MAGIC
    except OSError:
        return False  # the classic reader reports it in the usual words
