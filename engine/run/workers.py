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

Bounds: ``duration_sec`` runs on each worker's clock, and every clock starts at the same go;
``max_packets`` is the total of all files: a batch takes its share from a counter the workers
share, so together they write exactly ``max_packets`` records.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import wait

from pcapconstrictor.engine.config import Config
from pcapconstrictor.engine.run import options as run_options
from pcapconstrictor.engine.sinks.output import output_format
from pcapconstrictor.engine.sinks.pcap_writer import OutputRefusedError, PcapWriteError
from pcapconstrictor.engine.sources.packet_socket import CaptureError
from pcapconstrictor.formats import linux_packet as lp

from .live import LiveLoop, StopRequest, banner, fail, final_stats
from .pipeline import Pipeline, make_pipeline
from .privileges import PrivilegeError, drop_privileges
from .stats import Stats
from .worker_reports import (
    ReportError,
    WorkerReport,
    channel,
    decode_go,
    decode_report,
    encode_go,
    encode_report,
    receive,
    send,
)  # fmt: skip

FANOUT_MODE = lp.PACKET_FANOUT_HASH | lp.PACKET_FANOUT_FLAG_DEFRAG
FANOUT_MAX = 256  # PACKET_FANOUT_MAX: the most sockets one group takes
SETUP_TIMEOUT = 60.0  # a worker that neither gets ready nor fails by then is stuck
POLL_PERIOD = 0.2  # how often the parent looks at its stop flag while the workers run
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _failed(message: str, hint: str | None = None) -> WorkerReport:
    return WorkerReport("failed", f"Live capture error: {message}\n" + (f"hint: {hint}\n" if hint else ""))


def worker_config(config: Config, index: int) -> Config:
    """Worker ``index``'s view of the config: its own output, ``<capture.output>.<index>``, in
    the format the configured name asks for (``auto`` would not see ``.pcapng`` any more)."""
    values = dict(config.values)
    values["capture.format"] = output_format(config)
    values["capture.output"] = f"{config['capture.output']}.{index}"
    return Config(config.path, values, dict(config.origin))


def worker_options(opts: dict, index: int) -> dict:
    """Its own decision log too, ``<path>.<index>``."""
    log = opts.get("--decision-log")
    return dict(opts, **{"--decision-log": f"{log}.{index}"}) if log else opts


class FramesSinceStart:
    """A worker's backend without the frames stamped before the go.  Between its bind() and
    its PACKET_FANOUT a socket receives every frame of the interface, so a frame from before
    every worker had joined may be in another worker's file too; frames are queued in the
    order they were stamped, so the trimming ends at the first frame from after the go."""

    def __init__(self, backend, start_ns: int) -> None:
        self.backend = backend
        self.start_ns = start_ns

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    def receive(self, timeout_ms: int) -> list[tuple[int, bytes, int]]:
        frames = self.backend.receive(timeout_ms)
        if not self.start_ns:
            return frames
        for at, frame in enumerate(frames):
            if frame[0] >= self.start_ns:
                self.start_ns = 0
                return frames[at:]
        return []


class SharedBudget:
    """The pipeline a worker's live loop sees when ``max_packets`` counts all workers:
    ``packets`` is the group's total, and a batch is cut to what is left of the budget."""

    def __init__(self, pipeline: Pipeline, total, limit: int) -> None:
        self.pipeline, self.total, self.limit = pipeline, total, limit

    @property
    def packets(self) -> int:
        return self.total.value

    def run_batch(self, frames: list[tuple[int, bytes, int]]) -> None:
        with self.total.get_lock():
            take = min(len(frames), self.limit - self.total.value)
            if take > 0:
                self.total.value += take
        if take > 0:
            self.pipeline.run_batch(frames[:take])


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

    def start(index: int, group: int | None) -> None:
        ours, theirs = channel()
        inherited = [conn for _, conn in workers] + [ours]
        args = (index, config, policy, opts, stop, theirs, inherited, parent, total, open_backend, group)
        process = context.Process(target=_worker, name=f"capture worker {index}", args=args)
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
        return _conduct(config, opts, stop, workers)
    finally:
        _reap(workers)


# --- the parent ---------------------------------------------------------------------------


def _conduct(config: Config, opts: dict, stop: StopRequest, workers: list) -> int:
    setup = _collect(workers, stop, first_stops_all=False, deadline=time.monotonic() + SETUP_TIMEOUT)
    problem = next((r for r in setup if r.kind != "ready"), None)
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
    reports = _collect(workers, stop, first_stops_all=True)
    return _report(reports, stop)


def _setup_failed(problem: WorkerReport, workers: list) -> int:
    for _, conn in workers:
        send(conn, encode_go(None))  # "do not start": each closes what it opened and ends
    sys.stderr.write((problem if problem.kind == "failed" else _failed(problem.message)).message)
    return 1


def _collect(workers: list, stop: StopRequest, first_stops_all: bool, deadline: float | None = None,
             group_allowed: bool = False) -> list:  # fmt: skip
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
            index = waiting.pop(conn)
            reports[index] = _receive_report(workers, index, group_allowed)
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


