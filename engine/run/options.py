"""The issue 8 parts of a run that offline and live mode share: command-line overrides
(``--output``, ``--filter`` or a trailing expression), the compiled capture filter, the
configured sink, and ``--user``.

Every failure is a :class:`SetupError` whose ``str()`` is the whole line for stderr.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from pcapconstrictor.engine.config import Config, output_snaplen
from pcapconstrictor.engine.sinks.output import OutputConfigError, Sink, open_sink
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sinks.rotation import RotatingSink
from pcapconstrictor.engine.version import PROG, VERSION

from .policy_select import policy_path
from .privileges import PrivilegeError
from .privileges import drop_privileges as _drop

if TYPE_CHECKING:
    from pcapconstrictor.engine.sources.capture_filter import CaptureFilter

COMMAND_LINE = "command line"  # Config.origin of a value given on the command line


class SetupError(Exception):
    """A run that cannot start; ``str()`` is the line printed to stderr."""


def apply_command_line(config: Config, opts: dict) -> None:
    """``--output`` replaces capture.output, ``--filter`` (or the trailing expression, which
    cli.py stores as ``--filter``) replaces capture.filter."""
    for option, key in (("--output", "capture.output"), ("--filter", "capture.filter")):
        if option in opts:
            config.values[key] = str(opts[option])
            config.origin[key] = COMMAND_LINE


def compile_capture_filter(config: Config, linktype: int = 1) -> CaptureFilter | None:
    """capture.filter compiled for this run's snap length and frames of ``linktype``, or None
    when empty."""
    if not str(config["capture.filter"]).strip():
        return None  # no filter: its compiler (ctypes, socket) is not even imported (start-up)
    from pcapconstrictor.engine.sources.capture_filter import FilterError, capture_filter

    try:
        return capture_filter(str(config["capture.filter"]), output_snaplen(config), linktype)
    except FilterError as e:
        raise SetupError(f"Capture filter error: {e}") from None


def policy_name(config: Config, opts: dict) -> str:
    if opts.get("--rules"):
        return f"rules {policy_path(config, str(opts['--rules']))}"
    return f"{config['tls.app_data_continuation_policy']} (shipped)"


def open_output(config: Config, opts: dict, if_name: str | None = None, linktype: int = 1,
                pcapng_input=None) -> Sink:  # fmt: skip
    """The configured sink with its (first) file created; raises PcapWriteError, SetupError.
    ``linktype``: the input's LINKTYPE_*, which a classic input's output keeps; a pcapng
    reader as ``pcapng_input``: its sections are written back (issue 15)."""
    try:
        return open_sink(config, policy=policy_name(config, opts), application=f"{PROG} {VERSION}",
                         if_name=if_name or str(config["capture.interface"]) or None,
                         capture_filter=str(config["capture.filter"]).strip() or None,
                         linktype=linktype, pcapng_input=pcapng_input)  # fmt: skip
    except OutputConfigError as e:
        raise SetupError(f"Configuration error: {e}") from None


def decision_log(opts: dict):
    """The ``--decision-log`` sink ('-' = standard output), or None; raises OSError or SetupError."""
    path = opts.get("--decision-log")
    if not path:
        return None
    if path == "-" and opts.get("--output") == "-":
        raise SetupError("--decision-log - and --output - both ask for standard output: give one a file")
    from pcapconstrictor.engine.sinks.decision_log import DecisionLog

    return DecisionLog(str(path))


def message_stream(config: Config, opts: dict):
    """Where the banner, the summary and the stats go: stderr when stdout carries a capture or a log."""
    if str(config["capture.output"]) == "-" or opts.get("--decision-log") == "-":
        return sys.stderr
    return sys.stdout


def written_files(sink: Sink, configured: str) -> str:
    """What the summary's ``output:`` line names: capture.output, or for a rotated set the files
    it holds now (a pattern like ``out.pcap`` names no file of a rotated run)."""
    if not isinstance(sink, RotatingSink):
        return configured
    files = list(sink.files)
    if sink.closed_files is not None and sink.closed_files.kept:  # compressed names (issue 18)
        files = list(sink.closed_files.kept)
    return files[0] if len(files) == 1 else f"{files[0]} .. {files[-1]} ({len(files)} files)"


def note_closed_files(sink: Sink, stats) -> None:
    """A closed rotated set's figures in the stats (issue 18 #3), once the sink is closed:
    files compressed with capture.compress on, failed commands with a post_rotate_command."""
    closed = sink.closed_files if isinstance(sink, RotatingSink) else None
    if closed is None:
        return
    if closed.settings.compress != "none":
        stats.files_compressed = closed.compressed
    if closed.settings.command:
        stats.post_rotate_failures = closed.command_failures


def created_files(sink: Sink, decision_log=None) -> list[int]:
    """Descriptors of the files this run created and still has open: not standard output,
    not a FIFO or device it was given (engine/output_file.py)."""
    outputs = []
    if isinstance(sink, RotatingSink):
        outputs += sink.outputs
    elif isinstance(sink, PcapWriter):
        outputs.append(sink.output)
    if decision_log is not None:
        outputs.append(decision_log.output)
    return [output.fileno() for output in outputs if output is not None and output.created]


def drop_privileges(opts: dict, sink: Sink, decision_log=None) -> None:
    """``--user NAME``: become NAME now that the socket and the files are open."""
    user = opts.get("--user")
    if not user:
        return
    try:
        _drop(str(user), created_files(sink, decision_log))
    except PrivilegeError as e:
        raise SetupError(f"Privilege error: {e}") from None
