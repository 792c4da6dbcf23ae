"""The competition-math Domain: single-turn problems, boxed answers, 1/0 math-verify reward.

Sources:
- ``"procedural"`` (default; offline, for the embedded CPU policy): generated problems, see
  ``procedural.py``.
- ``"files"``: local JSONL/JSON/Parquet files (``datasets.py``); ``train_files`` are pooled and a
  fixed seeded subset
  of ``train_size`` problems (1,280 in the paper) is the training set; each entry of
  ``heldout_files`` is a named held-out set, addressed as split ``"heldout/<name>"``; split
  ``"heldout"`` is all of them in order.

Improve and diverge steps get the same absolute-correctness reward as base tasks (notes §1.4, math
practice).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exit_jax.domains.math.datasets import MathProblem, load_problem_file, training_subset
from exit_jax.domains.math.demonstrations import TEACHER_ACCURACY, demonstrations
from exit_jax.domains.math.grading import judge
from exit_jax.domains.math.procedural import FAMILIES, procedural_splits
from exit_jax.domains.math.prompts import PROMPT_STYLES, render_math_prompt
from exit_jax.types import Episode, Grade, Instance, Message, PolicyFn, single_turn_rollout

SOURCES = ("procedural", "files")


def heldout_sets(value: Any) -> tuple[tuple[str, str], ...]:
    """Named held-out sets from a config value: ``"name=path"`` strings (a bare path is named after its file's stem),
    (name, path) pairs, or a {name: path} mapping; names must be unique."""
    items = value.items() if isinstance(value, Mapping) else value
    sets: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, str):
            name, _, path = item.partition("=") if "=" in item else ("", "", item)
            name = name.strip() or Path(path).stem
        else:
            name, path = item
        sets.append((str(name), str(path).strip()))
    names = [name for name, _ in sets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"math config: domain.heldout_files names {repeated} more than once; name each set "
                         "('name=path')")
    return tuple(sets)


@dataclasses.dataclass(frozen=True)
class MathConfig:
    """Math domain settings (field names used by experiment configs)."""

    source: str = "procedural"
    train_files: tuple[str, ...] = ()
    heldout_files: tuple[tuple[str, str], ...] = ()
    train_size: int = 1280
    seed: int = 0
    prompt_style: str = "chat"
    procedural_families: tuple[str, ...] = FAMILIES
    procedural_heldout_size: int = 200
    procedural_max_operand: int = 50
    # None: True for the "chat" prompts (the paper's boxed format), False for "compact" (tiny policy).
    require_boxed: bool | None = None
    # The warm-start teacher's chance of being right on an attempt (demonstrations.py); procedural source only.
    teacher_accuracy: float = TEACHER_ACCURACY

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> MathConfig:
        """Build from a dict or ConfigDict; unknown keys are an error naming the key."""
        values = dict(values.to_dict() if hasattr(values, "to_dict") else values)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"math config: unknown field(s) {unknown}; known: {sorted(known)}")
        if "train_files" in values:
            values["train_files"] = tuple(values["train_files"])
        if "heldout_files" in values:
            values["heldout_files"] = heldout_sets(values["heldout_files"])
        if "procedural_families" in values:
            values["procedural_families"] = tuple(values["procedural_families"])
        return cls(**values)

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"math config: source must be one of {SOURCES}, got {self.source!r}")
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f"math config: prompt_style must be one of {PROMPT_STYLES}, got {self.prompt_style!r}")
        if self.train_size <= 0:
            raise ValueError(f"math config: train_size must be positive, got {self.train_size}")
        if self.source == "files" and not self.train_files:
            raise ValueError("math config: domain.source='files' needs domain.train_files (JSONL/JSON/Parquet paths), "
                             "e.g. --config.domain.train_files=\"('/data/train.jsonl',)\"")
        if self.source == "files" and not self.heldout_files:
            raise ValueError("math config: domain.source='files' needs domain.heldout_files (held-out sets as "
                             "'name=path' entries), e.g. "
                             "--config.domain.heldout_files=\"('math500=/data/test.jsonl',)\"")
        if self.source == "procedural" and (self.train_files or self.heldout_files):
            raise ValueError("math config: domain.train_files / domain.heldout_files are read only with "
                             "domain.source='files' (it is 'procedural'); add --config.domain.source=files")
        if self.source == "procedural" and self.procedural_heldout_size <= 0:
            raise ValueError("math config: procedural_heldout_size must be positive")
        if not 0.0 <= self.teacher_accuracy <= 1.0:
            raise ValueError(f"math config: teacher_accuracy must be in [0, 1], got {self.teacher_accuracy}")


class MathDomain:
    """Single-turn math with the Domain protocol of ``exit_jax.types``."""

    name = "math"
    multi_turn = False

    def __init__(self, config: MathConfig | Mapping[str, Any] | None = None):
        if config is None:
            config = MathConfig()
        elif not isinstance(config, MathConfig):
            config = MathConfig.from_mapping(config)
        config.validate()
        self.config = config
        self.require_boxed = config.prompt_style == "chat" if config.require_boxed is None else config.require_boxed
        self._problems: dict[str, MathProblem] = {}
        self._splits: dict[str, list[str]] = {}
        if config.source == "procedural":
            train, heldout = procedural_splits(
                config.seed,
                config.train_size,
                config.procedural_heldout_size,
                config.procedural_families,
                config.procedural_max_operand,
            )
            self._add_split("train", train)
            self._add_split("heldout", heldout)
            for family in config.procedural_families:
                family_ids = [p.task_id for p in heldout if p.source == f"procedural/{family}"]
                self._splits[f"heldout/{family}"] = family_ids
        else:
            pool = [problem for path in config.train_files for problem in load_problem_file(path)]
            self._add_split("train", training_subset(pool, config.train_size, config.seed))
            all_heldout: list[str] = []
            for set_name, path in config.heldout_files:
                problems = load_problem_file(path, set_name)
                self._add_split(f"heldout/{set_name}", problems)
                all_heldout.extend(p.task_id for p in problems)
            self._splits["heldout"] = all_heldout

    def _add_split(self, split: str, problems: Sequence[MathProblem]) -> None:
        for problem in problems:
            self._problems[problem.task_id] = problem
        self._splits[split] = [problem.task_id for problem in problems]

    def problem(self, task_id: str) -> MathProblem:
        if task_id not in self._problems:
            raise KeyError(f"math: unknown task id {task_id!r}")
        return self._problems[task_id]

    def splits(self) -> list[str]:
        return sorted(self._splits)

    def task_ids(self, split: str) -> Sequence[str]:
        if split not in self._splits:
            raise KeyError(f"math: unknown split {split!r}; available: {self.splits()}")
        return list(self._splits[split])

    def base_instance(self, task_id: str) -> Instance:
        self.problem(task_id)
        return Instance(task_id=task_id)

    def render(self, instance: Instance) -> list[Message]:
        return render_math_prompt(self.problem(instance.task_id).problem, instance, self.config.prompt_style)

    def grade(self, instances: Sequence[Instance], responses: Sequence[str]) -> list[Grade]:
        grades = []
        for instance, response in zip(instances, responses, strict=True):
            verdict = judge(response, self.problem(instance.task_id).answer, self.require_boxed)
            reward = 1.0 if verdict.correct else 0.0
            grades.append(
                Grade(
                    reward=reward,
                    score=reward,
                    valid=verdict.extracted is not None or (not self.require_boxed and bool(verdict.parsed)),
                    error=verdict.error,
                    info={"extracted": verdict.extracted},
                )
            )
        return grades

    def child(self, instance: Instance, response: str, grade: Grade) -> Instance:
        return Instance(
            task_id=instance.task_id,
            iterate=instance.iterate + 1,
            previous_response=response,
            previous_score=grade.score,
            mode="improve",
            depth=instance.depth + 1,
        )

    def rollout(self, instances: Sequence[Instance], policy_fn: PolicyFn) -> list[Episode]:
        return single_turn_rollout(self, instances, policy_fn)

    def demonstrations(self, count: int, rng: np.random.Generator) -> list[tuple[Instance, str]]:
        """Warm-start pairs from a fallible teacher on training problems only (see ``demonstrations.py``).

        Procedural source only: the teacher's wrong answers are numeric near misses, which a file's LaTeX answers do
        not support. Asked for anyway (``warm_start.steps`` > 0 with ``source="files"``), this names the reason instead
        of handing the trainer an empty batch.
        """
        if self.config.source != "procedural":
            raise ValueError(
                f"math: warm-start demonstrations exist for source='procedural' only, not "
                f"{self.config.source!r}; set warm_start.steps=0"
            )
        return demonstrations(self, count, rng, self.config.teacher_accuracy)
