"""Flow budgets on real traffic (issue 17): HTTP downloads with curl from ``python3 -m
http.server``, a plain TCP bulk copy, TLS, QUIC, ping and DNS-port datagrams, captured by
tcpdump in network namespaces, then constricted offline with a budget.

tshark is the judge: its relative TCP sequence numbers place each payload in its stream, so
the expected length of every packet is computed without our decoder or flow analyzer.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from netns import CAP_IF, PEER4, read_pcap, start_tcpdump, stop, wait_for_line

from conftest import run_cli

BUDGET, KEEP = 4096, 16
EXEMPT = (53, 443)  # 53 by the config; 443 is taken by the TLS and QUIC rules first

pytestmark = pytest.mark.skipif(
    not (shutil.which("tshark") and shutil.which("curl")), reason="needs tshark and curl (Debian packages)"
)


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory, cert, namespaces_available):
    from netns import Netns

    where = tmp_path_factory.mktemp("budget")
    site = where / "site"
    site.mkdir()
    (site / "big.bin").write_bytes(bytes(range(256)) * 1200)  # 300 KiB
    (site / "page.html").write_text("<html>" + "budget " * 2000 + "</html>\n")
    ns = Netns()
    try:
        server = ns.start(ns.peer, sys.executable, "-u", "-m", "http.server", "8000", "--bind", PEER4,
                          "--directory", str(site))  # fmt: skip
        wait_for_line(server, "stdout", "Serving HTTP")
        crt, key = cert
        tls = ns.start(ns.peer, sys.executable, str(Path(__file__).parent / "live_traffic.py"), "serve",
                       str(crt), str(key), stdin=subprocess.PIPE)  # fmt: skip
        wait_for_line(tls, "stdout", "ready")
        captured = where / "input.pcap"
        tcpdump = start_tcpdump(ns, CAP_IF, captured)
        for name in ("big.bin", "page.html", "big.bin"):
            ns.exec(ns.capture, "curl", "-sS", "--max-time", "20", "-o", "/dev/null",
                    f"http://{PEER4}:8000/{name}")  # fmt: skip
        ns.traffic(ns.capture, "client", PEER4, "fd00:198:18::2")  # TLS, TCP bulk (port 80), QUIC, ping
        ns.traffic(ns.capture, "udp", PEER4, "53", "8", "700")  # DNS-sized datagrams, over budget
        ns.traffic(ns.capture, "udp", PEER4, "2049", "8", "1200")  # NFS-over-UDP-like bulk
        stop(tcpdump)
        tls.stdin.close()
    finally:
        ns.close()
    config = where / "budget.ini"
    out = where / "output.pcap"
    config.write_text(f"[general]\nmin_saved_bytes_per_packet = 0\n"
                      f"[capture]\noutput = {out}\ndefault_snaplen = 262144\nmax_capture_len = 262144\n"
                      f"[flow]\nbudget_bytes = {BUDGET}\nbudget_keep_bytes = {KEEP}\n")  # fmt: skip
    result = run_cli("--config", str(config), "--offline-input", str(captured))
    assert result.returncode == 0, result.stderr
    plain = where / "plain.pcap"
    plain_config = where / "plain.ini"
    plain_config.write_text(config.read_text().split("[flow]")[0].replace(str(out), str(plain)))
    result = run_cli("--config", str(plain_config), "--offline-input", str(captured))
    assert result.returncode == 0, result.stderr
    return captured, out, plain


def _tshark(path: Path, *args: str) -> list[list[str]]:
    cmd = ["tshark", "-n", "-r", str(path), "-o", "http.desegment_body:FALSE", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    return [line.split("\t") for line in result.stdout.splitlines()]


def _expected_lengths(captured: Path) -> dict[int, int | None]:
    """Frame number -> the length a budget leaves, from tshark's view of each stream
    (None for TLS/QUIC/DNS ports: their rules decide, the next test checks them)."""
    rows = _tshark(captured, "-T", "fields", "-e", "frame.number", "-e", "frame.cap_len", "-e", "ip.src",
                   "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.seq", "-e", "tcp.len",
                   "-e", "tcp.flags.syn", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "udp.length",
                   "-e", "ipv6.src", "-e", "icmp.type")  # fmt: skip
    expected: dict[int, int | None] = {}
    udp_sent: dict[tuple, int] = {}
    for number, caplen, src4, tsport, tdport, seq, tlen, syn, usport, udport, ulen, src6, _ in rows:
        frame, caplen = int(number), int(caplen)
        expected[frame] = caplen
        if tsport:
            ports = (int(tsport), int(tdport))
            payload, offset = int(tlen), int(seq) - 1  # tshark: relative sequence, SYN = 0
            if set(ports) & set(EXEMPT):
                expected[frame] = None
            if set(ports) & set(EXEMPT) or syn == "1" or payload == 0:
                continue
        elif usport:
            ports = (int(usport), int(udport))
            payload = int(ulen) - 8
            key = (src4 or src6, *ports)
            offset = udp_sent.get(key, 0)
            udp_sent[key] = offset + payload
            if set(ports) & set(EXEMPT):
                expected[frame] = None
                continue
        else:
            continue  # ping: 3 small echoes per address pair, far under the budget
        if offset + payload > BUDGET:
            expected[frame] = caplen - payload + min(payload, max(BUDGET - offset, KEEP))
    return expected


def test_first_budget_bytes_are_identical_and_later_packets_keep_headers_plus_keep_bytes(budget_run):
    captured, out, _ = budget_run
    _, theirs = read_pcap(captured)
    _, ours = read_pcap(out)
    assert len(ours) == len(theirs)
    expected = _expected_lengths(captured)
    cut = 0
    for number, (a, b) in enumerate(zip(ours, theirs, strict=True), 1):
        assert a.orig_len == b.orig_len, f"frame {number}: wire length changed"
        assert a.data == b.data[: a.incl_len], f"frame {number}: kept bytes differ from the input"
        want = expected[number]
        assert want is None or a.incl_len == want, f"frame {number}: kept {a.incl_len}, expected {want}"
        cut += want is not None and a.incl_len < b.incl_len
    assert cut > 20  # the downloads and bulk copies were really budgeted (veth frames are large: GSO)


def test_tls_quic_and_dns_packets_are_what_the_policy_without_a_budget_gives(budget_run):
    _, out, plain = budget_run
    rows = _tshark(plain, "-T", "fields", "-e", "frame.number", "-e", "tcp.port", "-e", "udp.port")
    protocol = {int(r[0]) for r in rows if {"443", "53"} & set(",".join(r[1:]).split(","))}
    assert len(protocol) > 50
    _, ours = read_pcap(out)
    _, reference = read_pcap(plain)
    for number in protocol:
        assert ours[number - 1] == reference[number - 1], f"frame {number} changed by the budget"


def test_tshark_still_dissects_every_http_request_and_status_line(budget_run):
    captured, out, _ = budget_run
    for field in ("http.request.method", "http.response.code"):
        theirs = _tshark(captured, "-Y", field, "-T", "fields", "-e", field)
        ours = _tshark(out, "-Y", field, "-T", "fields", "-e", field)
        assert ours == theirs and len(theirs) >= 3
