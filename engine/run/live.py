"""Live mode (SPEC §2.2, §3, §4): open a backend, capture until a bound or a
signal stops it, print the final stats.

The backends are frame sources like the offline reader: they hand the same
runner batches of ``(ts_ns, data, orig_len)``, so live and offline constrict
with the same compiled rules.  Output texts and exit codes are upstream's.
"""

from __future__ import annotations

import math
import signal
import sys
import time

from pcapconstrictor.engine.config import Config
from pcapconstrictor.engine.run import options as run_options
from pcapconstrictor.engine.sinks.pcap_writer import OutputRefusedError, PcapWriteError, PcapWriter
from pcapconstrictor.engine.sources.cooked_capture import capture_link
from pcapconstrictor.engine.sources.interfaces import link_type_problem
from pcapconstrictor.engine.sources.link_state import LinkWatch
from pcapconstrictor.engine.sources.packet_socket import CaptureError
from pcapconstrictor.engine.sources.record_batch import RecordBatch
from pcapconstrictor.formats.derived import link as link_format

from . import collector
from .figures import figures_of
from .monitor import MetricsEndpoint, MetricsError, RunMonitor
from .notify import ServiceNotifier
from .pipeline import Pipeline, make_pipeline

MAX_WAIT_MS = 1000  # the longest a receive may block: how soon a signal is noticed (SPEC §4, §18)
DRAIN_SECONDS = 1.0  # at a stop, the longest spent writing what the kernel already holds
PROGRESS_PERIOD = 1.0


class StopRequest:
    """Set by SIGINT/SIGTERM; the handler does nothing else, so a second Ctrl+C
    does not kill the run either (SPEC §2.2 step 2)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, _signum, _frame) -> None:
        self.requested = True

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def open_backend(config: Config):
    """The configured backend, opened and bound (SPEC §13); raises CaptureError."""
    interface = str(config["capture.interface"])
    promiscuous = bool(config["capture.promiscuous"])
    problem = link_type_problem(interface)  # issue 8, 15: Ethernet-framed, layer-3 or ``any``
    if problem:
        raise CaptureError(problem)
    link = capture_link(interface)  # the frames' link type: the filter is compiled for it
    capture_filter = run_options.compile_capture_filter(config, link.linktype)  # attached before bind()
    if config["capture.backend"] == "tpacket_v3":
        from pcapconstrictor.engine.sources.tpacket import TpacketCapture

        return TpacketCapture(
            interface, promiscuous, config["capture.ring_block_size"], config["capture.ring_block_count"],
            config["capture.ring_frame_size"], config["capture.block_timeout_ms"], capture_filter, link,
        )  # fmt: skip
    from pcapconstrictor.engine.sources.recvmsg import RecvmsgCapture

    return RecvmsgCapture(interface, promiscuous, config["capture.max_capture_len"], capture_filter, link)


def banner(config: Config, opts: dict | None = None) -> str:
    """The §3.1 start banner; the policy and ``--user`` follow when they are not upstream's."""
    lines = ["Starting live capture."]
    lines += [f"{key}: {_text(config[f'capture.{key}'])}" for key in (
        "backend", "interface", "promiscuous", "output", "default_snaplen", "max_capture_len")]  # fmt: skip
    if config["capture.filter"]:  # issue 8: only when a filter is set, so upstream's banner stays
        lines.insert(5, f"filter: {config['capture.filter']}")
    if config["capture.backend"] == "tpacket_v3":
        lines += [f"{key}: {config[f'capture.{key}']}" for key in (
            "ring_block_size", "ring_block_count", "ring_frame_size", "block_timeout_ms")]  # fmt: skip
    lines += [f"{key}: {config[f'capture.{key}']}" for key in ("max_packets", "duration_sec")
              if config[f"capture.{key}"]]  # fmt: skip
    if config["capture.workers"] > 1:  # issue 5: only then, so upstream's banner stays
        lines.append(f"workers: {config['capture.workers']}")
    opts = opts or {}
    if opts.get("--rules") or config["tls.app_data_continuation_policy"] != "final_only":
        lines.append(f"policy: {run_options.policy_name(config, opts)}")
    if opts.get("--user"):
        lines.append(f"user: {opts['--user']}")
    lines.append("Press Ctrl+C to stop.")
    return "".join(line + "\n" for line in lines)


