"""``constrict INPUT -o OUTPUT [--config F] [--stats] [--decision-log F]``: the main PcapConstrictor
tool's offline form (SPEC §15.1, §15.3), reading the main tool's config files as they are.

The semantics are a shipped rule profile (rules/main_<policy>.rules: TLS on every TCP packet,
QUIC on every UDP packet, packets already cut in the input passed through, no snap length), run
by the same pipeline as everything else.  The output keeps the input's format and header.
Messages follow the main tool: ``error: ...`` and exit 1; an input whose last record is cut
short keeps what came before it, warns, and exits 1.
"""

from __future__ import annotations

import os
import sys

from pcapconstrictor.engine.config import Config, ConfigError
from pcapconstrictor.engine.config.main_tool import load_main_tool_config, main_tool_defaults
from pcapconstrictor.engine.run import options as run_options
from pcapconstrictor.engine.run.pipeline import batches_for, make_pipeline
from pcapconstrictor.engine.sinks.input_header_pcap_writer import InputHeaderPcapWriter
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriteError
from pcapconstrictor.engine.sinks.pcapng_section_writer import PcapngSections, PcapngSectionWriter
from pcapconstrictor.engine.sources.offline_input import open_offline_input
from pcapconstrictor.engine.sources.pcap_reader import PcapReadError
from pcapconstrictor.engine.sources.pcapng_reader import PcapngReader
from pcapconstrictor.engine.version import PROG, VERSION
from pcapconstrictor.grammar import PolicyError, load_policy, shipped_policy_path

NO_SNAPLEN = 2**32 - 1  # pcapng interfaces keep their own snap length (the main tool has none)
TAIL_WARNING = "Warning: output contains only packets successfully processed before the incomplete tail.\n"


class MainToolError(Exception):
    """A failure the main tool reports as ``error: <text>``, exit 1."""


def main_tool_config(args) -> Config:
    """``--config`` read in the main tool's dialect, or its defaults without one."""
    if args.config is None:
        return main_tool_defaults()
    try:
        return load_main_tool_config(args.config)
    except ConfigError as e:
        raise MainToolError(str(e)) from None


def open_input(path: str):
    try:
        return open_offline_input(path)
    except PcapReadError as e:
        raise MainToolError(str(e)) from None


def check_paths(input_path: str, output_path: str) -> None:
    try:
        same = os.path.samefile(input_path, output_path)
    except OSError:
        same = False
    if same:
        raise MainToolError("input and output paths refer to the same file")


def open_output(reader, output_path: str, comment: str):
    """A writer of the input's own format: its pcapng sections, or its classic PCAP header."""
    try:
        if isinstance(reader, PcapngReader):
            sections = PcapngSections(reader, NO_SNAPLEN, comment, f"{PROG} {VERSION}")
            return PcapngSectionWriter(output_path, sections)
        return InputHeaderPcapWriter(output_path, reader)
    except PcapWriteError as e:
        raise MainToolError(str(e)) from None


def tail_of(error: PcapReadError) -> PcapReadError:
    """A read error at a cut last record is the main tool's "incomplete tail" (a warning, the
    records before it kept); any other is an error."""
    if "unexpected EOF" not in str(error):
        raise MainToolError(str(error))
    return error


def finish(writer, tail_error: PcapReadError | None, stats_block: str | None) -> int:
    """Close the output; warn about a cut input tail (exit 1), print the stats if asked."""
    try:
        writer.close()
    except PcapWriteError as e:
        raise MainToolError(str(e)) from None
    if tail_error is not None:
        sys.stderr.write(f"Warning: {tail_error}\n{TAIL_WARNING}")
    if stats_block is not None:
        sys.stdout.write(stats_block)
    return 1 if tail_error is not None else 0


def report(run) -> int:
    """Run ``run()``; print a :class:`MainToolError` the main tool's way."""
    try:
        return run()
    except MainToolError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1


def run(args) -> int:
    return report(lambda: _constrict(args))


def _constrict(args) -> int:
    config = main_tool_config(args)
    policy_name = f"main_{config['tls.app_data_continuation_policy']}"
    try:
        policy = load_policy(shipped_policy_path(policy_name))
    except PolicyError as e:
        raise MainToolError(str(e)) from None
    check_paths(args.input, args.output)
    reader = open_input(args.input)
    with reader:
        comment = (f"Constricted by {PROG} {VERSION} (constrict, policy {policy_name}): TLS Application "
                   "Data and matched QUIC short-header packets keep only their first bytes; "
                   "original lengths are kept")  # fmt: skip
        writer = open_output(reader, args.output, comment)
        try:
            log = run_options.decision_log({"--decision-log": args.decision_log} if args.decision_log else {})
        except (OSError, run_options.SetupError) as e:
            writer.close()
            raise MainToolError(f"cannot write decision log '{args.decision_log}': {e}") from None
        pipeline = make_pipeline(policy, config, writer, log)
        tail_error = None
        try:
            for batch in batches_for(pipeline, reader):
                pipeline.run_batch(batch)
        except PcapReadError as e:
            tail_error = tail_of(e)
        except PcapWriteError as e:
            raise MainToolError(str(e)) from None
        finally:
            if log is not None:
                log.close()
    return finish(writer, tail_error, pipeline.stats().block() if args.stats else None)
