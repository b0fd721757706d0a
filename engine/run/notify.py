"""systemd's notify protocol (sd_notify(3)) by hand, with no dependency (issue 18 #2).

Under ``Type=notify`` systemd sets ``NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract
socket) and reads ``KEY=value`` lines from datagrams sent there: ``READY=1`` once the socket
and the output are open, ``STATUS=`` the live figures, ``WATCHDOG=1`` at least every
``WATCHDOG_USEC`` (we send at half of it, from the capture loop, so a stuck loop misses it and
is restarted), ``STOPPING=1`` at shutdown.  Without ``NOTIFY_SOCKET`` every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time


class ServiceNotifier:
    """One process's messages to its service manager; sending never raises."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if address.startswith("@"):  # abstract namespace: a leading NUL byte
            self.address = b"\0" + address[1:].encode()
        elif address.startswith("/"):
            self.address = address
        self.watchdog_period = _watchdog_period(env)
        self._watchdog_due = 0.0
        self._socket: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> None:
        """One datagram of ``KEY=value`` lines."""
        if self.address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto("\n".join(fields).encode() + b"\n", self.address)
        except OSError:
            pass  # the manager went away: capturing matters more than telling it

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def watchdog(self, now: float | None = None) -> None:
        """``WATCHDOG=1`` if half the watchdog period has passed since the last one."""
        if self.watchdog_period is None:
            return
        now = time.monotonic() if now is None else now
        if now >= self._watchdog_due:
            self._watchdog_due = now + self.watchdog_period
            self.send("WATCHDOG=1")

    def watchdog_due(self) -> float:
        """When the loop must be awake to ping next (infinity without a watchdog)."""
        return self._watchdog_due if self.watchdog_period is not None else float("inf")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_period(env) -> float | None:
    """Half of WATCHDOG_USEC in seconds, if the watchdog is meant for this process."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2 / 1_000_000


def status_line(stats) -> str:
    """The figures of STATUS= (and the terminal's progress line)."""
    kernel = stats.kernel_packets or 0
    return (f"{kernel} packets, {stats.packets_total} written, {stats.bytes_saved} bytes saved, "
            f"{stats.kernel_drops or 0} kernel drops")  # fmt: skip
