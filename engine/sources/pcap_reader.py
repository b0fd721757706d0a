"""Streaming classic PCAP reader for the offline feed (SPEC.md §12.1).

The file is read in large chunks and records are cut out of the buffer with
the ``struct`` derived from ``formats.pcap`` (never a second hand-written
layout).  Checks, their order and the error texts follow §12.1 and the
upstream reader: the global header is read whole before the magic is judged,
a record's header is checked before its payload, and every record error names
the packet number, counted from 1 as tshark, Wireshark and ``explain`` count (upstream
counts from 0: DECISIONS #11), and the file offset of the record header.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from types import TracebackType
from typing import BinaryIO

from pcapconstrictor.formats.derived import pcap, pcapng

from .pcap_records import PcapRecords, whole_records
from .record_batch import RecordBatch

_FILE_HEADER = {False: pcap.pcap_file_header_le, True: pcap.pcap_file_header_be}
_RECORD_HEADER = {False: pcap.pcaprec_hdr_le, True: pcap.pcaprec_hdr_be}
GLOBAL_HEADER_SIZE = _FILE_HEADER[False].size
RECORD_HEADER_SIZE = _RECORD_HEADER[False].size

# The hot loop unpacks the record header positionally; fail at import, not
# with wrong timestamps, if the schema's field order ever changes.
for _layout in _RECORD_HEADER.values():
    assert list(_layout.fields) == ["ts_sec", "ts_usec", "incl_len", "orig_len"], _layout.fields

CHUNK_SIZE = 1 << 20
# libpcap's MAXIMUM_SNAPLEN: a record longer than this (or than the file's snaplen, if that is
# larger) is refused as libpcap refuses it, so a lying length costs no memory and no reading.
MAX_RECORD_LEN = 262_144
# Above this a payload is gathered piece by piece, so a lying caplen on a
# stream never makes us allocate caplen bytes up front.
_MAX_SINGLE_READ = 16 << 20


class PcapReadError(Exception):
    """A §12.1 reader error; ``str(exc)`` is exactly the upstream message."""


def open_input(path: str, stream: BinaryIO | None, buffering: int) -> tuple[BinaryIO, int | None]:
    """The file to read and how many bytes it has (None: read to EOF): ``stream`` as given (a
    decompressed file), standard input for ``'-'``, else a regular file opened by path; the
    §12.1 errors for a path that is no readable regular file."""
    if stream is not None:
        return stream, None
    if path == "-":
        return sys.stdin.buffer, None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        raise PcapReadError("failed to read input file size") from None
    if not stat.S_ISREG(st.st_mode):
        raise PcapReadError("failed to read input file size")
    try:
        return open(path, "rb", buffering=buffering), st.st_size
    except OSError:
        raise PcapReadError("failed to open input file") from None


class PcapReader:
    """Classic PCAP records as ``(ts_ns, data, orig_len)``, one buffer at a time.

    ``stream``, if given, is read to its end (``path`` only names it); it is
    closed with the reader.  ``path`` ``'-'`` reads standard input.  Any other path must be a regular
    file: like upstream (``std::filesystem::file_size``), its size is taken
    first and bounds what is read, so a file still growing is read only up to
    the size it had when opened.
    """

    snaplen: int
    max_record_len: int
    linktype: int
    nanosecond: bool
    big_endian: bool

    def __init__(self, path: str, stream: BinaryIO | None = None) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._close_file = path != "-"
        self._file, self._remaining = open_input(path, stream, buffering=0)  # closed in close()
        try:
            self._read_global_header()
        except BaseException:
            self.close()
            raise

    def _read_global_header(self) -> None:
        raw = self._read_exact(GLOBAL_HEADER_SIZE)
        if len(raw) < GLOBAL_HEADER_SIZE:
            raise PcapReadError("file offset 0: unexpected EOF while reading PCAP global header")
        as_be = _FILE_HEADER[True].whole_struct().unpack_from(raw)
        as_le = _FILE_HEADER[False].whole_struct().unpack_from(raw)
        if as_be[0] == pcapng.BLOCK_TYPE_SHB:
            raise PcapReadError("file offset 0: pcapng is not supported by this offline feed mode")
        magics = (pcap.MAGIC_MICROSECONDS, pcap.MAGIC_NANOSECONDS)
        if as_le[0] in magics:
            big_endian, words = False, as_le
        elif as_be[0] in magics:
            big_endian, words = True, as_be
        else:
            raise PcapReadError("file offset 0: unsupported classic PCAP magic number")
        header = _FILE_HEADER[big_endian]
        values = dict(zip(header.fields, words, strict=True))
        self.big_endian = big_endian
        self.nanosecond = values["magic_number"] == pcap.MAGIC_NANOSECONDS
        major, minor = values["version_major"], values["version_minor"]
        if major != 2:  # libpcap reads every 2.x file (issue 15), nothing else
            raise PcapReadError(
                f"file offset {header.offset('version_major')}: "
                f"unsupported classic PCAP version {major}.{minor}"
            )
        # libpcap (sf-pcap.c): before 2.3 the record header held orig_len before incl_len;
        # some 2.3 files were written either way, so there a caplen above len means swapped.
        self.lengths_swapped = minor < 3
        self.lengths_maybe_swapped = minor == 3
        self.snaplen = values["snaplen"]
        self.version = (major, minor)
        self.thiszone, self.sigfigs = values["thiszone"], values["sigfigs"]  # a copy keeps them
        if self.snaplen == 0:
            raise PcapReadError(f"file offset {header.offset('snaplen')}: invalid PCAP snaplen 0")
        # Every link type is read (issue 15); the decoder knows which it can look into.
        self.max_record_len = max(self.snaplen, MAX_RECORD_LEN)
        self.linktype = values["network"]

    def _read(self, size: int) -> bytes:
        """Up to ``size`` bytes (fewer only at EOF or on a short pipe read),
        never past the size the file had when opened."""
        if self._remaining is not None:
            size = min(size, self._remaining)
            if size <= 0:
                return b""
        try:
            data = self._file.read(size)  # type: ignore[union-attr]
        except OSError as exc:
            raise PcapReadError(f"failed to read input file: {exc.strerror}") from None
        data = data or b""
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def _read_exact(self, size: int) -> bytes:
        """``size`` bytes, or all that is left before EOF; pieces of at most
        16 MiB, so a missing payload costs only what is really there."""
        pieces: list[bytes] = []
        got = 0
        while got < size:
            piece = self._read(min(size - got, _MAX_SINGLE_READ))
            if not piece:
                break
            pieces.append(piece)
            got += len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def __iter__(self) -> Iterator[tuple[int, bytes, int]]:
        """Yield every good record, then raise at the first bad one (§12.1)."""
        for batch in self.batches():
            yield from batch

    def batches(self, records: bool = False) -> Iterator[list[tuple[int, bytes, int]] | PcapRecords]:
        """The records as lists of ``(ts_ns, data, orig_len)``, one list per
        chunk read; at the first bad record, the good ones before it come as a
        last list, then the §12.1 error is raised.  Single pass: the reader is
        a stream (stdin included), not a file view.  With ``records``, a little-endian
        microsecond file's chunks come as :class:`PcapRecords` runs left in the buffer
        as far as they are whole and regular, frame lists for the rest."""
        unpack = self._record_unpacker()
        to_ns = 1 if self.nanosecond else 1000
        per_sec = 1_000_000_000 if self.nanosecond else 1_000_000
        hdr = RECORD_HEADER_SIZE
        buf = b""
        pos = 0
        base = GLOBAL_HEADER_SIZE  # file offset of buf[0]
        index = 0
        verbatim = not self.big_endian and not self.nanosecond and not self._lengths_reordered()
        linktype = self.linktype
        largest = self.max_record_len
        runs = records and verbatim
        while True:
            end = len(buf)
            if runs and pos < end:
                stop, count = whole_records(buf, pos, largest)
                if count:
                    yield PcapRecords(buf, pos, stop, count, linktype)
                    index += count
                    pos = stop
            frames = RecordBatch()
            if linktype != pcap.LINKTYPE_ETHERNET:
                frames.linktype = linktype
            append = frames.append
            first = pos
            irregular = False
            while pos + hdr <= end:
                sec, frac, incl, orig = unpack(buf, pos)
                start = pos + hdr
                stop = start + incl
                if stop > end or incl > orig or incl > largest:
                    break  # completed or refused by _complete_record
                if frac >= per_sec:
                    irregular = True
                append(((sec * per_sec + frac) * to_ns, buf[start:stop], orig))
                pos = stop
            if verbatim and not irregular and frames:
                frames.records = buf
                frames.records_at = first
                frames.records_count = len(frames)
            index += len(frames)
            base += pos
            if pos < end:
                # A record straddles the chunk end: complete just that one with
                # a small exact read instead of copying the leftover into a
                # bigger buffer (the copy would cost as much as the parsing).
                try:
                    whole = self._complete_record(buf[pos:], base, index + 1)
                except PcapReadError:
                    if frames:
                        yield frames
                    raise
                sec, frac, incl, orig = unpack(whole)
                append(((sec * per_sec + frac) * to_ns, whole[hdr:], orig))
                base += len(whole)
                index += 1
            if frames:
                yield frames
            buf = self._read(CHUNK_SIZE)
            pos = 0
            if not buf:
                return  # clean EOF exactly at a record boundary

    def _lengths_reordered(self) -> bool:
        return self.lengths_swapped or self.lengths_maybe_swapped

    def _record_unpacker(self):
        """``unpack(buf, pos=0) -> (ts_sec, ts_frac, incl_len, orig_len)`` for this file's
        version: the derived struct itself for 2.4, a reordering wrapper before it."""
        raw = _RECORD_HEADER[self.big_endian].whole_struct().unpack_from
        if not self._lengths_reordered():
            return raw
        always = self.lengths_swapped

        def unpack(buf, pos: int = 0) -> tuple[int, int, int, int]:
            sec, frac, first, second = raw(buf, pos)
            if always or first > second:
                return sec, frac, second, first
            return sec, frac, first, second

        return unpack

    def _complete_record(self, tail: bytes, base: int, number: int) -> bytes:
        """Header and payload of the record at file offset ``base`` whose
        first bytes are ``tail``, read up to its end; raises the §12.1 error
        for a cut header, caplen > origlen, a record longer than libpcap reads, or a cut payload."""
        hdr = RECORD_HEADER_SIZE
        if len(tail) < hdr:
            tail += self._read_exact(hdr - len(tail))
            if len(tail) < hdr:
                raise PcapReadError(
                    f"file offset {base}: unexpected EOF while reading packet header; "
                    f"{len(tail)} trailing byte(s) could not be processed"
                )
        _, _, incl, orig = self._record_unpacker()(tail)
        if incl > orig:
            raise PcapReadError(
                f"packet {number} at file offset {base}: "
                f"captured length {incl} exceeds original length {orig}"
            )
        if incl > self.max_record_len:
            raise PcapReadError(
                f"packet {number} at file offset {base}: "
                f"captured length {incl} exceeds the maximum record length {self.max_record_len}"
            )
        need = hdr + incl - len(tail)
        if need <= 0:
            return tail
        available = len(tail) - hdr
        if self._remaining is not None and need > self._remaining:
            available += self._remaining  # known short: report without reading it
        else:
            more = self._read_exact(need)
            if len(more) == need:
                return tail + more
            available += len(more)
        raise PcapReadError(
            f"packet {number} at file offset {base}: unexpected EOF while reading packet payload; "
            f"expected {incl} byte(s), available {available} byte(s), "
            f"missing {incl - available} byte(s)"
        )

    def close(self) -> None:
        """Close the input (standard input is left open for the caller)."""
        if self._file is not None and self._close_file:
            self._file.close()
        self._file = None

    def __enter__(self) -> PcapReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
