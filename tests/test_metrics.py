"""Issue 18 #1: the Prometheus endpoint, scraped during live captures in namespaces by a real
Prometheus server (Debian ``prometheus``) and parsed with prometheus_client's own parser."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from netns import CAP4, CAP_IF, PEER4, stats_block, stop, wait_for_line
from prometheus_client.parser import text_string_to_metric_families

from pcapconstrictor.engine.run.figures import RunFigures
from pcapconstrictor.engine.run.metrics import FiguresBoard, parse_listen
from pcapconstrictor.engine.run.stats import Stats
from pcapconstrictor.engine.run.worker_reports import ReportError, decode_report, encode_report

RECORDER = (sys.executable, "-m", "pcapconstrictor.engine")
METRICS = "127.0.0.1:19490"  # loopback of the capture namespace: no other test listens there
PROMETHEUS = "127.0.0.1:19491"
PUBLISH_WAIT = 2.5  # > the loop's 1 s publication period, with room for a slow machine


def start_recorder(ns, tmp_path: Path, extra: str = "", **kwargs):
    output = tmp_path / "out.pcap"
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\ninterface = {CAP_IF}\nbackend = tpacket_v3\noutput = {output}\n{extra}"
                      f"[metrics]\nlisten = {METRICS}\n")  # fmt: skip
    recorder = ns.start(ns.capture, *RECORDER, "--config", str(config), **kwargs)
    wait_for_line(recorder, "stdout", "Press Ctrl+C to stop.\n")
    return recorder


def fetch(ns, url: str) -> str:
    code = ("import sys, urllib.request; "
            "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
    return ns.exec(ns.capture, sys.executable, "-c", code, url).stdout.decode()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample, by name and sorted labels, read by prometheus_client's parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(found: dict, name: str, worker: str = "all", **labels) -> float:
    return found[(name, tuple(sorted({"worker": worker, **labels}.items())))]


def send_udp(ns, count: int) -> None:
    ns.traffic(ns.peer, "udp", CAP4, "9", str(count))


# --- the figures and their transport -------------------------------------------------------


def test_the_all_series_is_the_sum_of_the_workers():
    board = FiguresBoard(workers=2)
    for worker, packets in (("0", 5), ("1", 7)):
        board.publish(worker, RunFigures(stats=Stats(packets, 100 * packets, 10 * packets),
                                         decisions={("packet.udp", "udp"): packets}))  # fmt: skip
    series = dict(board.series())
    assert list(series) == ["0", "1", "all"]
    assert series["all"].stats.packets_total == 12 and series["all"].stats.bytes_saved == 1080
    assert series["all"].decisions == {("packet.udp", "udp"): 12}


def test_a_single_process_reports_only_the_all_series():
    board = FiguresBoard(workers=1)
    board.publish("0", RunFigures(stats=Stats(3)))
    assert [(label, f.stats.packets_total) for label, f in board.series()] == [("all", 3)]


def test_progress_travels_as_validated_json_and_comes_back_equal():
    figures = RunFigures(stats=Stats(4, 400, 300, counters={"tls_fallback": 1}),
                         decisions={("tls.app_data", "tls_appdata"): 4}, flow_entries={"tls": 2},
                         flow_evictions={"tls": 1}, socket_backlog_bytes=None, files_rotated=3)  # fmt: skip
    assert decode_report(encode_report(figures)) == figures


@pytest.mark.parametrize("tamper", [
    lambda p: p.update(decisions=[["rule", "reason\n", 1]]),
    lambda p: p.update(decisions=[["rule", "reason", -1]]),
    lambda p: p.update(flow_entries={"tls": "2"}),
    lambda p: p.update(extra=1),
    lambda p: p.update(files_rotated=True),
])  # fmt: skip
def test_malformed_progress_is_refused(tamper):
    value = json.loads(encode_report(RunFigures(decisions={("a", "b"): 1})))
    tamper(value["progress"])
    with pytest.raises(ReportError):
        decode_report(json.dumps(value).encode())


def test_listen_must_be_host_and_port():
    assert parse_listen("[::1]:9100") == ("::1", 9100)
    for bad in ("9100", "host:", "host:0", "host:65536", ":9100"):
        with pytest.raises(ValueError):
            parse_listen(bad)


# --- live ----------------------------------------------------------------------------------


def test_endpoint_during_a_live_capture_equals_the_final_stats_block(ns, tmp_path):
    recorder = start_recorder(ns, tmp_path)
    send_udp(ns, 30)
    time.sleep(PUBLISH_WAIT)
    found = samples(fetch(ns, f"http://{METRICS}/metrics"))  # the capture is on cap0: this is not seen
    stdout, stderr = stop(recorder)
    assert recorder.returncode == 0, stderr
    block = stats_block(stdout)
    for key in ("packets_total", "packets_written", "bytes_input", "bytes_output", "bytes_saved",
                "kernel_packets", "kernel_drops", "receive_errors"):  # fmt: skip
        name = "pcapconstrictor_packets_total" if key == "packets_total" else f"pcapconstrictor_{key}_total"
        assert total(found, name) == block[key], key
    assert total(found, "pcapconstrictor_decisions_total", rule="packet.udp", reason="udp") == 30
    fallback = total(found, "pcapconstrictor_policy_counter_total", counter="tls_fallback")
    assert fallback == block["tls_fallback"]
    assert ("pcapconstrictor_flow_table_entries", (("analyzer", "tls"), ("worker", "all"))) in found
    info = next(labels for (name, labels) in found if name == "pcapconstrictor_build_info")
    assert dict(info)["policy"] == "final_only (shipped)" and len(dict(info)["policy_hash"]) == 16


def test_with_two_workers_one_endpoint_reports_each_worker_and_their_sum(ns, tmp_path):
    recorder = start_recorder(ns, tmp_path, extra="workers = 2\n")
    ns.exec(ns.peer, sys.executable, "-c", UDP_FLOWS, timeout=30)
    time.sleep(PUBLISH_WAIT)
    found = samples(fetch(ns, f"http://{METRICS}/metrics"))
    stdout, stderr = stop(recorder)
    assert recorder.returncode == 0, stderr
    name = "pcapconstrictor_packets_total"
    each = [total(found, name, worker) for worker in ("0", "1")]
    assert sum(each) == total(found, name) == stats_block(stdout)["packets_total"] >= 64
    assert all(count > 0 for count in each)  # 16 flows hash to both workers


def test_an_address_in_use_is_an_error_before_capturing(ns, tmp_path):
    blocker = ns.start(ns.capture, sys.executable, "-c", BLOCK_PORT, METRICS.split(":")[1])
    wait_for_line(blocker, "stdout", "bound")
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\ninterface = {CAP_IF}\noutput = {tmp_path / 'o.pcap'}\n"
                      f"[metrics]\nlisten = {METRICS}\n")  # fmt: skip
    result = ns.exec(ns.capture, *RECORDER, "--config", str(config), check=False)
    assert result.returncode == 1
    assert b"Live capture error: cannot serve metrics on 127.0.0.1:19490" in result.stderr
    assert b"Starting live capture" not in result.stdout


def test_prometheus_scrapes_the_recorder_during_a_live_capture(ns, tmp_path):
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    recorder = start_recorder(ns, tmp_path)
    send_udp(ns, 25)
    server = start_prometheus(ns, tmp_path)
    query = 'pcapconstrictor_decisions_total{rule="packet.udp",worker="all"}'
    value = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # a scrape each second once Prometheus is up
        try:
            answer = json.loads(fetch(ns, f"http://{PROMETHEUS}/api/v1/query?query={quote(query)}"))
        except (ValueError, AssertionError, RuntimeError):
            answer = {}
        result = answer.get("data", {}).get("result", [])
        if result and float(result[0]["value"][1]) == 25:
            value = float(result[0]["value"][1])
            break
        time.sleep(0.5)
    stop(server, timeout=20)
    stdout, stderr = stop(recorder)
    assert recorder.returncode == 0, stderr
    assert value == 25, f"Prometheus did not get the recorder's figures: {answer}"
    assert stats_block(stdout)["packets_total"] >= 25


def start_prometheus(ns, tmp_path: Path):
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
                      "  - job_name: recorder\n    static_configs:\n"
                      f"      - targets: ['{METRICS}']\n")  # fmt: skip
    return ns.start(ns.capture, "prometheus", f"--config.file={config}", f"--web.listen-address={PROMETHEUS}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}", "--log.level=warn")  # fmt: skip


def quote(text: str) -> str:
    from urllib.parse import quote as url_quote

    return url_quote(text, safe="")


UDP_FLOWS = f"""
import socket, time
socks = []
for port in range(31000, 31016):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("{PEER4}", port))
    socks.append(sock)
for index in range(4):
    for sock in socks:
        sock.sendto(b"metrics flow %d" % index, ("{CAP4}", 9))
    time.sleep(0.002)
"""

BLOCK_PORT = """
import socket, sys, time
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("bound", flush=True)
time.sleep(30)
"""
