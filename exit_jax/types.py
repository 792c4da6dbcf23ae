"""Plain data types shared by every layer: self-iteration instances, grades, episodes, and the Domain protocol.

Nothing here imports JAX. Domains (layer 2) and the curriculum (layer 2) both speak these types, and the trainer
(layer 3) moves them between the two, so they live below both.

A *task instance* in ExIt is a base task plus a partial history that the policy is asked to continue or to improve:
``(task, history up to turn t, iterate index k, previous response, feedback, mode)``. A base task is the instance with
``iterate == 0`` and no previous response. An instance produced by taking one self-iteration step from another is its
*child*; ``parent_id`` and ``depth`` keep the lineage so the bootstrapped task space can be drawn and measured.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

Mode = Literal["base", "improve", "diverge", "debug"]
MODES: tuple[str, ...] = ("base", "improve", "diverge", "debug")


@dataclasses.dataclass(frozen=True)
class Message:
    """One chat message. ``role`` is one of system / user / assistant / tool."""

    role: str
    content: str


@dataclasses.dataclass(frozen=True)
class Instance:
    """A self-iteration task instance.

    Attributes:
      task_id: the base task's identifier within its domain.
      history: messages that precede the current turn (empty for single-turn domains).
      turn: index t of the current turn (0 for single-turn domains).
      iterate: k, the number of self-iteration steps already taken on this turn (0 for a base task).
      previous_response: the latest iterate y_t^k that the policy is asked to improve (None for a base task).
      feedback: optional feedback on the previous response shown to the policy (printed output, validation score, an
        error trace). Never derived from held-out answers.
      previous_score: the previous response's normalised quality in [0, 1], used for the improvement reward r_imp. Kept
        out of prompts.
      mode: "base" (fresh task), "improve", "diverge" (self-divergence), or "debug" (previous iterate crashed).
      parent_id: buffer id of the instance this one was expanded from (None for base tasks).
      depth: lineage depth (number of expansions from the base task).
      extra: domain-specific JSON-serialisable payload (e.g. the tool-use API state needed to resume a turn).
    """

    task_id: str
    history: tuple[Message, ...] = ()
    turn: int = 0
    iterate: int = 0
    previous_response: str | None = None
    feedback: str | None = None
    previous_score: float | None = None
    mode: Mode = "base"
    parent_id: int | None = None
    depth: int = 0
    extra: tuple[tuple[str, Any], ...] = ()

    def content_key(self) -> str:
        """A hash of what the policy would see, for de-duplication (lineage and mode excluded)."""
        payload = json.dumps(
            [
                self.task_id,
                [(m.role, m.content) for m in self.history],
                self.turn,
                self.previous_response,
                self.feedback,
            ],
            sort_keys=True,
        )
        return hashlib.sha1(payload.encode()).hexdigest()

    def with_mode(self, mode: Mode) -> Instance:
        return dataclasses.replace(self, mode=mode)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["history"] = [[m.role, m.content] for m in self.history]
        d["extra"] = [[k, v] for k, v in self.extra]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Instance:
        d = dict(d)
        d["history"] = tuple(Message(r, c) for r, c in d.get("history", ()))
        d["extra"] = tuple((k, v) for k, v in d.get("extra", ()))
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class Grade:
    """The verdict on one response (or one multi-turn episode).

    Attributes:
      reward: the training reward (absolute correctness for math / tool use; r_imp for MLE improve steps).
      score: the final quality measure in [0, 1] (normalised score); the learnability score S is its group variance.
      valid: False when the response could not be executed or parsed.
      feedback: what the policy may see next time (never derived from held-out answers).
      error: a short machine-readable reason when invalid.
      info: anything else worth logging (JSON-serialisable).
    """

    reward: float
    score: float
    valid: bool = True
    feedback: str | None = None
    error: str | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Episode:
    """One rollout of an instance: the transcript the policy produced and its grade.

    ``messages`` is the whole conversation the policy saw and wrote, in order, for re-tokenising multi-turn episodes
    with non-assistant tokens masked. ``children`` are the new instances this episode makes available to the buffer
    (for multi-turn domains, one per per-turn partial history); ``children[-1]`` is the expansion of the final turn.
    """

    instance: Instance
    messages: list[Message]
    grade: Grade
    children: list[Instance]
    has_valid_action: bool = True


# policy_fn maps a batch of chat conversations to a batch of response strings (one sampled continuation each).
PolicyFn = Callable[[Sequence[Sequence[Message]]], list[str]]


@runtime_checkable
class Domain(Protocol):
    """What a domain provides. Adding a domain touches only ``exit_jax/domains/`` and one experiment file."""

    name: str
    multi_turn: bool

    def task_ids(self, split: str) -> Sequence[str]:
        """Base task ids of a split: "train" or "heldout" (domains may add named held-out sets)."""

    def base_instance(self, task_id: str) -> Instance:
        """The k = 0 instance of a base task."""

    def render(self, instance: Instance) -> list[Message]:
        """The chat messages the policy sees for this instance (system prompt, history, request / improve prompt)."""

    def grade(self, instances: Sequence[Instance], responses: Sequence[str]) -> list[Grade]:
        """Grade single-turn responses (batched so sandboxes can run them in parallel)."""

    def child(self, instance: Instance, response: str, grade: Grade) -> Instance:
        """The expansion m+: the instance that asks to improve ``response`` (iterate + 1, feedback from ``grade``)."""

    def rollout(self, instances: Sequence[Instance], policy_fn: PolicyFn) -> list[Episode]:
        """Run one episode per instance. Single-turn domains: render, one policy call, grade."""


def single_turn_rollout(domain: Domain, instances: Sequence[Instance], policy_fn: PolicyFn) -> list[Episode]:
    """The rollout of any single-turn domain: one batched policy call, one batched grading call."""
    prompts = [domain.render(inst) for inst in instances]
    responses = policy_fn(prompts)
    grades = domain.grade(instances, responses)
    episodes = []
    for inst, prompt, response, grade in zip(instances, prompts, responses, grades, strict=True):
        episodes.append(
            Episode(
                instance=inst,
                messages=[*prompt, Message("assistant", response)],
                grade=grade,
                children=[domain.child(inst, response, grade)],
            )
        )
    return episodes


def improvement_reward(score: float, previous_score: float, eps: float = 1e-6) -> float:
    """r_imp = max(0, (r_k - r_{k-1}) / (1 - r_{k-1})), both normalised to [0, 1].

    The guard: when the previous iterate is already perfect (r_{k-1} = 1) there is nothing left to improve; the
    denominator is floored at ``eps`` so a still-perfect answer gets 0 (no improvement) rather than NaN.
    """
    denominator = max(eps, 1.0 - previous_score)
    return max(0.0, (score - previous_score) / denominator)
