"""``--log-format json`` (issue 18 #4): every message as one JSON object per line, for journald
and log shippers.

The text format stays the default and byte for byte upstream's: the run writes its messages
as it always does, and in JSON mode the message streams are wrapped.  Each ``write()`` of the
run is one message (the banner, a warning, an error, the final stats are each written at once),
so each becomes one object: ``{"time", "level", "event", "message", ...}`` with the banner's
settings and the stats block's figures as fields.  Terminal progress lines are left out.
"""

from __future__ import annotations

import json
import sys
import time

_BANNER = "Starting live capture.\n"
_STATS_HEADS = ("Final stats:\n", "Partial stats:\n")


def message_object(text: str, level: str) -> dict | None:
    """The JSON object of one written message, None for nothing worth a line."""
    if not text.strip() or text.startswith("\r"):
        return None
    head, stats = text, None
    for marker in _STATS_HEADS:
        if marker in text:
            head, _, block = text.partition(marker)
            stats = _pairs(block, numbers=True)
    lines = head.strip("\n").splitlines()
    record: dict = {"time": round(time.time(), 6), "level": level, "event": "message",
                    "message": "\n".join(lines)}  # fmt: skip
    if text.startswith(_BANNER):
        record.update(event="banner", message=lines[0], settings=_pairs("\n".join(lines[1:-1])))
    elif stats is None and lines and all(_is_count(line) for line in lines):  # a stats block alone
        record.update(event="stats", message="stats", stats=_pairs(head, numbers=True))
    elif stats is not None:
        record.update(event="stats", stats=stats)
    if level == "warning" and ("error" in lines[0].lower() if lines else False):
        record["level"] = "error"
    return record


def _is_count(line: str) -> bool:
    key, sep, value = line.partition(": ")
    return bool(sep) and value.isdigit() and " " not in key


def _pairs(block: str, numbers: bool = False) -> dict:
    out: dict = {}
    for line in block.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            out[key] = int(value) if numbers and value.isdigit() else value
    return out


class JsonLines:
    """A text stream whose every write is one JSON object on a line of the stream below."""

    def __init__(self, stream, level: str) -> None:
        self._stream = stream
        self._level = level

    def write(self, text: str) -> int:
        record = message_object(text, self._level)
        if record is not None:
            self._stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        return len(text)

    def isatty(self) -> bool:
        return False  # no progress line in place: a shipper reads this

    def __getattr__(self, name: str):
        return getattr(self._stream, name)  # flush, fileno, buffer (a capture on stdout), ...


def use_json_lines() -> None:
    """From now on the messages on stdout (level info) and stderr (warning, or error when the
    message says so) are JSON lines."""
    if not isinstance(sys.stdout, JsonLines):
        sys.stdout = JsonLines(sys.stdout, "info")  # type: ignore[assignment]
        sys.stderr = JsonLines(sys.stderr, "warning")  # type: ignore[assignment]
