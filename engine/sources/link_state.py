"""The captured interface going down, coming back or being deleted (issue 13 #7).

When an interface goes down the kernel unhooks every packet socket bound to it and
reports ENETDOWN once on each; when it comes up again it hooks them back in.  So a
link down is not the end of a capture: like tcpdump, the recorder says so on stderr,
counts it (``link_down_events``) and goes on receiving.  Only a deleted interface ends
the run: its index is gone (or belongs to a new interface of the same name), and a
socket bound to the old one never receives again.
"""

from __future__ import annotations

import socket
import sys
from typing import TextIO

from .interfaces import describe
from .packet_socket import CaptureError

UP, DOWN, DELETED = "up", "down", "deleted"


def link_state(name: str, ifindex: int) -> str:
    """``up``, ``down`` or ``deleted`` for the interface ``name`` that had ``ifindex``."""
    try:
        if socket.if_nametoindex(name) != ifindex:
            return DELETED
        return UP if describe(name, ifindex).up else DOWN
    except (OSError, ValueError):
        return DELETED


class LinkWatch:
    """Follows a backend's link-down reports (its ``link_down_events`` counter) and, while
    the link is down, the interface's state at each turn of the live loop."""

    def __init__(self, interface: str, ifindex: int, stream: TextIO | None = sys.stderr) -> None:
        self.interface = interface
        self.ifindex = ifindex
        self.stream = stream  # None: follow the link without a word (all but one worker)
        self.down = False
        self._reported = 0

    def check(self, link_down_events: int) -> None:
        """Raises CaptureError once the interface is deleted."""
        if link_down_events != self._reported:
            self._reported = link_down_events
            if not self.down:
                self.down = True
                self._say(f"interface '{self.interface}' went down; waiting for it to come back")
        if not self.down:
            return
        state = link_state(self.interface, self.ifindex)
        if state == DELETED:
            raise CaptureError(f"interface '{self.interface}' was deleted")
        if state == UP:
            self.down = False
            self._say(f"interface '{self.interface}' is up again; capturing")

    def _say(self, message: str) -> None:
        if self.stream is None:
            return
        self.stream.write(f"Live capture: {message}\n")
        self.stream.flush()
