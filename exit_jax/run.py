"""One experiment from start (or resume) to report: warm start, ExIt iterations, evaluations, checkpoints, outputs.

What lands in the workdir: ``metrics.jsonl`` and ``tb/`` (every scalar), ``checkpoints/`` (Orbax, keep-last-N),
``eval/step_N.json`` (K-step self-improvement results), ``report.md`` + ``plots/``, ``policy/`` (the final policy as a
HF directory transformers loads) and ``config.json``.

Resume: rerunning the same command in the same workdir restores the latest checkpoint and continues; metrics logged
after that checkpoint by a killed run are dropped first, so the log continues exactly. SIGTERM (TPU preemption) saves
a checkpoint at the end of the current iteration and exits cleanly.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from exit_jax.filelock import cache_home
from exit_jax.metrics import MetricsLogger, Progress


def _buffer_snapshot(trainer) -> dict[str, Any] | None:
    buffer = trainer.buffer
    if buffer is None or buffer.size == 0:
        return None
    n = buffer.size
    return {"depth": buffer.depths[:n].tolist(), "score": buffer.scores[:n].tolist(),
            "id": buffer.entry_ids[:n].tolist(), "parent_id": buffer.parent_ids[:n].tolist(),
            "turn": buffer.turns[:n].tolist()}


def _eval_scalars(result: dict[str, Any]) -> dict[str, float]:
    return {"eval/score_k0": result["mean"][0], f"eval/score_k{result['K']}": result["mean"][-1],
            "eval/delta_K": result["delta_K"]}


CACHE_MAX_BYTES = 4 << 30  # the compilation cache's bound; least recently used entries go first


def environment_scalars(environment: dict[str, Any], prefix: str = "environment") -> dict[str, float]:
    """The run's environment record (e.g. {"sandbox": isolation}) as metrics: numbers and flags as they are, each
    listed name as a flag (``environment/sandbox/cgroups/memory``: 1), a one-word string as ``<key>/<value>``: 1
    (``environment/sandbox/mode/isolated``); sentences are left to the evaluation JSON and the report."""
    scalars: dict[str, float] = {}
    for key, value in environment.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict):
            scalars.update(environment_scalars(value, name))
        elif isinstance(value, bool | int | float):
            scalars[name] = float(value)
        elif isinstance(value, list | tuple):
            scalars.update({f"{name}/{item}": 1.0 for item in value if isinstance(item, str)})
        elif isinstance(value, str) and value and len(value) <= 40 and not any(c.isspace() for c in value):
            scalars[f"{name}/{value}"] = 1.0
    return scalars


def write_policy_metadata(directory: Path, config: ml_collections.ConfigDict, iteration: int, tokenizer) -> None:
    """Beside an exported policy: ``generation_config.json`` (the source checkpoint's, else its tokenizer's special
    tokens) and ``exit_jax_policy.json`` (the run it came from: ``exit_jax.evaluate`` repeats that run's draws)."""
    import shutil

    source = Path(config.model.hf_dir) / "generation_config.json" if config.model.source == "hf" else None
    if source is not None and source.is_file():
        shutil.copyfile(source, directory / "generation_config.json")
    else:
        tokens = {name: getattr(tokenizer, name, None) for name in ("bos_token_id", "eos_token_id", "pad_token_id")}
        (directory / "generation_config.json").write_text(json.dumps(
            {**{k: v for k, v in tokens.items() if v is not None}, "_from_model_config": True}, indent=2))
    (directory / "exit_jax_policy.json").write_text(json.dumps(
        {"experiment": config.experiment, "preset": config.preset, "method": config.curriculum.method,
         "seed": int(config.seed), "iteration": int(iteration)}, indent=2))


def enable_compilation_cache(setting: str) -> str | None:
    """Point JAX's persistent compilation cache at ``setting`` and return the directory in use (None: off).

    ``"auto"``: ``$EXIT_JAX_CACHE/xla``, else ``~/.cache/exit_jax/xla`` (beside the built-in competitions' cache);
    ``""``: leave it off. A directory already configured (``JAX_COMPILATION_CACHE_DIR``, or an earlier call) wins.
    Only compilations of at least ``jax_persistent_cache_min_compile_time_secs`` (1 s by default) are stored. A loaded
    program is the one that was compiled, so results are bitwise those of compiling it again; what a run saves is
    the compile time of every shape an earlier run (a sweep's first member, the previous rerun) already met. JAX
    runs what it loads from there, so a directory this creates is private to its user (mode 0700); the MLE sandbox
    runs solutions as other users.
    """
    current = jax.config.jax_compilation_cache_dir
    if current or not setting:
        return current or None
    if setting == "auto":
        setting = str(cache_home() / "xla")
    os.makedirs(setting, mode=0o700, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", setting)
    # A size bound turns on JAX's LRU eviction, and with it the file lock around every read and write: a sweep's
    # parallel members then never read an entry another member is still writing (unbounded, writes are unlocked).
    jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
    return setting


def run_experiment(config: ml_collections.ConfigDict, workdir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Train and evaluate ``config`` in ``workdir`` (resuming if it holds this run's checkpoints)."""
    from exit_jax.report import load_eval_results, write_report
    from exit_jax.trainer import Trainer

    enable_compilation_cache(config.train.get("compilation_cache_dir", "auto"))
    workdir = Path(workdir)
    trainer = Trainer(config, workdir)  # refuses a workdir holding another experiment before writing anything
    trainer.install_signal_handlers()
    resumed = trainer.restore()
    is_main = jax.process_index() == 0
    logger = MetricsLogger(workdir, resume_step=trainer.iteration if resumed else None) if is_main else None
    if not resumed and is_main:
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=1))

    def log(step: int, scalars: dict[str, float]) -> None:
        if logger is not None:
            logger.log(step, scalars)

    train = config.train
    final_evaluated = False
    if not trainer.warm_started:
        trainer.warm_start(log)
        if trainer.environment:
            log(trainer.iteration, environment_scalars(trainer.environment))
        if train.eval_every or train.num_iterations == 0:
            log(trainer.iteration, _eval_scalars(trainer.evaluate()))
            final_evaluated = train.num_iterations == 0  # the base policy's run: this is its final evaluation
        trainer.save(force=True)
    bar = Progress(train.num_iterations, initial=trainer.iteration,
                   keys=("reward/mean", "loss", "buffer/size", "batch/replay_fraction")) if (
        progress and is_main) else None
    while trainer.iteration < train.num_iterations and not trainer._stop:
        metrics = trainer.train_iteration()
        log(trainer.iteration, metrics)
        if bar is not None:
            bar.update(trainer.iteration, metrics)
        done = trainer.iteration == train.num_iterations
        if train.eval_every and (trainer.iteration % train.eval_every == 0 or done):
            log(trainer.iteration, _eval_scalars(trainer.evaluate()))
            final_evaluated = done
        if train.checkpoint_every and (trainer.iteration % train.checkpoint_every == 0 or done or trainer._stop):
            trainer.save()
    if bar is not None:
        bar.close()
    if trainer._stop:
        if trainer.checkpointer.latest_step() != trainer.iteration:  # the loop may have saved this step already
            trainer.save(force=True)
        trainer.checkpointer.close()
        print(f"stopped by SIGTERM at iteration {trainer.iteration}; checkpoint saved in {workdir}", file=sys.stderr)
        return {"stopped": True, "iteration": trainer.iteration}
    trainer.checkpointer.close()
    if not final_evaluated:  # on every process: the evaluation runs collectives
        trainer.evaluate()
    if not is_main:
        return {"iteration": trainer.iteration}
    logger.close()
    evals = load_eval_results(workdir)
    report = write_report(workdir, json.loads(config.to_json_best_effort()), logger.history(), evals,
                          _buffer_snapshot(trainer))
    if train.export_policy:
        from exit_jax.models.hf_io import export_hf_model

        export_hf_model(trainer.learner.model(), workdir / "policy", tokenizer=trainer.tokenizer)
        write_policy_metadata(workdir / "policy", config, trainer.iteration, trainer.tokenizer)
    final = evals[-1]
    return {"iteration": trainer.iteration, "report": str(report), "final_eval": final,
            "score_k0": final["mean"][0], "score_kK": final["mean"][-1], "K": final["K"],
            "mean_score": float(np.mean(final["mean"]))}
