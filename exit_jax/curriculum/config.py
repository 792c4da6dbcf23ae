"""Curriculum configuration: the defaults, the method ladder, and start-up validation.

The paper's ablation ladder (notes §1.8) is a choice of *components*; the numbers (p, p_div, N,
B_min, kappa) stay hyperparameters of the config:

| method       | replay | expansion (children, improve prompt) | divergence | diversity bonus |
|--------------|--------|--------------------------------------|------------|-----------------|
| `grpo`       | off    | off                                  | off        | off             |
| `curriculum` | on     | off (base tasks / turn prefixes only)| off        | off             |
| `improve`    | on     | on                                   | off        | off             |
| `diverge`    | on     | on                                   | on         | off             |
| `exit`       | on     | on                                   | on         | on              |

``get_config(method)`` returns an ``ml_collections.ConfigDict`` of defaults;
``settings_from_config`` validates it and resolves the ladder into a frozen
:class:`CurriculumSettings` that the buffer, selection and diversity code read. The component
switches ``replay``, ``expansion``, ``divergence`` and ``diversity_bonus`` are placeholders (None):
left unset they follow ``method``; set explicitly they override it (e.g. ``exit`` without the
bonus).

Choices where the paper is silent (see docs/curriculum.md for the reasoning):
  * ``kappa = 10``: S <= 0.25, so the most learnable entry is exp(kappa / 4) ~ 12x likelier than a
    solved one.
  * ``score_fn = "variance"``: population variance (ddof = 0) of the group's quality scores,
    each in [0, 1].
  * ``insert_children = "all"``: every rollout's expansion enters (dedupe merges repeats).
  * ``insert_played = True``: the played base instance itself enters with its fresh S (Algorithm 1's
    "update B with m+ and m'"); replayed entries are overwritten with their fresh S.
"""

from __future__ import annotations

import dataclasses
import math

import ml_collections
from ml_collections import config_dict

METHODS: tuple[str, ...] = ("grpo", "curriculum", "improve", "diverge", "exit")
SCORE_FNS: tuple[str, ...] = ("variance", "std", "binary")
PRIORITIZATIONS: tuple[str, ...] = ("softmax", "rank")
INSERT_CHILDREN: tuple[str, ...] = ("all", "best", "sample")
DIVERSITY_NORMALIZATIONS: tuple[str, ...] = ("range", "minmax", "mean")

# Which components each rung of the ladder switches on (notes §1.8).
METHOD_COMPONENTS: dict[str, dict[str, bool]] = {
    "grpo": dict(replay=False, expansion=False, divergence=False, diversity_bonus=False),
    "curriculum": dict(replay=True, expansion=False, divergence=False, diversity_bonus=False),
    "improve": dict(replay=True, expansion=True, divergence=False, diversity_bonus=False),
    "diverge": dict(replay=True, expansion=True, divergence=True, diversity_bonus=False),
    "exit": dict(replay=True, expansion=True, divergence=True, diversity_bonus=True),
}


def method_components(method: str) -> dict[str, bool]:
    """The component switches of a rung: replay, expansion, divergence, diversity_bonus."""
    if method not in METHOD_COMPONENTS:
        raise ValueError(f"curriculum.method: unknown method {method!r}; choose one of {METHODS}")
    return dict(METHOD_COMPONENTS[method])


def get_config(method: str = "exit") -> ml_collections.ConfigDict:
    """Curriculum defaults (the math domain's Table 4 values where the paper gives them)."""
    method_components(method)  # validate the name early
    c = ml_collections.ConfigDict()
    c.method = method
    # Component switches: None follows `method`, a bool overrides it.
    c.replay = config_dict.placeholder(bool)
    c.expansion = config_dict.placeholder(bool)
    c.divergence = config_dict.placeholder(bool)
    c.diversity_bonus = config_dict.placeholder(bool)
    # Buffer and replay (paper symbols: N, B_min, p, kappa).
    c.buffer_size = 512
    c.min_buffer_size = 128
    c.replay_prob = 0.5
    c.kappa = 10.0
    c.divergence_prob = 0.2
    # Learnability score S of a group: "variance" (population), "std", or "binary" p(1 - p).
    c.score_fn = "variance"
    c.success_threshold = 0.5  # quality >= this counts as solved for score_fn="binary"
    # Prioritisation: "softmax" (paper) or "rank" (PLR: (1/rank)^(1/temperature)), plus an
    # optional PLR staleness mix.
    c.prioritization = "softmax"
    c.temperature = 1.0
    c.staleness_coef = 0.0
    # Which rollouts of a group give children: "all", "best" (highest quality), or "sample"
    # (children_sample_size of them, uniformly).
    c.insert_children = "all"
    c.children_sample_size = 1
    c.insert_played = True
    # Diversity bonus, "range" = Eq. 6 as printed: d_i = ||e_i - mean|| / (max_j - min_j of the
    # group's distances); see diversity.py for "minmax" and "mean".
    c.diversity_normalization = "range"
    # A group's spread counts as zero (d = 1) at or below diversity_range_eps x its largest embedding norm.
    c.diversity_range_eps = 1e-5
    c.seed = 0
    return c


