"""One file of an archive constricted: the job the batch command runs on local processes or
sends to a Dask cluster (issue 19).

The output is written under a temporary name beside its final one and renamed only once whole
and synced, so a crash or Ctrl+C never leaves a half file under a final name, and a re-run
skips what is finished.  A job takes and returns plain data (picklable, no objects): the
paths, and a small dict of figures.  Each process loads and checks the config and the policy
once (:func:`prepare`); a job then only builds a fresh evaluator (new flow state per file).
"""

from __future__ import annotations

import glob
import os
import time
import uuid

from pcapconstrictor.engine.config import Config, ConfigError, load_config
from pcapconstrictor.engine.sinks.output import rotates
from pcapconstrictor.engine.sinks.pcap_writer import PcapWriteError
from pcapconstrictor.engine.sources.capture_files import PARTIAL_MARK, open_capture
from pcapconstrictor.engine.sources.pcap_reader import PcapReadError
from pcapconstrictor.grammar import Policy, PolicyError

from . import options as run_options
from .pipeline import batches_for, make_pipeline
from .policy_select import select_policy

PARTIAL = PARTIAL_MARK  # temporary outputs: ".<name>.<token>.partial<suffix>" (hidden, same folder)

# (config path, rules) -> (config, policy), per process
_PREPARED: dict[tuple[str, str | None], tuple[Config, Policy]] = {}


class ArchiveSetupError(Exception):
    """The config or the policy cannot be used: no file can be done; ``str()`` is the line."""


def prepare(config_path: str, rules: str | None = None) -> tuple[Config, Policy]:
    """The config and the checked policy, loaded once per process (a process pool's
    initializer; a Dask worker's first job)."""
    key = (config_path, rules)
    if key not in _PREPARED:
        try:
            config = load_config(config_path)
            policy = select_policy(config, rules)
            run_options.compile_capture_filter(config)
        except ConfigError as e:
            raise ArchiveSetupError(f"Configuration error: {e}") from None
        except (PolicyError, run_options.SetupError) as e:
            raise ArchiveSetupError(str(e)) from None
        if rotates(config):
            raise ArchiveSetupError("Configuration error: batch writes one output per input; "
                                    "capture.rotate_bytes and capture.rotate_seconds must be 0")  # fmt: skip
        _PREPARED[key] = (config, policy)
    return _PREPARED[key]


def partial_names(output: str) -> list[str]:
    """Temporary files a run that stopped early left for ``output``."""
    folder, name = os.path.split(output)
    suffix = os.path.splitext(name)[1]
    return glob.glob(os.path.join(glob.escape(folder or "."), f".{glob.escape(name)}.*{PARTIAL}{suffix}"))


def constrict_file(input_path: str, output_path: str, config_path: str, rules: str | None = None,
                   force: bool = False) -> dict:  # fmt: skip
    """Constrict one capture into ``output_path`` (via a temporary name); never raises for a
    bad input: returns ``{"input", "output", "status": "done"|"skipped"|"failed", "error",
    "packets", "bytes_input", "bytes_output", "counters", "seconds"}``."""
    result: dict = {"input": input_path, "output": output_path, "status": "done", "error": "", "packets": 0,
                    "bytes_input": 0, "bytes_output": 0, "counters": {}, "seconds": 0.0}  # fmt: skip
    if _same_file(input_path, output_path):
        result.update(status="failed", error=f"output file '{output_path}' is the input file")
        return result
    if not force and os.path.exists(output_path):
        result["status"] = "skipped"
        return result
    start = time.monotonic()
    try:
        config, policy = prepare(config_path, rules)
        result.update(_constrict(input_path, output_path, config, policy, rules))
    except (ArchiveSetupError, PcapReadError, PcapWriteError, run_options.SetupError, OSError) as e:
        result["status"] = "failed"
        result["error"] = _message(e)
    result["seconds"] = time.monotonic() - start
    return result


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _message(e: Exception) -> str:
    if isinstance(e, OSError):
        return f"{e.strerror or e}: '{e.filename}'" if e.filename else str(e.strerror or e)
    return str(e)


def _constrict(input_path: str, output_path: str, config: Config, policy: Policy, rules: str | None) -> dict:
    folder, name = os.path.split(output_path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}{PARTIAL}{os.path.splitext(name)[1]}")
    job_config = Config(config.path, dict(config.values), dict(config.origin))  # threads share `config`
    job_config.values["capture.output"] = temporary  # the suffix is kept: capture.format auto still works
    opts = {"--rules": rules} if rules else {}
    try:
        with open_capture(input_path) as reader:
            writer = run_options.open_output(job_config, opts)
            try:
                pipeline = make_pipeline(policy, job_config, writer)
                capture_filter = run_options.compile_capture_filter(job_config)
                if capture_filter is not None:
                    batches = capture_filter.select_batches(reader.batches())
                else:
                    batches = batches_for(pipeline, reader)
                for batch in batches:
                    pipeline.run_batch(batch)
            finally:
                writer.close()
        _sync(temporary)
        os.replace(temporary, output_path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    stats = pipeline.stats()
    return {"packets": stats.packets_total, "bytes_input": stats.bytes_input,
            "bytes_output": stats.bytes_output, "counters": dict(stats.counters)}  # fmt: skip


def _sync(path: str) -> None:
    """The file's bytes on disk before its name says it is finished (a crash after the rename
    must not leave an empty final file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
