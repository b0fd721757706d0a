"""Real captures recorded by other projects (issue 14; fixtures/external/NOTICE).

Each defect the issue found is pinned on the capture that showed it, and
``verify`` (tshark as the judge) finds nothing lost in any capture under any
shipped policy, with the golden values and with the recorder's defaults.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pcapconstrictor.engine.analysis.decode import decode
from pcapconstrictor.engine.commands.verify import NO_REASSEMBLY, compare
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriter
from pcapconstrictor.engine.sources.offline_input import open_offline_input

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from external import CAPTURES, EXTERNAL, config_text, constrict  # noqa: E402

PORTS = {name: (tls, quic) for name, tls, quic in CAPTURES}
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")


def run(tmp_path: Path, name: str, policy: str = "final_only", values: str = "defaults") -> list:
    """Constrict one external capture with its ports; the output records."""
    out = tmp_path / f"{name}.{policy}.{values}.pcap"
    constrict(EXTERNAL / name, out, config_text(policy, values, *PORTS[name]))
    with open_offline_input(str(out)) as reader:
        return [(ts, bytes(data), orig_len) for ts, data, orig_len in reader]


def original(name: str) -> list:
    with open_offline_input(str(EXTERNAL / name)) as reader:
        return [(ts, bytes(data), orig_len) for ts, data, orig_len in reader]


# --- defect 1: QUIC v2 long headers (DECISIONS #9) ------------------------------------------


@pytest.mark.parametrize("values", ["defaults", "golden"])
def test_a_quic_v2_client_initial_keeps_its_clienthello(tmp_path, values):
    # frame 1 is the v2 client Initial (1294 bytes); read with v1 type bits it was cut to 194
    out = run(tmp_path, "zeek_quicv2-http3-443.pcap", values=values)
    first = original("zeek_quicv2-http3-443.pcap")[0]
    assert first[2] == 1294
    assert out[0] == first


@needs_tshark
def test_verify_sees_the_clienthello_lost_from_a_quic_v2_initial_cut_as_upstream_cuts_it(tmp_path):
    name = "zeek_quicv2-http3-443.pcap"
    records = original(name)
    upstream_like = tmp_path / "upstream_like.pcap"
    with PcapWriter(str(upstream_like), 262144) as writer:
        for i, (ts, data, orig_len) in enumerate(records):
            writer.write(ts, data, 194 if i == 0 else len(data), orig_len)
    report = compare(str(EXTERNAL / name), str(upstream_like), [443])
    lost = {row.what: row.lost for row in report.rows if row.lost}
    assert lost.get("TLS handshake messages", 0) >= 1  # the ClientHello tshark decrypts
    ours = tmp_path / "ours.pcap"
    constrict(EXTERNAL / name, ours, config_text("final_only", "defaults", *PORTS[name]))
    assert compare(str(EXTERNAL / name), str(ours), [443]).total_lost == 0


# --- defect 2: bulk after loss or reordering (DECISIONS #10) ---------------------------------


def _plausible(payload: bytes, q: int) -> int:
    """End of a record whose header sits at ``q`` (type 20-23, version 3.0-3.4, a length
    within RFC 5246's bound), or -1."""
    if q + 5 > len(payload) or payload[q] not in (20, 21, 22, 23) or payload[q + 1] != 3:
        return -1
    length = int.from_bytes(payload[q + 3 : q + 5], "big")
    return q + 5 + length if payload[q + 2] <= 4 and 0 < length <= 18432 else -1


class HeaderWalk:
    """The record headers an analyst sees in each segment of one direction, written
    apart from the analyzer to judge it: follow record lengths while segments are
    contiguous; after a gap or reordering, a header is anywhere a record starts whose
    end is at or past the segment end or where another one starts (as issue 14 says)."""

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.remaining = 0  # bytes of the open record still to come

    def headers(self, seq: int, payload: bytes) -> list[int]:
        found: list[int] = []
        if seq == self.next_seq:
            q = self.remaining
        else:  # lost sync: scan
            q = next((i for i in range(len(payload)) if (e := _plausible(payload, i)) >= len(payload)
                      or (e >= 0 and _plausible(payload, e) >= 0)), len(payload))  # fmt: skip
        while q < len(payload) and (end := _plausible(payload, q)) >= 0:
            found.append(q)
            q = end
        self.remaining = q - len(payload) if q >= len(payload) else 0
        self.next_seq = (seq + len(payload)) & 0xFFFFFFFF if q >= len(payload) else None
        return found


def cut_headers(tmp_path: Path, name: str, policy: str) -> list[tuple[int, int]]:
    """(frame, payload offset) of each visible record header of the original whose five
    bytes the constricted frame no longer has."""
    tls_ports = {int(p) for p in PORTS[name][0].split(",")}
    walks: dict[tuple, HeaderWalk] = {}
    lost = []
    for i, (before, after) in enumerate(zip(original(name), run(tmp_path, name, policy), strict=True)):
        d = decode(before[1], len(before[1]))
        if not d.tcp or not {d.src_port, d.dst_port} & tls_ports or not d.payload_len:
            continue
        payload = before[1][d.payload_offset : d.payload_offset + d.payload_len]
        walk = walks.setdefault((d.src_addr, d.src_port, d.dst_addr, d.dst_port), HeaderWalk())
        headers = walk.headers(d.tcp_seq, payload)
        lost += [(i + 1, q) for q in headers if d.payload_offset + q + 5 > len(after[1])]
    return lost


@pytest.mark.parametrize("policy", ["final_only", "stream", "bulk"])
@pytest.mark.parametrize("name", ["sv_tls-bypass-tor_bl.pcap", "sv_tls-subjectaltname.pcap"])
def test_no_visible_record_header_is_cut_after_loss_or_reordering(tmp_path, name, policy):
    assert cut_headers(tmp_path, name, policy) == []


# --- defect 3 and verify over every capture ---------------------------------------------------

@needs_tshark
def test_the_shipped_wireshark_profile_shows_every_record_header_the_default_view_hides(tmp_path):
    # defect 3: a cut segment stops TCP reassembly, and Wireshark's default view then
    # skips later records of that direction; the profile dissects each segment alone
    profiles = tmp_path / ".config" / "wireshark" / "profiles"
    shutil.copytree(Path(__file__).resolve().parent.parent / "contrib" / "wireshark", profiles)
    name = "sv_tls-subjectaltname.pcap"
    out = tmp_path / "final_only.pcap"
    constrict(EXTERNAL / name, out, config_text("final_only", "defaults", *PORTS[name]))

    def records(path: Path, *options: str) -> int:
        command = ["tshark", "-r", str(path), *options, "-T", "fields", "-e", "tls.record.length"]
        env = {**os.environ, "HOME": str(tmp_path)}
        result = subprocess.run(command, capture_output=True, env=env, timeout=120, check=True)
        return sum(len(line.split(",")) for line in result.stdout.decode().split() if line)

    profile = ("-C", "pcapconstrictor")
    assert records(out, *profile) == records(EXTERNAL / name, *profile)
    assert records(out, *profile) == records(out, *[x for pref in NO_REASSEMBLY for x in ("-o", pref)])
    assert records(out) < records(EXTERNAL / name)  # the default view loses records


@needs_tshark
@pytest.mark.parametrize("values", ["golden", "defaults"])
@pytest.mark.parametrize("policy", ["final_only", "stream", "bulk"])
@pytest.mark.parametrize("name", sorted(PORTS))
def test_verify_finds_nothing_lost_in_a_real_capture(tmp_path, name, policy, values):
    out = tmp_path / "out.pcap"
    constrict(EXTERNAL / name, out, config_text(policy, values, *PORTS[name]))  # every input is read
    tls_ports = [int(p) for p in PORTS[name][0].split(",")]
    report = compare(str(EXTERNAL / name), str(out), tls_ports)
    assert report.total_lost == 0, report.table()


def test_verify_says_so_and_exits_2_when_tshark_is_not_installed(tmp_path):
    name = EXTERNAL / "zeek_tls1.2.pcap"
    env = {**os.environ, "PATH": str(tmp_path)}  # a PATH without tshark
    command = [sys.executable, "-m", "pcapconstrictor.engine", "verify", str(name), str(name)]
    result = subprocess.run(command, capture_output=True, env=env, timeout=120)
    assert result.returncode == 2
    assert b"tshark is not installed" in result.stderr


@needs_tshark
def test_verify_exits_1_and_names_the_loss_in_its_table_and_json(tmp_path):
    name = "zeek_tls1.2.pcap"
    records = original(name)
    cut = tmp_path / "cut.pcap"
    with PcapWriter(str(cut), 262144) as writer:
        for ts, data, orig_len in records:
            writer.write(ts, data, min(len(data), 60), orig_len)  # every TLS header gone
    args = [sys.executable, "-m", "pcapconstrictor.engine", "verify", str(EXTERNAL / name), str(cut)]
    table = subprocess.run(args, capture_output=True, timeout=120)
    assert table.returncode == 1
    assert "TLS record headers" in table.stdout.decode() and "LOSS" in table.stdout.decode()
    as_json = subprocess.run([*args, "--json"], capture_output=True, timeout=120)
    rows = {row["what"]: row for row in json.loads(as_json.stdout)["rows"]}
    assert as_json.returncode == 1
    assert rows["TLS record headers"]["lost"] == rows["TLS record headers"]["original"] > 0
    assert rows["wire lengths"]["lost"] == 0
    same = subprocess.run([*args[:-1], str(EXTERNAL / name)], capture_output=True, timeout=120)
    assert same.returncode == 0 and "no loss" in same.stdout.decode()
