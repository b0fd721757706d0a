"""Config loader behaviour, SPEC.md §5 plus DECISIONS.md #6/#7 and the extension keys."""

from __future__ import annotations

import pytest

from pcapconstrictor.engine.config import KEYS, Config, ConfigError, load_config, parse_config_text

# Written out from SPEC §5.3 and the brief, not read from KEYS, so the table is checked.
DEFAULTS = {
    "general.min_saved_bytes_per_packet": 16,
    "general.max_flows": 1048576,
    "general.flow_idle_timeout_sec": 0,
    "capture.backend": "recvmsg",
    "capture.interface": "",
    "capture.promiscuous": False,
    "capture.output": "output.pcap",
    "capture.default_snaplen": 65535,
    "capture.max_capture_len": 65535,
    "capture.max_packets": 0,
    "capture.duration_sec": 0,
    "capture.ring_block_size": 1048576,
    "capture.ring_block_count": 64,
    "capture.ring_frame_size": 2048,
    "capture.block_timeout_ms": 64,
    "capture.max_ring_bytes": 0,  # issue 13
    "capture.flush_interval_ms": 1000,
    "capture.workers": 1,
    "capture.filter": "",  # issue 8
    "capture.format": "auto",
    "capture.rotate_bytes": 0,
    "capture.rotate_seconds": 0,
    "capture.rotate_files": 0,
    "capture.compress": "none",  # issue 18
    "capture.post_rotate_command": "",
    "capture.rotate_total_bytes": 0,
    "tls.enabled": True,
    "tls.ports": (443, 8443),
    "tls.app_data_keep_record_bytes": 256,
    "tls.app_data_continuation_keep_bytes": 64,
    "tls.app_data_continuation_policy": "final_only",
    "quic.enabled": True,
    "quic.ports": (443,),
    "quic.short_header_keep_packet_bytes": 128,
    "quic.require_dcid_match": False,
    "quic.allow_short_header_without_known_dcid": True,
    "flow.budget_bytes": 0,  # issue 17
    "flow.budget_keep_bytes": 0,
    "flow.budget_ports_exempt": (53,),
    "stats.enabled": True,
    # issue 16: every protocol beyond TLS and QUIC is off unless switched on
    "wireguard.enabled": False,
    "wireguard.ports": (51820,),
    "wireguard.keep_bytes": 0,
    "ipsec.enabled": False,
    "ipsec.nat_t_ports": (4500,),
    "ipsec.keep_bytes": 0,
    "metrics.listen": "",  # issue 18: no endpoint unless set
    "ssh.enabled": False,
    "ssh.ports": (22,),
    "ssh.keep_bytes": 0,
    "dtls.enabled": False,
    "dtls.ports": (443, 4433, 5684),
    "dtls.keep_bytes": 0,
}


def parse(text: str) -> Config:
    return parse_config_text(text, "cfg.ini")


SECTIONS = ", ".join(dict.fromkeys(key.split(".")[0] for key in KEYS))


def full_error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return str(info.value)


def error(text: str) -> str:
    """The upstream part of the message (SPEC §5.7): ``path:line: text``, without the key and
    value we add after it (README: differences)."""
    where, _, message = full_error(text).partition(": ")
    return f"{where}: {message.split(': ', 1)[0]}"


def value(section: str, key: str, text: str) -> object:
    return parse(f"[{section}]\n{key} = {text}\n")[f"{section}.{key}"]


# --- keys and defaults (§5.3) ---------------------------------------------------------------


def test_key_table_has_exactly_the_documented_keys() -> None:
    assert set(KEYS) == set(DEFAULTS)


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_default_value(key: str) -> None:
    config = parse("")
    assert config[key] == DEFAULTS[key]
    assert type(config[key]) is type(DEFAULTS[key])
    assert KEYS[key].default == DEFAULTS[key]


def test_every_key_starts_with_origin_default() -> None:
    assert parse("").origin == dict.fromkeys(DEFAULTS, "default")


