"""Configuration: the key table, and the INI and YAML files that set it (SPEC §5).

``keys`` is the table (types, defaults, errors), ``sections`` applies a line of it, ``ini`` and
``yaml_file`` read the two syntaxes.  May import: nothing of ours but its own modules; every
other stage reads a :class:`Config`.
"""

from __future__ import annotations

from .ini import parse_config_text
from .keys import KEYS, Config, ConfigError, KeySpec, output_snaplen

YAML_EXTENSIONS = (".yaml", ".yml")

__all__ = [
    "KEYS", "Config", "ConfigError", "KeySpec", "YAML_EXTENSIONS", "load_config", "output_snaplen",
    "parse_config_text",
]  # fmt: skip


def load_config(path: str) -> Config:
    """Read and parse a config file; raise ConfigError with the upstream message on failure.

    The file is read as bytes and split on b'\\n' only, as upstream does: no newline
    translation, and bytes that are not UTF-8 survive in strings (surrogateescape)."""
    try:
        handle = open(path, "rb")
    except IsADirectoryError:
        # Upstream's ifstream opens a directory and fails on the first read.
        raise ConfigError(f"failed to read config file: {path}") from None
    except (OSError, ValueError):
        raise ConfigError(f"unable to open config file: {path}") from None
    with handle:
        try:
            data = handle.read()
        except OSError:
            raise ConfigError(f"failed to read config file: {path}") from None
    if path.lower().endswith(YAML_EXTENSIONS):  # issue 8: the same keys in YAML
        from .yaml_file import parse_config_yaml

        return parse_config_yaml(data, path)
    return parse_config_text(data.decode("utf-8", "surrogateescape"), path)
