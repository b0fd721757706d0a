"""Output rotation (issue 8): a sink that writes successive files, like tcpdump's -C, -G, -W.

Each file is a whole capture on its own (its own file header); every record goes to exactly
one file, in order, so the files read one after the other are the unrotated capture.

* by size (``capture.rotate_bytes``): a new file starts when the next record would make the
  current one larger than the limit (a file holds at least one record, whatever its size);
* by time (``capture.rotate_seconds``): a new file starts with the first record of each
  interval, intervals aligned to the wall clock (60 = on the minute), judged by the record's
  timestamp, so an offline run splits a file exactly where a live run would have;
* a ring (``capture.rotate_files``): at most that many files are kept, the oldest deleted.

With ``capture.compress``, ``capture.post_rotate_command`` or ``capture.rotate_total_bytes``
(issue 18) each closed file is handed to a :class:`ClosedFiles` thread, which compresses it,
runs the command and keeps the ring and the byte budget, counting the compressed names.

Names: ``capture.output`` with ``_00001``, ``_00002``... before its extension; if it has a
``%``, it is a strftime pattern expanded (local time) with the start of the file's interval
(with time rotation; else its opening time), numbered too when sizes rotate or a name would
repeat.

The set is locked as a whole (issue 13): a hidden ``.<name>.lock`` beside the files, named after
``capture.output``, held for the run and removed at its end, so a second recorder given the same
names refuses instead of replacing files the first one has already closed.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from .output_file import OutputFile, OutputFileRefused, create_output_file
from .pcap_writer import OutputRefusedError, PcapWriteError

if TYPE_CHECKING:  # made by the caller, only for a run that compresses or hands files on
    from .closed_files import ClosedFiles

NS_PER_SECOND = 1_000_000_000


def numbered(path: str, sequence: int) -> str:
    """``dir/capture.pcap`` -> ``dir/capture_00001.pcap``."""
    stem, extension = os.path.splitext(path)
    return f"{stem}_{sequence:05d}{extension}"


def set_lock_path(pattern: str) -> str:
    """``dir/capture.pcap`` -> ``dir/.capture.pcap.lock``."""
    where, name = os.path.split(pattern)
    return os.path.join(where, f".{name}.lock")


def lock_set(pattern: str) -> OutputFile:
    """The lock of the rotated set named by ``pattern``; raises PcapWriteError."""
    path = set_lock_path(pattern)
    try:
        return create_output_file(path)
    except OSError as exc:
        message = f"failed to open output file '{pattern}': lock file '{path}': {exc.strerror}"
        refused = isinstance(exc, OutputFileRefused)
        raise (OutputRefusedError if refused else PcapWriteError)(message) from None


class FileNames:
    """The name of each successive file of a rotated capture."""

    def __init__(self, pattern: str, by_size: bool) -> None:
        self.pattern = pattern
        self.timed = "%" in pattern
        self.always_numbered = by_size or not self.timed
        self.sequence = 0
        self._used: set[str] = set()

    def next(self, start_ns: int) -> str:
        self.sequence += 1
        return self._name(start_ns)

    def retime(self, old: str, start_ns: int) -> str:
        """The current file's name for another start time (same sequence number)."""
        self._used.discard(old)
        return self._name(start_ns)

    def _name(self, start_ns: int) -> str:
        name = self.pattern
        if self.timed:
            name = time.strftime(name, time.localtime(start_ns // NS_PER_SECOND))
        if self.always_numbered or name in self._used:
            name = numbered(name, self.sequence)
        self._used.add(name)
        return name


class RotatingSink:
    """A sink over successive files opened by ``open_file(path)``; the first one at once,
    so a capture that gets no packet is still one valid file."""

    def __init__(self, open_file: Callable[[str], object], names: FileNames, *, rotate_bytes: int = 0,
                 rotate_seconds: int = 0, rotate_files: int = 0,
                 now_ns: Callable[[], int] = time.time_ns,
                 closed_files: Callable[[], ClosedFiles] | None = None) -> None:  # fmt: skip
        self._open_file = open_file
        self._names = names
        self._limit = rotate_bytes
        self._period = rotate_seconds * NS_PER_SECOND
        self._keep = rotate_files
        self._boundary: int | None = None  # end of the current interval, from the first record
        self.records = 0
        self._saved_before = 0  # records in the files already closed
        self.files: deque[str] = deque()
        self.set_lock = lock_set(names.pattern)
        self.closed_files: ClosedFiles | None = None
        self._make_closed_files = closed_files
        self._closing = False
        try:
            self._current = self._open(now_ns())
        except BaseException:
            self._release()
            raise

    @property
    def path(self) -> str:
        return self.files[-1]

    @property
    def records_saved(self) -> int:
        """Records the files hold (after a failed write, without the ones it lost)."""
        return self._saved_before + self._current.records_saved

    @property
    def rotations(self) -> int:
        """Files started after the first one (the metrics' files_rotated)."""
        return self._names.sequence - 1

    @property
    def outputs(self) -> list[OutputFile]:
        """The files open now: the set's lock and the current file."""
        return [self.set_lock, self._current.output]

    def _open(self, start_ns: int):
        path = self._names.next(start_ns)
        current = self._open_file(path)
        self.files.append(path)
        while self._keep and self._make_closed_files is None and len(self.files) > self._keep:
            oldest = self.files.popleft()
            try:
                os.unlink(oldest)
            except FileNotFoundError:
                pass
        return current

    def _retime_first(self, start_ns: int) -> None:
        """A timed name describes the file's interval: the first file, opened before any
        record, takes the name of its first record's interval (an offline run, a capture
        started just before a boundary)."""
        old = self.files[-1]
        new = self._names.retime(old, start_ns)
        if new != old:
            try:
                os.replace(old, new)
            except OSError as exc:
                message = f"failed to rename output file '{old}' to '{new}': {exc.strerror}"
                raise PcapWriteError(message) from None
            self.files[-1] = self._current.path = new

    def _rotate(self, start_ns: int):
        self._current.close()
        closed, saved = self._current, self._current.records_saved
        self._current = self._open(start_ns)  # if this fails, the closed file stays current
        self._saved_before += saved
        self._hand_on(closed.path)
        return self._current

    def _hand_on(self, path: str, last: bool = False) -> None:
        """A closed file to the background thread, started with the first one (after
        ``--user``: its commands run as that user)."""
        if self._make_closed_files is None:
            return
        if self.closed_files is None:
            self.closed_files = self._make_closed_files()
        self.closed_files.hand_on(path, last)

    def write(self, ts_ns: int, data: bytes | memoryview, incl_len: int, orig_len: int) -> None:
        self._file_for(ts_ns, incl_len).write(ts_ns, data, incl_len, orig_len)
        self.records += 1

    def _file_for(self, ts_ns: int, incl_len: int):
        """The file the next record goes to: a new one when it starts a new interval or would
        take the current one past the size limit."""
        current = self._current
        if self._period:
            if self._boundary is None:
                start = ts_ns - ts_ns % self._period
                self._boundary = start + self._period
                if self._names.timed and not current.records:
                    self._retime_first(start)
            elif ts_ns >= self._boundary:
                start = ts_ns - ts_ns % self._period
                self._boundary = start + self._period
                current = self._rotate(start)
        if (self._limit and current.records
                and current.bytes_written + current.record_size(incl_len) > self._limit):  # fmt: skip
            current = self._rotate(ts_ns)
        return current

    def write_batch(self, frames, lengths) -> None:
        """Each run of records that stays in one file goes to it in one write_batch: record
        by record costs several times more, enough to drop frames at 50k/s (issue 13 #9)."""
        count = len(lengths)
        if len(frames) != count:
            raise ValueError(f"{len(frames)} frames but {count} lengths")
        start = 0
        while start < count:
            current = self._file_for(frames[start][0], lengths[start])
            end = self._run_end(frames, lengths, start, current)
            if start == 0 and end == count:
                current.write_batch(frames, lengths)  # the whole batch: a RecordBatch stays one
            else:
                current.write_batch(frames[start:end], lengths[start:end])
            self.records += end - start
            start = end

    def _run_end(self, frames, lengths, start: int, current) -> int:
        """Past the last record from ``start`` on that ``current`` takes without a rotation
        (the first always: :meth:`_file_for` chose the file for it)."""
        boundary = self._boundary if self._period else None
        room = self._limit - current.bytes_written if self._limit else None
        record_size = current.record_size
        end = start
        for ts_ns, _, _ in frames[start:] if start else frames:
            if end > start and boundary is not None and ts_ns >= boundary:
                break
            if room is not None:
                room -= record_size(lengths[end])
                if end > start and room < 0:
                    break
            end += 1
        return end

    def flush(self) -> None:
        self._current.flush()

    def close(self) -> None:
        """Close the open file, hand it on too, wait (bounded) for the hand-on, unlock the set."""
        try:
            last, self._closing = not self._closing, True
            try:
                self._current.close()
            finally:
                if last:
                    self._hand_on(self._current.path, last=True)
                    if self.closed_files is not None:
                        self.closed_files.close()
        finally:
            self._release()

    def _release(self) -> None:
        if not self.set_lock.file.closed:
            self.set_lock.remove()
            self.set_lock.close()

    def __enter__(self) -> RotatingSink:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
