"""Issue 16: IPsec ESP, as IP protocol 50 and in UDP (RFC 3948), and IKE beside it.

The kernel of these machines has no ESP, so the ESP is scapy's (tests/esp_traffic.py), sent
over the namespaces' veth pair and captured by tcpdump; tshark decrypts the input with the
test's keys, which proves it is real ESP, and must read the same SPI and sequence numbers after.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from netns import CAP4, CAP_IF, CAP_MAC, PEER4, start_tcpdump
from protocol_captures import (
    assert_same_packets_and_wire_lengths,
    byte_ratio,
    constrict,
    records,
    stop_tcpdump,
    tshark_fields,
)  # fmt: skip

from pcapconstrictor.engine.analysis.ipsec import IpsecAnalyzer

IPSEC_SECTION = "[ipsec]\nenabled = true\n"
ESP_SCRIPT = Path(__file__).resolve().parent / "esp_traffic.py"
COUNT = 400


def _tshark_decrypting() -> tuple[str, ...]:
    from esp_traffic import AUTHENTICATION_KEY, ENCRYPTION_KEY, SPI_ESP, SPI_NAT_T

    rows = [f'"IPv4","{PEER4}","{CAP4}","{spi:#010x}","AES-CBC [RFC3602]","0x{ENCRYPTION_KEY.hex()}",'
            f'"HMAC-SHA-1-96 [RFC2404]","0x{AUTHENTICATION_KEY.hex()}"' for spi in (SPI_ESP, SPI_NAT_T)]
    args = ["-o", "esp.enable_encryption_decode:TRUE", "-d", "udp.port==4500,udpencap"]
    for row in rows:
        args += ["-o", f"uat:esp_sa:{row}"]
    return tuple(args)


# --- recognition ------------------------------------------------------------------------------


def test_udp_payload_behind_the_non_esp_marker_is_ike():
    payload = bytes(4) + bytes(range(1, 40))
    facts = IpsecAnalyzer().analyze(payload, 0, 17, True, 0, 0, len(payload))
    assert facts.ike and not facts.esp


def test_udp_payload_with_a_nonzero_spi_is_esp_and_its_header_is_eight_bytes():
    payload = bytes([0, 0, 1, 0]) + bytes(100)
    facts = IpsecAnalyzer().analyze(payload, 0, 17, True, 0, 0, len(payload))
    assert facts.esp and facts.esp_offset == 0 and facts.header_len == 8


def test_an_ip_fragment_of_protocol_50_is_not_taken_for_esp():
    frame = bytes(34) + bytes([0, 0, 1, 0]) + bytes(100)
    assert not IpsecAnalyzer().analyze(frame, 0, 50, False, 0, 0, 0).esp  # no transport offset


# --- real ESP -----------------------------------------------------------------------------------


@pytest.fixture
def esp_capture(ns, tmp_path) -> Path:
    pytest.importorskip("scapy", reason="scapy (the [test] extra) makes the ESP")
    pytest.importorskip("cryptography", reason="scapy's IPsec layer needs cryptography")
    capture = tmp_path / "esp.pcap"
    tcpdump = start_tcpdump(ns, CAP_IF, capture)
    try:
        ns.exec(ns.peer, sys.executable, str(ESP_SCRIPT), "peer0", PEER4, CAP4, CAP_MAC, str(COUNT),
                timeout=120)  # fmt: skip
    finally:
        stop_tcpdump(tcpdump)
    return capture


def test_esp_bulk_keeps_spi_sequence_and_ike_and_saves_85_percent(esp_capture, tmp_path):
    output, stats = constrict(tmp_path, esp_capture, IPSEC_SECTION)
    assert_same_packets_and_wire_lengths(esp_capture, output)
    assert byte_ratio(esp_capture, output) <= 0.15
    decrypting = _tshark_decrypting()
    # the input is real ESP: tshark decrypts every packet with the test's keys
    inner = tshark_fields(esp_capture, "esp and udp.dstport == 9", "udp.length", extra=decrypting)
    assert [line.split(",")[-1] for line in inner] == ["1208"] * (2 * COUNT)  # ESP in UDP: outer, inner
    fields = ("esp.spi", "esp.sequence")  # not the ICMP errors quoting ESP the kernel sends back
    before = tshark_fields(esp_capture, "esp and not icmp", *fields)
    assert len(before) == 2 * COUNT
    assert tshark_fields(output, "esp and not icmp", *fields) == before
    assert stats["ipsec_esp_constricted"] == 2 * COUNT
    assert stats["ipsec_ike"] == 3
    ike_in = [r for r in records(esp_capture) if _is_ike(r.data)]
    assert len(ike_in) == 3 and [r for r in records(output) if _is_ike(r.data)] == ike_in


def _is_ike(frame: bytes) -> bool:
    """IPv4 UDP to port 4500 whose payload opens with the non-ESP marker."""
    return (frame[12:14] == b"\x08\x00" and frame[23] == 17 and frame[36:38] == (4500).to_bytes(2, "big")
            and frame[42:46] == bytes(4))  # fmt: skip


def test_keep_bytes_extends_what_esp_keeps(esp_capture, tmp_path):
    output, _ = constrict(tmp_path, esp_capture, IPSEC_SECTION + "keep_bytes = 24\n")
    lengths = {r.incl_len for r in records(output) if r.orig_len > 1000}
    assert lengths == {14 + 20 + 8 + 24, 14 + 20 + 8 + 8 + 24}  # protocol 50; in UDP


def test_without_an_ipsec_section_esp_is_not_cut(esp_capture, tmp_path):
    output, _ = constrict(tmp_path, esp_capture, "")
    assert [r.data for r in records(output)] == [r.data for r in records(esp_capture)]