@dataclasses.dataclass(frozen=True)
class CurriculumSettings:
    """Validated, resolved curriculum settings (ladder applied); fields as in ``get_config``."""

    method: str = "exit"
    replay: bool = True
    expansion: bool = True
    divergence: bool = True
    diversity_bonus: bool = True
    buffer_size: int = 512
    min_buffer_size: int = 128
    replay_prob: float = 0.5
    kappa: float = 10.0
    divergence_prob: float = 0.2
    score_fn: str = "variance"
    success_threshold: float = 0.5
    prioritization: str = "softmax"
    temperature: float = 1.0
    staleness_coef: float = 0.0
    insert_children: str = "all"
    children_sample_size: int = 1
    insert_played: bool = True
    diversity_normalization: str = "range"
    diversity_range_eps: float = 1e-5
    seed: int = 0

    @property
    def effective_replay_prob(self) -> float:
        """p when replay is on, else 0 (every prompt is a base task)."""
        return self.replay_prob if self.replay else 0.0

    @property
    def effective_divergence_prob(self) -> float:
        """p_div when self-divergence is on (it needs expansion: only iterates can be diverged)."""
        return self.divergence_prob if (self.divergence and self.expansion) else 0.0


def _fail(field: str, reason: str) -> None:
    raise ValueError(f"curriculum config field '{field}': {reason}")


def _check_choice(field: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        _fail(field, f"got {value!r}; choose one of {choices}")


def _check_number(field: str, value: object, low: float, high: float | None = None,
                  integer: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(field, f"must be a number, got {value!r}")
    if integer and not isinstance(value, int):
        _fail(field, f"must be an integer, got {value!r}")
    if not math.isfinite(value):
        _fail(field, f"must be finite, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        _fail(field, f"must be {bound}, got {value!r}")


def settings_from_config(config: ml_collections.ConfigDict | dict) -> CurriculumSettings:
    """Validate a curriculum config and resolve the method ladder.

    Raises:
      ValueError: naming the offending field and the reason (unknown method, p outside [0, 1],
        B_min > N, ...).
    """
    values = dict(config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config)
    known = {f.name for f in dataclasses.fields(CurriculumSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        _fail(unknown[0], f"unknown field; known fields are {sorted(known)}")
    method = values.get("method", "exit")
    _check_choice("method", method, METHODS)
    resolved = method_components(method)
    for name in resolved:
        override = values.get(name)
        if override is not None:
            if not isinstance(override, bool):
                _fail(name, f"must be true, false or unset (follow `method`), got {override!r}")
            resolved[name] = override
    values.update(resolved)
    defaults = CurriculumSettings()
    merged = {f.name: values.get(f.name, getattr(defaults, f.name))
              for f in dataclasses.fields(defaults)}

    _check_number("buffer_size", merged["buffer_size"], 1, integer=True)
    _check_number("min_buffer_size", merged["min_buffer_size"], 1, integer=True)
    if merged["min_buffer_size"] > merged["buffer_size"]:
        _fail("min_buffer_size", f"B_min={merged['min_buffer_size']} exceeds buffer_size="
              f"{merged['buffer_size']}, so replay could never start")
    _check_number("replay_prob", merged["replay_prob"], 0.0, 1.0)
    _check_number("kappa", merged["kappa"], 0.0, 1e4)
    _check_number("divergence_prob", merged["divergence_prob"], 0.0, 1.0)
    _check_choice("score_fn", merged["score_fn"], SCORE_FNS)
    _check_number("success_threshold", merged["success_threshold"], 0.0, 1.0)
    _check_choice("prioritization", merged["prioritization"], PRIORITIZATIONS)
    _check_number("temperature", merged["temperature"], 1e-6)
    _check_number("staleness_coef", merged["staleness_coef"], 0.0, 1.0)
    _check_choice("insert_children", merged["insert_children"], INSERT_CHILDREN)
    _check_number("children_sample_size", merged["children_sample_size"], 1, integer=True)
    if not isinstance(merged["insert_played"], bool):
        _fail("insert_played", f"must be true or false, got {merged['insert_played']!r}")
    _check_choice("diversity_normalization", merged["diversity_normalization"],
                  DIVERSITY_NORMALIZATIONS)
    _check_number("diversity_range_eps", merged["diversity_range_eps"], 0.0, 1.0)
    _check_number("seed", merged["seed"], 0, integer=True)
    return CurriculumSettings(**merged)
