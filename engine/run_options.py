"""The issue 8 parts of a run that offline and live mode share: command-line overrides
(``--output``, ``--filter`` or a trailing expression), the compiled capture filter, the
configured sink, and ``--user``.

Every failure is a :class:`SetupError` whose ``str()`` is the whole line for stderr.
"""

from __future__ import annotations

from .bpf import CaptureFilter, FilterError, capture_filter
from .cli import PROG, VERSION
from .config import Config
from .pcap_writer import PcapWriter
from .policy_select import policy_path
from .privileges import PrivilegeError
from .privileges import drop_privileges as _drop
from .rotation import RotatingSink
from .runner import output_snaplen
from .sinks import OutputConfigError, Sink, open_sink

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


def created_files(sink: Sink, decision_log_path: object = None) -> list[str]:
    """The files a run has created so far (not standard output)."""
    paths: list[str] = []
    if isinstance(sink, RotatingSink):
        paths += list(sink.files)
    elif isinstance(sink, PcapWriter) and sink.path != "-":
        paths.append(sink.path)
    if decision_log_path:
        paths.append(str(decision_log_path))
    return paths


def drop_privileges(opts: dict, sink: Sink) -> None:
    """``--user NAME``: become NAME now that the socket and the files are open."""
    user = opts.get("--user")
    if not user:
        return
    try:
        _drop(str(user), created_files(sink, opts.get("--decision-log")))
    except PrivilegeError as e:
        raise SetupError(f"Privilege error: {e}") from None
