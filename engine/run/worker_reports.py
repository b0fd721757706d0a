"""What capture workers and their parent tell each other (issue 13): one JSON object per
``SOCK_SEQPACKET`` datagram of at most :data:`MAX_MESSAGE` bytes, checked field by field on
receipt.

With ``--user`` a worker runs as the user while the parent may still be root, so a worker is
the less trusted side: what it sends is data to validate, never something to execute (a
pickle would be: unpickling runs code the sender chooses).  Anything that is not a known
message with fields of the known types and ranges is a :class:`ReportError`.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass

from .figures import RunFigures
from .stats import Stats

MAX_MESSAGE = 64 * 1024  # a datagram longer than this is refused unread
MAX_TEXT = 16 * 1024  # a report's message is cut to its last MAX_TEXT characters (a traceback's end)
MAX_COUNTERS = 1024  # more counters than any policy declares
REPORT_KINDS = ("ready", "failed", "stopped", "capture_error", "write_error", "crashed")
_COUNTER_NAME = re.compile(r"[A-Za-z0-9_.]{1,128}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # a worker must not drive the terminal
_STATS_COUNTS = ("packets_total", "bytes_input", "bytes_output", "receive_errors", "flow_evictions")
_STATS_KERNEL = ("kernel_packets", "kernel_drops", "files_compressed", "post_rotate_failures")  # or None
_U64 = 1 << 64


class ReportError(Exception):
    """A message that is not one a worker or the parent sends; ``str()`` says why."""


@dataclass
class WorkerReport:
    """What a worker tells the parent: ``ready`` or ``failed`` (setup; ``message`` is then the
    whole text for stderr), then ``stopped`` (``message`` is the reason), ``capture_error``,
    ``write_error`` or ``crashed``."""

    kind: str
    message: str = ""
    stats: Stats | None = None


def channel() -> tuple[socket.socket, socket.socket]:
    """A connected pair: message boundaries kept, each datagram read whole or refused."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


# --- worker -> parent: a report, or worker 0's fanout group id --------------------------------


def encode_report(message: WorkerReport | int | RunFigures) -> bytes:
    if isinstance(message, int):
        return _dump({"group": message})
    if isinstance(message, RunFigures):
        return _dump({"progress": _encode_figures(message)})
    stats = message.stats
    encoded = None if stats is None else _encode_stats(stats)
    return _dump({"kind": message.kind, "message": message.message[-MAX_TEXT:], "stats": encoded})


def _encode_stats(stats: Stats) -> dict:
    return {**{name: getattr(stats, name) for name in _STATS_COUNTS + _STATS_KERNEL},
            "counters": dict(stats.counters)}  # fmt: skip


def decode_report(data: bytes, group_allowed: bool = False) -> WorkerReport | int | RunFigures:
    """A worker's message, validated; an int is the fanout group id (only when
    ``group_allowed``: it is worker 0's first word), RunFigures its progress (issue 18)."""
    value = _load(data)
    if group_allowed and set(value) == {"group"}:
        return _integer(value["group"], "group", 1 << 16)
    if set(value) == {"progress"}:
        return _figures(value["progress"])
    if set(value) != {"kind", "message", "stats"}:
        raise ReportError(f"unexpected fields {sorted(value)}")
    kind, text = value["kind"], value["message"]
    if kind not in REPORT_KINDS:
        raise ReportError(f"unknown report kind {str(kind)[:40]!r}")
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise ReportError("the message is not a string of at most MAX_TEXT characters")
    stats = None if value["stats"] is None else _stats(value["stats"])
    return WorkerReport(kind, _CONTROL.sub("?", text), stats)


def _stats(value: object) -> Stats:
    if not isinstance(value, dict) or set(value) != {*_STATS_COUNTS, *_STATS_KERNEL, "counters"}:
        raise ReportError("stats do not have the stats fields")
    stats = Stats(**{name: _integer(value[name], name) for name in _STATS_COUNTS})
    for name in _STATS_KERNEL:
        if value[name] is not None:
            setattr(stats, name, _integer(value[name], name))
    counters = value["counters"]
    if not isinstance(counters, dict) or len(counters) > MAX_COUNTERS:
        raise ReportError("counters are not a mapping of at most MAX_COUNTERS names")
    for name, count in counters.items():
        if not _COUNTER_NAME.fullmatch(name):
            raise ReportError(f"bad counter name {name[:40]!r}")
        stats.counters[name] = _integer(count, name)
    return stats


