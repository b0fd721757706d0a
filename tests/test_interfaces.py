"""Issue 8, interfaces and privileges: ``--list-interfaces`` (which interfaces can be captured,
and as what: issue 15 #5, tests/test_live_any_and_layer3.py); ``--user NAME`` giving up root
once the socket is open and the output exists (tcpdump -Z), so no frame is ever handled as root.
And ``--help`` lists every option.  ``ip`` (iproute2) is the judge of what the interfaces are.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import time

import pytest
from netns import CAP4, CAP_IF, Netns, read_pcap, stop, wait_for_line

from conftest import GOLDEN, ROOT, run_cli
from pcapconstrictor.engine.commands.parsers import main_parser
from pcapconstrictor.engine.run import privileges

HELP = main_parser().format_help()

RECORDER = (sys.executable, "-m", "pcapconstrictor.engine")
IP_LINK_TYPES = {"ether": "EN10MB", "loopback": "EN10MB", "none": "RAW"}
OPTIONS = ["--config", "--offline-input", "--rules", "--decision-log", "--output", "--filter", "--user",
           "--list-interfaces", "--debug", "--version", "--help"]  # fmt: skip


COLUMNS = ["index", "name", "link type", "state", "mtu", "capture"]


def listing(*prefix: str) -> list[list[str]]:
    """The table's rows, cut at the header's column starts (a cell may hold spaces)."""
    argv = [*prefix, *RECORDER, "--list-interfaces"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    starts = [header.index(column) for column in COLUMNS]
    assert header.split("  ")[0] == "index" and starts == sorted(starts)
    bounds = list(zip(starts, [*starts[1:], None], strict=True))
    return [[row[a:b].strip() for a, b in bounds] for row in rows]


def ip_links(*prefix: str) -> list[dict]:
    if shutil.which("ip") is None:
        pytest.skip("ip is not installed (Debian package iproute2)")
    result = subprocess.run([*prefix, "ip", "-j", "link", "show"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_list_interfaces_agrees_with_ip_link():
    rows = listing()
    links = ip_links()
    assert [int(row[0]) for row in rows] == [link["ifindex"] for link in links]
    for row, link in zip(rows, links, strict=True):
        assert row[1] == link["ifname"]
        assert row[2] == IP_LINK_TYPES.get(link["link_type"], row[2])
        assert row[3].startswith("up") if "UP" in link["flags"] else row[3] == "down"
        assert int(row[4]) == link["mtu"]
        expected = {"ether": "yes", "loopback": "yes", "none": "yes: raw IP"}
        assert row[5] == expected.get(link["link_type"], row[5])


def add_tun(ns: Netns, name: str = "tun8") -> str:
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("no /dev/net/tun to make a non-Ethernet interface with")
    ns.exec(ns.capture, "ip", "tuntap", "add", name, "mode", "tun")
    ns.exec(ns.capture, "ip", "link", "set", name, "up")
    return name


def test_list_interfaces_shows_state_mtu_and_which_can_be_captured(ns):
    tun = add_tun(ns)
    ns.exec(ns.capture, "ip", "link", "set", CAP_IF, "mtu", "9000")
    prefix = ("ip", "netns", "exec", ns.capture)
    rows = {row[1]: row for row in listing(*prefix)}
    links = {link["ifname"]: link for link in ip_links(*prefix)}
    assert set(rows) == set(links) == {"lo", CAP_IF, tun}
    assert rows[CAP_IF][2:] == ["EN10MB", "up", "9000", "yes"]
    assert rows[tun][2:] == ["RAW", "up, no carrier", "1500", "yes: raw IP"]  # no process holds it
    assert rows["lo"][2] == "EN10MB" and rows["lo"][-1] == "yes"
    assert [int(rows[name][0]) for name in rows] == [links[name]["ifindex"] for name in rows]


# --- --user ---------------------------------------------------------------------------------------


def nobody() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("--user needs the test to run as root")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this machine")


def test_offline_run_as_root_hands_its_files_to_the_user_and_goes_on_as_that_user(tmp_path):
    user = nobody()
    output, log = tmp_path / "out.pcapng", tmp_path / "log.csv"
    case = GOLDEN / "tls_test_2"
    result = run_cli("--config", str(case / "config.ini"), "--offline-input", str(case / "input.pcap"),
                     "--output", str(output), "--decision-log", str(log), "--user", "nobody")  # fmt: skip
    assert result.returncode == 0, result.stderr
    for path in (output, log):
        assert (path.stat().st_uid, path.stat().st_gid) == (user.pw_uid, user.pw_gid)
    assert b"Offline feed completed." in result.stdout


@pytest.mark.parametrize("backend", ["recvmsg", "tpacket_v3"])
def test_live_capture_loop_never_runs_as_root(ns, tmp_path, backend):
    user = nobody()
    output = tmp_path / "out.pcap"
    config = tmp_path / "c.ini"
    config.write_text(f"[capture]\ninterface = {CAP_IF}\nbackend = {backend}\noutput = {output}\n"
                      "promiscuous = true\n")  # fmt: skip
    recorder = ns.start(ns.capture, *RECORDER, "--config", str(config), "--user", "nobody", "udp")
    wait_for_line(recorder, "stdout", "Press Ctrl+C to stop.\n")  # printed after the switch
    status = dict(line.split(":", 1) for line in open(f"/proc/{recorder.pid}/status").read().splitlines())
    assert status["Uid"].split() == [str(user.pw_uid)] * 4  # real, effective, saved, filesystem
    assert status["Gid"].split() == [str(user.pw_gid)] * 4
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    ns.traffic(ns.peer, "udp", CAP4, "9", "10")
    time.sleep(0.5)
    stdout, stderr = stop(recorder)
    assert recorder.returncode == 0, stderr  # promiscuous membership dropped as nobody, too
    assert (output.stat().st_uid, output.stat().st_gid) == (user.pw_uid, user.pw_gid)
    assert len(read_pcap(output)[1]) == 10


def test_an_unknown_user_is_an_error_before_any_frame_is_read(tmp_path):
    output = tmp_path / "out.pcap"
    case = GOLDEN / "tls_test_2"
    result = run_cli("--config", str(case / "config.ini"), "--offline-input", str(case / "input.pcap"),
                     "--output", str(output), "--user", "no-such-user-8")  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.decode() == "Privilege error: unknown user 'no-such-user-8'\n"
    assert output.read_bytes() == (case / "constricted.pcap").read_bytes()[:24]  # the header, no packet


def test_switching_user_needs_root(monkeypatch):
    entry = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    other = next(e for e in pwd.getpwall() if e.pw_uid not in (entry.pw_uid, os.geteuid()))
    monkeypatch.setattr(privileges.os, "geteuid", lambda: entry.pw_uid)
    monkeypatch.setattr(privileges.os, "getuid", lambda: entry.pw_uid)
    with pytest.raises(privileges.PrivilegeError, match="needs to start as root"):
        privileges.drop_privileges(other.pw_name)
    privileges.drop_privileges(entry.pw_name)  # already that user: nothing to do


# --- --help -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", OPTIONS)
def test_help_and_readme_list_every_option(option):
    assert f"  {option}" in HELP or f", {option}" in HELP
    assert option in (ROOT / "README.md").read_text()


def test_help_is_unchanged_at_its_head_and_the_usage_text_too():
    result = run_cli("--help")
    assert result.returncode == 0
    assert result.stdout.decode().startswith(
        "Usage:\n  pcapconstrictor-afpacket --config <config.ini>\n"
        "  pcapconstrictor-afpacket --config <config.ini> --offline-input <input.pcap>\n"
        "  pcapconstrictor-afpacket --help\n"
    )
    wrong = run_cli("--config")  # the upstream usage text, then what is wrong
    lines = wrong.stderr.decode().splitlines()
    assert wrong.returncode == 1 and len(lines) == 5 and lines[:4] == result.stdout.decode().splitlines()[:4]
    assert lines[4] == "error: argument --config: expected one argument"