def test_every_key_has_a_one_line_doc() -> None:
    for spec in KEYS.values():
        assert spec.doc and "\n" not in spec.doc, spec.key


def test_assigned_key_has_origin_file_even_when_equal_to_default() -> None:
    config = parse("[general]\nmin_saved_bytes_per_packet = 16\n")
    assert config.origin["general.min_saved_bytes_per_packet"] == "file"
    assert config.origin["general.max_flows"] == "default"


def test_config_getitem_reads_values() -> None:
    config = parse("[capture]\ninterface = eth0\n")
    assert config["capture.interface"] == config.values["capture.interface"] == "eth0"
    assert config.path == "cfg.ini"


def test_shipped_example_gives_the_defaults_with_interface_eth0() -> None:
    example = """\
[general]
min_saved_bytes_per_packet = 16

[capture]
interface = eth0
# backend = tpacket_v3
promiscuous = false
output = output.pcap
default_snaplen = 65535
max_capture_len = 65535
max_packets = 0
duration_sec = 0
ring_block_size = 1048576
ring_block_count = 64
ring_frame_size = 2048
block_timeout_ms = 64

[tls]
enabled = true
ports = 443, 8443
app_data_keep_record_bytes = 256
app_data_continuation_keep_bytes = 64
app_data_continuation_policy = final_only

[quic]
enabled = true
ports = 443
short_header_keep_packet_bytes = 128
require_dcid_match = false
allow_short_header_without_known_dcid = true

[stats]
enabled = true
"""
    assert parse(example).values == {**DEFAULTS, "capture.interface": "eth0"}


def test_golden_config_gives_the_effective_values_of_spec_14_3() -> None:
    text = (
        "[general]\nmin_saved_bytes_per_packet = 16\n\n[tls]\napp_data_keep_record_bytes = 8\n"
        "app_data_continuation_keep_bytes = 8\n\n[quic]\nshort_header_keep_packet_bytes = 32\n"
        "require_dcid_match = true\nallow_short_header_without_known_dcid = false\n\n"
        "\n[tls]\napp_data_continuation_policy = final_only\n\n[capture]\n"
        "default_snaplen = 262144\nmax_capture_len = 262144\noutput = out/actual.pcap\n"
    )
    config = parse(text)
    assert config["tls.app_data_keep_record_bytes"] == 8
    assert config["tls.app_data_continuation_keep_bytes"] == 8
    assert config["quic.short_header_keep_packet_bytes"] == 32
    assert config["quic.require_dcid_match"] is True
    assert config["quic.allow_short_header_without_known_dcid"] is False
    assert config["capture.default_snaplen"] == config["capture.max_capture_len"] == 262144
    assert config["tls.ports"] == (443, 8443) and config["quic.ports"] == (443,)


# --- syntax (§5.1) --------------------------------------------------------------------------


@pytest.mark.parametrize("line", ["; a comment", "# a comment"])
def test_comment_at_column_zero_is_ignored(line: str) -> None:
    assert parse(f"{line}\n[general]\n{line}\n").values == DEFAULTS


def test_comment_char_not_after_whitespace_is_part_of_the_value() -> None:
    assert value("capture", "output", "out#1;2.pcap") == "out#1;2.pcap"


@pytest.mark.parametrize("comment", [" #c", " ;c", "\t#c", " # c = d"])
def test_comment_after_whitespace_ends_the_line(comment: str) -> None:
    assert value("capture", "output", f"out.pcap{comment}") == "out.pcap"


def test_first_qualifying_comment_char_wins() -> None:
    assert value("capture", "output", "a#b ;c #d") == "a#b"


def test_comment_after_section_header_is_stripped() -> None:
    assert parse("[tls] ; comment\nenabled = false\n")["tls.enabled"] is False


def test_comment_glued_to_section_header_makes_it_unterminated() -> None:
    assert error("[tls]#x\n") == "cfg.ini:1: unterminated section header"


