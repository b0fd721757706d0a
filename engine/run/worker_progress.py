"""``capture.workers`` > 1 and issue 18: each worker's loop sends its figures to the parent
about once a second (a validated JSON ``progress`` datagram, worker_reports.py); the parent
serves them on the metrics endpoint, each worker with its ``worker`` label and their sum, and
talks to systemd: only the main process may (``NotifyAccess=main``).  The parent pings the
watchdog only once every worker has reported since its last ping, so one stuck worker loop
gets the service restarted.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace

from pcapconstrictor.engine.config import Config

from .figures import RunFigures, figures_of
from .live import final_stats
from .monitor import MetricsEndpoint, MetricsError, RunMonitor
from .notify import ServiceNotifier, status_line
from .stats import Stats
from .worker_reports import WorkerReport, encode_report, send


def reporting(config: Config) -> bool:
    """Whether workers send progress at all: only for an endpoint or a service manager."""
    return bool(config["metrics.listen"]) or bool(os.environ.get("NOTIFY_SOCKET"))


def worker_monitor(config: Config, conn: socket.socket, pipeline, backend, writer) -> RunMonitor | None:
    """A worker's monitor: its figures to the parent, never blocking the loop."""
    if not reporting(config):
        return None
    publish = lambda figures: send(conn, encode_report(figures), block=False)  # noqa: E731
    take = lambda: figures_of(final_stats(pipeline, backend), pipeline, backend, writer)  # noqa: E731
    return RunMonitor(take, publish, None, time.monotonic())


class WorkerProgress:
    """The parent's side: the endpoint (once :meth:`serve` is called) and the notifier."""

    def __init__(self, config: Config, policy_name: str, policy, count: int) -> None:
        self.config, self.policy_name, self.policy, self.count = config, policy_name, policy, count
        self.notifier = ServiceNotifier()
        self.metrics: MetricsEndpoint | None = None
        self._heard: set[int] = set()
        self._last: dict[int, RunFigures] = {}

    def start(self) -> WorkerReport | None:
        """Every worker is ready (its socket and output open): bind the endpoint, before the
        parent drops root, and send READY=1; a ``failed`` report if the endpoint cannot be."""
        try:
            self.metrics = MetricsEndpoint(str(self.config["metrics.listen"]), self.count, self.policy_name,
                                           self.policy)  # fmt: skip
        except MetricsError as e:
            return WorkerReport("failed", f"{e}\n")
        self.notifier.ready("capturing")
        return None

    def took(self, index: int, report) -> bool:
        """Whether ``report`` from worker ``index`` was its progress (the worker goes on).  A
        final report's stats replace the last progress's: the endpoint then shows the block's."""
        if isinstance(report, RunFigures):
            self._received(index, report)
            return True
        if isinstance(report, WorkerReport) and report.stats is not None and index in self._last:
            self._received(index, replace(self._last[index], stats=report.stats))
        return False

    def _received(self, index: int, figures: RunFigures) -> None:
        """Worker ``index``'s latest figures."""
        if self.metrics is not None and self.metrics.board is not None:
            self.metrics.board.publish(str(index), figures)
        self._last[index] = figures
        self._heard.add(index)
        if len(self._heard) == self.count:  # every loop is alive
            self._heard.clear()
            self.notifier.watchdog()
            total = Stats()
            for each in self._last.values():
                total.merge(each.stats)
            self.notifier.status(status_line(total))

    def close(self) -> None:
        self.notifier.stopping("stopping")
        self.notifier.close()
        if self.metrics is not None:
            self.metrics.close()
