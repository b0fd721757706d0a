"""Issue 8, YAML configuration: a ``.yaml``/``.yml`` config holds the INI file's sections and
keys; every value goes through the same key table, so it means the same and a bad one gets the
same message, with its YAML line.  The INI format is unchanged.
"""

from __future__ import annotations

import pytest
import yaml

from conftest import GOLDEN, GOLDEN_CASES, ROOT, run_cli
from pcapconstrictor.engine.config import KEYS, ConfigError, load_config

SECTIONS = ", ".join(dict.fromkeys(key.split(".")[0] for key in KEYS))

def write(tmp_path, text: str, name: str = "c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error(tmp_path, text: str, name: str = "c.yaml") -> str:
    path = write(tmp_path, text, name)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    return str(info.value).replace(str(path), "c.yaml", 1)


def ini_as_yaml(ini: str) -> str:
    """An INI text rewritten as YAML by a tool would: sections of key: value."""
    out, section = [], None
    for raw in ini.splitlines():
        line = raw.split(" ;")[0].split(" #")[0].strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            section = line[1:-1].strip()
            out.append(f"{section}:")
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        out.append(f"  {key}: {yaml.safe_dump(value, default_style=None).splitlines()[0]}")
    return "\n".join(out) + "\n"


def test_the_shipped_yaml_example_is_the_ini_example():
    ini = load_config(str(ROOT / "examples" / "config.ini"))
    yml = load_config(str(ROOT / "examples" / "config.yaml"))
    assert yml.values == ini.values and yml.origin == ini.origin


@pytest.mark.parametrize("case", GOLDEN_CASES)
def test_a_golden_config_in_yaml_gives_the_same_output_byte_for_byte(tmp_path, case):
    ini = GOLDEN / case / "config.ini"
    config = write(tmp_path, ini_as_yaml(ini.read_text()), "golden.yml")
    assert load_config(str(config)).values == load_config(str(ini)).values
    output = tmp_path / "out.pcap"
    result = run_cli("--config", str(config), "--offline-input", str(GOLDEN / case / "input.pcap"),
                     "--output", str(output))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert output.read_bytes() == (GOLDEN / case / "constricted.pcap").read_bytes()


# key: (YAML value, the same value as INI text), a value other than the default for every key
SETTINGS = {
    "general.min_saved_bytes_per_packet": ("32", "32"), "general.max_flows": ("10", "10"),
    "general.flow_idle_timeout_sec": ("5", "5"), "capture.backend": ("tpacket_v3", "tpacket_v3"),
    "capture.interface": ("eth1", "eth1"), "capture.promiscuous": ("true", "true"),
    "capture.output": ("o.pcapng", "o.pcapng"), "capture.default_snaplen": ("1500", "1500"),
    "capture.max_capture_len": ("9000", "9000"), "capture.max_packets": ("7", "7"),
    "capture.duration_sec": ("9", "9"), "capture.ring_block_size": ("8192", "8192"),
    "capture.ring_block_count": ("4", "4"), "capture.ring_frame_size": ("2048", "2048"),
    "capture.block_timeout_ms": ("10", "10"), "capture.flush_interval_ms": ("50", "50"),
    "capture.filter": ("'tcp port 443 and not host 192.0.2.1'", "tcp port 443 and not host 192.0.2.1"),
    "capture.format": ("pcapng", "pcapng"), "capture.rotate_bytes": ("5000000000", "5000000000"),
    "capture.rotate_seconds": ("60", "60"), "capture.rotate_files": ("24", "24"),
    "capture.workers": ("2", "2"), "tls.enabled": ("false", "false"), "tls.ports": ("[443, 993]", "443, 993"),
    "tls.app_data_keep_record_bytes": ("8", "8"), "tls.app_data_continuation_keep_bytes": ("8", "8"),
    "tls.app_data_continuation_policy": ("stream", "stream"), "quic.enabled": ("false", "false"),
    "quic.ports": ("[443, 4433]", "443,4433"), "quic.short_header_keep_packet_bytes": ("32", "32"),
    "quic.require_dcid_match": ("true", "true"),
    "quic.allow_short_header_without_known_dcid": ("false", "false"), "stats.enabled": ("false", "false"),
}  # fmt: skip


def test_every_key_can_be_set_in_yaml(tmp_path):
    settings = {key: pair for key, pair in SETTINGS.items() if key in KEYS}  # keys other issues add, if any
    yaml_text = ini_text = ""
    for section in dict.fromkeys(key.split(".")[0] for key in settings):
        entries = [(key.split(".")[1], v) for key, v in settings.items() if key.startswith(f"{section}.")]
        yaml_text += f"{section}:\n" + "".join(f"  {name}: {v[0]}\n" for name, v in entries)
        ini_text += f"[{section}]\n" + "".join(f"{name} = {v[1]}\n" for name, v in entries)
    from_yaml = load_config(str(write(tmp_path, yaml_text)))
    assert from_yaml.values == load_config(str(write(tmp_path, ini_text, "c.ini"))).values
    assert {k for k, o in from_yaml.origin.items() if o == "file"} == set(settings)
    assert from_yaml["capture.filter"] == "tcp port 443 and not host 192.0.2.1"
    assert from_yaml["tls.ports"] == (443, 993) and from_yaml["capture.rotate_bytes"] == 5_000_000_000


def test_port_lists_may_be_yaml_lists_or_ini_text(tmp_path):
    for text in ("[443, 8443]", "443, 8443", "\n    - 443\n    - 8443"):
        assert load_config(str(write(tmp_path, f"tls:\n  ports: {text}\n")))["tls.ports"] == (443, 8443)


def test_section_and_key_names_are_case_insensitive_and_later_values_win(tmp_path):
    config = load_config(str(write(tmp_path, "Capture:\n  MAX_PACKETS: 5\ncapture:\n  max_packets: 6\n")))
    assert config["capture.max_packets"] == 6


def test_empty_file_and_empty_sections_give_the_defaults(tmp_path):
    defaults = load_config(str(write(tmp_path, "", "e.ini"))).values
    assert load_config(str(write(tmp_path, ""))).values == defaults
    assert load_config(str(write(tmp_path, "stats:\nfoo:\n"))).origin["stats.enabled"] == "default"


@pytest.mark.parametrize(
    ("text", "message"),
    [("capture:\n  foo: 1\n", "c.yaml:2: unknown key in [capture]: foo"),
     # §5.4 order: the section's integer parse before the key lookup
     ("capture:\n  foo: bar\n", "c.yaml:2: invalid unsigned integer for capture option: foo = bar"),
     ("tls:\n  ports: 443,,8443\n", "c.yaml:2: invalid port list for tls.ports: ports = 443,,8443"),
     ("tls:\n  enabled: maybe\n",
      "c.yaml:2: invalid boolean for tls.enabled: enabled = maybe (expected true or false)"),
     ("\n\nbogus:\n  key: 1\n",
      f"c.yaml:4: unknown section: [bogus] (sections: {SECTIONS})"),
     ("capture:\n  interface:\n", "c.yaml:2: empty value"),
     ("capture:\n  format: erf\n",
      "c.yaml:2: invalid value for capture.format; expected auto, pcap, or pcapng: format = erf"),
     ("capture:\n  default_snaplen: 0\n", "c.yaml: capture.default_snaplen must be greater than 0"),
     ("- capture\n", "c.yaml:1: expected a mapping of sections (section: {key: value})"),
     ("capture: 5\n", "c.yaml:1: expected key: value pairs under section capture"),
     ("capture:\n  ports: {a: 1}\n", "c.yaml:2: expected a value"),
     ("capture:\n  interface: [eth0\n",
      "c.yaml:3: invalid YAML: expected ',' or ']', but got '<stream end>'")],
)  # fmt: skip
def test_errors_name_the_yaml_line_in_the_ini_loaders_words(tmp_path, text, message):
    assert error(tmp_path, text) == message


def test_a_bad_yaml_config_is_a_configuration_error_on_the_command_line(tmp_path):
    config = write(tmp_path, "capture:\n  max_packets: -1\n")
    result = run_cli("--config", str(config), "--offline-input", "in.pcap")
    assert result.returncode == 1
    message = "invalid unsigned integer for capture option: max_packets = -1"
    assert result.stderr.decode() == f"Configuration error: {config}:2: {message}\n"


def test_an_ini_file_is_still_read_as_ini(tmp_path):
    # A YAML-looking text in a .ini file is INI: `capture:` is not `key = value`.
    assert error(tmp_path, "capture:\n  max_packets: 5\n", "c.ini") == "c.yaml:1: expected key = value"


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n"])
def test_yaml_words_that_yaml_1_1_reads_as_booleans_are_refused_like_in_ini(tmp_path, word):
    message = f"c.yaml:2: invalid boolean for tls.enabled: enabled = {word} (expected true or false)"
    assert error(tmp_path, f"tls:\n  enabled: {word}\n") == message
    assert load_config(str(write(tmp_path, f"capture:\n  interface: {word}\n")))["capture.interface"] == word
