"""Domain registry: config name -> Domain constructor (imported lazily, so a run pays only for its own domain)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from exit_jax.types import Domain

DOMAINS: dict[str, str] = {
    "mle": "exit_jax.domains.mle.domain:MLEDomain",
    "math": "exit_jax.domains.math.domain:MathDomain",
    "tooluse": "exit_jax.domains.tooluse.domain:ToolUseDomain",
}


def make_domain(name: str, config: Mapping[str, Any] | None = None) -> Domain:
    """Build a domain from its config section (``config.domain`` minus its ``name`` field)."""
    if name not in DOMAINS:
        raise ValueError(f"domain.name: unknown domain {name!r}; choose one of {sorted(DOMAINS)}")
    module_name, class_name = DOMAINS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    values = _plain(config or {})
    if name == "mle":
        return cls(_mle_config(values))
    return cls(values)


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return values.to_dict() if hasattr(values, "to_dict") else dict(values)


def _mle_config(values: dict[str, Any]):
    from exit_jax.domains.mle.domain import MLEConfig
    from exit_jax.domains.mle.sandbox import SandboxLimits

    known = {"solution_format", "workers", "competition_dirs", "builtin_competitions", "heldout_competitions",
             "extra_competitions", "feedback_chars", "limits", "allow_weak_sandbox", "max_failed_batches"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"mle config: unknown field(s) {unknown}; known: {sorted(known)}")
    limits = dict(values.pop("limits", {}) or {})
    try:
        values["limits"] = SandboxLimits(**limits)
    except TypeError as err:
        raise ValueError(f"mle config: domain.limits: {err}") from err
    return MLEConfig(**values)  # list fields (competition_dirs, ...) become tuples there, a string split at commas
