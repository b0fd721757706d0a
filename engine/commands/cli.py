"""Command line entry point: parse (parsers.py), then run one command module.

Upstream forms, exactly: ``--help``; ``--config C`` (live); ``--config C --offline-input IN``
(offline).  Additions never change what those do.  Command modules (and with them construct
and lark) are imported only once a command runs, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from pcapconstrictor.engine.version import PROG, VERSION

from .parsers import SUBCOMMANDS, UsageError, command_parser, main_parser, manual_parser


def main(argv: list[str] | None = None) -> int:
    if "_ARGCOMPLETE" in os.environ:  # shell completion asks (README); costs nothing otherwise
        import argcomplete

        argcomplete.autocomplete(manual_parser())
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        if argv and argv[0] in SUBCOMMANDS:
            args = command_parser(argv[0]).parse_args(argv[1:])
            return _module(argv[0]).run(args)
        parser = main_parser()
        return _main_form(parser.parse_args(argv), parser)
    except UsageError as e:
        sys.stderr.write(e.text())
        return 1
    except BrokenPipeError:  # e.g. `| head`: the reader left, nothing to report
        sys.stderr.close()
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as e:  # the last line of defence: never a bare traceback
        if debug:
            raise
        sys.stderr.write(f"internal error: {type(e).__name__}: {e} (run with --debug for details)\n")
        return 1


def _main_form(args, parser: argparse.ArgumentParser) -> int:
    if args.version:
        from pcapconstrictor.engine.compiled import build_description

        sys.stdout.write(f"{PROG} {VERSION} ({build_description()})\n")
        return 0
    if args.list_interfaces:
        from pcapconstrictor.engine.sources.interfaces import list_interfaces

        return list_interfaces()
    if args.config is None:
        raise UsageError("--config is required", parser)
    if args.expression:  # tcpdump style: a trailing expression is the capture filter
        if args.filter is not None:
            raise UsageError("a filter expression after the options and --filter: give one", parser)
        args.filter = " ".join(args.expression)
    if args.log_format == "json":  # issue 18: messages for machines; the text stays upstream's
        from pcapconstrictor.engine.run.json_log import use_json_lines

        use_json_lines()
    if args.offline_input is not None:
        return _module("offline").run(args)
    return _module("live").run(args)


def _module(name: str):
    return importlib.import_module(f"{__package__}.{name}")


if __name__ == "__main__":
    sys.exit(main())
