"""Fixtures for the curriculum tests: instances, fake episodes, a sequential reference buffer."""

from __future__ import annotations

import dataclasses

import numpy as np

from exit_jax.curriculum.config import CurriculumSettings
from exit_jax.types import Episode, Grade, Instance, Message


def iterate_instance(name: str, iterate: int = 1, mode: str = "improve", turn: int = 0) -> Instance:
    return Instance(task_id=f"task-{name}", previous_response=f"response-{name}", iterate=iterate,
                    mode=mode, depth=iterate, turn=turn)


def child_of(inst: Instance, response: str, valid: bool = True) -> Instance:
    """What a single-turn domain's ``child`` returns."""
    return dataclasses.replace(inst, previous_response=response, iterate=inst.iterate + 1,
                               depth=inst.depth + 1, mode="improve" if valid else "debug",
                               feedback=None if valid else "Traceback: boom")


def single_turn_episodes(instances, quality: np.ndarray, tag: str = "") -> list[list[Episode]]:
    """[P][G] episodes whose responses are unique per (slot, rollout, tag)."""
    episodes = []
    for i, inst in enumerate(instances):
        row = []
        for g, q in enumerate(quality[i]):
            response = f"{inst.task_id}|{inst.previous_response}|{tag}|{i}|{g}"
            grade = Grade(reward=float(q), score=float(q))
            row.append(Episode(instance=inst, messages=[Message("assistant", response)],
                               grade=grade,
                               children=[child_of(inst, response)]))
        episodes.append(row)
    return episodes


def multi_turn_episode(inst: Instance, num_turns: int, tag: str, quality: float) -> Episode:
    """An episode with one child per turn: history up to turn t plus the turn-t response."""
    history: list[Message] = []
    children = []
    for t in range(num_turns):
        user = Message("user", f"{inst.task_id} request {t}")
        response = f"{tag} answer {t}"
        children.append(Instance(task_id=inst.task_id, history=tuple(history), turn=t,
                                 previous_response=response, iterate=1, depth=inst.depth + 1,
                                 mode="improve"))
        history += [user, Message("assistant", response)]
    return Episode(instance=inst, messages=history, grade=Grade(reward=quality, score=quality),
                   children=children)


def settings(**overrides) -> CurriculumSettings:
    return dataclasses.replace(CurriculumSettings(), **overrides)


class SequentialReferenceBuffer:
    """One-at-a-time reference of the insertion rules, written independently of TaskBuffer (plain
    lists).

    Dedupe by content key (merge = max), append while not full, else a newcomer with score >= the
    minimum replaces the minimum (the oldest entry among equal minima).
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.entries: list[list] = []  # [key, score, age]
        self.clock = 0

    def insert(self, key: str, score: float) -> None:
        for entry in self.entries:
            if entry[0] == key:
                entry[1] = max(entry[1], score)
                return
        self.clock += 1
        if len(self.entries) < self.capacity:
            self.entries.append([key, score, self.clock])
            return
        worst = min(range(len(self.entries)),
                    key=lambda i: (self.entries[i][1], self.entries[i][2]))
        if score >= self.entries[worst][1]:
            self.entries[worst] = [key, score, self.clock]

    def insert_batch(self, items: list[tuple[str, float]]) -> None:
        """Batch semantics: merge into held entries, merge in-batch repeats, then one at a time."""
        held = {entry[0] for entry in self.entries}
        fresh: dict[str, float] = {}
        for key, score in items:
            if key in held:
                self.insert(key, score)
            else:
                fresh[key] = max(fresh.get(key, -np.inf), score)
        for key, score in fresh.items():  # dicts keep first-occurrence order
            self.insert(key, score)

    def contents(self) -> dict[str, float]:
        return {key: score for key, score, _ in self.entries}
