"""What the domains' warm-start demonstrations share: which training task each one is on, and which kind of step."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np


def draw_tasks_and_kinds(task_ids: Sequence[str], weights: Mapping[str, float], count: int,
                         rng: np.random.Generator) -> Iterator[tuple[str, str]]:
    """``count`` (task id, kind) pairs: a task drawn uniformly from ``task_ids``, then a kind with probability
    proportional to ``weights[kind]``. Lazy, so a caller's own draws for a pair come from ``rng`` between pairs."""
    kinds = list(weights)
    p = np.asarray([weights[kind] for kind in kinds])
    p = p / p.sum()
    for _ in range(count):
        task_id = str(rng.choice(task_ids))
        yield task_id, str(rng.choice(kinds, p=p))
