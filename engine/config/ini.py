"""The INI config syntax (SPEC §5.1): sections, `key = value` lines, comments."""

from __future__ import annotations

from .keys import WHITESPACE, Config, ConfigError, KeySpec, LineError, ascii_lower, trim
from .sections import assign, defaults, finish


def parse_config_text(text: str, path: str) -> Config:
    """Parse config text; `path` is only used, as given, in error messages."""
    values, origin = defaults()
    section: str | None = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = trim(_strip_comment(raw))
        if not line:
            continue
        try:
            if line.startswith("["):
                section = _section_header(line)
                continue
            spec, value = _assignment(line, section)
        except LineError as exc:
            raise ConfigError(f"{path}:{number}: {exc}", number) from None
        values[spec.key] = value
        origin[spec.key] = "file"
    return finish(path, values, origin)


def _strip_comment(line: str) -> str:
    # Only at column 0 or after whitespace, so `output = a#b.pcap` keeps its '#' (§5.1).
    for index, char in enumerate(line):
        if char in ";#" and (index == 0 or line[index - 1] in WHITESPACE):
            return line[:index]
    return line


def _section_header(line: str) -> str:
    if not line.endswith("]"):
        raise LineError("unterminated section header")
    name = trim(line[1:-1])
    if not name:
        raise LineError("empty section name")
    return ascii_lower(name)  # unknown names are accepted until a key is assigned


def _assignment(line: str, section: str | None) -> tuple[KeySpec, object]:
    key, equals, value = line.partition("=")
    if not equals:
        raise LineError("expected key = value")
    if section is None:
        raise LineError("key/value found before any section")
    key, value = ascii_lower(trim(key)), trim(value)
    if not key:
        raise LineError("empty key")
    return assign(section, key, value)
