"""The ExIt task-space buffer: a fixed-capacity, host-side store of self-iteration instances with
learnability scores.

Entries live in parallel NumPy arrays (scores, lineage, staleness) over slots ``0 .. size-1``
(filled slots stay contiguous because an entry only ever leaves when a newcomer takes its slot); the
``Instance`` payloads sit in a Python list beside them. Sampling, score updates and admission work
on whole arrays; the only per-item Python is over the *batch* (content hashes for de-duplication,
dict look-ups), never over the buffer's entries.

Rules (notes §1.5, choices documented in docs/curriculum.md):
  * Every entry gets a unique, increasing ``entry_id``; ids are never reused, so a stale id (an
    evicted entry) can be recognised and ignored.
  * Capacity N keeps the top-N by score. A newcomer enters a full buffer only if its score is >= the
    buffer's minimum, and then it replaces that minimum. Ties evict the *oldest* entry (smallest
    id), so a batch admitted at once gives exactly what one-at-a-time insertion would.
  * De-duplication by ``Instance.content_key()``: a duplicate is merged into the existing entry,
    never stored twice. ``on_duplicate="max"`` keeps the higher score (children: their score is an
    inherited prior, so a repeat must not lower a measured score); ``"overwrite"`` takes the new
    score (a fresh measurement of that very instance). The existing entry keeps its lineage and
    payload.
  * A batch is applied as: merges into held entries first, then repeats within the batch merged into
    their first occurrence, then the remaining fresh items admitted in order exactly as if offered
    one at a time.
  * Replay weights: softmax(kappa * S) (paper) or PLR rank weights (1/rank)^(1/temperature),
    optionally mixed with a staleness distribution: P = (1 - c) * P_score + c * P_stale, where
    staleness = step - the last time the entry was sampled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from exit_jax.curriculum.config import CurriculumSettings
from exit_jax.types import Instance

STATE_VERSION = 1
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")
_ARRAY_FIELDS = ("scores", "entry_ids", "parent_ids", "depths", "iterates", "turns", "last_sampled",
                 "times_sampled")


def key_to_int(content_key: str) -> int:
    """First 64 bits of a hex content key as an int (compact id to count distinct instances)."""
    return int(content_key[:16], 16)


def replay_distribution(scores: np.ndarray, staleness: np.ndarray, settings: CurriculumSettings
                        ) -> np.ndarray:
    """Replay probabilities over the filled entries.

    Args:
      scores: [size] learnability scores S.
      staleness: [size] iterations since each entry was last sampled (or inserted).
      settings: prioritization ("softmax" uses kappa; "rank" uses temperature), staleness_coef.

    Returns:
      [size] float64 probabilities summing to 1.
    """
    if settings.prioritization == "softmax":
        logits = settings.kappa * scores
        weights = np.exp(logits - logits.max())
    else:
        # Ties take consecutive ranks in a deterministic, implementation-defined order (as in PLR);
        # the default introsort is ~5x faster than a stable sort at N = 100,000.
        order = np.argsort(-scores)
        ranks = np.empty(len(scores), dtype=np.float64)
        ranks[order] = np.arange(1, len(scores) + 1)
        weights = (1.0 / ranks) ** (1.0 / settings.temperature)
    probs = weights / weights.sum()
    if settings.staleness_coef > 0:
        stale = staleness.astype(np.float64)
        total = stale.sum()
        stale_probs = stale / total if total > 0 else np.full(len(stale), 1.0 / len(stale))
        probs = (1.0 - settings.staleness_coef) * probs + settings.staleness_coef * stale_probs
    return probs


class TaskBuffer:
    """Fixed-capacity buffer of self-iteration instances (see module docstring for the rules).

    Attributes:
      capacity: N. size: number of filled slots.
      scores, entry_ids, parent_ids, depths, iterates, turns, last_sampled, times_sampled:
        [capacity] arrays; only ``[:size]`` is meaningful. parent_ids is -1 for entries without a
        buffered parent.
      instances: [capacity] list of payloads (None in empty slots).
      step: the staleness clock (number of ``sample`` calls so far).
      rng: the buffer's ``np.random.Generator``; selection draws from it so checkpoints restore it
        exactly.
      trained_keys: 64-bit ids of every distinct instance trained on so far (for the diagnostics).
      counters: inserted / merged / evicted / rejected totals.
    """

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"buffer_size must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.size = 0
        self.scores = np.zeros(capacity, dtype=np.float64)
        self.entry_ids = np.full(capacity, -1, dtype=np.int64)
        self.parent_ids = np.full(capacity, -1, dtype=np.int64)
        self.depths = np.zeros(capacity, dtype=np.int64)
        self.iterates = np.zeros(capacity, dtype=np.int64)
        self.turns = np.zeros(capacity, dtype=np.int64)
        self.last_sampled = np.zeros(capacity, dtype=np.int64)
        self.times_sampled = np.zeros(capacity, dtype=np.int64)
        self.instances: list[Instance | None] = [None] * capacity
        self._keys: list[str | None] = [None] * capacity
        self._slot_of_key: dict[str, int] = {}
        self._slot_of_id: dict[int, int] = {}
        self.next_id = 0
        self.step = 0
        self.rng = np.random.default_rng(seed)
        self.trained_keys: set[int] = set()
        self.counters = {"inserted": 0, "merged": 0, "evicted": 0, "rejected": 0}

    @classmethod
    def from_settings(cls, settings: CurriculumSettings) -> TaskBuffer:
        """An empty buffer of capacity ``settings.buffer_size``, RNG seeded by ``settings.seed``."""
        return cls(settings.buffer_size, seed=settings.seed)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return self.size

    def ids(self) -> np.ndarray:
        """[size] entry ids currently held."""
        return self.entry_ids[: self.size].copy()

    def slots_of(self, entry_ids: np.ndarray) -> np.ndarray:
        """Slot of each entry id, -1 where the id is not (or no longer) in the buffer."""
        return np.array([self._slot_of_id.get(int(i), -1) for i in np.asarray(entry_ids).ravel()],
                        dtype=np.int64)

    def get(self, entry_id: int) -> Instance | None:
        slot = self._slot_of_id.get(int(entry_id))
        return None if slot is None else self.instances[slot]

    def score_of(self, entry_id: int) -> float | None:
        slot = self._slot_of_id.get(int(entry_id))
        return None if slot is None else float(self.scores[slot])

    def contains_key(self, content_key: str) -> bool:
        return content_key in self._slot_of_key

    def replay_probs(self, settings: CurriculumSettings) -> np.ndarray:
        """[size] replay distribution of the filled entries."""
        if self.size == 0:
            return np.zeros(0)
        staleness = self.step - self.last_sampled[: self.size]
        return replay_distribution(self.scores[: self.size], staleness, settings)

    # ------------------------------------------------------------------ sampling
    def sample(self, num: int, settings: CurriculumSettings, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``num`` entries (with replacement) from the replay distribution; mark them sampled.

        Returns:
          (slots [num], entry_ids [num]), both int64.
        """
        if self.size == 0:
            raise ValueError("cannot sample from an empty buffer")
        probs = self.replay_probs(settings)
        cdf = np.cumsum(probs)
        draws = rng.random(num) * cdf[-1]
        # side="right" never lands on a zero-probability entry (its cdf step has zero width).
        slots = np.minimum(np.searchsorted(cdf, draws, side="right"), self.size - 1)
        self.last_sampled[slots] = self.step
        np.add.at(self.times_sampled, slots, 1)
        return slots.astype(np.int64), self.entry_ids[slots].copy()

    def advance_clock(self) -> None:
        """One selection round has passed (staleness clock)."""
        self.step += 1

    # ------------------------------------------------------------------ updates
    def update_scores(self, entry_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Overwrite the scores of entries (the replayed parent's fresh group variance).

        An id drawn several times in one batch gets the mean of its fresh scores. Ids no longer in
        the buffer are ignored. Returns a [len(entry_ids)] bool mask of the ids that were found.
        """
        entry_ids = np.asarray(entry_ids, dtype=np.int64).ravel()
        scores = np.asarray(scores, dtype=np.float64).ravel()
        scores = np.where(np.isfinite(scores), scores, 0.0)
        slots = self.slots_of(entry_ids)
        found = slots >= 0
        if found.any():
            unique_slots, inverse = np.unique(slots[found], return_inverse=True)
            sums = np.bincount(inverse, weights=scores[found])
            counts = np.bincount(inverse)
            self.scores[unique_slots] = sums / counts
        return found

    def insert(self, instances: Sequence[Instance], scores: np.ndarray, on_duplicate: str = "max",
               content_keys: Sequence[str] | None = None) -> np.ndarray:
        """Offer a batch of instances with scores; returns their entry ids (-1 = not admitted).

        Duplicates (of an entry or of an earlier item in the batch) merge per ``on_duplicate``
        ("max" | "overwrite") and return the id they merged into. ``content_keys`` may pass the
        instances' precomputed ``content_key()`` values (hashing long responses dominates the cost).
        """
        if on_duplicate not in ("max", "overwrite"):
            raise ValueError(f"on_duplicate must be 'max' or 'overwrite', got {on_duplicate!r}")
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if len(scores) != len(instances):
            raise ValueError(f"{len(instances)} instances but {len(scores)} scores")
        scores = np.where(np.isfinite(scores), scores, 0.0)
        result = np.full(len(instances), -1, dtype=np.int64)
        keep_max = on_duplicate == "max"
        keys = (list(content_keys) if content_keys is not None
                else [inst.content_key() for inst in instances])
        if len(keys) != len(instances):
            raise ValueError(f"{len(instances)} instances but {len(keys)} content keys")
        # The de-duplication pass runs over the batch (never the buffer) on plain Python values.
        score_list = scores.tolist()
        held_slots: list[int] = []  # buffer slot of each item that repeats a held entry
        held_items: list[int] = []
        fresh_first: dict[str, int] = {}  # key -> position among the fresh (not yet held) items
        fresh_items: list[int] = []  # batch index of each fresh item
        fresh_scores: list[float] = []
        alias = [-1] * len(instances)  # batch index -> fresh position
        slot_of_key = self._slot_of_key
        for j, key in enumerate(keys):
            slot = slot_of_key.get(key)
            if slot is not None:
                held_slots.append(slot)
                held_items.append(j)
                continue
            position = fresh_first.get(key)
            if position is None:
                position = fresh_first[key] = len(fresh_items)
                fresh_items.append(j)
                fresh_scores.append(score_list[j])
            elif keep_max:
                fresh_scores[position] = max(fresh_scores[position], score_list[j])
            else:
                fresh_scores[position] = score_list[j]
            alias[j] = position
        self.counters["merged"] += len(keys) - len(fresh_items)
        if held_slots:
            slots, items = np.asarray(held_slots), np.asarray(held_items)
            if keep_max:
                np.maximum.at(self.scores, slots, scores[items])
            else:
                self.scores[slots] = scores[items]  # repeats of one slot: the last one wins
            result[items] = self.entry_ids[slots]
        if not fresh_items:
            return result

        new_scores = np.asarray(fresh_scores)
        new_ids = self.next_id + np.arange(len(fresh_items), dtype=np.int64)
        self.next_id += len(fresh_items)
        admitted, target_slots = self._admit(new_scores, new_ids)
        evicted_slots = target_slots[target_slots < self.size]
        for slot, entry_id in zip(evicted_slots.tolist(), self.entry_ids[evicted_slots].tolist(),
                                  strict=True):  # bounded by the batch size
            del self._slot_of_key[self._keys[slot]]
            del self._slot_of_id[entry_id]
        self.counters["evicted"] += len(evicted_slots)
        self.counters["rejected"] += int((~admitted).sum())
        self.counters["inserted"] += int(admitted.sum())

        positions = np.flatnonzero(admitted)
        self._write(target_slots, [instances[fresh_items[p]] for p in positions],
                    [keys[fresh_items[p]] for p in positions], new_scores[positions],
                    new_ids[positions])
        self.size = max(self.size, int(target_slots.max()) + 1) if len(target_slots) else self.size
        fresh_ids = np.where(admitted, new_ids, -1)
        alias = np.asarray(alias, dtype=np.int64)
        has_alias = alias >= 0
        result[has_alias] = fresh_ids[alias[has_alias]]
        return result

    def _admit(self, new_scores: np.ndarray, new_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which fresh items enter, and their slots (evicted slots first, then empty tail slots).

        The kept set is the top-N of (existing + fresh) ordered by (score, id): lower score leaves
        first and, among equal scores, the older entry leaves first, which is what inserting one at
        a time with ">= min replaces min" yields.
        """
        count = len(new_scores)
        free = self.capacity - self.size
        if count <= free:
            return np.ones(count, dtype=bool), self.size + np.arange(count, dtype=np.int64)
        all_scores = np.concatenate([self.scores[: self.size], new_scores])
        all_ids = np.concatenate([self.entry_ids[: self.size], new_ids])
        drop = self.size + count - self.capacity
        threshold = np.partition(all_scores, drop - 1)[drop - 1]
        dropped = all_scores < threshold
        ties = np.flatnonzero(all_scores == threshold)
        need = drop - int(dropped.sum())
        if need > 0:
            if need < len(ties):
                oldest = np.argpartition(all_ids[ties], need - 1)[:need]
                dropped[ties[oldest]] = True
            else:
                dropped[ties] = True
        admitted = ~dropped[self.size:]
        freed_slots = np.flatnonzero(dropped[: self.size])
        empty_slots = np.arange(self.size, self.capacity, dtype=np.int64)
        target_slots = np.concatenate([freed_slots, empty_slots]).astype(np.int64)
        return admitted, target_slots

    def _write(self, slots: np.ndarray, instances: list[Instance], keys: list[str],
               scores: np.ndarray, entry_ids: np.ndarray) -> None:
        """Store admitted newcomers in ``slots`` (array fields written in one go)."""
        for slot, inst, key, entry_id in zip(slots.tolist(), instances, keys, entry_ids.tolist(),
                                             strict=True):  # over the batch
            self.instances[slot] = inst
            self._keys[slot] = key
            self._slot_of_key[key] = slot
            self._slot_of_id[entry_id] = slot
        self.scores[slots] = scores
        self.entry_ids[slots] = entry_ids
        self.parent_ids[slots] = [-1 if inst.parent_id is None else inst.parent_id
                                  for inst in instances]
        self.depths[slots] = [inst.depth for inst in instances]
        self.iterates[slots] = [inst.iterate for inst in instances]
        self.turns[slots] = [inst.turn for inst in instances]
        self.last_sampled[slots] = self.step
        self.times_sampled[slots] = 0

    def key_at(self, slot: int) -> str:
        """Content key of the entry in ``slot`` (cached at insertion)."""
        return self._keys[slot]

    def record_trained(self, content_keys: Sequence[str]) -> None:
        """Count the distinct instances trained on (for the diagnostics), by content key."""
        self.trained_keys.update(key_to_int(key) for key in content_keys)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything needed to restore exactly: NumPy arrays, plus JSON bytes for payloads and RNG.

        All values are non-empty NumPy arrays, so ``np.savez`` or an Orbax PyTree checkpoint can
        store the dict as is (Orbax refuses zero-size arrays: per-entry arrays are saved at full
        capacity, and ``trained_keys`` carries one leading pad element).
        """
        meta = {
            "version": STATE_VERSION,
            "capacity": self.capacity,
            "size": self.size,
            "next_id": self.next_id,
            "step": self.step,
            "counters": self.counters,
            "rng": self.rng.bit_generator.state,
            "rng_type": type(self.rng.bit_generator).__name__,
            "instances": [inst.to_json() for inst in self.instances[: self.size]],
        }
        state = {name: getattr(self, name).copy() for name in _ARRAY_FIELDS}
        state["meta_json"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8).copy()
        state["trained_keys"] = np.array([0, *sorted(self.trained_keys)], dtype=np.uint64)
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TaskBuffer:
        """Rebuild a buffer saved with ``state_dict`` (arrays may come back as any array type)."""
        meta = json.loads(np.asarray(state["meta_json"], dtype=np.uint8).tobytes().decode())
        if meta.get("version") != STATE_VERSION:
            raise ValueError(f"buffer state version {meta.get('version')} != {STATE_VERSION}")
        if meta.get("rng_type") not in _BIT_GENERATORS:
            raise ValueError(f"buffer state: unsupported RNG {meta.get('rng_type')!r}")
        buffer = cls(meta["capacity"])
        size = meta["size"]
        for name in _ARRAY_FIELDS:
            values = np.asarray(state[name])
            if values.shape != (buffer.capacity,):
                raise ValueError(f"buffer state field '{name}' has shape {values.shape}, "
                                 f"expected ({buffer.capacity},)")
            getattr(buffer, name)[:] = values
        buffer.size = size
        buffer.next_id = meta["next_id"]
        buffer.step = meta["step"]
        buffer.counters = dict(meta["counters"])
        bit_generator = getattr(np.random, meta["rng_type"])()
        bit_generator.state = meta["rng"]
        buffer.rng = np.random.Generator(bit_generator)
        for slot, payload in enumerate(meta["instances"]):
            inst = Instance.from_json(payload)
            key = inst.content_key()
            buffer.instances[slot] = inst
            buffer._keys[slot] = key
            buffer._slot_of_key[key] = slot
            buffer._slot_of_id[int(buffer.entry_ids[slot])] = slot
        trained = np.asarray(state["trained_keys"], dtype=np.uint64)[1:]  # drop the pad element
        buffer.trained_keys = set(trained.tolist())
        return buffer
