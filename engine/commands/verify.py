"""``verify ORIGINAL CONSTRICTED``: did constriction hide anything an analyst reads?

The judge is tshark, not our decoder: both files are dissected with TCP and TLS
reassembly off (a cut segment must not hide what later segments show, see
README "Reading a constricted capture"), and per frame every TLS/DTLS record
header and handshake message, QUIC long header and connection ID, DNS message
and HTTP/1 request and status line of the original must be in the constricted
file too.  Frames must match one to one: count, timestamps, wire lengths, and
each constricted frame a prefix of the original.  Exit 0: nothing lost; 1: a
loss or an error; 2: tshark is not installed, so nothing was judged.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import struct
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field

from pcapconstrictor.engine.config import ConfigError, load_config

# tshark preferences: each segment is dissected on its own (issue 14, defect 3)
NO_REASSEMBLY = (
    "tcp.desegment_tcp_streams:FALSE",
    "tls.desegment_ssl_records:FALSE",
    "tls.desegment_ssl_application_data:FALSE",
)

# (what the table calls it, tshark fields whose occurrences are the items)
ITEMS = (
    ("TLS record headers", ("tls.record.length",)),
    ("TLS handshake messages", ("tls.handshake.type",)),
    ("DTLS record headers", ("dtls.record.length",)),
    ("QUIC long headers", ("quic.long.packet_type",)),
    ("QUIC connection IDs", ("quic.dcid",)),
    ("DNS messages", ("dns.id",)),
    ("HTTP/1 request lines", ("http.request.method",)),
    ("HTTP/1 status lines", ("http.response.code",)),
)
FRAME_CHECKS = ("frames", "timestamps", "wire lengths", "frame bytes (prefix)")
_AGGREGATOR = "|"


class TsharkMissing(Exception):
    """tshark is not on PATH: nothing can be judged."""


class VerifyError(Exception):
    """A file tshark cannot read, or bad options."""


@dataclass
class Row:
    what: str
    original: int = 0
    constricted: int = 0
    lost: int = 0
    first_lost_frame: int | None = None

    def lose(self, count: int, frame: int) -> None:
        self.lost += count
        if self.first_lost_frame is None:
            self.first_lost_frame = frame


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    @property
    def total_lost(self) -> int:
        return sum(r.lost for r in self.rows)

    def table(self) -> str:
        lines = [f"{'what':<26} {'original':>9} {'constricted':>12} {'lost':>6}  first lost frame"]
        for r in self.rows:
            first = "" if r.first_lost_frame is None else str(r.first_lost_frame)
            lines.append(f"{r.what:<26} {r.original:>9} {r.constricted:>12} {r.lost:>6}  {first}")
        lines.append("no loss" if not self.total_lost else f"LOSS: {self.total_lost} items lost")
        return "\n".join(lines) + "\n"

    def as_json(self) -> str:
        return json.dumps({"lost": self.total_lost, "rows": [r.__dict__ for r in self.rows]}, indent=2)


def ports_of(config) -> list[int]:
    """The TCP ports tshark must decode as TLS: the config's tls.ports."""
    return sorted(config["tls.ports"]) if config["tls.enabled"] else []


def _tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        raise TsharkMissing("verify: tshark is not installed (Debian/Ubuntu: apt-get install tshark); "
                            "nothing was judged")  # fmt: skip
    return path


def _run(args: list[str]) -> bytes:
    result = subprocess.run([_tshark(), *args], capture_output=True, timeout=600)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise VerifyError(f"tshark failed: {message[-1] if message else result.returncode}")
    return result.stdout


def _options(tls_ports: list[int]) -> list[str]:
    args = ["-n"]
    for pref in NO_REASSEMBLY:
        args += ["-o", pref]
    for port in tls_ports:
        args += ["-d", f"tcp.port=={port},tls"]
    return args


