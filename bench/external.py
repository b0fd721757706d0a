"""Savings and ``verify`` per policy on the shared external captures (issue 14).

Runs every capture in fixtures/external/ through each shipped policy, with the
capture's own ports (fixtures/external/ports.tsv) and either the golden values
(SPEC §14.2) or the recorder's defaults, then judges each output with
``verify`` (tshark).  Prints the Markdown table README.md shows.  The helpers
(``CAPTURES``, ``config_text``, ``constrict``) are what tests/test_external_captures.py
runs, so the README figures and the tests come from the same runs.

    python bench/external.py [--policies final_only,stream,bulk] [--values golden,defaults]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pcapconstrictor.engine.commands.verify import TsharkMissing, compare, ports_of
from pcapconstrictor.engine.config import parse_config_text

EXTERNAL = Path(__file__).resolve().parent.parent / "fixtures" / "external"
POLICIES = ("final_only", "stream", "bulk")

# The golden values (SPEC §14.2); "defaults" sets nothing but the policy and the ports.
GOLDEN_VALUES = """[general]
min_saved_bytes_per_packet = 16
[tls]
app_data_keep_record_bytes = 8
app_data_continuation_keep_bytes = 8
[quic]
short_header_keep_packet_bytes = 32
require_dcid_match = true
allow_short_header_without_known_dcid = false
"""
VALUES = {"golden": GOLDEN_VALUES, "defaults": ""}


def _captures() -> list[tuple[str, str, str]]:
    """(file, tls.ports, quic.ports) of each external capture, from ports.tsv."""
    rows = []
    for line in (EXTERNAL / "ports.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            name, tls_ports, quic_ports = line.split("\t")
            rows.append((name, tls_ports, quic_ports))
    return rows


CAPTURES = _captures()


def config_text(policy: str, values: str, tls_ports: str, quic_ports: str) -> str:
    """A config: the chosen values, the policy, and the capture's ports."""
    return (VALUES[values] + f"[tls]\napp_data_continuation_policy = {policy}\nports = {tls_ports}\n"
            f"[quic]\nports = {quic_ports}\n[capture]\ndefault_snaplen = 262144\nmax_capture_len = 262144\n")


class Refused(Exception):
    """The recorder refused the input (its error line)."""


def constrict(source: str | os.PathLike, output: str | os.PathLike, text: str) -> tuple[int, int]:
    """Constrict ``source`` into ``output`` with the offline command itself (every input format
    and link type it reads): (bytes in, bytes out) of the captured frames, from its stats."""
    with tempfile.NamedTemporaryFile("w", suffix=".ini", delete=False) as config:
        config.write(text + f"[capture]\noutput = {output}\n")
    try:
        run = subprocess.run([sys.executable, "-m", "pcapconstrictor.engine", "--config", config.name,
                              "--offline-input", str(source)], capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(config.name)
    if run.returncode:
        raise Refused(run.stderr.strip())
    figures = dict(line.split(": ", 1) for line in run.stdout.splitlines() if ": " in line)
    return int(figures["bytes_input"]), int(figures["bytes_output"])


def _row(policy: str, values: str, workdir: str) -> str:
    bytes_in = bytes_out = lost = checked = refused = 0
    for name, tls_ports, quic_ports in CAPTURES:
        text = config_text(policy, values, tls_ports, quic_ports)
        out = os.path.join(workdir, f"{policy}-{values}-{name}.pcap")
        try:
            b_in, b_out = constrict(EXTERNAL / name, out, text)
        except Refused:
            refused += 1
            continue
        bytes_in += b_in
        bytes_out += b_out
        report = compare(str(EXTERNAL / name), out, ports_of(parse_config_text(text, "external.ini")))
        checked += 1
        lost += report.total_lost
    saved = 100 * (bytes_in - bytes_out) / bytes_in if bytes_in else 0.0
    return (f"| {policy} | {values} | {checked} | {refused} | {bytes_in:,} | {bytes_out:,} | {saved:.1f} % "
            f"| {lost} |")


def main(argv: list[str]) -> int:
    opts = dict(a.split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    policies = opts.get("--policies", ",".join(POLICIES)).split(",")
    values = opts.get("--values", ",".join(VALUES)).split(",")
    print("| policy | values | captures verified | refused by the reader | bytes in | bytes out | saved "
          "| items lost (verify) |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as workdir:
        try:
            for policy in policies:
                for value in values:
                    print(_row(policy, value, workdir), flush=True)
        except TsharkMissing as e:
            print(e, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
