"""Issue 18 #5: a live capture warns when the interface merges received frames (GRO, LRO) before
the recorder sees them: a TLS transfer then arrives as 15-65 KB frames, each cut as one, and
`stream` saved 49-66 % instead of ~90 %.  The offloads are read and set with the ethtool ioctl
the recorder uses (SIOCETHTOOL), on the test veth in its own namespace, as root.
"""

from __future__ import annotations

import sys
from pathlib import Path

from netns import CAP_IF, Netns

from pcapconstrictor.formats import netdevice as nd

RECORDER = (sys.executable, "-m", "pcapconstrictor.engine")
SET_GRO = """
import sys
from pcapconstrictor.engine.sources.interfaces import ethtool_value
from pcapconstrictor.formats import netdevice as nd
ethtool_value(sys.argv[1], nd.ETHTOOL_SGRO, int(sys.argv[2]))
print(ethtool_value(sys.argv[1], nd.ETHTOOL_GGRO))
"""
READ = """
import sys
from pcapconstrictor.engine.sources.interfaces import offloads
print(offloads(sys.argv[1]))
"""


def set_gro(ns: Netns, on: bool) -> None:
    result = ns.exec(ns.capture, sys.executable, "-c", SET_GRO, CAP_IF, str(int(on)))
    assert result.stdout.decode().strip() == str(int(on))


def short_capture(ns: Netns, tmp: Path) -> tuple[int, str]:
    config = tmp / "c.ini"
    config.write_text(f"[capture]\ninterface = {CAP_IF}\noutput = {tmp / 'out.pcap'}\nduration_sec = 1\n")
    result = ns.exec(ns.capture, *RECORDER, "--config", str(config), timeout=30, check=False)
    return result.returncode, result.stderr.decode()


def test_gro_on_the_capture_interface_is_warned_about_with_the_command_that_turns_it_off(ns, tmp_path):
    set_gro(ns, True)
    status, stderr = short_capture(ns, tmp_path)
    assert status == 0, stderr
    assert f"warning: interface '{CAP_IF}' merges received frames before capture (gro on)" in stderr
    assert f"ethtool -K {CAP_IF} gro off lro off" in stderr


def test_no_warning_when_gro_and_lro_are_off(ns, tmp_path):
    set_gro(ns, False)
    status, stderr = short_capture(ns, tmp_path)
    assert status == 0, stderr
    assert "warning" not in stderr and stderr == ""


def test_offloads_read_gro_lro_and_gso_of_the_interface(ns):
    set_gro(ns, True)
    read = ns.exec(ns.capture, sys.executable, "-c", READ, CAP_IF).stdout.decode().strip()
    assert read.startswith("Offloads(gro=True, lro=False, gso=")  # veth: no LRO; GSO as the kernel set it


def test_an_interface_that_does_not_exist_has_no_offloads_and_no_warning():
    from pcapconstrictor.engine.sources.interfaces import offload_warning, offloads

    assert offloads("pcc-none0") is None and offload_warning("pcc-none0") is None


def test_ethtool_request_layouts_are_the_kernel_headers():
    """struct ethtool_value is two u32; ifreq stays as large as its union (struct ifmap)."""
    assert nd.ethtool_value.sizeof() == 8
    assert nd.ifreq_data.sizeof() == nd.ifreq_flags.sizeof() == nd.IFNAMSIZ + nd.IFR_UNION_SIZE