def test_empty_and_blank_lines_are_ignored_but_counted() -> None:
    text = "\n \t\n[tls]\n\nenabled = maybe\n"
    assert error(text) == "cfg.ini:5: invalid boolean for tls.enabled"


def test_crlf_line_endings_are_trimmed() -> None:
    config = parse("[capture]\r\ninterface = eth0\r\n")
    assert config["capture.interface"] == "eth0"


def test_c_isspace_characters_are_trimmed() -> None:
    assert value("capture", "interface", "\v\f\teth0 \t\v\f\r") == "eth0"


def test_non_ascii_whitespace_is_not_trimmed() -> None:
    assert value("capture", "interface", "eth0\u00a0") == "eth0\u00a0"


def test_internal_whitespace_of_a_string_is_kept() -> None:
    assert value("capture", "output", "my capture.pcap") == "my capture.pcap"


def test_string_values_keep_their_case() -> None:
    assert value("capture", "interface", "ETH0") == "ETH0"


def test_value_may_contain_equals_sign() -> None:
    assert value("capture", "output", "a=b.pcap") == "a=b.pcap"


def test_section_and_key_names_are_case_insensitive() -> None:
    config = parse("[TlS]\nENABLED = FALSE\nApp_Data_Keep_Record_Bytes = 7\n")
    assert config["tls.enabled"] is False
    assert config["tls.app_data_keep_record_bytes"] == 7


def test_only_ascii_letters_are_case_folded() -> None:
    # KELVIN SIGN lower-cases to 'k' in Python but not with C tolower().
    text = "[quic]\nshort_header_\u212aeep_packet_bytes = 5\n"
    assert error(text) == "cfg.ini:2: unknown key in [quic]"


def test_section_name_is_trimmed() -> None:
    assert parse("[ tls ]\nenabled = 0\n")["tls.enabled"] is False


def test_repeated_section_accumulates_keys() -> None:
    config = parse("[tls]\nenabled = false\n[quic]\nenabled = false\n[tls]\nports = 1\n")
    assert config["tls.enabled"] is False and config["tls.ports"] == (1,)


def test_later_assignment_overwrites_earlier() -> None:
    assert parse("[general]\nmax_flows = 5\nmax_flows = 6\n")["general.max_flows"] == 6


def test_empty_unknown_section_is_accepted() -> None:
    assert parse("[reinflate]\n; nothing here\n[general]\n").values == DEFAULTS


def test_first_error_stops_parsing() -> None:
    assert error("[tls]\nenabled = x\n[capture]\nbackend = y\n") == (
        "cfg.ini:2: invalid boolean for tls.enabled"
    )


def test_error_names_the_path_as_given() -> None:
    with pytest.raises(ConfigError, match=r"^\./conf/../a\.ini:1: empty section name$"):
        parse_config_text("[]", "./conf/../a.ini")


def test_error_carries_its_line_number() -> None:
    with pytest.raises(ConfigError) as info:
        parse("[tls]\n\nenabled = x\n")
    assert info.value.line == 3


# --- syntax errors (§5.1) -------------------------------------------------------------------


@pytest.mark.parametrize("line", ["[tls", "[", "[tls] x", "[tls]]x"])
def test_unterminated_section_header(line: str) -> None:
    assert error(f"{line}\n") == "cfg.ini:1: unterminated section header"


@pytest.mark.parametrize("line", ["[]", "[ \t ]"])
def test_empty_section_name(line: str) -> None:
    assert error(f"{line}\n") == "cfg.ini:1: empty section name"


@pytest.mark.parametrize("line", ["enabled", "]", "\ufeff[tls]"])
def test_line_without_equals_is_expected_key_value(line: str) -> None:
    assert error(f"[tls]\n{line}\n") == "cfg.ini:2: expected key = value"


def test_equals_check_comes_before_the_section_check() -> None:
    assert error("enabled\n") == "cfg.ini:1: expected key = value"


def test_key_value_found_before_any_section() -> None:
    assert error("; header\nenabled = true\n") == "cfg.ini:2: key/value found before any section"


