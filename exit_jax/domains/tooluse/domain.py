"""The multi-turn tool-use Domain (BFCL multi-turn) and its batched episode runner.

An episode serves the task's user requests in order. Every assistant turn is one action
(``calls.parse_action``): a tool call is executed against the simulated APIs and its result comes
back as a ``tool`` message (errors included: bad JSON, an unknown function, wrong argument types, an
exception inside the API); ``<TASK_FINISHED>`` or ``<TASK_ERROR>`` closes the current request and
the next one is asked. A response with no valid action (e.g. cut off by the length limit) ends the
episode with ``has_valid_action = False``, so the trainer can drop it (overlong filtering); running
out of the action budget also ends it. The grade is ``checker.score_trajectory`` on the calls made.

Self-iteration instances (``previous_response`` set) resume a turn: the API state is rebuilt by
replaying the calls stored in ``Instance.extra``, and the improve / diverge message follows the
history that precedes the turn. Every assistant turn of an episode yields a child (its per-turn
partial history, the response to improve, and what is needed to restore the state): ``children[-1]``
is the last turn's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from exit_jax.domains.tooluse.bfcl_data import load_task, load_tasks
from exit_jax.domains.tooluse.calls import TASK_FINISHED
from exit_jax.domains.tooluse.episode import EpisodeRun, ToolUseConfig, request_text
from exit_jax.domains.tooluse.splits import load_split
from exit_jax.types import Episode, Grade, Instance, Message, PolicyFn

__all__ = ["ToolUseConfig", "ToolUseDomain", "request_text"]


def _read_split_file(path: str, known: set[str]) -> dict[str, list[str]]:
    """A user's train / test split: every id a task of the configured categories, no id on both sides."""
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"tooluse config: domain.split_file {path!r} is not a readable JSON file ({error})") from error
    if not isinstance(data, dict) or not all(isinstance(data.get(side), list) for side in ("train", "test")):
        raise ValueError(f"tooluse config: domain.split_file {path!r} must hold {{\"train\": [ids], \"test\": [ids]}}")
    for side in ("train", "test"):
        strangers = [task_id for task_id in data[side] if task_id not in known]
        if strangers:
            raise ValueError(f"tooluse config: domain.split_file {path!r}: {side} ids {strangers[:5]} are not tasks of "
                             "domain.category; add their category or fix the ids")
    both = sorted(set(data["train"]) & set(data["test"]))
    if both:
        raise ValueError(f"tooluse config: domain.split_file {path!r}: ids {both[:5]} are on both sides")
    return {"train": list(data["train"]), "test": list(data["test"])}


class ToolUseDomain:
    """BFCL multi-turn tool use with the Domain protocol of ``exit_jax.types``."""

    name = "tooluse"
    multi_turn = True

    def __init__(self, config: ToolUseConfig | Mapping[str, Any] | None = None):
        if config is None:
            config = ToolUseConfig.training()
        elif not isinstance(config, ToolUseConfig):
            config = ToolUseConfig.from_mapping(config)
        config.validate()
        self.config = config
        all_ids = [task_id for category in config.categories for task_id in load_tasks(category)]
        if config.split_file:
            split = _read_split_file(config.split_file, set(all_ids))
        else:
            base = load_split() if "multi_turn_base" in config.categories else {"train": [], "test": []}
            others = [t for c in config.categories if c != "multi_turn_base" for t in load_tasks(c)]
            split = {"train": base["train"], "test": base["test"] + others}
        self._splits = {"train": split["train"], "test": split["test"], "heldout": split["test"], "all": all_ids}

    def with_config(self, **changes: Any) -> ToolUseDomain:
        """The same domain with other settings (e.g. ``requests="all"`` for held-out evaluation)."""
        return ToolUseDomain(dataclasses.replace(self.config, **changes))

    def task_ids(self, split: str) -> Sequence[str]:
        if split not in self._splits:
            raise KeyError(f"tooluse: unknown split {split!r}; available: {sorted(self._splits)}")
        return list(self._splits[split])

    def base_instance(self, task_id: str) -> Instance:
        load_task(task_id)
        return Instance(task_id=task_id)

    def render(self, instance: Instance) -> list[Message]:
        return list(EpisodeRun(self.config, instance).messages)

    def rollout(self, instances: Sequence[Instance], policy_fn: PolicyFn) -> list[Episode]:
        """Run all episodes together: one ``policy_fn`` call per round with every still-running
        conversation."""
        runs = [EpisodeRun(self.config, instance) for instance in instances]
        while True:
            active = [run for run in runs if not run.done]
            if not active:
                break
            responses = policy_fn([run.conversation() for run in active])
            if len(responses) != len(active):
                raise ValueError(f"policy_fn returned {len(responses)} responses for {len(active)} conversations")
            for run, response in zip(active, responses, strict=True):
                run.step(response)
        return [run.finish() for run in runs]

    def grade(self, instances: Sequence[Instance], responses: Sequence[str]) -> list[Grade]:
        """Grade one response per instance as that turn's action, after which every open request is
        closed."""
        first_round = [True]

        def scripted(conversations: Sequence[Sequence[Message]]) -> list[str]:
            if first_round[0]:
                first_round[0] = False
                return list(responses)
            return [TASK_FINISHED] * len(conversations)

        domain = self.with_config(improve_steps=0) if self.config.improve_steps else self
        return [episode.grade for episode in domain.rollout(instances, scripted)]

    def child(self, instance: Instance, response: str, grade: Grade) -> Instance:
        return dataclasses.replace(
            instance,
            iterate=instance.iterate + 1,
            previous_response=response,
            previous_score=grade.score,
            feedback=None,
            mode="improve",
            parent_id=None,
            depth=instance.depth + 1,
        )