# --- worker -> parent: progress, about once a second while capturing (issue 18) -------------

_FIGURE_MAPS = ("flow_entries", "flow_evictions")
_FIGURE_COUNTS = ("files_rotated", "write_errors")
_LABEL = re.compile(r"[A-Za-z0-9_.:-]{1,128}")  # rule ids, reasons, analyzer names


def _encode_figures(figures: RunFigures) -> dict:
    return {
        "stats": _encode_stats(figures.stats),
        "decisions": [[rule, reason, count] for (rule, reason), count in figures.decisions.items()],
        **{name: dict(getattr(figures, name)) for name in _FIGURE_MAPS},
        **{name: getattr(figures, name) for name in _FIGURE_COUNTS + ("socket_backlog_bytes",)},
    }  # fmt: skip


def _figures(value: object) -> RunFigures:
    fields = {"stats", "decisions", *_FIGURE_MAPS, *_FIGURE_COUNTS, "socket_backlog_bytes"}
    if not isinstance(value, dict) or set(value) != fields:
        raise ReportError("progress does not have the progress fields")
    figures = RunFigures(stats=_stats(value["stats"]))
    decisions = value["decisions"]
    if not isinstance(decisions, list) or len(decisions) > MAX_COUNTERS:
        raise ReportError("decisions are not a list of at most MAX_COUNTERS rows")
    for row in decisions:
        if not isinstance(row, list) or len(row) != 3:
            raise ReportError("a decision row is not [rule, reason, count]")
        rule, reason = (_label(text) for text in row[:2])
        figures.decisions[(rule, reason)] = _integer(row[2], "decision count")
    for name in _FIGURE_MAPS:
        table = value[name]
        if not isinstance(table, dict) or len(table) > MAX_COUNTERS:
            raise ReportError(f"{name} is not a mapping of at most MAX_COUNTERS names")
        getattr(figures, name).update({_label(key): _integer(n, name) for key, n in table.items()})
    for name in _FIGURE_COUNTS:
        setattr(figures, name, _integer(value[name], name))
    if value["socket_backlog_bytes"] is not None:
        figures.socket_backlog_bytes = _integer(value["socket_backlog_bytes"], "socket_backlog_bytes")
    return figures


def _label(text: object) -> str:
    if not isinstance(text, str) or not _LABEL.fullmatch(text):
        raise ReportError(f"bad label {str(text)[:40]!r}")
    return text


# --- parent -> worker: the go (its start time), or None: do not start --------------------------


def encode_go(start_ns: int | None) -> bytes:
    return _dump({"start_ns": start_ns})


def decode_go(data: bytes) -> int | None:
    value = _load(data)
    if set(value) != {"start_ns"}:
        raise ReportError(f"unexpected fields {sorted(value)}")
    return None if value["start_ns"] is None else _integer(value["start_ns"], "start_ns")


# --- the datagrams -----------------------------------------------------------------------------


def send(sock: socket.socket, data: bytes, block: bool = True) -> None:
    """One message; a peer that has gone is not an error here (its EOF or report says why).
    ``block=False``: a full channel drops the message (progress must not hold a capture up)."""
    try:
        sock.send(data, 0 if block else socket.MSG_DONTWAIT)
    except OSError:
        pass


def receive(sock: socket.socket) -> bytes:
    """The next datagram, ``b""`` at EOF; raises ReportError for one longer than MAX_MESSAGE."""
    data = sock.recv(MAX_MESSAGE + 1)
    if len(data) > MAX_MESSAGE:
        raise ReportError(f"a message longer than {MAX_MESSAGE} bytes")
    return data


def _dump(value: dict) -> bytes:
    data = json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"message of {len(data)} bytes")  # a bug on the sending side
    return data


def _load(data: bytes) -> dict:
    if not data:
        raise ReportError("an empty message")
    if len(data) > MAX_MESSAGE:
        raise ReportError(f"a message longer than {MAX_MESSAGE} bytes")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise ReportError(f"not JSON ({type(e).__name__})") from None
    if not isinstance(value, dict):
        raise ReportError("not a JSON object")
    return value


def _integer(value: object, name: str, limit: int = _U64) -> int:
    if type(value) is not int or not 0 <= value < limit:
        raise ReportError(f"{name} is not an integer from 0 to {limit - 1}")
    return value
