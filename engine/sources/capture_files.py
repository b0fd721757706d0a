"""Opening a capture file, whatever wraps it: the one place every offline input is opened.

A file may be gzip- or zstd-compressed (judged by its first bytes, not its name); the capture
inside is judged by its magic number.  Today every capture goes to the classic PCAP reader
(which rejects pcapng with SPEC §12.1's message); a pcapng reader plugs in at
:func:`open_capture`.  zstd needs the ``zstandard`` package (a dependency).
"""

from __future__ import annotations

import errno
import os
import stat
import zlib
from collections.abc import Iterator
from typing import BinaryIO

from pcapconstrictor.formats.derived import pcap
from pcapconstrictor.formats.derived import pcapng as ng

from .offline_input import PCAPNG_MAGIC, open_offline_input
from .pcap_reader import PcapReader
from .pcapng_reader import PcapngReader

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESSED_SUFFIXES = (".gz", ".zst")
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".ntar")


def _capture_magics() -> set[bytes]:
    words = (pcap.MAGIC_MICROSECONDS, pcap.MAGIC_NANOSECONDS, ng.BLOCK_TYPE_SHB)
    return {w.to_bytes(4, order) for w in words for order in ("little", "big")}


CAPTURE_MAGICS = _capture_magics()


class DecompressedStream:
    """A gzip or zstd file read through decompressors (one per member or frame, so files
    concatenated are read whole).  A cut or corrupt archive is an OSError with a readable
    strerror, which the PCAP reader reports as a read error; a frame cut at its end is an
    error too, not a quiet end of file."""

    _INPUT = 1 << 16  # compressed bytes fed at a time: bounds what one read expands to

    def __init__(self, raw: BinaryIO, kind: str) -> None:
        self.kind = kind
        self._raw = raw
        self._pending = b""
        self._started = False  # bytes of the current member or frame fed so far
        self._decompressor = self._new()

    def _new(self):
        if self.kind == "gzip":
            return zlib.decompressobj(wbits=31)
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj()

    def read(self, size: int = -1) -> bytes:
        out = [self._pending]
        got = len(self._pending)
        while size < 0 or got < size:
            piece = self._more()
            if piece is None:
                break
            out.append(piece)
            got += len(piece)
        data = b"".join(out)
        if size >= 0:
            data, self._pending = data[:size], data[size:]
        else:
            self._pending = b""
        return data

    def _more(self) -> bytes | None:
        """The next decompressed bytes (maybe empty), or None at a clean end."""
        chunk = self._raw.read(self._INPUT)
        if not chunk:
            if self._started:
                raise OSError(errno.EIO, f"{self.kind} data: compressed file ended before its end marker")
            return None
        try:
            out = self._decompressor.decompress(chunk)
            while self._decompressor.eof:  # a member ends: the next may follow in this chunk
                rest = self._decompressor.unused_data
                self._decompressor = self._new()
                self._started = bool(rest)
                if not rest:
                    return out
                out += self._decompressor.decompress(rest)
        except Exception as e:  # zlib.error, zstandard.ZstdError
            raise OSError(errno.EIO, f"{self.kind} data: {e}") from None
        self._started = True
        return out

    def close(self) -> None:
        self._raw.close()


def compression_of(head: bytes) -> str | None:
    """``'gzip'``, ``'zstd'`` or None, from a file's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def _open_decompressed(path: str) -> tuple[BinaryIO, str | None]:
    """The file, decompressing if its first bytes say so; ``(stream, kind)``."""
    raw = open(path, "rb")  # closed by the caller (or the reader)
    try:
        kind = compression_of(raw.read(4))
        raw.seek(0)
    except OSError:
        raw.close()
        raise
    if kind is None:
        return raw, None
    return DecompressedStream(raw, kind), kind  # type: ignore[return-value]


def is_capture(path: str) -> bool:
    """True when the file (after decompression) starts with a PCAP or pcapng magic number."""
    try:
        stream, _ = _open_decompressed(path)
    except OSError:
        return False
    try:
        return stream.read(4) in CAPTURE_MAGICS
    except OSError:
        return False
    finally:
        stream.close()


def open_capture(path: str) -> PcapReader | PcapngReader:
    """A reader of the capture at ``path`` (``'-'``: standard input), decompressed if it is
    gzip or zstd; raises PcapReadError with the §12.1 texts (and a read error for a corrupt
    archive).  Anything but a readable regular file goes straight to the reader, so its
    errors keep upstream's texts and a pipe is not read ahead."""
    try:
        if path == "-" or not stat.S_ISREG(os.stat(path).st_mode):
            return open_offline_input(path)
        stream, kind = _open_decompressed(path)
    except (OSError, ValueError):
        return PcapReader(path)  # raises the §12.1 error for it
    if kind is None:
        stream.close()
        return open_offline_input(path)  # plain file: its size bounds the read, as upstream
    try:
        pcapng = stream.read(4) == PCAPNG_MAGIC
    finally:
        stream.close()
    stream, _ = _open_decompressed(path)  # from the start again: a decompressed stream cannot seek
    return open_offline_input(path, stream, pcapng)


def output_name(name: str) -> str:
    """The name a constricted copy gets: a ``.gz``/``.zst`` suffix dropped (the output is an
    uncompressed capture)."""
    for suffix in COMPRESSED_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def has_capture_suffix(name: str) -> bool:
    """A name that says "capture": ``.pcap``, ``.pcapng``, ``.cap``, ``.ntar``, optionally compressed."""
    return output_name(name).lower().endswith(CAPTURE_SUFFIXES)


def find_captures(root: str, skip: str | None = None) -> Iterator[str]:
    """Every capture file under ``root``, recursively, in sorted order: a file whose name says
    capture (even if it is not one: the reader then says what is wrong), or any other file
    whose first bytes (after decompression) are a capture magic number.  ``skip`` is a folder
    not to enter (the output folder, when it lies inside); temporary outputs are left out."""
    for folder, folders, files in os.walk(root):
        folders[:] = sorted(d for d in folders if not _same_folder(os.path.join(folder, d), skip))
        for name in sorted(files):
            if name.startswith(".") and PARTIAL_MARK in name:
                continue
            path = os.path.join(folder, name)
            if has_capture_suffix(name) or is_capture(path):
                yield path


PARTIAL_MARK = ".partial"  # in the hidden temporary name of an output not yet finished


def _same_folder(a: str, b: str | None) -> bool:
    if b is None:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
