"""Which modules the build compiles with mypyc, and whether this install did.

The per-packet path (decoder, TLS/QUIC walks, flow tables) is plain Python
that mypyc compiles to a C extension at install time (setup.py reads
``MYPYC_MODULES`` from this file): the same source, several times faster.
``PCAPCONSTRICTOR_PURE_PYTHON=1`` at install time skips compiling; the
result is byte-identical, only slower.
"""

from __future__ import annotations

import importlib

# modules under engine/ compiled by setup.py (a literal: setup.py reads it without importing us)
MYPYC_MODULES = (
    "analysis.decode", "analysis.flow_table", "analysis.quic", "analysis.tls",
    "analysis.wireguard", "analysis.ipsec", "analysis.ssh", "analysis.dtls", "analysis.flow",
    # the shipped policies' typed evaluators (issue 21; engine/run/typed_policy.py)
    "run.shipped_final_only", "run.shipped_stream", "run.shipped_bulk",
)


def compiled_modules() -> list[str]:
    """The modules of MYPYC_MODULES that this install runs compiled."""
    out = []
    for name in MYPYC_MODULES:
        module = importlib.import_module(f"{__package__}.{name}")
        if not (module.__file__ or "").endswith(".py"):
            out.append(name)
    return out


def build_description() -> str:
    """One line for --version and the benchmark table."""
    done = compiled_modules()
    if not done:
        return "pure Python: per-packet modules not compiled"
    if len(done) < len(MYPYC_MODULES):
        return f"partly compiled with mypyc: {', '.join(done)}"
    return "per-packet modules compiled with mypyc"
