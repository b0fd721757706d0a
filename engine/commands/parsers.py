"""Every command line the program takes, declared once with argparse.

The upstream forms (SPEC §2) keep their usage text; each subcommand has its own parser, so
``SUBCOMMAND --help`` works and a usage error names what is wrong.  The man page is generated
from these parsers.  Only argparse is imported here: ``--help`` stays fast.
"""

from __future__ import annotations

import argparse

from pcapconstrictor.engine.version import PROG

USAGE = f"""Usage:
  {PROG} --config <config.ini>
  {PROG} --config <config.ini> --offline-input <input.pcap>
  {PROG} --help
"""

DESCRIPTION = """Records packets constricted: TLS Application Data and matched QUIC short-header
packets keep only their first bytes, everything else follows the snap lengths.
The original length is always kept in each record header."""

EPILOG = f"""Output: capture.format pcap|pcapng|auto (auto: pcapng for a .pcapng output or a pcapng input);
rotation: capture.rotate_bytes, capture.rotate_seconds, capture.rotate_files;
closed files: capture.compress none|gzip|zstd, capture.post_rotate_command,
capture.rotate_total_bytes.

Commands ({PROG} COMMAND --help for each):
{{commands}}
Live capture needs CAP_NET_RAW (root or a capability); stop it with Ctrl+C.
Exit status: 0 success (also after Ctrl+C), 1 any error."""


class UsageError(Exception):
    """Arguments that match no form; ``str()`` says what is wrong."""

    def __init__(self, message: str, parser: CommandParser) -> None:
        super().__init__(message)
        self.parser = parser

    def text(self) -> str:
        """What goes to stderr: the form's usage, then the problem."""
        return self.parser.usage_text() + f"error: {self}\n"


class CommandParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of exiting, so the caller decides."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message, self)

    def usage_text(self) -> str:
        return self.format_usage()


class MainParser(CommandParser):
    """The upstream forms: their usage text heads ``--help`` and every usage error."""

    def usage_text(self) -> str:
        return USAGE

    def format_help(self) -> str:
        return USAGE + "\n" + super().format_help().split("\n\n", 1)[1]


