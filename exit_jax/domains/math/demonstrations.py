"""Warm-start demonstrations for the procedural source: the embedded policy's stand-in for an instruction-tuned model.

A randomly initialised ~4M-parameter policy almost never writes an answer the grader can read, so GRPO sees almost no
reward and the run stays at chance. The paper starts from instruction-tuned models, which already answer in the
requested form, are right on part of the problems, and answer again when shown their previous attempt. The
demonstrations teach that much and no more. They are the answers of a *fallible teacher* that cannot check its own
work:

- every attempt is right with probability ``accuracy`` (the domain's ``teacher_accuracy``, by default
  ``TEACHER_ACCURACY`` = 1/2), otherwise a near miss: the exact answer off by 1, 2 or 10 (a counting or carry slip;
  in the numerator for a fraction), so wrong answers look like real ones;
- **base** (the problem): one attempt;
- **improve** (the previous attempt shown, through the domain's own ``child``): the previous answer repeated
  (confirmed) with probability ``KEEP_PROBABILITY`` (1/2), else a fresh attempt (corrected when the previous one
  was wrong and the fresh one is right). The teacher does not know whether the previous answer is right;
- **diverge** (the same child in diverge mode): a fresh, independent attempt.

With the default accuracy, a policy that imitated the teacher perfectly would be right half of the time at every step of
a self-improvement chain: a kept answer is right as often as the previous one was and a re-drawn one half of the time,
so the chain stays at 1/2 and Δ_K = 0. Any gain over k, and anything above 1/2, is left for RL to find; the tiny policy
imitates far from perfectly, so it starts lower still. A teacher that kept only right answers would hand the policy an
oracle improvement rule (1 - 2^-(k+1) at step k); one that is always right would make the ceiling itself the imitation
target. (Measured with the embedded policy: on all seven procedural families the warm start teaches the format but not
the arithmetic, even on an always-right teacher; on single-digit add / sub / mul, the default's problems, it also
teaches part of the arithmetic, 0.67 on training problems from an always-right teacher; see experiments/math.py.)

Every attempt is written ``\\boxed{answer}``, which both grading settings accept (``require_boxed`` or not). Only
training problems are used: a held-out problem never appears, neither in a prompt nor as a previous attempt.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from exit_jax.domains.demonstrations import draw_tasks_and_kinds
from exit_jax.domains.math.procedural import fraction_text
from exit_jax.types import Instance

if TYPE_CHECKING:
    from exit_jax.domains.math.domain import MathDomain

TEACHER_ACCURACY = 0.5
KEEP_PROBABILITY = 0.5
SLIPS = (-10, -2, -1, 1, 2, 10)
KIND_WEIGHTS = {"base": 0.5, "improve": 0.3, "diverge": 0.2}


def boxed(answer: str) -> str:
    return f"\\boxed{{{answer}}}"


def near_miss(answer: str, rng: np.random.Generator) -> str:
    """A wrong answer close to ``answer`` (an integer or a reduced fraction ``p/q``): its value (for a fraction, its
    numerator) moved by a slip from ``SLIPS``. Never equal in value to ``answer``."""
    value = Fraction(answer)
    slip = int(rng.choice(SLIPS))
    return fraction_text(value + Fraction(slip, value.denominator))


def attempt(answer: str, rng: np.random.Generator, accuracy: float = TEACHER_ACCURACY) -> str:
    """One teacher attempt at a problem whose exact answer is ``answer``: right with probability ``accuracy``."""
    return boxed(answer if rng.random() < accuracy else near_miss(answer, rng))


def demonstrations(domain: MathDomain, count: int, rng: np.random.Generator,
                   accuracy: float = TEACHER_ACCURACY) -> list[tuple[Instance, str]]:
    """``count`` (instance, response) pairs on the domain's training problems, kinds drawn by ``KIND_WEIGHTS``; each
    teacher attempt is right with probability ``accuracy`` (the domain's ``teacher_accuracy``)."""
    out = []
    for task_id, kind in draw_tasks_and_kinds(domain.task_ids("train"), KIND_WEIGHTS, count, rng):
        answer = domain.problem(task_id).answer
        base = domain.base_instance(task_id)
        if kind == "base":
            out.append((base, attempt(answer, rng, accuracy)))
            continue
        previous = attempt(answer, rng, accuracy)
        child = domain.child(base, previous, domain.grade([base], [previous])[0])
        if kind == "diverge":
            out.append((child.with_mode("diverge"), attempt(answer, rng, accuracy)))
        else:
            out.append((child, previous if rng.random() < KEEP_PROBABILITY else attempt(answer, rng, accuracy)))
    return out
