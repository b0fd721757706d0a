"""The offline feed (SPEC §2.1): one capture file through the policy into the output."""

from __future__ import annotations

import os
import signal
import sys
import time

from pcapconstrictor.engine.run import collector
from pcapconstrictor.engine.run import options as run_options
from pcapconstrictor.engine.run.pipeline import batches_for, make_pipeline
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriteError
from pcapconstrictor.engine.sources.capture_files import open_capture
from pcapconstrictor.engine.sources.pcap_reader import PcapReadError
from pcapconstrictor.engine.sources.pcapng_reader import PcapngReader

from .loading import Failure, load_run, run_options_of


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def run(args) -> int:
    """``--config C --offline-input IN``; returns the exit status."""
    return run_offline(run_options_of(args))


def run_offline(opts: dict) -> int:
    try:
        return _offline(opts)
    except Failure as e:
        sys.stderr.write(f"{e}\n")
        return 1


def _offline(opts: dict) -> int:
    config, policy = load_run(opts, compiled=True)
    input_path = str(opts["--offline-input"])
    output_path = str(config["capture.output"])
    try:
        reader = open_capture(input_path)  # classic PCAP or pcapng, plain or gzip/zstd-compressed
    except PcapReadError as e:
        raise Failure(f"Offline feed error: {e}") from None
    with reader:
        if input_path != "-" and _same_file(input_path, output_path):
            raise Failure(f"Offline feed error: output file '{output_path}' is the input file")
        try:
            log = run_options.decision_log(opts)
        except OSError as e:
            raise Failure(f"cannot write decision log '{opts['--decision-log']}': {e.strerror}") from None
        except run_options.SetupError as e:
            raise Failure(str(e)) from None
        try:
            pcapng_input = reader if isinstance(reader, PcapngReader) else None
            writer = run_options.open_output(config, opts, linktype=reader.linktype,
                                             pcapng_input=pcapng_input)  # pcap or pcapng, rotated or not
        except PcapWriteError as e:
            raise Failure(f"Offline feed error: {e}") from None
        except run_options.SetupError as e:
            raise Failure(str(e)) from None
        capture_filter = run_options.compile_capture_filter(config, reader.linktype)
        pipeline = make_pipeline(policy, config, writer, log)
        try:
            run_options.drop_privileges(opts, writer, log)  # --user: no frame is read as root
        except run_options.SetupError as e:
            writer.close()
            raise Failure(str(e)) from None
        collector.settle()
        progress = _Progress() if sys.stderr.isatty() else None
        seen = [0]  # input frames read, when a filter selects among them
        error = None
        write_failed = False
        interrupted = 0
        stop = _StopFlag()
        try:
            if capture_filter is not None:
                batches = _filtered(_counted(reader.batches(), seen), config)
            else:
                batches = batches_for(pipeline, reader)
            for batch in batches:  # a chunk of the input: at most ~1 MiB of records
                pipeline.run_batch(batch)
                if stop.signum:
                    break
                if progress:
                    progress.show(pipeline)
        except PcapReadError as e:
            error = f"Offline feed error: {e}"
        except PcapWriteError as e:  # disk full, I/O error: the file is cut back to whole records
            error, write_failed = f"Offline feed error: {e}", True
        except KeyboardInterrupt:  # a second signal: leave now, still closing the file
            pass
        finally:
            interrupted = stop.signum
            stop.ignore()  # finishing the file must not be cut short
            if progress:
                progress.clear()
            try:
                writer.close()
                if log is not None:
                    log.close()
            except PcapWriteError as e:
                error, write_failed = error or f"Offline feed error: {e}", True
            except OSError as e:
                error = error or f"Offline feed error: failed to write decision log: {e.strerror}"
    stop.restore()
    if write_failed:  # what the file holds, as live prints after an error (issue 13)
        stats = _stats(pipeline, seen, capture_filter, writer)
        stats.packets_written = writer.records_saved
        raise Failure(f"{error}\nPartial stats:\n{stats.block().rstrip()}")
    if error:
        raise Failure(error)
    out = run_options.message_stream(config, opts)
    if interrupted:
        # every record written so far is whole and flushed; the exit status is
        # what the default action of the signal would have given (SPEC §2.1)
        out.write(f"Offline feed interrupted after {pipeline.packets} packets.\n")
        out.write(_stats(pipeline, seen, capture_filter, writer).block())
        return 128 + interrupted
    written = run_options.written_files(writer, output_path)
    out.write(f"Offline feed completed.\ninput: {input_path}\noutput: {written}\n")
    if config["stats.enabled"]:
        out.write(_stats(pipeline, seen, capture_filter, writer).block())
    return 0


def _counted(batches, seen: list[int]):
    for batch in batches:
        seen[0] += len(batch)
        yield batch


def _stats(pipeline, seen: list[int], capture_filter, writer):
    """The stats block; with a capture filter, also how many input frames it rejected; with
    closed files handed on (issue 18), how that went."""
    stats = pipeline.stats()
    run_options.note_closed_files(writer, stats)
    if capture_filter is not None:
        stats.filtered_out = seen[0] - pipeline.packets
    return stats


def _filtered(batches, config):
    """The capture filter over batches, compiled for each batch's link type (a pcapng input
    may have several); compiled once per link type (run_options caches it)."""
    for batch in batches:
        selected = run_options.compile_capture_filter(config, getattr(batch, "linktype", 1))
        yield from selected.select_batches((batch,))  # type: ignore[union-attr]


class _StopFlag:
    """SIGINT/SIGTERM during an offline run: the first one asks the loop to
    stop between chunks (never inside a record write, so the file stays whole);
    a second one raises KeyboardInterrupt to leave at once."""

    def __init__(self) -> None:
        self.signum = 0
        self.previous = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def _handler(self, signum, frame) -> None:
        if self.signum:
            raise KeyboardInterrupt
        self.signum = signum

    def ignore(self) -> None:
        for sig in self.previous:
            signal.signal(sig, signal.SIG_IGN)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class _Progress:
    """One status line on a terminal, refreshed about once a second."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()

    def show(self, pipeline) -> None:
        now = time.monotonic()
        if now - self.last < 1.0:
            return
        self.last = now
        rate = pipeline.packets / max(now - self.start, 1e-9)
        saved = pipeline.bytes_input - pipeline.bytes_output
        sys.stderr.write(f"\r{pipeline.packets} packets, {saved} bytes saved, {rate:,.0f} pkt/s ")
        sys.stderr.flush()

    def clear(self) -> None:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
