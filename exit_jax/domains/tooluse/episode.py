"""One tool-use episode in progress, and the settings that shape it.

``EpisodeRun`` owns an episode's transcript, its simulated API session and budgets, and the records
its children are made from; ``ToolUseDomain.rollout`` drives many of them in lock-step. Behaviour is
described in ``domain.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from exit_jax.domains.tooluse.api_session import ApiSession
from exit_jax.domains.tooluse.bfcl_data import (
    MULTI_TURN_CATEGORIES,
    BfclTask,
    load_task,
    task_schemas,
)
from exit_jax.domains.tooluse.calls import (
    format_python_call,
    parse_action,
    parse_call_string,
    parse_json_call,
)
from exit_jax.domains.tooluse.checker import score_trajectory
from exit_jax.domains.tooluse.prompts import schema_text, self_iteration_message, system_prompt
from exit_jax.types import Episode, Grade, Instance, Message

REQUEST_MODES = ("first", "all")


@dataclasses.dataclass(frozen=True)
class ToolUseConfig:
    """Tool-use settings. ``training()`` and ``evaluation()`` are the paper's two settings (notes
    §3.2).

    Attributes:
      category: BFCL multi-turn category, or several joined by commas
        (``"multi_turn_base,multi_turn_miss_func"``): their tasks are pooled.
      split_file: a JSON file ``{"train": [ids], "test": [ids]}`` over those categories' tasks; "" uses the
        committed 100 / 100 split of multi_turn_base and holds out every task of the other categories.
      requests: "first" serves only the first user request (training); "all" serves every request
      (tests).
      max_actions_per_request: assistant actions allowed per request (None: no limit).
      max_actions_total: assistant actions allowed per episode (None: no limit).
      include_response_schema: also show each tool's response schema in the system prompt.
      improve_steps: K for inference-time self-improvement (notes §4.1): at every turn the first
        response is improved K times with the improve prompt after the history, and the K-th
        iterate is the action executed. 0 (training) executes the first response.
    """

    category: str = "multi_turn_base"
    split_file: str = ""
    requests: str = "first"
    max_actions_per_request: int | None = 10
    max_actions_total: int | None = None
    include_response_schema: bool = False
    improve_steps: int = 0

    @classmethod
    def training(cls, **overrides: Any) -> ToolUseConfig:
        return cls(
            **{
                "requests": "first",
                "max_actions_per_request": 10,
                "max_actions_total": None,
                **overrides,
            }
        )

    @classmethod
    def evaluation(cls, **overrides: Any) -> ToolUseConfig:
        return cls(
            **{
                "requests": "all",
                "max_actions_per_request": None,
                "max_actions_total": 60,
                **overrides,
            }
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ToolUseConfig:
        values = dict(values.to_dict() if hasattr(values, "to_dict") else values)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"tooluse config: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.category.split(",") if name.strip())

    def validate(self) -> None:
        unknown = [name for name in self.categories if name not in MULTI_TURN_CATEGORIES]
        if unknown or not self.categories:
            raise ValueError(f"tooluse config: domain.category must be one or more (comma-separated) of "
                             f"{MULTI_TURN_CATEGORIES}, got {self.category!r}")
        if self.requests not in REQUEST_MODES:
            raise ValueError(f"tooluse config: requests must be one of {REQUEST_MODES}, got {self.requests!r}")
        for name in ("max_actions_per_request", "max_actions_total"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"tooluse config: {name} must be >= 1 or None, got {value}")
        if self.improve_steps < 0:
            raise ValueError(f"tooluse config: improve_steps must be >= 0, got {self.improve_steps}")


def request_text(task: BfclTask, request_index: int) -> str:
    """The user message of a request (miss_func tasks announce functions that become available
    here)."""
    text = "\n\n".join(message["content"] for message in task.requests[request_index])
    new_names = set(task.missed_function.get(request_index, ()))
    if new_names:
        schemas = [schema for schema in task_schemas(task, request_index) if schema["name"] in new_names]
        text += "\n\nNew functions are now available:\n" + schema_text(schemas)
    return text


class EpisodeRun:
    """One episode in progress: transcript, API session, budgets, and the records children are made
    from."""

    def __init__(self, config: ToolUseConfig, instance: Instance):
        self.config = config
        self.instance = instance
        self.task = load_task(instance.task_id)
        extra = dict(instance.extra)
        self.request_index = int(extra.get("request_index", 0))
        if not 0 <= self.request_index < len(self.task.requests):
            raise ValueError(f"{instance.task_id}: request_index {self.request_index} out of range")
        self.actions_in_request = int(extra.get("actions_in_request", 0))
        self.calls: list[list[str]] = [list(calls) for calls in extra.get("calls", ())]
        self.calls += [[] for _ in range(self.request_index + 1 - len(self.calls))]
        self.session = ApiSession(self.task)
        for calls in self.calls:
            for call_text in calls:
                call = parse_call_string(call_text)
                self.session.execute(call.name, call.args, call.kwargs)
        self.last_request = len(self.task.requests) - 1 if config.requests == "all" else self.request_index
        schemas = task_schemas(self.task, self.request_index)
        system = Message("system", system_prompt(schemas, config.include_response_schema))
        self.system = system
        self.iterates: list[str] = []  # the current turn's iterates while improve_steps > 0
        self.turn = instance.turn
        self.history = list(instance.history)  # the clean conversation (no self-iteration prompts), for children
        if instance.previous_response is None:
            if not self.history:
                self.history.append(Message("user", request_text(self.task, self.request_index)))
            self.messages = [system, *self.history]
        else:
            prompt = self_iteration_message(
                request_text(self.task, self.request_index),
                instance.previous_response,
                instance.mode,
            )
            self.messages = [system, *self.history, Message("user", prompt)]
        self.turn_records: list[tuple[tuple[Message, ...], int, str, int, int, tuple[tuple[str, ...], ...]]] = []
        self.done = False
        self.has_valid_action = True

    def _append(self, message: Message) -> None:
        self.messages.append(message)
        self.history.append(message)

    def conversation(self) -> list[Message]:
        """What the policy answers next: the transcript, or (inference-time self-improvement) the
        history followed by the improve prompt on the current turn's latest iterate."""
        if not self.iterates:
            return list(self.messages)
        request = request_text(self.task, self.request_index)
        prompt = self_iteration_message(request, self.iterates[-1], "improve")
        return [self.system, *self.history, Message("user", prompt)]

    def step(self, response: Any) -> None:
        response = response if isinstance(response, str) else str(response)
        if self.config.improve_steps:
            self.iterates.append(response)
            if len(self.iterates) <= self.config.improve_steps:
                return
            self.iterates = []
        calls_before = tuple(tuple(calls) for calls in self.calls)
        self.turn_records.append(
            (
                tuple(self.history),
                self.turn,
                response,
                self.request_index,
                self.actions_in_request,
                calls_before,
            )
        )
        self._append(Message("assistant", response))
        self.turn += 1
        action = parse_action(response)
        if action.kind == "none":
            self.has_valid_action = False
            self.done = True
            return
        self.actions_in_request += 1
        if action.kind == "tool":
            try:
                call = parse_json_call(action.payload)
            except ValueError as error:
                observation = f"Error: {error}"
            else:
                record = self.session.execute(call.name, call.args, call.kwargs)
                self.calls[self.request_index].append(format_python_call(call.name, call.args, call.kwargs))
                observation = record.result
            self._append(Message("tool", observation))
            per_request, total = self.config.max_actions_per_request, self.config.max_actions_total
            if (per_request is not None and self.actions_in_request >= per_request) or (
                total is not None and self.turn >= total
            ):
                self.done = True
            return
        self._next_request()

    def _next_request(self) -> None:
        self.request_index += 1
        self.actions_in_request = 0
        if self.request_index > self.last_request:
            self.done = True
            return
        self.calls.append([])
        self._append(Message("user", request_text(self.task, self.request_index)))
        total = self.config.max_actions_total
        if total is not None and self.turn >= total:
            self.done = True

    def finish(self) -> Episode:
        score = score_trajectory(self.task, self.calls, num_requests=self.last_request + 1)
        evaluated = len(score.requests)
        if self.config.requests == "all":
            reward, normalised = score.total_return, score.total_return / evaluated
        else:
            reward = normalised = score.reward
        grade = Grade(
            reward=reward,
            score=normalised,
            valid=self.has_valid_action,
            error=None if self.has_valid_action else "no_valid_action",
            info={
                "first_turn_correct": score.first_turn_correct,
                "total_return": score.total_return,
                "all_requests_correct": score.reward == 1.0,
                "requests_evaluated": evaluated,
                "per_request_passed": [request.passed for request in score.requests],
                "actions": self.turn - self.instance.turn,
            },
        )
        children = []
        for (
            history,
            turn,
            response,
            request_index,
            actions_in_request,
            calls_before,
        ) in self.turn_records:
            own_turn = turn == self.instance.turn
            children.append(
                Instance(
                    task_id=self.instance.task_id,
                    history=history,
                    turn=turn,
                    iterate=self.instance.iterate + 1 if own_turn else 1,
                    previous_response=response,
                    previous_score=grade.score,
                    mode="improve",
                    depth=self.instance.depth + 1,
                    extra=(
                        ("request_index", request_index),
                        ("actions_in_request", actions_in_request),
                        ("calls", calls_before),
                    ),
                )
            )
        return Episode(self.instance, list(self.messages), grade, children, self.has_valid_action)
