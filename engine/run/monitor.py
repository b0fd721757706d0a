"""What a capture loop tells the outside while it runs (issue 18): about once a second its
figures (to the metrics board, or from a worker to its parent) and systemd's ``STATUS=``,
and at half the watchdog period ``WATCHDOG=1``.  Called from the loop itself, so a loop
that is stuck stops both the figures and the watchdog pings.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .figures import RunFigures
from .notify import ServiceNotifier, status_line

PERIOD = 1.0  # seconds between two publications of the figures


class RunMonitor:
    """``tick(now)`` from each loop iteration; ``due`` is when the loop must be awake next."""

    def __init__(self, take: Callable[[], RunFigures], publish: Callable[[RunFigures], None] | None,
                 notifier: ServiceNotifier | None, start: float) -> None:  # fmt: skip
        self.take, self.publish, self.notifier = take, publish, notifier
        self.figures_due = start + PERIOD if publish is not None or notifier is not None else math.inf

    @property
    def due(self) -> float:
        watchdog = self.notifier.watchdog_due() if self.notifier is not None else math.inf
        return min(self.figures_due, watchdog)

    def tick(self, now: float) -> None:
        if self.notifier is not None:
            self.notifier.watchdog(now)
        if now < self.figures_due:
            return
        self.figures_due = now + PERIOD
        self.report(self.take())

    def report(self, figures: RunFigures) -> None:
        """Publish ``figures`` now (also the final ones, which equal the stats block)."""
        if self.publish is not None:
            self.publish(figures)
        if self.notifier is not None:
            self.notifier.status(status_line(figures.stats))


class MetricsError(Exception):
    """``[metrics] listen`` that cannot be served; ``str()`` is the line for stderr."""


class MetricsEndpoint:
    """``[metrics] listen``: the board the loops publish to and the server reading it, or
    nothing at all when listen is empty (prometheus_client is then never imported)."""

    def __init__(self, listen: str, workers: int, policy_name: str, policy) -> None:
        self.board = None
        self._server = None
        if not listen:
            return
        from .metrics import FiguresBoard, build_labels, serve

        self.board = FiguresBoard(workers)
        try:
            self._server = serve(listen, self.board, build_labels(policy_name, policy))
        except ValueError as e:
            raise MetricsError(f"Live capture error: {e}") from None

    def publisher(self, worker: str = "0") -> Callable[[RunFigures], None] | None:
        board = self.board
        return None if board is None else (lambda figures: board.publish(worker, figures))

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
