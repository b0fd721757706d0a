"""``--user NAME`` (issue 8): give up root once the socket is open and the output exists, as
``tcpdump -Z`` does, so no packet is ever parsed by a process that is root.

Order: the files the run created are given to the user (so a rotated capture has one owner),
then supplementary groups, group, user.  Changing every uid from 0 makes the kernel clear the
capability sets too; the open socket keeps working, as sockets are checked when created.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable


class PrivilegeError(Exception):
    """The switch could not be made; the run must not go on as root."""


def drop_privileges(user: str, created: Iterable[int] = ()) -> None:
    """Become ``user`` for good; ``created`` are the descriptors of the files this run created,
    handed over first: by descriptor, so a name replaced by a link meanwhile cannot redirect
    the chown (issue 13)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f"unknown user '{user}'") from None
    uid, gid = entry.pw_uid, entry.pw_gid
    if os.geteuid() != 0:
        if os.geteuid() == uid and os.getuid() == uid:
            return  # already that user
        raise PrivilegeError(f"--user {user} needs to start as root (it gives root up once capturing)")
    try:
        for fd in created:
            os.fchown(fd, uid, gid)
        os.initgroups(entry.pw_name, gid)
        os.setgid(gid)
        os.setuid(uid)  # as root: real, effective and saved uid
    except OSError as exc:
        raise PrivilegeError(f"cannot switch to user '{user}': {exc.strerror or exc}") from None
    if uid != 0 and (os.geteuid() == 0 or os.getuid() == 0):
        raise PrivilegeError(f"cannot switch to user '{user}': still root")
