"""YAML configuration (issue 8): the same sections and keys as the INI file, for people who
generate configs with tools.

    capture:
      interface: eth0
      filter: tcp port 443 or udp port 443
      rotate_seconds: 3600
    tls:
      ports: [443, 8443]

Every value goes through the INI loader's own key table and checks (config.py, SPEC §5), so a
value means the same and a bad one gets the same message, with the YAML line:
``<path>:<line>: <message>``.  A list is a port list; YAML booleans are true/false.
"""

from __future__ import annotations

import yaml

from .keys import Config, ConfigError, LineError, ascii_lower, trim
from .sections import assign, defaults, finish

_NULL = "tag:yaml.org,2002:null"


def parse_config_yaml(data: bytes | str, path: str) -> Config:
    """Parse YAML config text; `path` is only used, as given, in error messages."""
    try:
        root = yaml.compose(data, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{line}: invalid YAML: {problem}", line) from None
    values, origin = defaults()
    for key, value, line in _assignments(root, path):
        try:
            spec, parsed = assign(key[0], key[1], value)
        except LineError as exc:
            raise ConfigError(f"{path}:{line}: {exc}", line) from None
        values[spec.key] = parsed
        origin[spec.key] = "file"
    return finish(path, values, origin)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _fail(path: str, node: yaml.Node, message: str) -> ConfigError:
    return ConfigError(f"{path}:{_line(node)}: {message}", _line(node))


def _assignments(root: yaml.Node | None, path: str):
    """``((section, key), value text, line)`` for each key, in file order."""
    if root is None or root.tag == _NULL:
        return
    if not isinstance(root, yaml.MappingNode):
        raise _fail(path, root, "expected a mapping of sections (section: {key: value})")
    for section_node, body in root.value:
        section = _name(section_node, path, "empty section name")
        if body.tag == _NULL:
            continue  # an empty section, as `[name]` with no keys
        if not isinstance(body, yaml.MappingNode):
            raise _fail(path, body, f"expected key: value pairs under section {section}")
        for key_node, value_node in body.value:
            key = _name(key_node, path, "empty key")
            yield (section, key), _value_text(value_node, path), _line(key_node)


def _name(node: yaml.Node, path: str, empty: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise _fail(path, node, "expected a name")
    name = ascii_lower(trim(node.value))
    if not name:
        raise _fail(path, node, empty)
    return name


def _value_text(node: yaml.Node, path: str) -> str:
    """The value as the INI loader would read it after `key =`."""
    if isinstance(node, yaml.SequenceNode):
        return ", ".join(_value_text(item, path) for item in node.value)
    if not isinstance(node, yaml.ScalarNode):
        raise _fail(path, node, "expected a value")
    if node.tag == _NULL:
        return ""
    return trim(node.value)  # as written: YAML 1.1's yes/no/on/off are words here, not booleans
