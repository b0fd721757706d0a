"""Where the files of a batch run: this process, a pool of local processes, or a Dask cluster.

Each runner takes the same jobs (input, output) and yields :func:`archive.constrict_file`'s
result dicts as files finish, in any order.  Dask gets the very same function as a task: its
workers must see the inputs, the outputs and the config at the same paths (give absolute ones),
and a lost worker's task is run again by Dask; the temporary name keeps every output whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

from .archive import constrict_file, prepare

Job = tuple[str, str]  # (input path, output path)


class SchedulerError(Exception):
    """The Dask cluster cannot be used (package missing, scheduler unreachable)."""


def run_here(jobs: list[Job], config: str, rules: str | None, force: bool) -> Iterator[dict]:
    """One file after another in this process (``--jobs 1``)."""
    for input_path, output_path in jobs:
        yield constrict_file(input_path, output_path, config, rules, force)


def run_local(jobs: list[Job], workers: int, config: str, rules: str | None, force: bool) -> Iterator[dict]:
    """On ``workers`` local processes, each of which loads the config and policy once."""
    if workers <= 1 or len(jobs) <= 1:
        yield from run_here(jobs, config, rules, force)
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=prepare,
                               initargs=(config, rules))  # fmt: skip
    try:
        futures = {pool.submit(constrict_file, i, o, config, rules, force): (i, o) for i, o in jobs}
        for future in as_completed(futures):
            yield _result(future, *futures[future])
    finally:
        # after Ctrl+C: files not started are dropped; started ones finish whole or not at all
        pool.shutdown(wait=False, cancel_futures=True)


def run_dask(jobs: list[Job], address: str, config: str, rules: str | None, force: bool) -> Iterator[dict]:
    """One task per file on the Dask cluster at ``address`` (``tcp://host:port``)."""
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError:
        raise SchedulerError("--scheduler needs the Dask 'distributed' package: "
                             "pip install 'pcapconstrictor-afpacket[dask]'") from None  # fmt: skip
    try:
        client = Client(address, timeout=30)
    except (OSError, TimeoutError) as e:
        raise SchedulerError(f"cannot reach the Dask scheduler at {address}: {e}") from None
    try:
        futures = {client.submit(constrict_file, i, o, config, rules, force, pure=False): (i, o)
                   for i, o in jobs}  # fmt: skip
        for future in dask_completed(list(futures)):
            yield _result(future, *futures[future])
    finally:
        client.close()


def _result(future, input_path: str, output_path: str) -> dict:
    """The job's dict; a task that died (a worker lost too often, a bug) is a failed file."""
    try:
        return future.result()
    except Exception as e:
        return {"input": input_path, "output": output_path, "status": "failed", "packets": 0,
                "error": f"{type(e).__name__}: {e}", "bytes_input": 0, "bytes_output": 0,
                "counters": {}, "seconds": 0.0}  # fmt: skip


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