def _text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class LiveProgress:
    """One status line, rewritten in place about once a second (terminals only)."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.due = time.monotonic() + PROGRESS_PERIOD

    def show(self, now: float, pipeline: Pipeline, backend) -> None:
        if now < self.due:
            return
        self.due = now + PROGRESS_PERIOD
        kernel = backend.kernel_statistics() or (0, 0)
        saved = pipeline.bytes_input - pipeline.bytes_output
        self.stream.write(f"\r{kernel[0]} packets, {pipeline.packets} written, {saved} bytes saved, "
                          f"{kernel[1]} kernel drops\033[K")  # fmt: skip
        self.stream.flush()

    def clear(self) -> None:
        self.stream.write("\r\033[K")
        self.stream.flush()


class LiveLoop:
    """SPEC §4: receive, constrict, write until a bound, a signal or an error."""

    def __init__(self, config: Config, backend, pipeline: Pipeline, writer: PcapWriter,
                 stop: StopRequest, progress: LiveProgress | None,
                 link_reports: bool = True, monitor: RunMonitor | None = None) -> None:  # fmt: skip
        self.backend, self.pipeline, self.writer = backend, pipeline, writer
        self.linktype = getattr(backend, "linktype", link_format.LINKTYPE_ETHERNET)  # the pipeline decodes it
        self.stop, self.progress, self.monitor = stop, progress, monitor
        self.max_packets = config["capture.max_packets"]
        self.duration = config["capture.duration_sec"]
        interval_ms = config["capture.flush_interval_ms"]
        # a pipe (issue 8) gets every batch at once: `... --output - | tshark -r -` is live
        to_pipe = config["capture.output"] == "-"
        self.flush_each_batch = backend.flush_each_batch or interval_ms == 0 or to_pipe
        self.flush_period = interval_ms / 1000 if interval_ms else math.inf
        socket = backend.packet_socket
        self.link = LinkWatch(socket.interface, socket.ifindex, sys.stderr if link_reports else None)

    def run(self) -> str:
        """Capture; return the stop reason.  Raises CaptureError, PcapWriteError.  Whatever
        the reason (but a max_packets bound met), the frames the kernel already holds in the
        socket or the ring are written first (issue 13 #7, #9)."""
        try:
            reason = self._capture()
        except CaptureError:
            try:
                self.drain()
            except CaptureError:
                pass  # the first error is the one to report
            raise
        self.drain()
        return reason

    def drain(self) -> None:
        """Receive and write until the kernel has nothing more to hand over, a bound is met
        or DRAIN_SECONDS have passed (traffic that keeps coming does not hold a stop up)."""
        backend, pipeline = self.backend, self.pipeline
        deadline = time.monotonic() + DRAIN_SECONDS
        while not (self.max_packets and pipeline.packets >= self.max_packets):
            left_ms = math.floor((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                return
            frames = backend.receive(min(backend.drain_wait_ms, left_ms))
            if not frames:
                return
            self._write(frames)

    def _write(self, frames) -> None:
        if self.max_packets:
            frames = frames[: self.max_packets - self.pipeline.packets]
        if self.linktype != link_format.LINKTYPE_ETHERNET:  # raw IP, LINUX_SLL2 (issue 15 #5)
            frames = RecordBatch(frames)
            frames.linktype = self.linktype
        self.pipeline.run_batch(frames)
        if self.flush_each_batch:
            self.writer.flush()

    def _capture(self) -> str:
        backend, pipeline, writer = self.backend, self.pipeline, self.writer
        start = time.monotonic()
        end = start + self.duration if self.duration else math.inf
        flush_due = start + self.flush_period
        while True:
            if self.stop.requested:
                return "signal received"
            if self.max_packets and pipeline.packets >= self.max_packets:
                return "max_packets limit reached"
            now = time.monotonic()
            if now >= end:
                return "duration_sec limit reached"
            if now >= flush_due:
                writer.flush()
                flush_due = now + self.flush_period
            if self.progress is not None:
                self.progress.show(now, pipeline, backend)
            if self.monitor is not None:  # figures, STATUS=, WATCHDOG=1 (issue 18)
                self.monitor.tick(now)
            wake = min(end, flush_due, self.progress.due if self.progress else math.inf,
                       self.monitor.due if self.monitor else math.inf)  # fmt: skip
            frames = backend.receive(max(1, min(MAX_WAIT_MS, math.ceil((wake - now) * 1000))))
            if frames:
                self._write(frames)
            self.link.check(backend.link_down_events)  # raises CaptureError once it is deleted


def record(config: Config, policy, opts: dict, stop: StopRequest, backend) -> int:
    """§2.2 steps 5-10 with an open backend; returns the exit status."""
    output = str(config["capture.output"])
    out = run_options.message_stream(config, opts)  # '-' keeps stdout for the PCAP or the log
    linktype = getattr(backend, "linktype", link_format.LINKTYPE_ETHERNET)  # raw IP, LINUX_SLL2 (issue 15 #5)
    try:  # pcap or pcapng, rotated or not (issue 8); the file header goes out now
        writer = run_options.open_output(config, opts, if_name=str(config["capture.interface"]),
                                         linktype=linktype)  # fmt: skip
    except OutputRefusedError as e:  # a link, a locked file: say which (issue 13)
        return fail(str(e))
    except PcapWriteError:
        return fail(f"failed to open output file '{output}'.")
    except run_options.SetupError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    try:
        log = run_options.decision_log(opts)
    except run_options.SetupError as e:
        writer.close()
        return fail(str(e))
    except OSError as e:
        writer.close()
        return fail(f"cannot write decision log '{opts['--decision-log']}': {e.strerror}")
    pipeline = make_pipeline(policy, config, writer, log)
    try:  # binds before --user: a port below 1024 works too
        metrics = MetricsEndpoint(str(config["metrics.listen"]), 1, run_options.policy_name(config, opts),
                                  policy)  # fmt: skip
        run_options.drop_privileges(opts, writer, log)  # --user: never capture as root (tcpdump -Z)
    except (run_options.SetupError, MetricsError) as e:  # both are the whole line
        _close_quietly(writer)
        if log is not None:
            log.close()
        sys.stderr.write(f"{e}\n")
        return 1
    out.write(banner(config, opts))
    out.flush()
    progress = LiveProgress(out) if output != "-" and out.isatty() else None
    notifier = ServiceNotifier()
    monitor = RunMonitor(lambda: figures_of(final_stats(pipeline, backend), pipeline, backend, writer),
                         metrics.publisher(), notifier if notifier.enabled else None, time.monotonic())
    collector.settle()
    notifier.ready("capturing")  # the socket and the output are open (systemd Type=notify)
    try:
        return _capture(config, backend, pipeline, writer, stop, progress, log, monitor, out)
    finally:
        notifier.stopping("stopping")
        notifier.close()
        metrics.close()


def _capture(config: Config, backend, pipeline: Pipeline, writer: PcapWriter, stop: StopRequest,
             progress: LiveProgress | None, log, monitor: RunMonitor, out) -> int:  # fmt: skip
    """§2.2 steps 8-10; the endpoint's last figures are the final stats block's."""
    try:
        reason = LiveLoop(config, backend, pipeline, writer, stop, progress, monitor=monitor).run()
    except CaptureError as e:
        return receive_failure(str(e), pipeline, backend, writer)
    except PcapWriteError as e:
        return _write_failure(str(e), pipeline, backend, writer)
    finally:
        if progress is not None:
            progress.clear()
        if log is not None:
            log.close()
    stats = final_stats(pipeline, backend)
    monitor.report(figures_of(stats, pipeline, backend, writer))
    try:
        writer.close()
    except PcapWriteError as e:
        return _write_failure(str(e), pipeline, backend, writer)
    run_options.note_closed_files(writer, stats)
    out.write(f"Live capture stopped: {reason}\nFinal stats:\n{stats.block()}")
    out.flush()
    return 0


def final_stats(pipeline: Pipeline, backend):
    """The pipeline's stats with the backend's receive errors and kernel counters."""
    stats = pipeline.stats()
    stats.receive_errors = backend.receive_errors
    stats.link_down_events = backend.link_down_events
    kernel = backend.kernel_statistics()
    if kernel is not None:
        stats.kernel_packets, stats.kernel_drops = kernel
    return stats


def receive_failure(message: str, pipeline: Pipeline, backend, writer: PcapWriter) -> int:
    """§2.2 step 9: the error, then the partial stats if anything happened."""
    stats = final_stats(pipeline, backend)
    _close_quietly(writer)  # what was captured stays a valid file
    run_options.note_closed_files(writer, stats)
    sys.stderr.write(f"Live capture error: {message}\n")
    if stats.packets_total or stats.receive_errors:
        sys.stderr.write("Partial stats:\n" + stats.block())
    return 1


def _write_failure(message: str, pipeline: Pipeline, backend, writer: PcapWriter) -> int:
    """Disk full, I/O error: the file was cut back to its last whole record; say so, then
    the stats with what it holds (issue 13; upstream printed none, §2.2 step 10)."""
    _close_quietly(writer)
    stats = final_stats(pipeline, backend)
    stats.packets_written = writer.records_saved
    run_options.note_closed_files(writer, stats)
    sys.stderr.write(f"Live capture error: {message}\nPartial stats:\n{stats.block()}")
    return 1


def _close_quietly(writer: PcapWriter) -> None:
    try:
        writer.close()
    except PcapWriteError:
        pass


def fail(message: str, hint: str | None = None) -> int:
    """Print ``Live capture error: ...`` (and a hint); the exit status 1."""
    sys.stderr.write(f"Live capture error: {message}\n")
    if hint:
        sys.stderr.write(f"hint: {hint}\n")
    return 1