def test_empty_key() -> None:
    assert error("[tls]\n = 5\n") == "cfg.ini:2: empty key"


@pytest.mark.parametrize("line", ["enabled =", "interface = ", "output = ;comment", "enabled="])
def test_empty_value(line: str) -> None:
    assert error(f"[capture]\n{line}\n") == "cfg.ini:2: empty value"


def test_unknown_section_is_reported_at_its_first_key() -> None:
    assert error("[reinflate]\n\nfill_byte = 0xAB\n") == "cfg.ini:3: unknown section"


def test_empty_value_is_reported_before_unknown_section() -> None:
    assert error("[reinflate]\nfill_byte =\n") == "cfg.ini:2: empty value"


def test_lone_carriage_return_does_not_split_lines(tmp_path) -> None:
    path = tmp_path / "cr.ini"
    path.write_bytes(b"[tls]\renabled = false\n")
    with pytest.raises(ConfigError, match=r":1: unterminated section header$"):
        load_config(str(path))


# --- value types (§5.2) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("false", False), ("False", False), ("0", False)],
)
def test_bool_accepts_true_false_1_0_in_any_case(text: str, expected: bool) -> None:
    assert value("stats", "enabled", text) is expected


@pytest.mark.parametrize("text", ["yes", "on", "01", "t", "true1"])
def test_bool_rejects_other_words(text: str) -> None:
    assert error(f"[stats]\nenabled = {text}\n") == "cfg.ini:2: invalid boolean for stats.enabled"


def test_u32_accepts_leading_zeros_and_max() -> None:
    assert value("general", "max_flows", "0004294967295") == 4294967295


@pytest.mark.parametrize("text", ["+5", "-5", "0x10", "1_000", "1 2", "5a", "\u0661", "\u00b2"])
def test_u32_rejects_sign_hex_underscore_and_non_ascii_digits(text: str) -> None:
    assert error(f"[general]\nmax_flows = {text}\n") == (
        "cfg.ini:2: invalid unsigned integer for [general]"
    )


def test_u32_overflow_is_an_error() -> None:
    assert error("[general]\nmax_flows = 4294967296\n") == (
        "cfg.ini:2: invalid unsigned integer for [general]"
    )


def test_u64_accepts_max() -> None:
    assert value("capture", "max_packets", "18446744073709551615") == 2**64 - 1


def test_u64_overflow_is_an_error() -> None:
    assert error("[capture]\nmax_packets = 18446744073709551616\n") == (
        "cfg.ini:2: invalid unsigned integer for capture option"
    )


def test_huge_number_with_many_leading_zeros_still_parses() -> None:
    assert value("capture", "duration_sec", "0" * 5000 + "7") == 7


def test_port_list_keeps_order_and_duplicates_and_trims_items() -> None:
    assert value("tls", "ports", " 8443 ,443,\t443 ") == (8443, 443, 443)


def test_port_list_replaces_the_default() -> None:
    assert value("quic", "ports", "4433") == (4433,)


def test_port_zero_and_65535_are_accepted() -> None:
    assert value("quic", "ports", "0,65535") == (0, 65535)


@pytest.mark.parametrize("text", ["443,", "443,,8443", ",443", "443, ,8443", "65536", "-1", "x"])
def test_port_list_rejects_empty_items_and_out_of_range(text: str) -> None:
    assert error(f"[tls]\nports = {text}\n") == "cfg.ini:2: invalid port list for tls.ports"


def test_quic_port_list_error_names_quic_ports() -> None:
    assert error("[quic]\nports = 443,\n") == "cfg.ini:2: invalid port list for quic.ports"


# --- [capture] (§5.4) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"), [("recvmsg", "recvmsg"), ("TPacket_V3", "tpacket_v3")]
)
def test_capture_backend_is_case_insensitive_and_lower_cased(text: str, expected: str) -> None:
    assert value("capture", "backend", text) == expected


def test_unknown_capture_backend_value() -> None:
    assert error("[capture]\nbackend = pcap\n") == "cfg.ini:2: unknown capture.backend value"


