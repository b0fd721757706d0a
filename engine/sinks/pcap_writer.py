"""Classic PCAP writer for the constricted output (SPEC.md §11).

The global header is always little-endian, microsecond, version 2.4, linktype
1, and is written as soon as the writer opens (DECISIONS.md #5: an empty
capture is a valid 24-byte file, not a 0-byte one).  Records are batched in
memory and reach the file only whole, so a file cut at a flush boundary is
still a valid capture.  The batch is a list of parts (the packet bytes are
not copied until the one join per flush): growing a bytearray record by
record cost more than everything else the writer does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import BinaryIO

from pcapconstrictor.engine.sinks.frame_records import (
    blocks_as_pcap,
    kept_payloads,
    pcap_records,
    record_bytes,
)
from pcapconstrictor.engine.sinks.output_file import OutputFile, OutputFileRefused, create_output_file
from pcapconstrictor.engine.sources.pcap_records import PcapRecords, cut_records
from pcapconstrictor.engine.sources.pcapng_packets import PcapngRecords
from pcapconstrictor.engine.sources.record_batch import RecordBatch
from pcapconstrictor.formats.derived import pcap

_FILE_HEADER = pcap.pcap_file_header_le
_RECORD_HEADER = pcap.pcaprec_hdr_le
_RECORD_SIZE = _RECORD_HEADER.size
assert list(_RECORD_HEADER.fields) == ["ts_sec", "ts_usec", "incl_len", "orig_len"]
assert list(_FILE_HEADER.fields) == [
    "magic_number", "version_major", "version_minor", "thiszone", "sigfigs", "snaplen", "network",
]


class PcapWriteError(Exception):
    """An output file could not be opened or written; names the file and the OS error."""


class OutputRefusedError(PcapWriteError):
    """The output path is a link, locked by another recorder, or of a kind we do not write
    (engine/output_file.py); the message says which."""


def _os_error(action: str, path: str, exc: OSError) -> str:
    return f"failed to {action} output file '{path}': {exc.strerror or exc}"


def global_header(snaplen: int, linktype: int = pcap.LINKTYPE_ETHERNET) -> bytes:
    """The 24-byte §11.1 header for a capture clamped to ``snaplen`` (a non-Ethernet input
    keeps its link type, issue 15)."""
    return _FILE_HEADER.whole_struct().pack(pcap.MAGIC_MICROSECONDS, 2, 4, 0, 0, snaplen, linktype)


class PcapWriter:
    """Writes §11.2 records to ``path`` (``'-'`` = standard output).

    ``records`` counts records accepted, ``bytes_written`` the bytes of the
    resulting file (global header included), buffered ones counted too;
    ``records_saved`` the records handed to the OS (after a failed write: the
    records the file holds, as it is cut back to its last whole record).
    """

    def __init__(self, path: str, snaplen: int, buffer_size: int = 1 << 20, *,
                 linktype: int = pcap.LINKTYPE_ETHERNET) -> None:  # fmt: skip
        self.path = path
        self.snaplen = snaplen
        self.linktype = linktype
        self.records = 0
        self.records_saved = 0
        self._flushed = 0
        self._buffer_size = buffer_size
        self._parts: list[bytes | memoryview] = []  # whole records, not yet handed to the OS
        self._pending = 0  # their size in bytes
        self._pack_record = _RECORD_HEADER.whole_struct().pack
        self._failed = False
        self._file: BinaryIO | None
        self.output: OutputFile | None = None  # None: standard output
        self._close_file = path != "-"
        if path == "-":
            self._file = sys.stdout.buffer
        else:
            try:  # created anew, never through a link, and locked (issue 13)
                self.output = create_output_file(path)  # closed in close()
            except OutputFileRefused as exc:
                raise OutputRefusedError(_os_error("open", path, exc)) from None
            except OSError as exc:
                raise PcapWriteError(_os_error("open", path, exc)) from None
            self._file = self.output.file
        self._append(self.file_header())
        try:
            self.flush()  # the header is on disk before the first packet arrives
        except PcapWriteError:
            if self.output is not None:
                self.output.remove()  # not even a header: no file rather than a 0-byte one
            self.close()
            raise

    def _buffered(self, size: int, records: int) -> None:
        """Count ``records`` whole records of ``size`` bytes just appended to the parts, and
        hand the parts to the OS once they fill the buffer."""
        self._pending += size
        self.records += records
        if self._pending >= self._buffer_size:
            self.flush()

    def _append(self, part: bytes) -> None:
        self._parts.append(part)
        self._pending += len(part)

    def file_header(self) -> bytes:
        """What the file starts with; each file of a rotated capture starts with it too."""
        return global_header(self.snaplen, self.linktype)

    def record_size(self, incl_len: int) -> int:
        """Bytes one record of ``incl_len`` captured bytes takes in the file."""
        return _RECORD_HEADER.size + incl_len

    def write(self, ts_ns: int, data: bytes | memoryview, incl_len: int, orig_len: int) -> None:
        """Append one record (see :meth:`write_batch`)."""
        self.write_batch(((ts_ns, data, orig_len),), (incl_len,))

    def write_batch(self, frames: Sequence[tuple[int, bytes | memoryview, int]],
                    lengths: Sequence[int]) -> None:  # fmt: skip
        """Append one record per frame ``(ts_ns, data, orig_len)``: the first
        ``lengths[i]`` bytes of its data, the timestamp truncated to whole
        microseconds (§11.3), orig_len never below incl_len (§6.4)."""
        records = getattr(frames, "records", None)
        if records is not None:  # input records we may copy whole (engine/record_batch.py)
            self._write_records(frames, lengths, records)
            return
        payloads = self._payloads(frames, lengths)
        self._buffered(pcap_records(frames, lengths, payloads, self._parts), len(lengths))

    @property
    def takes_records(self) -> bool:
        """Whether :meth:`write_records` applies: a run of input records is what
        :meth:`write_batch` writes for their frames (a subclass that writes records of its own
        format, pcapng or the input's header, writes frame by frame)."""
        return type(self).write_batch is PcapWriter.write_batch

    def write_records(self, records: PcapRecords, cuts: list[int]) -> None:
        """Append a run of input records as they are, but each record at offset ``cuts[2 i]``
        cut to ``cuts[2 i + 1]`` bytes (engine/sources/pcap_records.py)."""
        self._check_open()
        self._buffered(cut_records(records, cuts, self._parts), records.count)

    @property
    def takes_blocks(self) -> bool:
        """Whether :meth:`write_blocks` applies (a plain classic PCAP writer: records of its own
        built around the packets of a run of pcapng blocks)."""
        return type(self).write_batch is PcapWriter.write_batch

    def write_blocks(self, run: PcapngRecords, cuts: list[int]) -> None:
        """Append a record per packet of a run of pcapng blocks, each block at offset
        ``cuts[2 i]`` cut to ``cuts[2 i + 1]`` bytes (engine/sources/pcapng_packets.py)."""
        self._check_open()
        self._buffered(blocks_as_pcap(run, cuts, self._parts), run.count)

    def _check_open(self) -> None:
        if self._file is None:
            raise ValueError(f"write to closed output file '{self.path}'")

    def _write_records(self, frames: RecordBatch, lengths: Sequence[int], records: bytes) -> None:
        """:meth:`write_batch` for frames that carry their input records: a
        frame kept whole is its record, so each run of them is one slice of
        the input; a cut frame gets a new header and its first bytes."""
        self._check_open()
        append = self._parts.append
        pack = self._pack_record
        whole = frames.records_count  # frames past it are not in records
        pos = run = frames.records_at  # this frame's record / the unwritten run's start
        for i, ((ts_ns, data, orig_len), incl_len) in enumerate(zip(frames, lengths, strict=True)):
            size = len(data)
            if incl_len == size and i < whole:
                pos += _RECORD_SIZE + size
                continue
            if incl_len > size:
                raise ValueError(f"incl_len {incl_len} exceeds the {size} byte(s) of packet data")
            if pos > run:
                append(records[run:pos])
            append(record_bytes(pack, ts_ns // 1000, 1_000_000, incl_len, orig_len))
            append(data[:incl_len])
            pos += _RECORD_SIZE + size
            run = pos
        if pos > run:
            append(records[run:pos])
        self._buffered(_RECORD_SIZE * len(lengths) + sum(lengths), len(lengths))

    def _payloads(self, frames: Sequence[tuple[int, bytes | memoryview, int]],
                  lengths: Sequence[int]) -> list[bytes]:  # fmt: skip
        """The bytes each record carries (engine/sinks/frame_records.py), checked before
        anything is buffered."""
        self._check_open()
        return kept_payloads(frames, lengths)

    @property
    def bytes_written(self) -> int:
        """Bytes of the resulting file so far, buffered ones included."""
        return self._flushed + self._pending

    def flush(self) -> None:
        """Hand every buffered (whole) record to the OS."""
        if self._failed:  # the file was cut back after a failed write: nothing more goes in
            self._parts.clear()
            self._pending = 0
        if not self._parts or self._file is None:
            return
        try:
            if self.output is not None:  # our own unbuffered file: the parts as they are
                _write_parts(self.output.fileno(), self._parts)
            else:
                _write_all(self._file, b"".join(self._parts))
                self._file.flush()
        except OSError as exc:
            self._failed = True  # the file may end mid-record: cut it back, stop writing to it
            if self.output is not None:
                self.output.cut_to(self._flushed)
            raise PcapWriteError(_os_error("write", self.path, exc)) from None
        self.records_saved = self.records
        self._flushed += self._pending
        self._parts.clear()
        self._pending = 0

    def close(self) -> None:
        """Flush and close; standard output is flushed but left open."""
        if self._file is None:
            return
        try:
            self.flush()
        finally:
            file, self._file = self._file, None
            if self._close_file:
                try:
                    file.close()
                except OSError as exc:
                    if not self._failed:
                        raise PcapWriteError(_os_error("write", self.path, exc)) from None

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_IOV_MAX = os.sysconf("SC_IOV_MAX")  # buffers one writev takes (1024 on Linux)


def _write_parts(fd: int, parts: list[bytes | memoryview]) -> None:
    """All of ``parts`` to ``fd`` with writev (no join: a run of input records is not copied)."""
    start = 0
    while start < len(parts):
        batch = parts[start : start + _IOV_MAX]
        done = os.writev(fd, batch)
        if done == sum(map(len, batch)):  # the usual case: no part to look at one by one
            start += len(batch)
            continue
        while done >= len(parts[start]):
            done -= len(parts[start])
            start += 1
        parts[start] = memoryview(parts[start])[done:]  # written in part: the rest goes next


def _write_all(file: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    try:
        done = 0
        while done < len(view):
            n = file.write(view[done:])
            done += len(view) - done if n is None else n
    finally:
        view.release()
