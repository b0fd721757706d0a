"""``restore``: the main PcapConstrictor tool's other name for ``reinflate`` (SPEC §15.1)."""

from __future__ import annotations

from .reinflate import run

__all__ = ["run"]
