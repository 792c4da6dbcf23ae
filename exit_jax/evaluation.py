"""Inference-time self-improvement evaluation: score at k = 0..K on held-out tasks.

For every held-out task and each of ``num_samples`` independent chains (avg@n), the policy answers the base task
(k = 0) and then improves its latest answer K times with the improve prompt (or debug, when the domain marks the
previous iterate as crashed). A domain with its own test-time scaffold (the MLE greedy search) provides
``evaluation_chain(task_ids, policy_fn, K, num_samples)``; it is used instead and returns the
``[tasks][samples][K + 1]`` scores, optionally with a ``traces`` attribute ({task_id: [chain: [step dicts]]}, JSON
data: what the policy wrote at each step and how it scored) that is copied into the result. All chains advance
together, one batched policy call per step.

The result (also written to ``<workdir>/eval/step_<N>.json``)::

    {"step", "domain", "split", "K", "k": [0..K], "mean": [K+1], "std": [K+1] (over chains), "per_task": {id: [K+1]},
     "ceiling": {id: best known score} (when the domain knows it), "delta_K", "net_corrections": [K+1] or None,
     "avg_at_n", "traces": {id: [chain: [step dicts]]} (when the domain's scaffold provides them)}

``net_corrections[k]`` (binary domains) counts chains that went incorrect -> correct between k = 0 and k minus those
that went correct -> incorrect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from exit_jax.types import Domain, Instance, PolicyFn


def _chain_scores(domain: Domain, task_ids: Sequence[str], policy_fn: PolicyFn, K: int, num_samples: int
                  ) -> np.ndarray:
    """[tasks, samples, K + 1] quality scores of plain improve chains."""
    chains: list[Instance] = [domain.base_instance(t) for t in task_ids for _ in range(num_samples)]
    scores = np.zeros((len(chains), K + 1))
    for k in range(K + 1):
        if domain.multi_turn:
            episodes = domain.rollout(chains, policy_fn)
            grades = [e.grade for e in episodes]
            nxt = [e.children[0] if e.children else c for e, c in zip(episodes, chains, strict=True)]
        else:
            responses = policy_fn([domain.render(c) for c in chains])
            grades = domain.grade(chains, responses)
            nxt = [domain.child(c, r, g) for c, r, g in zip(chains, responses, grades, strict=True)]
        scores[:, k] = [g.score for g in grades]
        chains = [n if n.mode in ("improve", "debug") else n.with_mode("improve") for n in nxt]
    return scores.reshape(len(task_ids), num_samples, K + 1)


def net_corrections(correct: np.ndarray) -> list[int]:
    """``correct: [chains, K + 1]`` bool -> net incorrect->correct corrections at each k relative to k = 0."""
    start = correct[:, :1]
    fixed = (~start & correct).sum(axis=0)
    broken = (start & ~correct).sum(axis=0)
    return [int(x) for x in fixed - broken]


def evaluate(domain: Domain, policy_fn: PolicyFn, task_ids: Sequence[str], K: int, num_samples: int = 1,
             step: int = 0, split: str = "heldout", binary: bool = False) -> dict[str, Any]:
    """Run the K-step evaluation (see module docstring) and summarise it."""
    traces = None
    if hasattr(domain, "evaluation_chain"):
        chains = domain.evaluation_chain(task_ids, policy_fn, K, num_samples)
        traces = getattr(chains, "traces", None)
        scores = np.asarray(chains, dtype=np.float64)
        if scores.shape != (len(task_ids), num_samples, K + 1):
            raise ValueError(f"{type(domain).__name__}.evaluation_chain returned scores of shape {scores.shape}, "
                             f"expected [tasks, samples, K + 1] = {(len(task_ids), num_samples, K + 1)}")
    else:
        scores = _chain_scores(domain, task_ids, policy_fn, K, num_samples)
    per_chain = scores.reshape(-1, K + 1)
    result: dict[str, Any] = {
        "step": int(step), "domain": getattr(domain, "name", "?"), "split": split, "K": int(K),
        "k": list(range(K + 1)),
        "mean": per_chain.mean(axis=0).tolist(),
        "std": per_chain.std(axis=0).tolist(),
        "per_task": {t: scores[i].mean(axis=0).tolist() for i, t in enumerate(task_ids)},
        "delta_K": float(per_chain[:, K].mean() - per_chain[:, 0].mean()),
        "net_corrections": net_corrections(per_chain >= 0.5) if binary else None,
        "avg_at_n": int(num_samples),
    }
    if hasattr(domain, "ceiling"):
        result["ceiling"] = {t: float(domain.ceiling(t)) for t in task_ids}
    if traces is not None:
        result["traces"] = traces
    return result
