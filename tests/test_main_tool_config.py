"""The main PcapConstrictor tool's config dialect (SPEC §15.2): its sections, keys, defaults,
value syntax and error texts, as ``constrict`` and ``reinflate`` read it."""

from __future__ import annotations

import pytest

from conftest import GOLDEN, run_cli
from pcapconstrictor.engine.config import ConfigError
from pcapconstrictor.engine.config.main_tool import main_tool_defaults, parse_main_tool_config


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_main_tool_config(text)
    return str(caught.value)


def test_defaults_are_the_main_tools_not_ours():
    config = main_tool_defaults()
    assert [config[k] for k in ("tls.app_data_keep_record_bytes", "tls.app_data_continuation_keep_bytes",
                                "quic.short_header_keep_packet_bytes", "quic.require_dcid_match",
                                "quic.allow_short_header_without_known_dcid", "reinflate.fill_byte",
                                "reinflate.checksum_policy")] == [8, 8, 32, True, False, 0xAB, "preserve"]


def test_the_golden_config_reads_with_hex_fill_byte_and_no_trailing_newline():
    config = parse_main_tool_config((GOLDEN / "tls_test_2" / "reinflate_recompute.ini").read_text())
    assert config["reinflate.fill_byte"] == 0xAB
    assert config["reinflate.checksum_policy"] == "recompute"
    assert config["general.min_saved_bytes_per_packet"] == 32


def test_a_comment_starts_at_the_first_semicolon_or_hash_anywhere():
    config = parse_main_tool_config("[general]\nmin_saved_bytes_per_packet = 40#comment\n")
    assert config["general.min_saved_bytes_per_packet"] == 40


def test_an_unknown_section_is_refused_at_its_header_line():
    assert error_of("[general]\n\n[capture]\n") == "config line 3: unknown config section: capture"


def test_names_are_case_sensitive():
    assert error_of("[TLS]\n") == "config line 1: unknown config section: TLS"
    assert error_of("[quic]\nRequire_dcid_match = true\n") == (
        "config line 2: unknown config key: quic.Require_dcid_match")


@pytest.mark.parametrize(("line", "message"), [
    ("[tls]\napp_data_keep_record_bytes = 4",
     "config line 2: invalid value for tls.app_data_keep_record_bytes; expected integer >= 5"),
    ("[quic]\nshort_header_keep_packet_bytes = 0",
     "config line 2: invalid value for quic.short_header_keep_packet_bytes; expected integer >= 1"),
    ("[quic]\nrequire_dcid_match = TRUE",
     "config line 2: invalid value for quic.require_dcid_match; expected true or false"),
    ("[reinflate]\nfill_byte = 256",
     "config line 2: invalid value for reinflate.fill_byte; expected byte value 0..255 or random"),
    ("[reinflate]\nchecksum_policy = fix",
     "config line 2: invalid value for reinflate.checksum_policy; expected preserve or recompute"),
    ("[general]\nmin_saved_bytes_per_packet = -1",
     "config line 2: invalid value for general.min_saved_bytes_per_packet"),
    ("[general]\nmin_saved_bytes_per_packet = 0x100000000",
     "config line 2: invalid value for general.min_saved_bytes_per_packet"),
    ("[tls]\napp_data_continuation_policy = none",
     "config line 2: invalid value for tls.app_data_continuation_policy; "
     "expected final_only, stream, or bulk"),
    ("min_saved_bytes_per_packet = 1", "config line 1: key appears before any section"),
    ("[general]\nmin_saved_bytes_per_packet", "config line 2: expected key = value"),
    ("[general]\nmin_saved_bytes_per_packet =", "config line 2: expected non-empty key and value"),
    ("[general", "config line 1: invalid section header"),
])  # fmt: skip
def test_a_bad_line_gets_the_main_tools_message(line, message):
    assert error_of(line) == message


def test_u32_values_may_be_hex():
    config = parse_main_tool_config("[tls]\napp_data_keep_record_bytes = 0X10\n")
    assert config["tls.app_data_keep_record_bytes"] == 16


def test_the_command_prints_a_config_error_the_main_tools_way(tmp_path):
    config = tmp_path / "bad.ini"
    config.write_text("[capture]\noutput = x.pcap\n")
    done = run_cli("constrict", str(GOLDEN / "tls_test_2" / "input.pcap"), "-o", str(tmp_path / "o.pcap"),
                   "--config", str(config))  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == b"error: config line 1: unknown config section: capture\n"
    assert not (tmp_path / "o.pcap").exists()


def test_our_own_config_keys_are_not_the_main_tools(tmp_path):
    config = tmp_path / "ours.ini"
    config.write_text("[tls]\nports = 443\n")
    done = run_cli("reinflate", str(GOLDEN / "tls_test_2" / "constricted.pcap"),
                   "-o", str(tmp_path / "o.pcap"), "--config", str(config))  # fmt: skip
    assert done.stderr == b"error: config line 2: unknown config key: tls.ports\n"
