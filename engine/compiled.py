"""Which modules the build compiles with mypyc, and whether this install did.

The per-packet path (decoder, TLS/QUIC walks, flow tables) is plain Python
that mypyc compiles to a C extension at install time (setup.py reads
``MYPYC_MODULES`` from this file): the same source, several times faster.
``PCAPCONSTRICTOR_PURE_PYTHON=1`` at install time skips compiling; the
result is byte-identical, only slower.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# modules of the package compiled by setup.py (a literal: setup.py reads it without importing us)
MYPYC_MODULES = (
    "engine.analysis.decode", "engine.analysis.flow_table", "engine.analysis.quic",
    "engine.analysis.tls", "engine.analysis.wireguard", "engine.analysis.ipsec",
    "engine.analysis.ssh", "engine.analysis.dtls", "engine.analysis.flow", "engine.analysis.flow_keys",
    # QUIC's variable-length integers and version table, read by the QUIC walk
    "formats.quic_wire",
    # the shipped policies' typed evaluators (issue 21; engine/run/typed_policy.py)
    "engine.run.typed_base", "engine.run.shipped_final_only", "engine.run.shipped_stream",
    "engine.run.shipped_bulk",
    # classic PCAP records read and written in place (issue 21; engine/run/pipeline.py)
    "engine.sources.pcap_records",
    # pcapng packets read in place, and frames written as PCAP records or pcapng blocks
    "engine.sources.pcapng_packets", "engine.sinks.frame_records",
    # the live tpacket_v3 backend's walk over a block's frames
    "engine.sources.tpacket_frames",
)


def compiled_modules() -> list[str]:
    """The modules of MYPYC_MODULES that this install runs compiled."""
    out = []
    for name in MYPYC_MODULES:
        if is_compiled(importlib.import_module(f"pcapconstrictor.{name}")):
            out.append(name)
    return out


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from a compiled extension, not its ``.py`` source."""
    return not (module.__file__ or "").endswith(".py")


def build_description() -> str:
    """One line for --version and the benchmark table."""
    done = compiled_modules()
    if not done:
        return "pure Python: per-packet modules not compiled"
    if len(done) < len(MYPYC_MODULES):
        return f"partly compiled with mypyc: {', '.join(done)}"
    return "per-packet modules compiled with mypyc"
