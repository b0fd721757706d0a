"""The analyzers a policy can run, with the facts and options each offers."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from .decode import Decoded
from .dtls import DTLS_FACTS, DtlsAnalyzer
from .facts import Fact
from .flow import FLOW_FACTS, FlowAnalyzer
from .ipsec import IPSEC_FACTS, IpsecAnalyzer
from .quic import QUIC_FACTS, QuicAnalyzer
from .ssh import SSH_FACTS, SshAnalyzer
from .tls import BOUNDARY_MODES, RESYNC_MODES, TLS_FACTS, TlsAnalyzer
from .wireguard import WIREGUARD_FACTS, WireguardAnalyzer


class Option(NamedTuple):
    type: str  # "int" or "symbol"
    default: object
    choices: tuple[str, ...] = ()
    doc: str = ""
    minimum: int = 0


class AnalyzerSpec(NamedTuple):
    name: str
    factory: Callable[..., object]
    facts: dict[str, Fact]
    var: str  # variable holding its facts in the generated evaluator
    transport: str  # the decode fact a packet needs for this analyzer to look at it
    options: dict[str, Option]

    @property
    def inputs(self) -> tuple[str, ...]:
        """Decoder fields its ``analyze(data, ts_ns, *inputs)`` takes."""
        return self.factory.INPUTS


def analyze_decoded(analyzer, d: Decoded, data: bytes, ts_ns: int):
    """Run ``analyzer`` on one decoded frame (tests and tools; the evaluator
    passes the same fields from its locals)."""
    return analyzer.analyze(data, ts_ns, *(getattr(d, name) for name in analyzer.INPUTS))


_FLOW_OPTIONS = {
    "max_flows": Option("int", 1 << 20, doc="flow-table bound; ~LRU eviction", minimum=1),
    "idle_timeout_sec": Option("int", 0, doc="forget flows idle this long (0: never)"),
}

ANALYZERS: dict[str, AnalyzerSpec] = {
    "tls": AnalyzerSpec("tls", TlsAnalyzer, TLS_FACTS, "t", "tcp", {
        "boundary": Option("symbol", "reset", BOUNDARY_MODES,
                           "after an Application Data record ends mid-segment: reset or parse on"),
        "resync": Option("symbol", "start", RESYNC_MODES,
                         "where an unsynchronized direction looks for a record header: "
                         "segment start or anywhere"),
        **_FLOW_OPTIONS,
    }),
    "quic": AnalyzerSpec("quic", QuicAnalyzer, QUIC_FACTS, "q", "udp", dict(_FLOW_OPTIONS)),
    # flow budgets (issue 17): byte and packet counters of any IP flow
    "flow": AnalyzerSpec("flow", FlowAnalyzer, FLOW_FACTS, "fl", "ip", dict(_FLOW_OPTIONS)),
    "wireguard": AnalyzerSpec("wireguard", WireguardAnalyzer, WIREGUARD_FACTS, "w", "udp", {}),
    "ipsec": AnalyzerSpec("ipsec", IpsecAnalyzer, IPSEC_FACTS, "e", "ip", {}),
    "ssh": AnalyzerSpec("ssh", SshAnalyzer, SSH_FACTS, "s", "tcp", dict(_FLOW_OPTIONS)),
    "dtls": AnalyzerSpec("dtls", DtlsAnalyzer, DTLS_FACTS, "x", "udp", dict(_FLOW_OPTIONS)),
}  # fmt: skip
