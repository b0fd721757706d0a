"""``capture.workers`` > 1 (issue 5): N capture processes sharing one interface by PACKET_FANOUT.

Each worker opens its own socket (SPEC §13), joins the run's fanout group, and writes its own
file, ``<capture.output>.<i>`` for i = 0 .. N-1, with its own pipeline: the same compiled
policy, its own flow state.  The group is in hash mode with PACKET_FANOUT_FLAG_DEFRAG: the
kernel hashes a frame's flow symmetrically (both directions alike), after reassembling IPv4
fragments, so every frame of a TCP or UDP flow reaches the same worker and its TLS/QUIC state
stays whole.  The price of DEFRAG: an IPv4 datagram that arrived in fragments is recorded as
one reassembled frame.

Worker 0 creates the group with PACKET_FANOUT_FLAG_UNIQUEID: the kernel picks an id no other
group on the host uses (a chosen id could be another program's group, e.g. another recorder's
or an IDS's, and joining it would split the frames with it, silently).  It sends the id to
the parent, which then starts the other workers to join it.

The parent opens no socket: it starts the workers, waits until every one is ready (or reports
the first failure once, as a single-process run would), prints the banner, lets them go,
forwards SIGINT/SIGTERM, and at the end prints one stats block, the workers' figures summed
(:meth:`Stats.merge`).  The first worker to stop (a bound reached, an error) stops the others.

With ``--user`` (issue 13) each worker becomes the user once its socket and files are open,
and the parent, which opens nothing, becomes the user too as soon as every worker is ready:
no process stays root for the run.  Workers and parent talk in small validated JSON
datagrams (worker_reports.py), never pickles, since a worker may be less privileged than
the parent reading it.

What one worker does is in worker_process.py; this module is the parent's side.

Bounds: ``duration_sec`` runs on each worker's clock, and every clock starts at the same go;
``max_packets`` is the total of all files: a batch takes its share from a counter the workers
share, so together they write exactly ``max_packets`` records.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import wait

from pcapconstrictor.engine.config import Config
from pcapconstrictor.engine.run import options as run_options

from .live import StopRequest, banner, fail
from .privileges import PrivilegeError, drop_privileges
from .stats import Stats
from .worker_process import failed_report, run_worker
from .worker_progress import WorkerProgress
from .worker_reports import (
    ReportError,
    WorkerReport,
    channel,
    decode_report,
    encode_go,
    receive,
    send,
)  # fmt: skip

FANOUT_MAX = 256  # PACKET_FANOUT_MAX: the most sockets one group takes
SETUP_TIMEOUT = 60.0  # a worker that neither gets ready nor fails by then is stuck
POLL_PERIOD = 0.2  # how often the parent looks at its stop flag while the workers run


def run_workers(config: Config, policy, opts: dict, stop: StopRequest,
                open_backend: Callable[[], object]) -> int:  # fmt: skip
    """SPEC §2.2 with ``capture.workers`` processes; returns the exit status."""
    count = config["capture.workers"]
    if str(config["capture.output"]) == "-":
        return fail("capture.workers > 1 needs an output file (each worker writes <output>.<i>), "
                     "not standard output")  # fmt: skip
    if opts.get("--decision-log") == "-":
        return fail("--decision-log - needs capture.workers = 1 (each worker writes <log>.<i>)")
    if count > FANOUT_MAX:
        return fail(f"capture.workers must be at most {FANOUT_MAX} (PACKET_FANOUT_MAX)")
    context = multiprocessing.get_context("fork")
    total = context.Value("Q", 0) if config["capture.max_packets"] else None
    parent = os.getpid()
    sys.stdout.flush()  # what is buffered now must not be written again by each child
    sys.stderr.flush()
    workers: list[tuple[multiprocessing.Process, socket.socket]] = []
    progress = WorkerProgress(config, run_options.policy_name(config, opts), policy, count)  # issue 18

    def start(index: int, group: int | None) -> None:
        ours, theirs = channel()
        inherited = [conn for _, conn in workers] + [ours]
        args = (index, config, policy, opts, stop, theirs, inherited, parent, total, open_backend, group)
        process = context.Process(target=run_worker, name=f"capture worker {index}", args=args)
        process.start()
        theirs.close()
        workers.append((process, ours))

    try:
        start(0, None)  # creates the group; its first word is the id the kernel chose
        (first,) = _collect(workers, stop, first_stops_all=False, deadline=time.monotonic() + SETUP_TIMEOUT,
                            group_allowed=True)  # fmt: skip
        if not isinstance(first, int):
            return _setup_failed(first, workers)
        for index in range(1, count):
            start(index, first)
        return _conduct(config, opts, stop, workers, progress)
    finally:
        progress.close()
        _reap(workers)


# --- the parent ---------------------------------------------------------------------------


def _conduct(config: Config, opts: dict, stop: StopRequest, workers: list, progress: WorkerProgress) -> int:
    setup = _collect(workers, stop, first_stops_all=False, deadline=time.monotonic() + SETUP_TIMEOUT)
    problem = next((r for r in setup if r.kind != "ready"), None) or progress.start()
    if problem is not None:
        return _setup_failed(problem, workers)
    if opts.get("--user"):  # every worker holds its socket and is the user: the parent needs root no more
        try:
            drop_privileges(str(opts["--user"]))
        except PrivilegeError as e:
            return _setup_failed(WorkerReport("failed", f"Privilege error: {e}\n"), workers)
    out = sys.stdout
    out.write(banner(config, opts))
    out.flush()
    start_ns = time.time_ns()  # every socket has joined the group: from here a frame is in one file
    for _, conn in workers:
        send(conn, encode_go(start_ns))
    reports = _collect(workers, stop, first_stops_all=True, progress=progress)
    return _report(reports, stop)


def _setup_failed(problem: WorkerReport, workers: list) -> int:
    for _, conn in workers:
        send(conn, encode_go(None))  # "do not start": each closes what it opened and ends
    sys.stderr.write((problem if problem.kind == "failed" else failed_report(problem.message)).message)
    return 1


def _collect(workers: list, stop: StopRequest, first_stops_all: bool, deadline: float | None = None,
             group_allowed: bool = False, progress: WorkerProgress | None = None) -> list:  # fmt: skip
    """One report from each worker (``crashed`` for one that ended without a word or sent
    something that is not a report), in the order they came.  The first report (with
    ``first_stops_all``) or a stop request makes the parent stop every worker."""
    reports: dict[int, WorkerReport] = {}
    waiting = {conn: index for index, (_, conn) in enumerate(workers)}
    stopping = False
    while waiting:
        if not stopping and (stop.requested or (first_stops_all and reports)):
            stopping = True
            _signal_all(workers)
        if deadline is not None and time.monotonic() > deadline:
            for index in waiting.values():
                reports[index] = WorkerReport("crashed", f"capture worker {index} did not start in time")
            break
        for conn in wait(list(waiting), POLL_PERIOD):
            index = waiting[conn]
            report = _receive_report(workers, index, group_allowed)
            if progress is None or not progress.took(index, report):  # progress: its report is to come
                reports[index] = report
                del waiting[conn]
    return list(reports.values())


def _receive_report(workers: list, index: int, group_allowed: bool) -> WorkerReport | int:
    process, conn = workers[index]
    try:
        data = receive(conn)
        if data:
            return decode_report(data, group_allowed)
    except ReportError as e:
        return WorkerReport("crashed", f"capture worker {index} sent a malformed report: {e}")
    except OSError:
        pass
    process.join(5)
    ended = f"capture worker {index} ended unexpectedly (exit status {process.exitcode})"
    return WorkerReport("crashed", ended)


def _signal_all(workers: list) -> None:
    """Forward a stop: each worker's handler only sets its flag, as the parent's does."""
    for process, _ in workers:
        if process.is_alive() and process.pid:
            try:
                os.kill(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def _report(reports: list[WorkerReport], stop: StopRequest) -> int:
    """SPEC §2.2 steps 8-10 for the whole group: one message, one stats block."""
    stats = Stats()
    for report in reports:
        if report.stats is not None:
            stats.merge(report.stats)
    failed = next((r for r in reports if r.kind == "crashed"), None)
    if failed is not None:
        return fail(failed.message)
    failed = next((r for r in reports if r.kind == "write_error"), None)
    if failed is not None:  # the files are cut back to whole records: say what they hold (issue 13)
        sys.stderr.write(f"Live capture error: {failed.message}\nPartial stats:\n{stats.block()}")
        return 1
    failed = next((r for r in reports if r.kind == "capture_error"), None)
    if failed is not None:
        sys.stderr.write(f"Live capture error: {failed.message}\n")
        if stats.packets_total or stats.receive_errors:
            sys.stderr.write("Partial stats:\n" + stats.block())
        return 1
    # Unless the run was told to stop, the first worker to stop stopped the others: its reason is the run's.
    reason = "signal received" if stop.requested else reports[0].message
    sys.stdout.write(f"Live capture stopped: {reason}\nFinal stats:\n{stats.block()}")
    sys.stdout.flush()
    return 0


def _reap(workers: list) -> None:
    for process, conn in workers:
        process.join(10)
        if process.is_alive():  # stuck: the run is over either way
            process.kill()
            process.join(5)
        conn.close()


# --- a worker -----------------------------------------------------------------------------


