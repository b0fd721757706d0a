"""A live run (SPEC §2.2): one capture process, or N sharing the interface (``capture.workers``)."""

from __future__ import annotations

import sys

from pcapconstrictor.engine.config import Config
from pcapconstrictor.engine.sources.packet_socket import CaptureError

from .live import StopRequest, fail, open_backend, record
from .workers import run_workers


def run_live(config: Config, policy, opts: dict) -> int:
    """SPEC §2.2: the whole live run; returns the exit status."""
    if not config["capture.interface"]:
        sys.stderr.write("Configuration error: capture.interface is required for live capture.\n")
        return 1
    stop = StopRequest()
    stop.install()
    try:
        return _run(config, policy, opts, stop)
    finally:
        stop.restore()


def _run(config: Config, policy, opts: dict, stop: StopRequest) -> int:
    if config["capture.workers"] > 1:  # issue 5: N processes joined by PACKET_FANOUT
        return run_workers(config, policy, opts, stop, lambda: open_backend(config))
    try:
        backend = open_backend(config)  # before the output file: a failure leaves no file (§2.2)
    except CaptureError as e:
        return fail(str(e), e.hint)
    try:
        return record(config, policy, opts, stop, backend)
    finally:
        backend.close()
