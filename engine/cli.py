"""Command line: the upstream forms (SPEC §2) plus our additions.

Upstream forms, exactly: ``--help``; ``--config C`` (live); ``--config C
--offline-input IN`` (offline).  Additions never change what those do.  Heavy
imports (construct, lark) happen only once a command runs, so ``--help`` is fast.
"""

from __future__ import annotations

import sys

PROG = "pcapconstrictor-afpacket"
VERSION = "0.1.0"

USAGE = f"""Usage:
  {PROG} --config <config.ini>
  {PROG} --config <config.ini> --offline-input <input.pcap>
  {PROG} --help
"""

HELP = USAGE + f"""
Records packets constricted: TLS Application Data and matched QUIC short-header
packets keep only their first bytes, everything else follows the snap lengths.
The original length is always kept in each record header.

  --config <file>          INI config (see README: keys and defaults); a .yaml or .yml
                           file holds the same sections and keys in YAML
  --offline-input <pcap>   read a classic PCAP ('-' = standard input) instead of capturing
                           live; output goes to capture.output
  --rules <file>           use this rule file instead of the shipped policy
                           selected by tls.app_data_continuation_policy
  --decision-log <csv>     write one row per packet: lengths, reason, rule, facts
  --output <path>          write here instead of capture.output; '-' = standard output
                           (a PCAP stream for a pipe; every message then goes to stderr)
  --filter <expression>    capture filter in tcpdump syntax, instead of capture.filter;
                           live it runs in the kernel, offline on each input frame
  <expression>             the same, tcpdump style: words after the options
  --user <name>            live (or offline) as root: become <name> once the socket is open
                           and the output created, like tcpdump -Z
  --list-interfaces        list interfaces: index, name, link type, state, MTU
  --debug                  show a traceback on errors
  --version                print the version
  --help, -h               this text

Output: capture.format pcap|pcapng|auto (auto: pcapng for a .pcapng output);
rotation: capture.rotate_bytes, capture.rotate_seconds, capture.rotate_files.

Commands:
  {PROG} audit --config <file> [--rules <file>] [--format text|yaml]
        print the effective policy: rules, config values, unused keys
  {PROG} explain --config <file> --offline-input <pcap> --packet <n> [--rules <file>]
        the full decision story of packet n (1-based)
  {PROG} regress [<manifest.yaml>] [--update]
        run golden cases and compare outputs byte for byte
  {PROG} verify <original> <constricted> [--config <file>] [--tls-ports <p,p>] [--json]
        ask tshark whether constriction hid anything (exit 1: a loss; 2: no tshark)

Live capture needs CAP_NET_RAW (root or a capability); stop it with Ctrl+C.
Exit status: 0 success (also after Ctrl+C), 1 any error.
"""


class UsageError(Exception):
    """Arguments that match no form: usage goes to stderr, exit 1 (SPEC §2)."""


def parse_options(argv: list[str], flags: set[str], values: set[str]) -> dict[str, object]:
    """``--name value`` and ``--flag`` options, each at most once; anything
    else is a usage error."""
    opts: dict[str, object] = {}
    args = iter(argv)
    positional: list[str] = []
    for arg in args:
        if arg in flags:
            opts[arg] = True
        elif arg in values:
            value = next(args, None)
            if value is None or arg in opts:
                raise UsageError(f"{arg} needs one value")
            opts[arg] = value
        elif arg.startswith("-") and arg != "-":
            raise UsageError(f"unknown option {arg}")
        else:
            positional.append(arg)
    opts["positional"] = positional
    return opts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["--help"], ["-h"]):
        sys.stdout.write(HELP)
        return 0
    if argv == ["--version"]:
        from .compiled import build_description

        sys.stdout.write(f"{PROG} {VERSION} ({build_description()})\n")
        return 0
    if argv == ["--list-interfaces"]:
        from .interfaces import list_interfaces

        return list_interfaces()
    debug = "--debug" in argv
    try:
        from . import commands  # deferred: construct and lark load here

        if argv and argv[0] in commands.SUBCOMMANDS:
            return commands.SUBCOMMANDS[argv[0]](argv[1:])
        opts = parse_options(argv, {"--debug"}, {"--config", "--offline-input", "--rules", "--decision-log",
                                                 "--output", "--filter", "--user"})  # fmt: skip
        if "--config" not in opts:
            raise UsageError("--config is required")
        if opts["positional"]:  # tcpdump style: a trailing expression is the capture filter
            if "--filter" in opts:
                raise UsageError("a filter expression after the options and --filter: give one")
            opts["--filter"] = " ".join(map(str, opts["positional"]))  # type: ignore[call-overload]
            opts["positional"] = []
        if "--offline-input" in opts:
            return commands.offline(opts)
        return commands.live(opts)
    except UsageError as e:
        if debug:
            sys.stderr.write(f"{e}\n")
        sys.stderr.write(USAGE)
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


if __name__ == "__main__":
    sys.exit(main())
