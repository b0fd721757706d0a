"""The cycle collector during a run (engine/run/collector.py, issue 21): passes come less
often and skip what the set-up made.  In a child interpreter: the setting is process-wide."""

from __future__ import annotations

import subprocess
import sys


def test_a_settled_run_collects_less_often_and_never_walks_the_set_up():
    code = ("import gc\nfrom pcapconstrictor.engine.run import collector\n"
            "before = gc.get_freeze_count()\ncollector.settle()\n"
            "print(gc.get_threshold()[0], before, gc.get_freeze_count())\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    threshold, before, after = map(int, done.stdout.split())
    assert threshold == 50_000
    assert before == 0 and after > 1000  # the modules' objects, at least
