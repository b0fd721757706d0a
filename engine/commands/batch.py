"""``batch``: constrict every capture of an archive with one config (issue 19).

Each input file, or each capture under an input folder, goes to ``--output-dir`` under its
relative path (a ``.gz``/``.zst`` suffix dropped: the output is uncompressed).  Files already
there are skipped unless ``--force``; one bad input is reported and counted, the others go on.
"""

from __future__ import annotations

import json
import os
import sys
import time

from pcapconstrictor.engine.run import archive_runners as runners
from pcapconstrictor.engine.run.archive import ArchiveSetupError, partial_names, prepare
from pcapconstrictor.engine.sources.capture_files import find_captures, output_name

from .loading import Failure


def run(args) -> int:
    """Returns 0 when every file is done or skipped, 1 if any failed, 130 after Ctrl+C."""
    try:
        return _batch(args)
    except Failure as e:
        sys.stderr.write(f"{e}\n")
        return 1


def _batch(args) -> int:
    config, rules = os.path.abspath(args.config), args.rules and os.path.abspath(args.rules)
    try:
        prepare(config, rules)  # a bad config or policy fails once, here, before any file
    except ArchiveSetupError as e:
        raise Failure(str(e)) from None
    out_dir = os.path.abspath(args.output_dir)
    jobs, failures = plan(args.inputs, out_dir)
    _remove_partials(jobs)  # what a run that was killed left behind
    summary = Summary(len(jobs) + len(failures), progress=sys.stderr.isatty() and not args.json)
    for failure in failures:
        summary.add(failure)
    try:
        if args.scheduler:
            results = runners.run_dask(jobs, args.scheduler, config, rules, args.force)
        else:
            results = runners.run_local(jobs, args.jobs or runners.default_jobs(), config, rules, args.force)
        for result in results:
            summary.add(result)
    except runners.SchedulerError as e:
        raise Failure(f"batch: {e}") from None
    except KeyboardInterrupt:
        summary.interrupted = True
    if not summary.interrupted:  # every task has ended: a worker lost midway left its temporary file
        _remove_partials(jobs)
    summary.finish(args.json)
    if summary.interrupted:
        return 130
    return 1 if summary.count("failed") else 0


def _remove_partials(jobs: list[tuple[str, str]]) -> None:
    for _, output in jobs:
        for name in partial_names(output):
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass


def plan(inputs: list[str], out_dir: str) -> tuple[list[tuple[str, str]], list[dict]]:
    """(input, output) pairs, absolute; and failed entries for inputs that cannot be done
    (missing, or a second input for the same output)."""
    jobs: list[tuple[str, str]] = []
    failures: list[dict] = []
    taken: dict[str, str] = {}
    for given in inputs:
        top = os.path.abspath(given)
        if os.path.isdir(top):
            pairs = [(p, os.path.relpath(p, top)) for p in find_captures(top, skip=out_dir)]
        elif os.path.exists(top):
            pairs = [(top, os.path.basename(top))]
        else:
            failures.append(_failed(top, "", "no such file or folder"))
            continue
        for path, relative in pairs:
            output = os.path.join(out_dir, output_name(relative))
            if output in taken:
                twice = f"output '{output}' is also written from '{taken[output]}'"
                failures.append(_failed(path, output, twice))
                continue
            taken[output] = path
            jobs.append((path, output))
    return jobs, failures


def _failed(input_path: str, output: str, error: str) -> dict:
    return {"input": input_path, "output": output, "status": "failed", "error": error, "packets": 0,
            "bytes_input": 0, "bytes_output": 0, "counters": {}, "seconds": 0.0}  # fmt: skip


class Summary:
    """The figures of a batch as files finish: a progress line on a terminal, failures on
    stderr at once, the table (or JSON) at the end."""

    def __init__(self, total: int, progress: bool) -> None:
        self.total = total
        self.progress = progress
        self.results: list[dict] = []
        self.start = self.shown = time.monotonic()
        self.interrupted = False

    def add(self, result: dict) -> None:
        self.results.append(result)
        if result["status"] == "failed":
            self._clear()
            sys.stderr.write(f"batch: {result['input']}: {result['error']}\n")
        if self.progress and time.monotonic() - self.shown >= 0.2:
            self.shown = time.monotonic()
            rate = self.sum("packets") / max(self.shown - self.start, 1e-9)
            sys.stderr.write(f"\r{len(self.results)}/{self.total} files, {self.sum('packets'):,} packets, "
                             f"{self.sum('bytes_input') - self.sum('bytes_output'):,} bytes saved, "
                             f"{rate:,.0f} pkt/s ")  # fmt: skip
            sys.stderr.flush()

    def _clear(self) -> None:
        if self.progress:
            sys.stderr.write("\r\033[K")

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r["status"] == status)

    def sum(self, key: str) -> int:
        return sum(r[key] for r in self.results)

    def figures(self) -> dict:
        seconds = time.monotonic() - self.start
        done = self.count("done")
        bytes_in, bytes_out = self.sum("bytes_input"), self.sum("bytes_output")
        return {"files": self.total, "done": done, "skipped": self.count("skipped"),
                "failed": self.count("failed"), "not_run": self.total - len(self.results),
                "packets": self.sum("packets"), "bytes_input": bytes_in, "bytes_output": bytes_out,
                "bytes_saved": bytes_in - bytes_out, "seconds": round(seconds, 3),
                "files_per_second": round(done / seconds, 2) if seconds else 0.0,
                "packets_per_second": round(self.sum("packets") / seconds) if seconds else 0,
                "interrupted": self.interrupted,
                "failures": [{"input": r["input"], "error": r["error"]}
                             for r in self.results if r["status"] == "failed"]}  # fmt: skip

    def finish(self, as_json: bool) -> None:
        self._clear()
        f = self.figures()
        if as_json:
            sys.stdout.write(json.dumps({**f, "results": self.results}, indent=2) + "\n")
            return
        saved = f"{f['bytes_saved']:,}" + (f" ({100 * f['bytes_saved'] / f['bytes_input']:.1f} %)"
                                           if f["bytes_input"] else "")  # fmt: skip
        state = "interrupted" if self.interrupted else "completed"
        rows = [("files", f"{f['files']:,}"), ("done", f"{f['done']:,}"),
                ("skipped (already done)", f"{f['skipped']:,}"), ("failed", f"{f['failed']:,}"),
                ("packets", f"{f['packets']:,}"), ("bytes input", f"{f['bytes_input']:,}"),
                ("bytes output", f"{f['bytes_output']:,}"), ("bytes saved", saved),
                ("time", f"{f['seconds']:.1f} s, {f['files_per_second']:,.1f} files/s, "
                         f"{f['packets_per_second']:,} pkt/s")]  # fmt: skip
        if f["not_run"]:
            rows.insert(4, ("not run", f"{f['not_run']:,}"))
        sys.stdout.write(f"Batch {state}.\n" + "".join(f"{k:24}{v}\n" for k, v in rows))