def _fields(path: str, tls_ports: list[int]) -> list[list[str]]:
    """Per frame: epoch time, wire length, then each ITEMS field's occurrences."""
    names = ["frame.time_epoch", "frame.len"] + [f for _, fs in ITEMS for f in fs]
    args = ["-r", path, *_options(tls_ports), "-T", "fields", "-E", "occurrence=a",
            "-E", f"aggregator={_AGGREGATOR}", "-E", "separator=/t"]  # fmt: skip
    for name in names:
        args += ["-e", name]
    return [line.split("\t") for line in _run(args).decode(errors="replace").splitlines()]


def _frames(path: str) -> list[bytes]:
    """Every frame's captured bytes, any input format: tshark rewrites it as classic PCAP."""
    raw = _run(["-r", path, "-F", "pcap", "-w", "-"])
    order = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    frames, off = [], 24
    while off + 16 <= len(raw):
        caplen = struct.unpack_from(order + "I", raw, off + 8)[0]
        frames.append(raw[off + 16 : off + 16 + caplen])
        off += 16 + caplen
    return frames


def _items(cell: str) -> Counter:
    return Counter(v for v in cell.split(_AGGREGATOR) if v) if cell else Counter()


def _cell(fields: list[str], k: int) -> str:
    return fields[k] if k < len(fields) else ""


@functools.lru_cache(maxsize=8)
def _original(path: str, mtime_ns: int, tls_ports: tuple[int, ...]) -> tuple[list[list[str]], list[bytes]]:
    """An original's fields and frames, read once when many outputs are judged against it."""
    return _fields(path, list(tls_ports)), _frames(path)


def compare(original: str, constricted: str, tls_ports: list[int]) -> Report:
    """Judge ``constricted`` against ``original`` (raises TsharkMissing, VerifyError)."""
    try:
        mtime = os.stat(original).st_mtime_ns
    except OSError as e:
        raise VerifyError(f"{original}: {e.strerror}") from None
    a, bytes_a = _original(original, mtime, tuple(tls_ports))
    b = _fields(constricted, tls_ports)
    checks = {what: Row(what, len(a), len(b)) for what in FRAME_CHECKS}
    rows = [Row(what) for what, _ in ITEMS]
    if len(a) != len(b):
        checks["frames"].lose(abs(len(a) - len(b)), min(len(a), len(b)) + 1)
    bytes_b = _frames(constricted)
    for i, (fa, fb) in enumerate(zip(a, b, strict=False)):  # a count mismatch is lost above
        frame = i + 1
        if fa[0] != fb[0]:
            checks["timestamps"].lose(1, frame)
        if fa[1] != fb[1]:
            checks["wire lengths"].lose(1, frame)
        if i < len(bytes_a) and i < len(bytes_b) and not bytes_a[i].startswith(bytes_b[i]):
            checks["frame bytes (prefix)"].lose(1, frame)
        for k, row in enumerate(rows):
            seen, kept = _items(_cell(fa, 2 + k)), _items(_cell(fb, 2 + k))
            row.original += sum(seen.values())
            row.constricted += sum(kept.values())
            missing = sum((seen - kept).values())
            if missing:
                row.lose(missing, frame)
    for what in ("timestamps", "wire lengths", "frame bytes (prefix)"):
        checks[what].original = len(a)
        checks[what].constricted = len(b) - checks[what].lost
    return Report([*checks.values(), *rows])


def _tls_ports(args) -> list[int]:
    if args.tls_ports is not None:
        try:
            return sorted({int(p) for p in args.tls_ports.split(",") if p.strip()})
        except ValueError:
            raise VerifyError(f"--tls-ports: not a port list: {args.tls_ports}") from None
    if args.config is not None:
        try:
            return ports_of(load_config(args.config))
        except ConfigError as e:
            raise VerifyError(f"Configuration error: {e}") from None
    return [443]


def run(args) -> int:
    """The ``verify`` command: 0 no loss, 1 loss or error, 2 tshark missing."""
    try:
        report = compare(args.original, args.constricted, _tls_ports(args))
    except TsharkMissing as e:
        sys.stderr.write(f"{e}\n")
        return 2
    except VerifyError as e:
        sys.stderr.write(f"verify: {e}\n")
        return 1
    sys.stdout.write(report.as_json() + "\n" if args.json else report.table())
    return 1 if report.total_lost else 0
