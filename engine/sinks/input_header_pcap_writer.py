"""A classic PCAP output with its input's global header (SPEC §15.1: the main tool's forms).

``constrict`` and ``reinflate`` keep the input's byte order, timestamp precision, thiszone,
sigfigs, snaplen and link type; only a version before 2.3 (whose record headers held the two
lengths the other way round) is written as 2.4, since records are written in today's order.
"""

from __future__ import annotations

from collections.abc import Sequence

from pcapconstrictor.formats.derived import pcap

from .frame_records import pcap_records
from .pcap_writer import PcapWriter

_FILE_HEADER = {False: pcap.pcap_file_header_le, True: pcap.pcap_file_header_be}


class InputHeaderPcapWriter(PcapWriter):
    """:class:`PcapWriter` whose file starts with ``reader``'s header and whose records use its
    byte order and precision (nanoseconds stay nanoseconds).  ``reader``: a classic PCAP
    reader (its big_endian, nanosecond, version, thiszone, sigfigs, snaplen, linktype)."""

    def __init__(self, path: str, reader) -> None:
        big = reader.big_endian
        major, minor = reader.version if reader.version[1] >= 3 else (2, 4)
        magic = pcap.MAGIC_NANOSECONDS if reader.nanosecond else pcap.MAGIC_MICROSECONDS
        self._header = _FILE_HEADER[big].whole_struct().pack(
            magic, major, minor, reader.thiszone, reader.sigfigs, reader.snaplen, reader.linktype)
        self._big = big
        self._tick = 1 if reader.nanosecond else 1000  # ns per unit of the fraction field
        super().__init__(path, reader.snaplen, linktype=reader.linktype)

    def file_header(self) -> bytes:
        return self._header

    @property
    def takes_records(self) -> bool:
        """A little-endian microsecond input's records are, byte for byte, what
        :meth:`write_batch` writes for their frames: runs of them may be copied."""
        return not self._big and self._tick == 1000

    def write_batch(self, frames: Sequence[tuple[int, bytes | memoryview, int]],
                    lengths: Sequence[int]) -> None:  # fmt: skip
        """One record per frame ``(ts_ns, data, orig_len)``: its first ``lengths[i]`` bytes."""
        payloads = self._payloads(frames, lengths)
        size = pcap_records(frames, lengths, payloads, self._parts, self._big, self._tick == 1)
        self._buffered(size, len(lengths))
