"""What every command does first: load the config and the policy, apply the command line."""

from __future__ import annotations

from argparse import Namespace

from pcapconstrictor.engine.config import ConfigError, load_config
from pcapconstrictor.engine.run import options as run_options
from pcapconstrictor.engine.run.policy_select import prepare_policy
from pcapconstrictor.grammar import PolicyError

# argparse destinations the run layer reads, by the option that sets them
RUN_OPTIONS = {"--config": "config", "--offline-input": "offline_input", "--rules": "rules",
               "--decision-log": "decision_log", "--output": "output", "--filter": "filter",
               "--user": "user", "--debug": "debug"}  # fmt: skip


class Failure(Exception):
    """An expected failure: ``str()`` is the whole line printed to stderr."""


def run_options_of(args: Namespace) -> dict:
    """The options the run layer reads (``engine.run.options``), keyed by flag; unset ones left out."""
    opts = {}
    for flag, dest in RUN_OPTIONS.items():
        value = getattr(args, dest, None)
        if value not in (None, False):
            opts[flag] = value
    return opts


def load_run(opts: dict, compiled: bool = False):
    """The config with the command line applied, and the policy it selects (with ``compiled``,
    perhaps a CachedPolicy: the run binds it without parsing the rule files)."""
    try:
        config = load_config(str(opts["--config"]))
    except ConfigError as e:
        raise Failure(f"Configuration error: {e}") from None
    run_options.apply_command_line(config, opts)  # issue 8: --output, --filter
    try:
        # a run (compiled=True) takes the compiled policy from the cache when warm; audit,
        # explain and a decision log need the parsed rules themselves
        traced = not compiled or "--decision-log" in opts
        policy = prepare_policy(config, opts.get("--rules"), traced=traced)
        run_options.compile_capture_filter(config)  # a bad filter fails before anything opens
    except PolicyError as e:
        raise Failure(str(e)) from None
    except run_options.SetupError as e:
        raise Failure(str(e)) from None
    return config, policy
