"""Issue 13 item 2: what a capture worker sends its parent is a small JSON datagram, checked
field by field; anything else is refused, never executed (the parent may be root while the
worker is already the unprivileged --user)."""

from __future__ import annotations

import json
import pickle

import pytest

from pcapconstrictor.engine.run.stats import Stats
from pcapconstrictor.engine.run.worker_reports import (
    MAX_MESSAGE,
    MAX_TEXT,
    ReportError,
    WorkerReport,
    channel,
    decode_go,
    decode_report,
    encode_go,
    encode_report,
    receive,
    send,
)  # fmt: skip


def full_stats() -> Stats:
    return Stats(packets_total=7, bytes_input=9000, bytes_output=700, receive_errors=1, kernel_packets=8,
                 kernel_drops=0, counters={"tls_appdata_constricted": 3, "my.counter": 2**64 - 1},
                 flow_evictions=4)  # fmt: skip


def report_json(**changes) -> bytes:
    value = json.loads(encode_report(WorkerReport("stopped", "signal received", full_stats())))
    for path, new in changes.items():
        target = value
        *parents, last = path.split("__")
        for key in parents:
            target = target[key]
        target[last] = new
    return json.dumps(value).encode()


def test_a_report_with_its_stats_arrives_as_it_was_sent():
    stopped = WorkerReport("stopped", "max_packets limit reached", full_stats())
    for report in (stopped, WorkerReport("ready"), WorkerReport("capture_error", "Network is down", Stats())):
        assert decode_report(encode_report(report)) == report


def test_the_group_id_is_accepted_only_where_it_is_expected():
    assert decode_report(encode_report(4660), group_allowed=True) == 4660
    with pytest.raises(ReportError):
        decode_report(encode_report(4660))
    with pytest.raises(ReportError):
        decode_report(b'{"group": 70000}', group_allowed=True)  # a fanout id is 16 bits


def test_a_pickle_is_refused_not_unpickled():
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled')",))

    with pytest.raises(ReportError, match="not JSON"):
        decode_report(pickle.dumps(Boom()))


@pytest.mark.parametrize(
    "data",
    [
        b"", b"[]", b'"ready"', b"{", b"\xff\xfe", b"[" * 50_000,
        report_json(kind="root_shell"),
        report_json(extra=1),
        report_json(message=["not", "text"]),
        report_json(message="x" * (MAX_TEXT + 1)),
        report_json(stats="lots"),
        report_json(stats__packets_total=-1),
        report_json(stats__bytes_input=2**64),
        report_json(stats__bytes_output=True),
        report_json(stats__receive_errors=1.5),
        report_json(stats__kernel_drops="0"),
        report_json(stats__counters={"bad name\n": 1}),
        report_json(stats__counters={f"c{i}": 1 for i in range(1025)}),
        report_json(stats__counters=[1, 2]),
    ],
    ids=lambda data: data[:40].decode("latin-1"),
)  # fmt: skip
def test_a_malformed_report_is_refused(data):
    with pytest.raises(ReportError):
        decode_report(data)


def test_control_characters_of_a_message_do_not_reach_the_terminal():
    report = decode_report(encode_report(WorkerReport("failed", "bad\x1b]0;owned\x07 thing\nhint: x\n")))
    assert report.message == "bad?]0;owned? thing\nhint: x\n"


def test_an_oversized_datagram_is_refused_unread():
    worker, parent = channel()
    with worker, parent:
        worker.send(b"{" + b" " * MAX_MESSAGE + b"}")
        with pytest.raises(ReportError, match="longer than"):
            receive(parent)
        send(worker, encode_report(WorkerReport("ready")))  # the next datagram is read whole
        assert decode_report(receive(parent)) == WorkerReport("ready")


def test_a_long_traceback_keeps_its_end_and_fits_one_datagram():
    text = "Traceback\n" + "x" * (4 * MAX_MESSAGE) + "\nValueError: the cause"
    data = encode_report(WorkerReport("crashed", text))
    assert len(data) <= MAX_MESSAGE
    assert decode_report(data).message.endswith("ValueError: the cause")


def test_the_go_carries_the_start_time_or_says_do_not_start():
    assert decode_go(encode_go(1_700_000_000_123_456_789)) == 1_700_000_000_123_456_789
    assert decode_go(encode_go(None)) is None
    with pytest.raises(ReportError):
        decode_go(b'{"start_ns": -5}')
