"""Live capture (SPEC §2.2): ``--config C`` with no offline input."""

from __future__ import annotations

import sys

from pcapconstrictor.engine.run.capture import run_live

from .loading import Failure, load_run, run_options_of


def run(args) -> int:
    opts = run_options_of(args)
    try:
        config, policy = load_run(opts, compiled=True)
        return run_live(config, policy, opts)
    except Failure as e:
        sys.stderr.write(f"{e}\n")
        return 1
