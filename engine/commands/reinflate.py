"""``reinflate|restore INPUT -o OUTPUT [--config F] [--stats]``: the main PcapConstrictor tool's
reinflate (SPEC §15.1, §15.6): every cut record padded back to its original length, checksums
kept or recomputed (``[reinflate]`` of the main tool's config).  ``restore`` is the same command.
"""

from __future__ import annotations

from pcapconstrictor.engine.run.reinflate import Reinflater
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriteError
from pcapconstrictor.engine.sources.pcap_reader import PcapReadError
from pcapconstrictor.engine.version import PROG, VERSION

from .constrict import (
    MainToolError,
    check_paths,
    finish,
    main_tool_config,
    open_input,
    open_output,
    report,
    tail_of,
)


def run(args) -> int:
    return report(lambda: _reinflate(args))


def _reinflate(args) -> int:
    config = main_tool_config(args)
    reinflater = Reinflater(config)
    check_paths(args.input, args.output)
    reader = open_input(args.input)
    with reader:
        comment = (f"Reinflated by {PROG} {VERSION}: cut records padded back to their original "
                   f"length with filler, checksums {config['reinflate.checksum_policy']}d")
        writer = open_output(reader, args.output, comment)
        tail_error = None
        try:
            for frames in reinflater.frames(reader.batches()):
                writer.write_batch(frames, [len(data) for _, data, _ in frames])
        except PcapReadError as e:
            tail_error = tail_of(e)
        except PcapWriteError as e:
            raise MainToolError(str(e)) from None
    return finish(writer, tail_error, reinflater.stats.block() if args.stats else None)
