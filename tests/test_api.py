"""The public Python API (engine/api.py) gives what the command line gives."""

from __future__ import annotations

from conftest import GOLDEN, run_cli
from pcapconstrictor.engine import api


def test_constricting_through_the_api_writes_the_golden_bytes(tmp_path):
    case = GOLDEN / "tls_test_2"
    config = api.load_config(str(case / "config.ini"))
    constrictor = api.Constrictor(config)
    out = tmp_path / "out.pcap"
    with api.read_capture(str(case / "input.pcap")) as frames, api.write_capture(str(out), config) as sink:
        for ts_ns, kept, wire_len in constrictor.constrict(frames):
            sink.write(ts_ns, kept, len(kept), wire_len)
    assert out.read_bytes() == (case / "constricted.pcap").read_bytes()
    cli_out = tmp_path / "cli.pcap"
    text = (case / "config.ini").read_text() + f"\n[capture]\noutput = {cli_out}\n"
    (tmp_path / "c.ini").write_text(text)
    result = run_cli("--config", str(tmp_path / "c.ini"), "--offline-input", str(case / "input.pcap"))
    assert result.returncode == 0
    assert constrictor.stats().block() in result.stdout.decode()


def test_a_constrictor_keeps_every_frame_and_its_wire_length_and_only_cuts():
    frames = list(api.read_capture(str(GOLDEN / "quic_test_2" / "input.pcap")))
    kept = list(api.Constrictor(api.default_config()).constrict(iter(frames)))
    assert len(kept) == len(frames)
    pairs = zip(kept, frames, strict=True)
    assert all(k[0] == f[0] and k[2] == f[2] and f[1].startswith(k[1]) for k, f in pairs)
    assert sum(len(k[1]) for k in kept) < sum(len(f[1]) for f in frames)
