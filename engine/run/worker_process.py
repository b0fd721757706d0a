"""One capture worker of ``capture.workers`` > 1 (workers.py starts them): it opens its own
socket, joins the run's PACKET_FANOUT group, writes its own file and reports to the parent in
validated JSON datagrams (worker_reports.py)."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import traceback

from pcapconstrictor.engine.config import Config
from pcapconstrictor.engine.run import options as run_options
from pcapconstrictor.engine.sinks.output import output_format
from pcapconstrictor.engine.sinks.pcap_writer import OutputRefusedError, PcapWriteError
from pcapconstrictor.engine.sources.packet_socket import CaptureError
from pcapconstrictor.formats.derived import linux_packet as lp

from . import collector
from .live import LiveLoop, StopRequest, final_stats
from .pipeline import Pipeline, make_pipeline
from .worker_progress import worker_monitor
from .worker_reports import ReportError, WorkerReport, decode_go, encode_report, receive, send

FANOUT_MODE = lp.PACKET_FANOUT_HASH | lp.PACKET_FANOUT_FLAG_DEFRAG
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def failed_report(message: str, hint: str | None = None) -> WorkerReport:
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


def run_worker(index: int, config: Config, policy, opts: dict, stop: StopRequest, conn: socket.socket,
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
        return failed_report(str(e), e.hint)
    except run_options.SetupError as e:
        return WorkerReport("failed", f"{e}\n")
    try:
        try:
            if group is None:
                send(conn, encode_report(backend.packet_socket.create_fanout(FANOUT_MODE)))
            else:
                backend.packet_socket.join_fanout(group, FANOUT_MODE)
        except CaptureError as e:
            return failed_report(str(e), e.hint)
        return _record(index, config, policy, opts, stop, conn, backend, total, parent)
    finally:
        backend.close()


def _record(index: int, config: Config, policy, opts: dict, stop: StopRequest, conn: socket.socket,
            backend, total, parent: int) -> WorkerReport | None:  # fmt: skip
    """§2.2 steps 5-10 for one worker (as live._record), with the parent's go in between."""
    config, opts = worker_config(config, index), worker_options(opts, index)
    output = str(config["capture.output"])
    try:
        writer = run_options.open_output(config, opts, if_name=str(config["capture.interface"]),
                                         linktype=getattr(backend, "linktype", 1))  # fmt: skip
    except OutputRefusedError as e:  # a link, a locked file: say which (issue 13)
        return failed_report(str(e))
    except PcapWriteError:
        return failed_report(f"failed to open output file '{output}'.")
    except run_options.SetupError as e:
        return WorkerReport("failed", f"{e}\n")
    try:
        log = run_options.decision_log(opts)
    except OSError as e:
        writer.close()
        return failed_report(f"cannot write decision log '{opts['--decision-log']}': {e.strerror}")
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
        monitor = worker_monitor(config, conn, pipeline, backend, writer)  # its figures to the parent
        loop = LiveLoop(config, FramesSinceStart(backend, start_ns), counted, writer, stop, None,
                        link_reports=index == 0, monitor=monitor)  # one link-down report, not one per worker
        collector.settle()
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
