"""Launch mistakes end with a non-zero exit and a message that says what is wrong and what to do, and nothing that
was already in the workdir changes (every file byte-identical afterwards).

Covered: a missing config file, an unknown ``--config.`` override key, an unknown preset or method in the ``:arg``,
a workdir holding another experiment's checkpoints, a corrupt latest checkpoint (and following the message's advice
then resumes correctly), and the GRPO config validation surfacing at start-up.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests import run_helpers as rh


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    return rh.shared_run(tmp_path_factory, "math", rh.MATH_SMOKE)[0]


@pytest.fixture
def existing(finished, tmp_path) -> Path:
    """A private copy of a finished math run: the workdir a mistaken command is pointed at."""
    workdir = tmp_path / "existing"
    shutil.copytree(finished, workdir)
    return workdir


def refuse(args: tuple[str, ...], workdir: Path, tmp_path_factory, *needles: str) -> str:
    """Run ``args`` on ``workdir``; assert a non-zero exit, every needle in stderr, and an untouched workdir."""
    before = rh.tree_digest(workdir) if workdir.exists() else None
    result = rh.launch(args, workdir, rh.cache_dir_for(tmp_path_factory), timeout=300)
    assert result.returncode != 0, f"{args} should have failed:\n{result.stderr[-3000:]}"
    text = result.stderr.lower()
    missing = [n for n in needles if n.lower() not in text]
    assert not missing, f"message lacks {missing}:\n{result.stderr[-3000:]}"
    if before is not None:
        assert rh.tree_digest(workdir) == before, "the failed launch changed files in the workdir"
    return result.stderr


def test_missing_config_file(existing, tmp_path_factory):
    refuse(("--config=experiments/nope.py",), existing, tmp_path_factory,
           "experiments/nope.py", "no such file", "experiments/math.py")


def test_unknown_override_key(existing, tmp_path_factory):
    refuse(("--config=experiments/math.py:smoke", "--config.train.nope=1"), existing, tmp_path_factory,
           "train.nope", "num_iterations")  # the mistyped key and the section's real fields


@pytest.mark.parametrize("arg, needles", [
    ("smoke,nosuch", ("unknown preset 'nosuch'", "smoke", "llama3.2-3b")),
    ("smoke,method=bogus", ("unknown method 'bogus'", "grpo", "exit")),
    ("smoke,flavour=x", ("unknown option 'flavour'", "method=", "seed=")),
])
def test_unknown_preset_or_method(arg, needles, existing, tmp_path_factory):
    refuse((f"--config=experiments/math.py:{arg}",), existing, tmp_path_factory, *needles)


def test_workdir_of_another_experiment(existing, tmp_path_factory):
    """mle smoke pointed at a math run's workdir: refused, the math run's files untouched."""
    refuse(("--config=experiments/mle.py:smoke",), existing, tmp_path_factory,
           "different run", "'math'", "'mle'", "fresh --workdir")


def test_corrupt_checkpoint_then_following_the_advice(existing, finished, tmp_path, tmp_path_factory):
    latest = max(rh.checkpoint_steps(existing))
    data = max((p for p in (existing / "checkpoints" / str(latest)).rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
    os.truncate(data, data.stat().st_size // 2)  # the parameter data file, cut in half
    refuse(rh.MATH_SMOKE, existing, tmp_path_factory,
           f"checkpoints/{latest}", "cannot restore", "move the step directory away", "fresh --workdir")

    # Doing what the message says: move the step away; the run falls back to the previous checkpoint and ends
    # exactly where the uninterrupted run ended.
    shutil.move(existing / "checkpoints" / str(latest), tmp_path / f"corrupt_step_{latest}")
    result = rh.launch(rh.MATH_SMOKE, existing, rh.cache_dir_for(tmp_path_factory))
    assert result.returncode == 0, result.stderr[-6000:]
    assert rh.without_wall_clock(rh.read_jsonl(existing / "metrics.jsonl")) == rh.without_wall_clock(
        rh.read_jsonl(finished / "metrics.jsonl"))
    name = f"eval/step_{rh.MATH_ITERATIONS:06d}.json"
    assert (existing / name).read_bytes() == (finished / name).read_bytes()


def test_rl_validation_error_at_startup(tmp_path, tmp_path_factory):
    """A bad GRPO field fails before anything is built or written, naming the field."""
    workdir = tmp_path / "fresh"
    refuse(("--config=experiments/math.py:smoke", "--config.rl.beta=-1"), workdir, tmp_path_factory,
           "beta", ">= 0")
    assert not workdir.exists() or not any(workdir.iterdir())


def test_num_generations_override_is_validated_as_such(tmp_path, tmp_path_factory):
    workdir = tmp_path / "fresh"
    refuse(("--config=experiments/math.py:smoke", "--config.rl.num_generations=1"), workdir, tmp_path_factory,
           "num_generations", "at least 2")
    assert not workdir.exists() or not any(workdir.iterdir())


def test_curriculum_rung_whose_replay_could_never_start(tmp_path, tmp_path_factory):
    """The MLE domain has fewer training competitions than 16; a curriculum rung (base tasks only in its buffer) with
    B_min = 16 would silently train as plain GRPO. It is refused before anything is written, with the bound to use."""
    from exit_jax.domains.mle.builtin import builtin_names

    n_train = len(builtin_names("train"))
    assert n_train < 16
    workdir = tmp_path / "fresh"
    refuse(("--config=experiments/mle.py:smoke,method=curriculum", "--config.curriculum.min_buffer_size=16",
            "--config.curriculum.buffer_size=16"), workdir, tmp_path_factory,
           "min_buffer_size=16", f"{n_train} training tasks", "plain grpo", f"at most {n_train}")
    assert not workdir.exists() or not any(workdir.iterdir())
