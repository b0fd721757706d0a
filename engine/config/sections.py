"""How a `section.key = value` line is applied (SPEC §5.4) and the checks that span keys (§5.5).

Shared by the INI and the YAML reader, so both give the same values and the same messages.
"""

from __future__ import annotations

from collections.abc import Callable

from .keys import KEYS, Config, ConfigError, KeySpec, LineError, parse_u32


class _SectionRules:
    """How one section dispatches a line, derived from KEYS (§5.4)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.by_name: dict[str, KeySpec] = {}
        self.after_u32: dict[str, KeySpec] = {}
        self.u32_error: str | None = None  # None: no generic integer rule, unknown names fail at once


def _section_rules(keys: dict[str, KeySpec]) -> dict[str, _SectionRules]:
    sections: dict[str, _SectionRules] = {}
    for spec in keys.values():
        rules = sections.setdefault(spec.section, _SectionRules(spec.section))
        if spec.by_name:
            rules.by_name[spec.name] = spec
            continue
        if spec.kind != "u32" or rules.u32_error not in (None, spec.error):
            raise ValueError(f"{spec.key}: keys matched after the u32 parse share one u32 rule")
        rules.after_u32[spec.name] = spec
        rules.u32_error = spec.error
    return sections


SECTIONS = _section_rules(KEYS)


# --- final validation (§5.5), reported as line 0, first failure wins ------------------------


def _positive(key: str) -> tuple[str, Callable[[dict[str, object]], bool]]:
    return f"{key} must be greater than 0", lambda values: values[key] > 0


_FINAL_CHECKS: tuple[tuple[str, Callable[[dict[str, object]], bool]], ...] = (
    _positive("capture.default_snaplen"),
    _positive("capture.max_capture_len"),
    _positive("capture.ring_block_size"),
    _positive("capture.ring_block_count"),
    _positive("capture.ring_frame_size"),
    ("capture.ring_block_size must be a multiple of capture.ring_frame_size",
     lambda values: values["capture.ring_block_size"] % values["capture.ring_frame_size"] == 0),
    _positive("general.max_flows"),  # extension, after the upstream checks
    _positive("capture.workers"),  # extension
)


def assign(section: str, key: str, value: str) -> tuple[KeySpec, object]:
    """The key a line names and its parsed value; raise LineError with the upstream text, then
    the key and value at fault (a difference from upstream, which names neither)."""
    if not value:
        raise LineError("empty value")
    rules = SECTIONS.get(section)
    if rules is None:
        raise LineError(f"unknown section: [{section}] (sections: {', '.join(SECTIONS)})")
    return dispatch(rules, key, value)


def dispatch(rules: _SectionRules, key: str, value: str) -> tuple[KeySpec, object]:
    """Apply §5.4: named keys first, then the section's u32 parse, then the key lookup."""
    spec = rules.by_name.get(key)
    if spec is not None:
        return spec, _convert(spec, value)
    unknown = f"unknown key in [{rules.name}]: {key}"
    if rules.u32_error is None:
        raise LineError(unknown)
    try:
        number = parse_u32(value)
    except ValueError:
        raise LineError(f"{rules.u32_error}: {key} = {value}") from None
    spec = rules.after_u32.get(key)
    if spec is None:
        raise LineError(unknown)
    return spec, number


def _convert(spec: KeySpec, value: str) -> object:
    try:
        return spec.parse(value)
    except ValueError:
        raise LineError(f"{spec.error}: {spec.name} = {value}{_expected(spec)}") from None


def _expected(spec: KeySpec) -> str:
    """What a value of this kind may be, unless the upstream text says it already."""
    if "expected" in spec.error:
        return ""
    if spec.kind == "enum":
        return f" (expected {' or '.join(spec.choices)})"
    if spec.kind == "bool":
        return " (expected true or false)"
    return ""


def defaults() -> tuple[dict[str, object], dict[str, str]]:
    """Every key at its default: the values, and where each came from."""
    return {key: spec.default for key, spec in KEYS.items()}, dict.fromkeys(KEYS, "default")


def finish(path: str, values: dict[str, object], origin: dict[str, str]) -> Config:
    """The checks that span keys (§5), then the config (INI and YAML alike)."""
    for message, holds in _FINAL_CHECKS:
        if not holds(values):
            raise ConfigError(f"{path}: {message}", 0)  # upstream says line 0; no line is at fault
    return Config(path, values, origin)
