"""The fixed 100 / 100 train / test split of multi_turn_base, stratified by request count and API
set (notes §3.2).

The paper did not publish its ids, so ours is built once by ``stratified_split(seed=0)`` and
committed as ``multi_turn_base_split.json`` beside this file; ``python -m
exit_jax.domains.tooluse.splits`` rewrites it. Strata are (number of user requests, sorted involved
classes). Each stratum is shuffled with the seed and dealt alternately, starting on the side that
currently holds fewer tasks, so every stratum is split as evenly as it can be (its two halves differ
by at most one) and the totals come out 100 / 100.
"""

from __future__ import annotations

import collections
import json
import pathlib
import random

from exit_jax.domains.tooluse.bfcl_data import BfclTask, load_tasks

SPLIT_FILE = pathlib.Path(__file__).with_name("multi_turn_base_split.json")
SPLIT_SEED = 0


def stratum(task: BfclTask) -> tuple[int, tuple[str, ...]]:
    return len(task.requests), tuple(sorted(task.involved_classes))


def stratified_split(tasks: dict[str, BfclTask], seed: int = SPLIT_SEED) -> dict[str, list[str]]:
    """Split task ids in half, evenly inside every stratum; returns {"train": [...], "test": [...]}
    (sorted ids)."""
    groups: dict[tuple, list[str]] = collections.defaultdict(list)
    for task_id, task in tasks.items():
        groups[stratum(task)].append(task_id)
    rng = random.Random(seed)
    sides: dict[str, list[str]] = {"train": [], "test": []}
    for key in sorted(groups, key=repr):
        members = sorted(groups[key])
        rng.shuffle(members)
        # Odd strata give their extra task to the smaller side (ties broken by the seed) to keep
        # totals equal.
        if len(sides["train"]) != len(sides["test"]):
            first = "train" if len(sides["train"]) < len(sides["test"]) else "test"
        else:
            first = rng.choice(["train", "test"])
        second = "test" if first == "train" else "train"
        for position, task_id in enumerate(members):
            sides[first if position % 2 == 0 else second].append(task_id)

    def numeric(task_id: str) -> int:
        return int(task_id.rsplit("_", 1)[1])

    return {side: sorted(ids, key=numeric) for side, ids in sides.items()}


def load_split(path: pathlib.Path = SPLIT_FILE) -> dict[str, list[str]]:
    """The committed split: {"train": [...], "test": [...]}."""
    data = json.loads(path.read_text())
    return {"train": list(data["train"]), "test": list(data["test"])}


def write_split(path: pathlib.Path = SPLIT_FILE) -> dict[str, list[str]]:
    split = stratified_split(load_tasks("multi_turn_base"))
    document = {
        "description": "ExIt 100/100 train/test split of BFCL multi_turn_base "
        "(bfcl-eval data BFCL_v4), stratified by number of user requests and involved API "
        f"classes; built by exit_jax.domains.tooluse.splits with seed {SPLIT_SEED}",
        **split,
    }
    path.write_text(json.dumps(document, indent=1) + "\n")
    return split


if __name__ == "__main__":
    result = write_split()
    print(f"wrote {SPLIT_FILE}: {len(result['train'])} train, {len(result['test'])} test")
