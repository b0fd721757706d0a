"""Which rule file a run uses: ``--rules``, else the shipped policy named by
``tls.app_data_continuation_policy``."""

from __future__ import annotations

from pcapconstrictor.engine.config import Config
from pcapconstrictor.grammar import Policy, load_policy, shipped_policy_path


def policy_path(config: Config, rules: str | None = None) -> str:
    if rules:
        return rules
    return shipped_policy_path(str(config["tls.app_data_continuation_policy"]))


def select_policy(config: Config, rules: str | None = None) -> Policy:
    return load_policy(policy_path(config, rules))