def test_invalid_boolean_for_capture_promiscuous() -> None:
    assert error("[capture]\npromiscuous = yes\n") == (
        "cfg.ini:2: invalid boolean for capture.promiscuous"
    )


@pytest.mark.parametrize(
    "key", ["ring_block_size", "ring_block_count", "ring_frame_size", "block_timeout_ms"]
)
def test_invalid_unsigned_integer_for_capture_ring_option(key: str) -> None:
    assert error(f"[capture]\n{key} = 4294967296\n") == (
        "cfg.ini:2: invalid unsigned integer for capture ring option"
    )


@pytest.mark.parametrize(
    "key",
    ["max_packets", "duration_sec", "default_snaplen", "max_capture_len", "flush_interval_ms", "workers"],
)
def test_invalid_unsigned_integer_for_capture_option(key: str) -> None:
    assert error(f"[capture]\n{key} = -1\n") == (
        "cfg.ini:2: invalid unsigned integer for capture option"
    )


def test_capture_snaplen_is_u32_not_u64() -> None:
    assert error("[capture]\ndefault_snaplen = 4294967296\n") == (
        "cfg.ini:2: invalid unsigned integer for capture option"
    )


def test_capture_unknown_key_with_non_integer_value_reports_integer_error() -> None:
    assert error("[capture]\nfoo = bar\n") == (
        "cfg.ini:2: invalid unsigned integer for capture option"
    )


def test_unknown_key_in_capture() -> None:
    assert error("[capture]\nfoo = 5\n") == "cfg.ini:2: unknown key in [capture]"


def test_capture_extension_flush_interval_ms_is_parsed() -> None:
    assert value("capture", "flush_interval_ms", "250") == 250


def test_capture_extension_workers_is_parsed_as_u32() -> None:
    assert value("capture", "workers", "4") == 4
    assert error("[capture]\nworkers = 4294967296\n") == (
        "cfg.ini:2: invalid unsigned integer for capture option"
    )


# --- [general] ------------------------------------------------------------------------------


def test_invalid_unsigned_integer_for_general() -> None:
    assert error("[general]\nmin_saved_bytes_per_packet = abc\n") == (
        "cfg.ini:2: invalid unsigned integer for [general]"
    )


def test_general_unknown_key_with_non_integer_value_reports_integer_error() -> None:
    assert error("[general]\nenabled = true\n") == (
        "cfg.ini:2: invalid unsigned integer for [general]"
    )


def test_unknown_key_in_general() -> None:
    assert error("[general]\nfoo = 5\n") == "cfg.ini:2: unknown key in [general]"


def test_general_extension_keys_are_parsed() -> None:
    config = parse("[general]\nmax_flows = 10\nflow_idle_timeout_sec = 30\n")
    assert config["general.max_flows"] == 10
    assert config["general.flow_idle_timeout_sec"] == 30


# --- [tls] ----------------------------------------------------------------------------------


def test_invalid_boolean_for_tls_enabled() -> None:
    assert error("[tls]\nenabled = 2\n") == "cfg.ini:2: invalid boolean for tls.enabled"


def test_invalid_unsigned_integer_for_tls() -> None:
    assert error("[tls]\napp_data_keep_record_bytes = -8\n") == (
        "cfg.ini:2: invalid unsigned integer for [tls]"
    )


def test_tls_unknown_key_with_non_integer_value_reports_integer_error() -> None:
    assert error("[tls]\nfoo = bar\n") == "cfg.ini:2: invalid unsigned integer for [tls]"


def test_unknown_key_in_tls() -> None:
    assert error("[tls]\nfoo = 5\n") == "cfg.ini:2: unknown key in [tls]"


