"""Every file the recorder writes (capture, rotated files, decision log) is created here
(issue 13, DECISIONS.md #13): a root process must not write through a link someone planted,
and two recorders must not write one file.

* A symbolic link at the path is refused, never followed (``O_NOFOLLOW``).
* An existing regular file is replaced as tcpdump does, but by unlinking it and creating a
  new one (``O_CREAT | O_EXCL``): the old inode, and any hard link to it, is left untouched.
* Each file is locked (``flock``) for as long as it is written; a file locked by another
  recorder is refused, and checked before it is replaced.  After every lock the path is
  checked to still name the locked file, so two recorders starting at once cannot both win.
* A FIFO or a character device (``/dev/null``) is a stream someone set up on purpose: it is
  opened as it is, never created, replaced, truncated or chowned.  Like the kernel's
  ``fs.protected_fifos``, a FIFO in a sticky world-writable directory (``/tmp``) is refused
  unless it belongs to us or to the directory's owner.  Anything else is refused.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import stat

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_ATTEMPTS = 8  # another recorder racing for the same name: how often to look again


class OutputFileRefused(OSError):
    """The path is not one we may write; ``strerror`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EPERM, reason)


class OutputFile:
    """An open, locked output file.  ``created``: we made it (a regular file), so it is ours
    to cut back after a failed write, to remove, and to give to ``--user``."""

    def __init__(self, path: str, fd: int, created: bool) -> None:
        self.path = path
        self.created = created
        self.file = io.FileIO(fd, "wb", closefd=True)  # unbuffered: writers batch themselves

    def fileno(self) -> int:
        return self.file.fileno()

    def cut_to(self, size: int) -> None:
        """Drop everything past ``size`` bytes (a record a failed write left half done)."""
        if self.created:
            try:
                os.ftruncate(self.file.fileno(), size)
            except OSError:
                pass  # nothing better to do: the write error is what gets reported

    def remove(self) -> None:
        """Unlink the file if it is ours and still at its path (the lock is still held)."""
        if self.created and not self.file.closed and _still_at(self.path, self.file.fileno()):
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def close(self) -> None:
        self.file.close()  # releases the lock


def create_output_file(path: str) -> OutputFile:
    """Create (or replace) ``path`` for writing and lock it; raises OSError
    (:class:`OutputFileRefused` for a link, a locked file, a file of another kind)."""
    for _ in range(_ATTEMPTS):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is None:
            opened = _create(path)
        elif stat.S_ISREG(st.st_mode):
            opened = _replace(path)
        elif stat.S_ISLNK(st.st_mode):
            raise OutputFileRefused("it is a symbolic link (refused, not followed)")
        elif stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        elif stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode):
            opened = _open_stream(path, st)
        else:
            raise OutputFileRefused("it is not a regular file, a FIFO or a character device")
        if opened is not None:
            return opened
    raise OutputFileRefused("another process keeps replacing it")


def _create(path: str) -> OutputFile | None:
    try:
        fd = os.open(path, _CREATE, 0o666)
    except FileExistsError:
        return None  # someone else was quicker: look again
    return _locked(path, fd, created=True)


def _replace(path: str) -> OutputFile | None:
    """Unlink the regular file at ``path`` (unless another recorder holds it), then create anew;
    the old file stays locked until the new one is, so a second recorder sees one or the other."""
    try:
        old = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        _lock(old)
        if not _still_at(path, old):
            return None
        os.unlink(path)
        return _create(path)
    finally:
        os.close(old)


def _open_stream(path: str, st: os.stat_result) -> OutputFile | None:
    parent = os.stat(os.path.dirname(path) or ".")
    shared = parent.st_mode & stat.S_ISVTX and parent.st_mode & stat.S_IWOTH
    if stat.S_ISFIFO(st.st_mode) and shared and st.st_uid not in (os.geteuid(), parent.st_uid):
        raise OutputFileRefused("it is a FIFO another user owns in a shared directory")
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # a FIFO waits for its reader
    now = os.fstat(fd)
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        return None  # replaced meanwhile: judge it again
    if stat.S_ISCHR(st.st_mode):
        return OutputFile(path, fd, created=False)  # a device has no one capture to protect
    return _locked(path, fd, created=False)


def _locked(path: str, fd: int, created: bool) -> OutputFile | None:
    try:
        _lock(fd)
        if not _still_at(path, fd):  # unlinked by a recorder that replaced it: look again
            os.close(fd)
            return None
    except BaseException:
        os.close(fd)
        raise
    return OutputFile(path, fd, created)


def _lock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise OutputFileRefused("another recorder is writing it (the file is locked)") from None


def _still_at(path: str, fd: int) -> bool:
    try:
        there = os.lstat(path)
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (there.st_dev, there.st_ino) == (here.st_dev, here.st_ino)
