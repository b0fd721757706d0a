"""Closed rotated files handed on (issue 18 #3): compressed (``capture.compress``), given to
``capture.post_rotate_command`` as ``tcpdump -z`` does, and the set kept within
``capture.rotate_files`` and ``capture.rotate_total_bytes`` by deleting the oldest closed files.

All of it runs in one background thread, so the capture loop only queues a name at a rotation
and never waits for a compressor or a command: zlib and zstandard release the GIL while they
compress, and a command runs as a child process.  The thread handles the files in the order
they closed.  The process has already given up root (``--user``) when a file first closes, so
a command simply runs as that user.  The open file stays a plain capture; the last file is
handed on too when the run ends (tcpdump's ``-z`` skips it), the wait for that bounded by
:data:`DRAIN_SECONDS`.
"""

from __future__ import annotations

import gzip
import os
import queue
import shlex
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass

from .output_file import create_output_file

EXTENSIONS = {"gzip": ".gz", "zstd": ".zst"}
CHUNK = 1 << 20  # bytes read and compressed at a time; the GIL is free while each compresses
GZIP_LEVEL = 6  # gzip(1)'s default: level 9 costs about twice the time for ~1 % less
ZSTD_LEVEL = 3  # zstd(1)'s default
DRAIN_SECONDS = 30.0  # at the end of a run, the longest spent on files still queued


class ClosedFilesConfigError(Exception):
    """Settings that cannot work; ``str()`` follows ``Configuration error: ``."""


def zstandard_module():
    """The ``zstandard`` package (a dependency), or None when it was removed from the install."""
    try:
        import zstandard
    except ImportError:
        return None
    return zstandard


def command_argv(text: str) -> tuple[str, ...]:
    """``capture.post_rotate_command`` as an argument vector (shell quoting, no shell)."""
    try:
        argv = tuple(shlex.split(text))
    except ValueError as exc:
        message = f"capture.post_rotate_command cannot be split into words: {exc}"
        raise ClosedFilesConfigError(message) from None
    if text.strip() and not argv:
        raise ClosedFilesConfigError("capture.post_rotate_command names no command")
    return argv


@dataclass(frozen=True)
class ClosedFileSettings:
    compress: str = "none"  # none, gzip or zstd
    command: tuple[str, ...] = ()  # run with the closed file's name as its last argument
    keep_files: int = 0  # rotate_files: the whole set, the open file counted; 0 = all
    total_bytes: int = 0  # rotate_total_bytes: closed files plus open_file_limit; 0 = no budget
    open_file_limit: int = 0  # rotate_bytes: the most the open file can grow to

    @property
    def active(self) -> bool:
        return self.compress != "none" or bool(self.command) or bool(self.total_bytes)