def _worker(index: int, config: Config, policy, opts: dict, stop: StopRequest, conn: socket.socket,
            inherited: list[socket.socket], parent: int, total, open_backend,
            group: int | None) -> None:  # fmt: skip
    """The body of worker ``index`` (a forked child: it inherited the parent's signal handler);
    ``group`` None: create the fanout group and send its id first."""
    for other in inherited:  # the parent's ends of the pipes: only the parent holds them
        other.close()
    _stop_when_orphaned(parent)
    try:
        report = _capture(index, config, policy, opts, stop, conn, group, total, open_backend, parent)
    except BaseException:  # a bug: tell the parent rather than leave it waiting
        report = WorkerReport("crashed", f"capture worker {index}: {traceback.format_exc().strip()}")
    if report is not None:
        send(conn, encode_report(report))
    conn.close()


def _capture(index: int, config: Config, policy, opts: dict, stop: StopRequest, conn: socket.socket,
             group: int | None, total, open_backend, parent: int) -> WorkerReport | None:  # fmt: skip
    try:
        backend = open_backend()
    except CaptureError as e:
        return _failed(str(e), e.hint)
    except run_options.SetupError as e:
        return WorkerReport("failed", f"{e}\n")
    try:
        try:
            if group is None:
                send(conn, encode_report(backend.packet_socket.create_fanout(FANOUT_MODE)))
            else:
                backend.packet_socket.join_fanout(group, FANOUT_MODE)
        except CaptureError as e:
            return _failed(str(e), e.hint)
        return _record(index, config, policy, opts, stop, conn, backend, total, parent)
    finally:
        backend.close()


def _record(index: int, config: Config, policy, opts: dict, stop: StopRequest, conn: socket.socket,
            backend, total, parent: int) -> WorkerReport | None:  # fmt: skip
    """§2.2 steps 5-10 for one worker (as live._record), with the parent's go in between."""
    config, opts = worker_config(config, index), worker_options(opts, index)
    output = str(config["capture.output"])
    try:
        writer = run_options.open_output(config, opts, if_name=str(config["capture.interface"]))
    except OutputRefusedError as e:  # a link, a locked file: say which (issue 13)
        return _failed(str(e))
    except PcapWriteError:
        return _failed(f"failed to open output file '{output}'.")
    except run_options.SetupError as e:
        return WorkerReport("failed", f"{e}\n")
    try:
        log = run_options.decision_log(opts)
    except OSError as e:
        writer.close()
        return _failed(f"cannot write decision log '{opts['--decision-log']}': {e.strerror}")
    try:
        pipeline = make_pipeline(policy, config, writer, log)  # as live._record: before --user
        try:
            run_options.drop_privileges(opts, writer, log)  # --user: never capture as root
        except run_options.SetupError as e:
            _close_quietly(writer)
            return WorkerReport("failed", f"{e}\n")
        if opts.get("--user"):
            _stop_when_orphaned(parent)  # the kernel clears PDEATHSIG when the uid changes
        send(conn, encode_report(WorkerReport("ready")))
        try:
            data = receive(conn)
            start_ns = decode_go(data) if data else None
        except (OSError, ReportError):
            start_ns = None
        if start_ns is None:  # another worker failed to start: the parent reports it
            writer.close()
            return None
        counted = pipeline if total is None else SharedBudget(pipeline, total, config["capture.max_packets"])
        loop = LiveLoop(config, FramesSinceStart(backend, start_ns), counted, writer, stop, None,
                        link_reports=index == 0)  # one report of a link down, not one per worker
        try:
            reason = loop.run()
        except CaptureError as e:
            stats = final_stats(pipeline, backend)
            _close_quietly(writer)
            return WorkerReport("capture_error", str(e), stats=stats)
        except PcapWriteError as e:
            return _write_error(str(e), pipeline, backend, writer)
        stats = final_stats(pipeline, backend)
        try:
            writer.close()
        except PcapWriteError as e:
            return _write_error(str(e), pipeline, backend, writer)
        run_options.note_closed_files(writer, stats)
        return WorkerReport("stopped", reason, stats=stats)
    finally:
        if log is not None:
            log.close()


def _write_error(message: str, pipeline: Pipeline, backend, writer) -> WorkerReport:
    """The file was cut back to its last whole record; the stats count what it holds."""
    _close_quietly(writer)
    stats = final_stats(pipeline, backend)
    stats.packets_written = writer.records_saved
    return WorkerReport("write_error", message, stats=stats)


def _stop_when_orphaned(parent: int) -> None:
    """If the parent is killed (SIGKILL: no chance to forward anything), the kernel sends this
    worker SIGTERM, which stops it like any stop request (prctl PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux's libc: the worker then stops at its own bounds
    if os.getppid() != parent:  # the parent died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


def _close_quietly(writer) -> None:
    try:
        writer.close()
    except PcapWriteError:
        pass