def test_tls_keep_bytes_accept_zero() -> None:
    config = parse("[tls]\napp_data_keep_record_bytes = 0\napp_data_continuation_keep_bytes = 0\n")
    assert config["tls.app_data_keep_record_bytes"] == 0
    assert config["tls.app_data_continuation_keep_bytes"] == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("final_only", "final_only"), ("Stream", "stream"), ("BULK", "bulk")],
)
def test_continuation_policy_accepts_final_only_stream_bulk_in_any_case(
    text: str, expected: str
) -> None:
    assert value("tls", "app_data_continuation_policy", text) == expected


@pytest.mark.parametrize("text", ["finalonly", "5", "final_only,stream"])
def test_invalid_value_for_continuation_policy(text: str) -> None:
    assert error(f"[tls]\napp_data_continuation_policy = {text}\n") == (
        "cfg.ini:2: invalid value for tls.app_data_continuation_policy; "
        "expected final_only, stream, or bulk"
    )


# --- [quic] ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["enabled", "require_dcid_match", "allow_short_header_without_known_dcid"]
)
def test_invalid_boolean_for_quic(key: str) -> None:
    assert error(f"[quic]\n{key} = yes\n") == "cfg.ini:2: invalid boolean for [quic]"


def test_invalid_unsigned_integer_for_quic() -> None:
    assert error("[quic]\nshort_header_keep_packet_bytes = 1e3\n") == (
        "cfg.ini:2: invalid unsigned integer for [quic]"
    )


def test_quic_unknown_key_with_non_integer_value_reports_integer_error() -> None:
    assert error("[quic]\nfoo = bar\n") == "cfg.ini:2: invalid unsigned integer for [quic]"


def test_unknown_key_in_quic() -> None:
    assert error("[quic]\nfoo = 5\n") == "cfg.ini:2: unknown key in [quic]"


def test_quic_keys_are_parsed() -> None:
    config = parse(
        "[quic]\nenabled = 0\nrequire_dcid_match = TRUE\n"
        "allow_short_header_without_known_dcid = false\nshort_header_keep_packet_bytes = 0\n"
    )
    assert config["quic.enabled"] is False
    assert config["quic.require_dcid_match"] is True
    assert config["quic.allow_short_header_without_known_dcid"] is False
    assert config["quic.short_header_keep_packet_bytes"] == 0


# --- [stats] --------------------------------------------------------------------------------


def test_invalid_boolean_for_stats_enabled() -> None:
    assert error("[stats]\nenabled = 5\n") == "cfg.ini:2: invalid boolean for stats.enabled"


@pytest.mark.parametrize("text", ["bar", "5"])
def test_unknown_key_in_stats_whatever_the_value(text: str) -> None:
    assert error(f"[stats]\nfoo = {text}\n") == "cfg.ini:2: unknown key in [stats]"


# --- final validation (§5.5) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[capture]\ndefault_snaplen = 0", "capture.default_snaplen must be greater than 0"),
        ("[capture]\nmax_capture_len = 0", "capture.max_capture_len must be greater than 0"),
        ("[capture]\nring_block_size = 0", "capture.ring_block_size must be greater than 0"),
        ("[capture]\nring_block_count = 0", "capture.ring_block_count must be greater than 0"),
        ("[capture]\nring_frame_size = 0", "capture.ring_frame_size must be greater than 0"),
        (
            "[capture]\nring_block_size = 3000",
            "capture.ring_block_size must be a multiple of capture.ring_frame_size",
        ),
        ("[general]\nmax_flows = 0", "general.max_flows must be greater than 0"),
        ("[capture]\nworkers = 0", "capture.workers must be greater than 0"),
    ],
)
def test_final_check_is_reported_on_line_zero(text: str, message: str) -> None:
    assert full_error(text) == f"cfg.ini: {message}"


