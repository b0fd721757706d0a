"""Issue 21, target 5: the benchmark inputs of the new protocols are what their rows say they
are (each drives its analyzer to cut), and the pcapng row's struct loop does what tcpdump does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

from make_mix import build  # noqa: E402
from offline import reference, reference_pcapng  # noqa: E402
from protocol_inputs import PACKETS_PER_FLOW, SECTIONS, build_protocol, to_pcapng  # noqa: E402

COUNT = 256 * (PACKETS_PER_FLOW + 8)  # a whole generation of connections, and the next one opening


def stats(tmp_path: Path, capture: Path, sections: str) -> dict[str, int]:
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\noutput = {tmp_path / 'out.pcap'}\n{sections}")
    result = run_cli("--config", str(config), "--offline-input", str(capture))
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    lines = result.stdout.decode().split("\nstats:\n", 1)[-1].splitlines()
    return {k: int(v) for k, v in (line.split(": ", 1) for line in lines if ": " in line) if v.isdigit()}


@pytest.mark.parametrize(
    "kind, kept, cut",
    [("ssh", "ssh_key_exchange", "ssh_encrypted_constricted"),
     ("dtls", "dtls_records_kept", "dtls_appdata_constricted")],
)  # fmt: skip
def test_ssh_and_dtls_inputs_open_each_connection_in_clear_then_get_cut(tmp_path, kind, kept, cut):
    capture = tmp_path / f"{kind}.pcap"
    build_protocol(kind, COUNT, str(capture))
    on = stats(tmp_path, capture, SECTIONS[kind])
    opening = 5 if kind == "ssh" else 2  # packets of a connection before the encrypted ones
    assert on[kept] == 256 * opening * 2  # both generations' openings, none lost
    assert on[cut] == COUNT - on[kept]
    assert on["bytes_output"] < on["bytes_input"] * 0.2
    off = stats(tmp_path, capture, "")
    assert off["bytes_output"] == off["bytes_input"]  # off by default: the row's section matters


def test_the_pcapng_struct_loop_writes_what_tcpdump_writes_from_the_same_records(tmp_path):
    pcap, pcapng = tmp_path / "mix.pcap", tmp_path / "mix.pcapng"
    build("mix", 3000, str(pcap))
    to_pcapng(str(pcap), str(pcapng))
    assert pcapng.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert reference_pcapng(str(pcapng), str(tmp_path / "a.pcap")) == 3000
    assert reference(str(pcap), str(tmp_path / "b.pcap")) == 3000
    assert (tmp_path / "a.pcap").read_bytes() == (tmp_path / "b.pcap").read_bytes()
    if shutil.which("tcpdump"):
        subprocess.run(["tcpdump", "-r", str(pcapng), "-w", str(tmp_path / "c.pcap")], check=True,
                       capture_output=True)  # fmt: skip
        assert (tmp_path / "c.pcap").read_bytes()[24:] == (tmp_path / "a.pcap").read_bytes()[24:]
