"""The Prometheus endpoint (issue 18 #1): ``[metrics] listen = HOST:PORT``.

A custom collector serves the last figures the capture loop published (figures.py): nothing
is counted per packet for it, and a scrape never touches the socket or the pipeline.  Every
series has a ``worker`` label: ``"all"`` is the run's total (the final stats block's
figures), and with ``capture.workers = N`` each worker ``"0"`` .. ``"N-1"`` has its own series
too, from the JSON progress reports it sends the parent (worker_reports.py: nothing is
unpickled).  Sum over ``worker="all"``, never over every worker label.

prometheus_client is imported here only, and this module only when listen is set.  The
server binds before ``--user`` drops root (a port below 1024 works), in a daemon thread.
"""

from __future__ import annotations

import hashlib
import threading

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import CollectorRegistry

from pcapconstrictor.engine.analysis.reasons import UPSTREAM_COUNTERS
from pcapconstrictor.engine.version import VERSION

from .figures import RunFigures
from .stats import Stats

PREFIX = "pcapconstrictor_"
TOTAL = "all"


class FiguresBoard:
    """The last figures of each worker, as published by the capture loops; thread-safe."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._figures: dict[str, RunFigures] = {}

    def publish(self, worker: str, figures: RunFigures) -> None:
        with self._lock:
            self._figures[worker] = figures

    def series(self) -> list[tuple[str, RunFigures]]:
        """``(worker label, figures)``: each worker's when there are several, then the total."""
        with self._lock:
            published = dict(self._figures)
        if self.workers == 1:
            return [(TOTAL, published.get("0", RunFigures()))]
        total = RunFigures(stats=Stats())
        for figures in published.values():
            total.merge(figures)
        return [*sorted(published.items(), key=lambda item: int(item[0])), (TOTAL, total)]


def policy_hash(policy) -> str:
    """sha256 over the rule files the policy was read from (its includes too), first 16 hex digits."""
    digest = hashlib.sha256()
    parsed = getattr(policy, "parsed", None)
    if parsed is not None:  # a policy from the compiled-policy cache: its rule files, read again
        policy = parsed()
    sources = getattr(policy, "sources", None) or {policy.path: policy.source}
    for path in sorted(sources):
        digest.update(path.encode() + b"\0" + sources[path].encode() + b"\0")
    return digest.hexdigest()[:16]


class RecorderCollector:
    """Turns the board's figures into metric families on each scrape."""

    def __init__(self, board: FiguresBoard, build: dict[str, str]) -> None:
        self.board = board
        self.build = build

    def describe(self):
        return []  # no sample values at registration: figures exist only once a run publishes

    def collect(self):
        info = GaugeMetricFamily(PREFIX + "build_info", "version, build, policy name and hash",
                                 labels=list(self.build))  # fmt: skip
        info.add_metric(list(self.build.values()), 1)
        yield info
        series = self.board.series()
        yield from _counters(series)
        yield from _labelled(series)


_STATS_COUNTERS = (  # metric (without _total), Stats attribute, help
    ("packets", "packets_total", "packets decided and written (the stats block's packets_total)"),
    ("packets_written", "written", "records the output files hold"),
    ("bytes_input", "bytes_input", "captured bytes of the packets"),
    ("bytes_output", "bytes_output", "bytes written, record headers not counted"),
    ("bytes_saved", "bytes_saved", "bytes_input - bytes_output"),
    ("receive_errors", "receive_errors", "failed receives"),
    ("kernel_packets", "kernel_packets", "PACKET_STATISTICS tp_packets: frames the kernel saw"),
    ("kernel_drops", "kernel_drops", "PACKET_STATISTICS tp_drops: frames dropped for want of room"),
    ("flow_evictions", "flow_evictions", "flows evicted or expired from every flow table"),
    ("link_down_events", "link_down_events", "times the interface went down"),
)  # fmt: skip


def _counters(series: list[tuple[str, RunFigures]]):
    for name, attribute, doc in _STATS_COUNTERS:
        family = CounterMetricFamily(PREFIX + name, doc, labels=["worker"])
        for worker, figures in series:
            value = getattr(figures.stats, attribute)
            if value is not None:
                family.add_metric([worker], value)
        yield family
    for name, attribute, doc in (("files_rotated", "files_rotated", "output files started after the first"),
                                 ("write_errors", "write_errors", "failed writes (each ends the run)")):
        family = CounterMetricFamily(PREFIX + name, doc, labels=["worker"])
        for worker, figures in series:
            family.add_metric([worker], getattr(figures, attribute))
        yield family
    backlog = GaugeMetricFamily(PREFIX + "socket_backlog_bytes",
                                "bytes queued in the packet socket (recvmsg backend)", labels=["worker"])
    for worker, figures in series:
        if figures.socket_backlog_bytes is not None:
            backlog.add_metric([worker], figures.socket_backlog_bytes)
    yield backlog


def _labelled(series: list[tuple[str, RunFigures]]):
    decisions = CounterMetricFamily(PREFIX + "decisions", "packets decided by each rule, with its reason",
                                    labels=["worker", "rule", "reason"])  # fmt: skip
    counters = CounterMetricFamily(PREFIX + "policy_counter", "the policy's counters (the stats block's)",
                                   labels=["worker", "counter"])  # fmt: skip
    entries = GaugeMetricFamily(PREFIX + "flow_table_entries", "flows each analyzer's table holds",
                                labels=["worker", "analyzer"])  # fmt: skip
    evictions = CounterMetricFamily(PREFIX + "flow_table_evictions", "flows evicted or expired, by analyzer",
                                    labels=["worker", "analyzer"])  # fmt: skip
    for worker, figures in series:
        for (rule, reason), count in sorted(figures.decisions.items()):
            decisions.add_metric([worker, rule, reason], count)
        shown = dict.fromkeys(UPSTREAM_COUNTERS, 0) | figures.stats.counters  # as the stats block
        for counter, count in shown.items():
            counters.add_metric([worker, counter], count)
        for analyzer, count in sorted(figures.flow_entries.items()):
            entries.add_metric([worker, analyzer], count)
        for analyzer, count in sorted(figures.flow_evictions.items()):
            evictions.add_metric([worker, analyzer], count)
    yield from (decisions, counters, entries, evictions)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> (host, port); raises ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise ValueError(f"metrics.listen must be HOST:PORT, not '{text}'")
    return host.strip("[]"), int(port)


def serve(listen: str, board: FiguresBoard, build: dict[str, str]):
    """Start the endpoint in a daemon thread; returns the HTTP server.  Raises ValueError."""
    from prometheus_client import start_http_server

    host, port = parse_listen(listen)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RecorderCollector(board, build))
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as e:
        raise ValueError(f"cannot serve metrics on {listen}: {e.strerror or e}") from None
    return server


def build_labels(policy_name: str, policy) -> dict[str, str]:
    """The build_info labels: what runs, and with which policy."""
    from pcapconstrictor.engine.compiled import compiled_modules

    return {"version": VERSION, "build": "compiled" if compiled_modules() else "pure",
            "policy": policy_name, "policy_hash": policy_hash(policy)}  # fmt: skip
