"""Selection (which instances a batch starts from) and the buffer update once the batch is graded.

One training iteration, in the curriculum's terms (notes §1.2, §1.9):

1. ``select_batch``: for each of the P prompt slots, with probability p and once the buffer holds >=
   B_min entries, replay a buffer entry drawn from the replay distribution; otherwise draw a base
   task uniformly. A replayed entry that carries a previous response is played as a self-iteration
   step: ``debug`` when the domain marked it so (its stored mode is "debug", i.e. the previous
   iterate crashed), else ``diverge`` with probability p_div, else ``improve``. The choice is made
   once per slot, so the G rollouts of a group share one prompt. Replayed entries without a previous
   response (base tasks, turn prefixes) are played as they are ("base").
2. The trainer rolls out G episodes per slot and grades them.
3. ``update_buffer``: S = learnability of each group. The replayed parent's score is overwritten
   with its fresh S; the played base task enters with its fresh S (``insert_played``); the chosen
   rollouts' children (every per-turn partial history of a multi-turn episode) enter with the
   parent's S (``expansion`` on), or, with expansion off (the "curriculum" rung), the same histories
   enter as plain continuations without the previous response.

All randomness comes from the ``np.random.Generator`` passed in (normally ``buffer.rng``, which is
checkpointed), and the draws per call are fixed in number, so a restored run continues bit-for-bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from exit_jax.curriculum.buffer import TaskBuffer
from exit_jax.curriculum.config import CurriculumSettings
from exit_jax.curriculum.scores import learnability_scores, sanitize_quality
from exit_jax.types import MODES, Episode, Instance

MODE_CODE = {mode: code for code, mode in enumerate(MODES)}


@dataclasses.dataclass
class Selection:
    """The starting instances of one batch and how each was chosen.

    Attributes:
      instances: [P] instances to render, ``mode`` already set (base / improve / diverge / debug).
      from_buffer: [P] bool, True where the slot replays a buffer entry.
      modes: [P] int8 codes into ``exit_jax.types.MODES``.
      entry_ids: [P] int64 buffer ids of replayed entries (-1 for base tasks); the trainer hands
        them back to ``update_buffer`` so their scores are overwritten.
      step: the buffer clock at selection time.
    """

    instances: list[Instance]
    from_buffer: np.ndarray
    modes: np.ndarray
    entry_ids: np.ndarray
    step: int = 0

    def __len__(self) -> int:
        return len(self.instances)

    def mode_names(self) -> list[str]:
        return [MODES[int(code)] for code in self.modes]

    def group_modes(self, group_size: int) -> np.ndarray:
        """[P * G] mode codes, one per rollout (groups contiguous): a group shares one prompt."""
        return np.repeat(self.modes, group_size)


def replay_mode(stored: Instance, diverge: bool) -> str:
    """How a replayed entry is played: base (no previous response), debug (marked so by the domain),
    diverge, or improve."""
    if stored.previous_response is None:
        return "base"
    if stored.mode == "debug":
        return "debug"
    return "diverge" if diverge else "improve"


def select_batch(buffer: TaskBuffer | None, base_task_ids: Sequence[str], num_prompts: int,
                 settings: CurriculumSettings, rng: np.random.Generator,
                 make_base_instance: Callable[[str], Instance] | None = None) -> Selection:
    """Choose the P starting instances of a batch.

    Args:
      buffer: the task buffer (None on processes other than 0, or for plain GRPO).
      base_task_ids: the base task set M (sampled uniformly with replacement).
      num_prompts: P, the number of prompt slots (groups).
      settings: resolved curriculum settings (replay gate p / B_min, prioritisation, p_div).
      rng: NumPy generator (pass ``buffer.rng`` to keep the draws in the checkpoint).
      make_base_instance: task id -> its k = 0 instance (``domain.base_instance``); default
        ``Instance(task_id)``.

    Returns:
      The :class:`Selection`; the buffer's sampled entries are marked (staleness) and its clock
      advances.
    """
    if num_prompts < 1:
        raise ValueError(f"num_prompts must be >= 1, got {num_prompts}")
    if len(base_task_ids) == 0:
        raise ValueError("base_task_ids is empty: the base task set M needs at least one task")
    make_base_instance = make_base_instance or (lambda task_id: Instance(task_id=task_id))
    # Fixed draw counts keep the RNG stream independent of the buffer's contents.
    replay_draws = rng.random(num_prompts)
    base_choice = rng.integers(len(base_task_ids), size=num_prompts)
    divergence_draws = rng.random(num_prompts)

    gate_open = buffer is not None and len(buffer) >= settings.min_buffer_size
    from_buffer = (replay_draws < settings.effective_replay_prob) & gate_open
    entry_ids = np.full(num_prompts, -1, dtype=np.int64)
    slots = np.full(num_prompts, -1, dtype=np.int64)
    if from_buffer.any():
        sampled_slots, sampled_ids = buffer.sample(int(from_buffer.sum()), settings, rng)
        slots[from_buffer], entry_ids[from_buffer] = sampled_slots, sampled_ids
    diverge = divergence_draws < settings.effective_divergence_prob

    instances: list[Instance] = []
    content_keys: list[str] = []
    modes = np.zeros(num_prompts, dtype=np.int8)
    for i in range(num_prompts):  # over the batch's prompt slots
        if from_buffer[i]:
            stored = buffer.instances[slots[i]]
            mode = replay_mode(stored, bool(diverge[i]))
            inst = stored.with_mode(mode)
            content_keys.append(buffer.key_at(int(slots[i])))
        else:
            mode = "base"
            inst = make_base_instance(base_task_ids[int(base_choice[i])]).with_mode("base")
            content_keys.append(inst.content_key())
        modes[i] = MODE_CODE[mode]
        instances.append(inst)
    step = buffer.step if buffer is not None else 0
    if buffer is not None:
        buffer.record_trained(content_keys)
        buffer.advance_clock()
    return Selection(instances=instances, from_buffer=from_buffer, modes=modes, entry_ids=entry_ids,
                     step=step)


def choose_rollouts(quality: np.ndarray, settings: CurriculumSettings, rng: np.random.Generator
                    ) -> np.ndarray:
    """Indices of the rollouts of one group whose children enter the buffer.

    ``all``: every rollout (default; repeats merge by content). ``best``: the highest-quality
    rollout (first on ties). ``sample``: ``children_sample_size`` rollouts uniformly without
    replacement.
    """
    group_size = len(quality)
    if settings.insert_children == "all":
        return np.arange(group_size)
    if settings.insert_children == "best":
        return np.array([int(np.argmax(quality))])
    count = min(settings.children_sample_size, group_size)
    return np.sort(rng.choice(group_size, size=count, replace=False))


def as_continuation(child: Instance, played: Instance) -> Instance:
    """A child's partial history as a plain continuation without the previous response (the
    "curriculum" rung's entry)."""
    return dataclasses.replace(child, previous_response=None, feedback=None, previous_score=None,
                               mode="base", iterate=0, depth=played.depth)


