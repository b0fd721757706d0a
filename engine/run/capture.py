"""A live run (SPEC §2.2): one capture process, or N sharing the interface (``capture.workers``)."""

from __future__ import annotations

import sys

from pcapconstrictor.engine.config import Config
from pcapconstrictor.engine.sources.interfaces import ANY, offload_warning
from pcapconstrictor.engine.sources.packet_socket import CaptureError
from pcapconstrictor.engine.sources.tpacket import check_ring_memory

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
    if config["capture.interface"] == ANY and config["capture.promiscuous"]:  # once, not per worker
        sys.stderr.write("Live capture: promiscuous mode is not supported on the 'any' device; "
                         "capturing without it\n")  # fmt: skip
    if config["capture.backend"] == "tpacket_v3":  # issue 13: a ring the host can hold, for all workers
        try:
            check_ring_memory(config["capture.ring_block_size"], config["capture.ring_block_count"],
                              config["capture.ring_frame_size"], config["capture.workers"],
                              config["capture.max_ring_bytes"])  # fmt: skip
        except CaptureError as e:
            return fail(str(e), e.hint)
    warning = offload_warning(str(config["capture.interface"]))  # issue 18 #5: GRO/LRO merge frames
    if warning:
        sys.stderr.write(warning + "\n")
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