class Once(argparse.Action):
    """An option that may be given once: a second one is a usage error, not a silent override."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest) is not None:
            raise argparse.ArgumentError(self, "given twice")
        setattr(namespace, self.dest, values)


def _config(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--config", action=Once, required=required, metavar="<file>",
                        help="INI config (see README: keys and defaults); a .yaml or .yml file holds "
                             "the same sections and keys in YAML")  # fmt: skip


def _rules(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", action=Once, metavar="<file>",
                        help="use this rule file instead of the shipped policy selected by "
                             "tls.app_data_continuation_policy")  # fmt: skip


def _debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show a traceback on errors")


def main_parser() -> MainParser:
    """Live capture and the offline feed (SPEC §2), with our options."""
    p = MainParser(prog=PROG, usage="%(prog)s", description=DESCRIPTION, add_help=False,
                   formatter_class=argparse.RawDescriptionHelpFormatter, epilog=_epilog())
    _main_form(p)
    p.add_argument("--help", "-h", action="help", help="this text")
    return p


def manual_parser() -> argparse.ArgumentParser:
    """Every form in one parser, the commands as sub-parsers: for the man page and completion."""
    description = DESCRIPTION + "\nA capture filter may also follow the options, tcpdump style."
    p = argparse.ArgumentParser(prog=PROG, description=description, epilog=_epilog(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _main_form(p, expression=False)  # beside sub-commands, a free positional would read as one
    commands = p.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for name, (summary, declare) in SUBCOMMANDS.items():
        declare(commands.add_parser(name, help=summary, description=summary))  # type: ignore[operator]
    return p


def _epilog() -> str:
    lines = [f"  {name:10} {summary}\n" for name, (summary, _) in SUBCOMMANDS.items()]
    return EPILOG.format(commands="".join(lines))


def _main_form(p: argparse.ArgumentParser, expression: bool = True) -> None:
    _config(p, required=False)
    p.add_argument("--offline-input", action=Once, metavar="<pcap>",
                   help="read a capture file ('-' = standard input) instead of capturing live; "
                        "output goes to capture.output")  # fmt: skip
    _rules(p)
    p.add_argument("--decision-log", action=Once, metavar="<csv>",
                   help="write one row per packet: lengths, reason, rule, facts")
    p.add_argument("--output", action=Once, metavar="<path>",
                   help="write here instead of capture.output; '-' = standard output (a capture stream "
                        "for a pipe; every message then goes to stderr)")  # fmt: skip
    p.add_argument("--filter", action=Once, metavar="<expression>",
                   help="capture filter in tcpdump syntax, instead of capture.filter; live it runs in "
                        "the kernel, offline on each input frame")  # fmt: skip
    if expression:
        p.add_argument("expression", nargs="*", metavar="<expression>",
                       help="the same, tcpdump style: words after the options")
    p.add_argument("--user", action=Once, metavar="<name>",
                   help="live (or offline) as root: become <name> once the socket is open and the "
                        "output created, like tcpdump -Z")  # fmt: skip
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="json: the banner, warnings, errors and stats as one JSON object per line "
                        "(journald, log shippers)")  # fmt: skip
    p.add_argument("--list-interfaces", action="store_true",
                   help="list interfaces: index, name, link type, state, MTU")
    _debug(p)
    p.add_argument("--version", action="store_true", help="print the version")


def _audit(p: CommandParser) -> None:
    _config(p)
    _rules(p)
    p.add_argument("--format", choices=("text", "yaml"), default="text", help="output format")
    p.add_argument("--compare", action="store_true",
                   help="also show how the shipped policies differ on this config")
    _debug(p)


def _explain(p: CommandParser) -> None:
    _config(p)
    p.add_argument("--offline-input", action=Once, required=True, metavar="<pcap>", help="the capture file")
    p.add_argument("--packet", action=Once, required=True, type=_packet_number, metavar="<n>",
                   help="the packet to explain, counted from 1 as tshark and Wireshark do")
    _rules(p)
    _debug(p)


def _regress(p: CommandParser) -> None:
    p.add_argument("manifest", nargs="?", metavar="<manifest.yaml>",
                   help="the golden cases (default: fixtures/golden/manifest.yaml)")
    p.add_argument("--update", action="store_true",
                   help="rewrite the expected outputs and stats of failing cases")
    _debug(p)


def _verify(p: CommandParser) -> None:
    p.add_argument("original", metavar="ORIGINAL", help="the capture before constriction")
    p.add_argument("constricted", metavar="CONSTRICTED", help="the constricted capture")
    p.add_argument("--config", action=Once, metavar="<file>",
                   help="decode the config's tls.ports as TLS (default 443)")
    p.add_argument("--tls-ports", action=Once, metavar="<p,p>", help="TCP ports to decode as TLS")
    p.add_argument("--json", action="store_true", help="the table as JSON, for machines")
    p.epilog = ("tshark is the judge, with TCP and TLS reassembly off; QUIC is found by its heuristic "
                "on any UDP port.  Exit 0: no loss; 1: a loss or an error; 2: tshark is not installed.")


def _batch(p: CommandParser) -> None:
    _config(p)
    p.add_argument("--output-dir", action=Once, required=True, metavar="<dir>",
                   help="where the outputs go, each under its input's relative path (.gz/.zst dropped)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--jobs", action=Once, type=_positive, metavar="<n>",
                       help="local processes (default: the number of cores)")
    where.add_argument("--scheduler", action=Once, metavar="<tcp://host:port>",
                       help="send each file as a task to this Dask scheduler (pip install '.[dask]'); the "
                            "workers must see the inputs, outputs and config at the same paths")  # fmt: skip
    _rules(p)
    p.add_argument("--force", action="store_true", help="redo files whose output already exists")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _debug(p)
    p.add_argument("inputs", nargs="+", metavar="<input>",
                   help="capture files, or folders searched recursively (pcap, pcapng, .gz, .zst)")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"takes a number from 1, not '{text}'")
    return int(text)


def _main_tool_form(p: CommandParser, constrict: bool) -> None:
    """The main PcapConstrictor tool's forms (SPEC §15.1), with its config dialect (§15.2)."""
    p.add_argument("input", metavar="INPUT", help="classic PCAP or pcapng; the output keeps its format")
    p.add_argument("-o", "--output", action=Once, required=True, metavar="OUTPUT", help="the file to write")
    p.add_argument("--config", action=Once, metavar="<file>",
                   help="the main tool's INI config: [general], [tls], [quic], [reinflate] "
                        "(its keys and defaults, not this recorder's)")  # fmt: skip
    p.add_argument("--stats", action="store_true", help="print what the run did")
    if constrict:
        p.add_argument("--decision-log", action=Once, metavar="<csv>",
                       help="write one row per packet: lengths, reason, rule, facts")
    _debug(p)


def _constrict(p: CommandParser) -> None:
    _main_tool_form(p, constrict=True)
    p.epilog = ("TLS is walked on every TCP packet, QUIC on every UDP packet; packets already cut in "
                "the input pass untouched (rules/main_*.rules).")


def _reinflate(p: CommandParser) -> None:
    _main_tool_form(p, constrict=False)
    p.epilog = "restore is the same command."


def _packet_number(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"takes a packet number from 1, not '{text}'")
    return number


SUBCOMMANDS: dict[str, tuple[str, object]] = {
    "constrict": ("the main PcapConstrictor tool's constrict: INPUT -o OUTPUT", _constrict),
    "reinflate": ("pad cut records back to their original length (the main tool's reinflate)", _reinflate),
    "restore": ("the same as reinflate", _reinflate),
    "audit": ("print the effective policy: rules, config values, unused keys", _audit),
    "batch": ("constrict every capture of files or folders into an output folder", _batch),
    "explain": ("the full decision story of one packet (1-based)", _explain),
    "regress": ("run golden cases and compare outputs byte for byte", _regress),
    "verify": ("ask tshark whether constriction hid anything an analyst reads", _verify),
}


def command_parser(name: str) -> CommandParser:
    """The parser of one subcommand."""
    summary, declare = SUBCOMMANDS[name]
    parser = CommandParser(prog=f"{PROG} {name}", description=summary)
    declare(parser)  # type: ignore[operator]
    return parser