def update_buffer(buffer: TaskBuffer, selection: Selection, quality: np.ndarray,
                  episodes: Sequence[Sequence[Episode]], settings: CurriculumSettings,
                  rng: np.random.Generator) -> dict[str, float]:
    """Feed a graded batch back into the buffer.

    Args:
      buffer: the task buffer (process 0).
      selection: what ``select_batch`` returned for this batch.
      quality: [P, G] final quality scores in [0, 1] (``Grade.score``), groups in selection order.
      episodes: [P][G] episodes; ``episode.children`` are the instances the rollout makes available.
      settings: resolved settings (score_fn, expansion, insert_children, insert_played).
      rng: generator for ``insert_children="sample"`` (pass ``buffer.rng``).

    Returns:
      Counts of this update (parents_updated, played_inserted, children_offered, children_admitted)
      and the batch's mean learnability score.
    """
    quality = sanitize_quality(quality)
    num_prompts = len(selection)
    if quality.shape[0] != num_prompts or len(episodes) != num_prompts:
        raise ValueError(f"quality {quality.shape} / episodes ({len(episodes)}) do not match the "
                         f"selection's {num_prompts} prompts")
    group_scores = learnability_scores(quality, settings.score_fn, settings.success_threshold)
    report = {"group_score_mean": float(group_scores.mean()), "parents_updated": 0.0,
              "played_inserted": 0.0, "children_offered": 0.0, "children_admitted": 0.0}
    if not settings.replay:
        return report  # plain GRPO never reads the buffer

    replayed = selection.from_buffer
    found = buffer.update_scores(selection.entry_ids[replayed], group_scores[replayed])
    report["parents_updated"] = float(found.sum())
    parent_ids = selection.entry_ids.copy()
    base_slots = np.flatnonzero(~replayed)
    if settings.insert_played and len(base_slots):
        played = [selection.instances[i].with_mode("base") for i in base_slots]
        ids = buffer.insert(played, group_scores[base_slots], on_duplicate="overwrite")
        parent_ids[base_slots] = ids
        report["played_inserted"] = float((ids >= 0).sum())

    candidates: list[Instance] = []
    candidate_scores: list[float] = []
    for i in range(num_prompts):  # over the batch's groups
        parent_id = int(parent_ids[i]) if parent_ids[i] >= 0 else None
        for rollout in choose_rollouts(quality[i], settings, rng):
            for child in episodes[i][int(rollout)].children:
                if settings.expansion:
                    inst = child
                else:
                    inst = as_continuation(child, selection.instances[i])
                candidates.append(dataclasses.replace(inst, parent_id=parent_id))
                # Children inherit the parent's fresh S.
                candidate_scores.append(float(group_scores[i]))
    if candidates:
        ids = buffer.insert(candidates, np.asarray(candidate_scores), on_duplicate="max")
        report["children_offered"] = float(len(candidates))
        report["children_admitted"] = float((ids >= 0).sum())
    return report
