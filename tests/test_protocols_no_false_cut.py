"""Issue 16: switching every new protocol on changes no packet that is not of that protocol,
on the external captures and the upstream fixtures (their copies in fixtures/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from protocol_captures import tshark_fields

from conftest import FIXTURES, run_cli
from pcapconstrictor.engine.sources.offline_input import open_offline_input

CAPTURES = sorted(p for p in FIXTURES.rglob("*.pcap*") if p.suffix in (".pcap", ".pcapng"))
EVERY_PROTOCOL = "".join(f"[{name}]\nenabled = true\n" for name in ("wireguard", "ipsec", "ssh", "dtls"))
# what the enabled protocols may touch: their default ports and IP protocol 50
THEIR_PACKETS = (
    "udp.port == 51820 or udp.port == 4500 or ip.proto == 50 or tcp.port == 22 or udp.port in {443 4433 5684}"
)


def _records(path: Path) -> list:
    with open_offline_input(str(path)) as reader:  # pcapng outputs too
        return [(ts, bytes(data), orig) for ts, data, orig in reader]


def _run(tmp_path: Path, capture: Path, sections: str, name: str):
    output = tmp_path / f"{name}.pcap"
    config = tmp_path / f"{name}.ini"
    config.write_text(f"[capture]\noutput = {output}\n{sections}")
    return run_cli("--config", str(config), "--offline-input", str(capture)), output


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_enabling_every_protocol_changes_only_their_packets(capture, tmp_path):
    off, off_pcap = _run(tmp_path, capture, "", "off")
    on, on_pcap = _run(tmp_path, capture, EVERY_PROTOCOL, "on")
    assert (on.returncode, on.stderr) == (off.returncode, off.stderr)  # a bad input fails alike
    if on.returncode:
        return
    changed = [i for i, (a, b) in enumerate(zip(_records(off_pcap), _records(on_pcap), strict=True), 1)
               if a != b]  # fmt: skip
    if changed:
        theirs = {int(n) for n in tshark_fields(capture, THEIR_PACKETS)}
        assert set(changed) <= theirs