def test_final_checks_run_in_spec_order() -> None:
    checks = [
        ("capture", "workers = 0", "capture.workers must be greater than 0"),
        ("general", "max_flows = 0", "general.max_flows must be greater than 0"),
        (
            "capture",
            "ring_block_size = 3000",
            "capture.ring_block_size must be a multiple of capture.ring_frame_size",
        ),
        ("capture", "ring_frame_size = 0", "capture.ring_frame_size must be greater than 0"),
        ("capture", "ring_block_count = 0", "capture.ring_block_count must be greater than 0"),
        ("capture", "ring_block_size = 0", "capture.ring_block_size must be greater than 0"),
        ("capture", "max_capture_len = 0", "capture.max_capture_len must be greater than 0"),
        ("capture", "default_snaplen = 0", "capture.default_snaplen must be greater than 0"),
    ]
    # Add the failures from last to first: each new one must take over the report.
    lines: list[str] = []
    for section, line, message in checks:
        lines += [f"[{section}]", line]
        assert full_error("\n".join(lines)) == f"cfg.ini: {message}"


def test_ring_checks_apply_with_the_recvmsg_backend() -> None:
    assert error("[capture]\nbackend = recvmsg\nring_frame_size = 3\n") == (
        "cfg.ini: capture.ring_block_size must be a multiple of capture.ring_frame_size"
    )


def test_line_errors_win_over_final_checks() -> None:
    assert error("[capture]\ndefault_snaplen = 0\nfoo = 1\n") == (
        "cfg.ini:3: unknown key in [capture]"
    )


def test_final_check_error_carries_line_zero() -> None:
    with pytest.raises(ConfigError) as info:
        parse("[general]\nmax_flows = 0\n")
    assert info.value.line == 0


# --- reading files (§5.7) -------------------------------------------------------------------


def test_load_config_reads_the_file(tmp_path) -> None:
    path = tmp_path / "a.ini"
    path.write_text("[capture]\ninterface = eth1\n")
    config = load_config(str(path))
    assert config["capture.interface"] == "eth1"
    assert config.path == str(path)


def test_load_config_errors_name_the_path_as_given(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.ini").write_text("[tls]\nenabled = no\n")
    with pytest.raises(ConfigError) as info:
        load_config("./b.ini")
    message = "invalid boolean for tls.enabled: enabled = no (expected true or false)"
    assert str(info.value) == f"./b.ini:2: {message}"


def test_unable_to_open_config_file(tmp_path) -> None:
    path = str(tmp_path / "missing.ini")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"unable to open config file: {path}"
    assert info.value.line is None


def test_failed_to_read_config_file(tmp_path) -> None:
    # A directory opens (as with upstream's ifstream) but cannot be read.
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path))
    assert str(info.value) == f"failed to read config file: {tmp_path}"


def test_bytes_that_are_not_utf8_are_kept(tmp_path) -> None:
    path = tmp_path / "latin1.ini"
    path.write_bytes(b"; caf\xe9\n[capture]\noutput = caf\xe9.pcap\n")
    output = load_config(str(path))["capture.output"]
    assert isinstance(output, str)
    assert output.encode("utf-8", "surrogateescape") == b"caf\xe9.pcap"


# --- what we add to the upstream texts (issue 20): the key and value at fault --------------------


@pytest.mark.parametrize(("text", "message"), [
    ("[general]\nmax_flows = lots\n", "cfg.ini:2: invalid unsigned integer for [general]: max_flows = lots"),
    ("[capture]\nfoo = 5\n", "cfg.ini:2: unknown key in [capture]: foo"),
    ("[capture]\nbackend = pcap\n",
     "cfg.ini:2: unknown capture.backend value: backend = pcap (expected recvmsg or tpacket_v3)"),
    ("[capture]\npromiscuous = yes\n",
     "cfg.ini:2: invalid boolean for capture.promiscuous: promiscuous = yes (expected true or false)"),
    ("[tls]\napp_data_continuation_policy = x\n", "cfg.ini:2: invalid value for "
     "tls.app_data_continuation_policy; expected final_only, stream, or bulk: "
     "app_data_continuation_policy = x"),
    ("[reinflat]\nfill_byte = 1\n", f"cfg.ini:2: unknown section: [reinflat] (sections: {SECTIONS})"),
])  # fmt: skip
def test_a_config_error_names_the_key_and_value_and_what_an_enum_or_boolean_takes(text, message):
    assert full_error(text) == message
