"""More evaluation chains for finished runs: how much of a sweep's seed spread is evaluation noise?

A run's held-out evaluation is avg@n: ``eval.num_samples`` chains per task, with draws fixed by the seed and the
iteration. A rung's spread over seeds mixes two sources: different trained policies (the RL seed) and different
evaluation draws for the same policy. This module restores a finished run's last checkpoint and evaluates that same
policy again with fresh, independent draws, so the two can be told apart, and pools the new chains with the run's
own (a mean over all chains; each chain counts once)::

    python -m exit_jax.reevaluate SWEEP_DIR --rungs grpo exit --num_samples 16 --draw 1

``--steps 20 40 --split train`` evaluates those checkpoints on the training tasks instead (how a rung's lead
develops with training compute, without touching the held-out tasks) and prints the area by step.

Each run gets ``<run>/reeval/step_<N>[-<split>]-draw<d>-n<n>.json`` (the evaluation JSON of exit_jax.evaluation;
the run's own ``eval/`` is never touched, so its report and the sweep's results page are unchanged). The summary
prints, per rung, the area over k = 1..K (the mean held-out score over the improvement steps) of every seed for the
run's own chains, for the new ones and pooled, and issue 9's criterion (a) (exit_jax.results' rule) on each. Draw 0
with the run's own ``num_samples`` repeats the run's own evaluation exactly: the check that the restored policy is
the one evaluated.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exit_jax import results


def reeval_path(run_dir: str | Path, step: int, draw: int, num_samples: int, split: str | None = None) -> Path:
    """Where a re-evaluation lands; ``split`` (when not the run's own evaluation split) is part of the name."""
    tag = f"-{split}" if split else ""
    return Path(run_dir) / "reeval" / f"step_{step:06d}{tag}-draw{draw}-n{num_samples}.json"


def reevaluate_run(run_dir: str | Path, num_samples: int | None, draw: int, step: int | None = None,
                   split: str | None = None, out: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """Evaluates the policy of ``run_dir``'s latest checkpoint (or checkpoint ``step``) with draw ``draw`` and
    ``num_samples`` chains per task (None: the run's own), on the run's evaluation split or on ``split`` (e.g.
    "train"), into ``out`` (default: ``reeval_path``).

    Raises:
      ValueError: ``run_dir`` holds no config.json or no such checkpoint.
    """
    import ml_collections

    from exit_jax.trainer import Trainer

    run_dir = Path(run_dir)
    try:
        config = ml_collections.ConfigDict(json.loads((run_dir / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError) as error:
        raise ValueError(f"{run_dir}: no readable config.json ({error})") from error
    trainer = Trainer(config, run_dir)  # checks the checkpoints' identity against this config
    saved = trainer.checkpointer.manager.all_steps()
    if step is not None and step not in saved:
        raise ValueError(f"{run_dir}: no checkpoint at step {step}; saved steps: {sorted(saved)}")
    if not trainer.restore(step):
        raise ValueError(f"{run_dir}: no checkpoint to restore; the run never saved one")
    num_samples = num_samples or config.eval.num_samples
    out = Path(out) if out is not None else reeval_path(run_dir, trainer.iteration, draw, num_samples, split)
    result = trainer.evaluate(num_samples=num_samples, draw=draw, out=out, split=split)
    trainer.checkpointer.close()
    return out, result


def pooled(evaluations: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One evaluation result from several of the same policy (same tasks and K): chain-weighted means.

    ``mean`` and ``per_task`` are averages over all chains together (each result weighs by its ``avg_at_n``); the
    other fields are those of the first result, ``avg_at_n`` the total.
    """
    if not evaluations:
        raise ValueError("nothing to pool")
    first = evaluations[0]
    weights = np.asarray([int(e["avg_at_n"]) for e in evaluations], np.float64)
    for e in evaluations[1:]:
        if len(e["mean"]) != len(first["mean"]) or set(e["per_task"]) != set(first["per_task"]):
            raise ValueError("evaluations to pool must cover the same tasks and K")

    def average(rows: Sequence[Sequence[float]]) -> list[float]:
        return (weights @ np.asarray(rows, np.float64) / weights.sum()).tolist()

    out = dict(first)
    out["mean"] = average([e["mean"] for e in evaluations])
    out["per_task"] = {task: average([e["per_task"][task] for e in evaluations]) for task in first["per_task"]}
    out["avg_at_n"] = int(weights.sum())
    out.pop("traces", None)
    out.pop("std", None)  # a per-chain std cannot be recovered from the summaries; not pooled
    return out


def _area(result: Mapping[str, Any]) -> float:
    curve = result["mean"]
    return float(np.mean(curve[1:])) if len(curve) > 1 else math.nan


def summarize(sweep_dir: str | Path, rungs: Sequence[str], draws: Sequence[tuple[int, int]]) -> str:
    """A markdown summary: per rung and seed, the area of the run's own chains, of each re-evaluation, and pooled;
    then criterion (a) for each of those (exit_jax.results' rule: ExIt's mean area − GRPO's > the larger std)."""
    members = [m for m in results.collect_members(sweep_dir) if m.label in rungs and m.result is not None]
    columns = ["own"] + [f"draw {d} (n={n})" for d, n in draws] + ["pooled"]
    rows, versions = [], {column: [] for column in columns}
    for member in sorted(members, key=lambda m: (rungs.index(m.label), m.name)):
        step = int(member.result["step"])
        extra = []
        for draw, n in draws:
            path = reeval_path(member.workdir, step, draw, n)
            extra.append(json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None)
        found = [e for e in extra if e is not None]
        all_results = [member.result, *extra, pooled([member.result, *found])]
        for column, result in zip(columns, all_results, strict=True):
            if result is not None:
                versions[column].append(results.MemberData(member.name, member.label, member.workdir,
                                                           result=result))
        rows.append([member.label, member.name, str(member.result.get("avg_at_n", "?"))]
                    + [results.format_number(_area(r)) if r is not None else "–" for r in all_results])
    lines = ["| rung | run | own n | " + " | ".join(f"area, {c}" for c in columns) + " |",
             "|---" * (3 + len(columns)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "| chains | criterion (a) | figures |", "|---|---|---|"]
    for column in columns:
        groups, _ = results._groups(versions[column])
        status, figures = results._versus(groups, ("exit", "grpo"), "area", "spread")
        lines.append(f"| {column} | {status} | {figures} |")
    return "\n".join(lines)


def by_step(sweep_dir: str | Path, rungs: Sequence[str], steps: Sequence[int], draw: int, num_samples: int,
            split: str | None) -> str:
    """A markdown table of the area (mean ± std over a rung's seeds) at each checkpoint step, from re-evaluations
    already on disk; a rung's step with none is "–"."""
    members = [m for m in results.collect_members(sweep_dir) if m.label in rungs]
    lines = ["| rung | " + " | ".join(f"step {s}" for s in steps) + " |", "|---" * (1 + len(steps)) + "|"]
    for rung in rungs:
        cells = []
        for step in steps:
            areas = []
            for member in (m for m in members if m.label == rung):
                path = reeval_path(member.workdir, step, draw, num_samples, split)
                if path.is_file():
                    areas.append(_area(json.loads(path.read_text(encoding="utf-8"))))
            count = results._stats(areas)[2]
            cells.append(results._cell(areas) + (f" (n={count})" if count else ""))
        lines.append(f"| {results.DISPLAY.get(rung, rung)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m exit_jax.reevaluate", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", help="a sweep directory (its members) or run directories")
    parser.add_argument("--rungs", nargs="+", default=["grpo", "exit"], help="sweep rungs to re-evaluate")
    parser.add_argument("--num_samples", type=int, default=16, help="new chains per held-out task")
    parser.add_argument("--draw", type=int, default=1, help="draw index: 0 repeats the run's own evaluation")
    parser.add_argument("--steps", nargs="+", type=int, default=None,
                        help="checkpoint steps to evaluate (default: each run's latest)")
    parser.add_argument("--split", default=None, help="task split (default: the run's eval.split, held-out)")
    parser.add_argument("--summary_only", action="store_true", help="only summarise existing re-evaluations")
    arguments = parser.parse_args(argv)
    if arguments.num_samples < 1 or arguments.draw < 0:
        parser.error("--num_samples must be >= 1 and --draw >= 0")
    if arguments.split and not arguments.steps:
        parser.error("--split needs --steps (the checkpoints to evaluate on it)")
    for path in map(Path, arguments.paths):
        is_sweep = not (path / "config.json").is_file()
        runs = ([m.workdir for m in results.collect_members(path) if m.label in arguments.rungs] if is_sweep
                else [path])
        if not arguments.summary_only:
            for run in runs:
                for step in arguments.steps or [None]:
                    try:
                        out, result = reevaluate_run(run, arguments.num_samples, arguments.draw, step,
                                                     arguments.split)
                    except ValueError as error:
                        print(f"error: {error}", file=sys.stderr)
                        return 1
                    print(f"{run}: area {results.format_number(_area(result))} over {result['avg_at_n']} chains "
                          f"-> {out}", flush=True)
        if is_sweep and arguments.steps:
            print(by_step(path, arguments.rungs, arguments.steps, arguments.draw, arguments.num_samples,
                          arguments.split))
        elif is_sweep:
            print(summarize(path, arguments.rungs, [(arguments.draw, arguments.num_samples)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
