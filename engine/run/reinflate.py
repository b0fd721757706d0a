"""``reinflate`` (alias ``restore``): a constricted capture padded back to its original lengths
(SPEC §15.6), for tools that refuse records shorter than their original length.

Each record with captured < original length is padded with ``reinflate.fill_byte`` (or random
bytes) up to its original length; with ``checksum_policy = recompute`` the IPv4 header and
TCP/UDP checksums of every complete frame are computed anew (engine/analysis/checksums.py),
so a checker sees valid packets instead of checksum errors in the padded ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pcapconstrictor.engine.analysis.checksums import SKIP_REASONS, Skip, recompute_checksums
from pcapconstrictor.engine.config import Config
from pcapconstrictor.engine.config.main_tool import FILL_RANDOM
from pcapconstrictor.engine.sources.pcapng_reader import PcapngPacket
from pcapconstrictor.formats.derived import link as link_format

Frame = tuple[int, bytes, int]  # (ts_ns, data, orig_len)


@dataclass
class ReinflateStats:
    """What a reinflate run did; ``lines()`` is the block ``--stats`` prints."""

    packets_total: int = 0
    packets_reinflated: int = 0
    filler_bytes_written: int = 0
    checksums_recomputed: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("ipv4", "tcp", "udp"), 0))
    checksum_skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))
    recompute: bool = False

    def lines(self) -> list[str]:
        out = [f"packets_total: {self.packets_total}", f"packets_reinflated: {self.packets_reinflated}",
               f"filler_bytes_written: {self.filler_bytes_written}"]  # fmt: skip
        if self.recompute:
            out += [f"checksums_recomputed_{k}: {v}" for k, v in self.checksums_recomputed.items()]
            out.append(f"checksum_recompute_skipped: {sum(self.checksum_skipped.values())}")
            out += [f"checksum_recompute_skipped_{k}: {v}" for k, v in self.checksum_skipped.items()]
        return out

    def block(self) -> str:
        return "".join(line + "\n" for line in self.lines())


class Reinflater:
    """Pads and (optionally) re-checksums frames ``(ts_ns, data, orig_len)``, counting as it goes."""

    def __init__(self, config: Config) -> None:
        fill = config["reinflate.fill_byte"]
        self.random_fill = fill == FILL_RANDOM
        self.fill = b"" if self.random_fill else bytes((int(fill),))  # type: ignore[arg-type]
        self.stats = ReinflateStats(recompute=config["reinflate.checksum_policy"] == "recompute")

    def frames(self, batches: Iterable[list[Frame]]) -> Iterator[list[Frame]]:
        """Each batch of the input as a batch of reinflated frames (its link type kept)."""
        for batch in batches:
            linktype = getattr(batch, "linktype", link_format.LINKTYPE_ETHERNET)
            out = [self.frame(ts_ns, data, orig_len, linktype) for ts_ns, data, orig_len in batch]
            yield out

    def frame(self, ts_ns: int, data: bytes, orig_len: int, linktype: int) -> tuple[int, bytes, int]:
        stats = self.stats
        stats.packets_total += 1
        missing = orig_len - len(data)
        if missing <= 0 and not stats.recompute:
            return ts_ns, data, orig_len
        frame = bytearray(data)
        if missing > 0:
            frame += os.urandom(missing) if self.random_fill else self.fill * missing
            stats.packets_reinflated += 1
            stats.filler_bytes_written += missing
        if stats.recompute:
            try:
                kind = recompute_checksums(frame, linktype)
            except Skip as skip:
                stats.checksum_skipped[str(skip)] += 1
            else:
                for name in kind.split("/"):
                    stats.checksums_recomputed[name] += 1
        return ts_ns, _like(data, bytes(frame)), orig_len


def _like(original: bytes, data: bytes) -> bytes:
    """``data`` carrying what a pcapng packet remembers of its block (interface, ticks, options)."""
    if not isinstance(original, PcapngPacket):
        return data
    return PcapngPacket.of(data, original.block, original.interface_id, original.ticks, original.options)