class ClosedFiles:
    """The background hand-on of one rotated set.  ``hand_on(path)`` at each rotation (and for
    the last file at the end), then ``close()`` once.  Counts: ``compressed``,
    ``commands_run``, ``command_failures``; ``kept`` names the set's closed files now."""

    def __init__(self, settings: ClosedFileSettings, report=None) -> None:
        self.settings = settings
        self._report = report if report is not None else sys.stderr
        self.compressed = 0
        self.commands_run = 0
        self.command_failures = 0
        self.kept: deque[str] = deque()  # handed-on files still in the set, oldest first
        self._sizes: dict[str, int] = {}
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._waiting = 0  # handed on, not yet handled
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._open_file = 1  # the file being written counts in rotate_files until the end
        self.left_unhandled: list[str] = []
        self._thread = threading.Thread(target=self._work, name="closed-files", daemon=True)
        self._thread.start()

    def hand_on(self, path: str, last: bool = False) -> None:
        """Queue a closed file (never blocks); ``last``: the run's final file."""
        with self._lock:
            self._waiting += 1
            if last:
                self._open_file = 0
        self._queue.put(path)

    def close(self, timeout: float = DRAIN_SECONDS) -> None:
        """Wait (at most ``timeout`` s) for the queued files; what is left is reported."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()  # stops a compression between two chunks, its partial output removed
            self._thread.join(5.0)
        if self.left_unhandled:
            left = ", ".join(self.left_unhandled)
            self._say(f"{len(self.left_unhandled)} closed files were not compressed or handed to "
                      f"capture.post_rotate_command before the end: {left}")  # fmt: skip

    # --- the background thread ---------------------------------------------------------------

    def _work(self) -> None:
        while True:
            path = self._queue.get()
            if path is None:
                return
            if self._abort.is_set():
                self.left_unhandled.append(path)
                continue
            try:
                self._handle(path)
            except Exception as exc:  # never let one file stop the hand-on of the next ones
                self._say(f"cannot hand on closed file '{path}': {exc}")
            finally:
                with self._lock:
                    self._waiting -= 1
            if not self._abort.is_set():
                self._prune()

    def _handle(self, path: str) -> None:
        name = self._compressed(path) if self.settings.compress != "none" else path
        if name is None:
            self.left_unhandled.append(path)
            return
        if self.settings.command:
            self._run_command(name)
        try:
            size = os.stat(name).st_size
        except FileNotFoundError:
            return  # the command took it away: no longer part of the set
        self._sizes[name] = size
        self.kept.append(name)

    def _compressed(self, path: str) -> str | None:
        """Compress ``path`` into ``path + .gz/.zst``, remove ``path``; the new name, or the
        old one if compressing failed (reported), or None when aborted at the end."""
        target = path + EXTENSIONS[self.settings.compress]
        try:
            output = create_output_file(target)  # no link followed, locked as any output
        except OSError as exc:
            self._say(f"cannot compress '{path}': '{target}': {exc.strerror}")
            return path
        finished = False
        try:
            with open(path, "rb") as source:
                finished = self._copy_compressed(source, output.file)
            if finished:
                output.file.flush()
                os.fsync(output.fileno())
        except OSError as exc:
            self._say(f"cannot compress '{path}': {exc.strerror or exc}")
        finally:
            if not finished:
                output.remove()
            output.close()
        if not finished:
            return None if self._abort.is_set() else path
        os.unlink(path)
        self.compressed += 1
        return target

    def _copy_compressed(self, source, sink) -> bool:
        """Stream ``source`` into ``sink`` compressed; False when aborted part way."""
        if self.settings.compress == "gzip":
            writer = gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=sink, mtime=0)
        else:
            writer = zstandard_module().ZstdCompressor(level=ZSTD_LEVEL).stream_writer(sink, closefd=False)
        with writer:  # one gzip member / one zstd frame per file
            while chunk := source.read(CHUNK):
                if self._abort.is_set():
                    return False
                writer.write(chunk)
        return True

    def _run_command(self, name: str) -> None:
        """``command ... name``; its output goes to stderr (stdout carries the stats block)."""
        self.commands_run += 1
        argv = [*self.settings.command, name]
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=_stderr_fd(), check=False)
        except OSError as exc:
            self.command_failures += 1
            self._say(f"capture.post_rotate_command failed for '{name}': {argv[0]}: {exc.strerror or exc}")
            return
        if done.returncode:
            self.command_failures += 1
            how = (f"killed by signal {-done.returncode}" if done.returncode < 0
                   else f"exit status {done.returncode}")  # fmt: skip
            self._say(f"capture.post_rotate_command failed for '{name}': {how}")

    def _prune(self) -> None:
        """Delete the oldest closed files while the set has more files than rotate_files or
        more bytes than rotate_total_bytes (the open file counted at its size limit)."""
        keep, budget = self.settings.keep_files, self.settings.total_bytes
        while self.kept:
            with self._lock:
                files = len(self.kept) + self._waiting + self._open_file
            too_many = keep and files > keep
            too_big = budget and sum(self._sizes.values()) + self.settings.open_file_limit > budget
            if not (too_many or too_big):
                return
            oldest = self.kept.popleft()
            self._sizes.pop(oldest, None)
            try:
                os.unlink(oldest)
            except FileNotFoundError:
                pass

    def _say(self, message: str) -> None:
        """A ``warning:`` line on stderr (the thread must never raise over a report)."""
        try:
            self._report.write(f"warning: {message}\n")
            self._report.flush()
        except (OSError, ValueError):
            pass


def _stderr_fd() -> int | None:
    """Where a command's standard output goes: our stderr (stdout carries the stats block)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None
