"""exit_jax.reevaluate: extra evaluation chains for finished runs, pooled with their own.

The restore path is checked end to end against a real run (draw 0 repeats the run's own evaluation file exactly);
pooling and the summary's criterion (a) are checked against means computed here with NumPy from hand-written curves.
"""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from exit_jax import reevaluate
from tests import run_helpers as rh
from tests.test_results import write_sweep


def _result(mean, per_task, n):
    return {"step": 10, "K": len(mean) - 1, "mean": list(mean), "per_task": per_task, "avg_at_n": n,
            "std": [0.0] * len(mean), "traces": {"t0": []}}


def test_pooled_weights_each_chain_once():
    a = _result([0.2, 0.4, 0.6], {"t0": [0.1, 0.3, 0.5], "t1": [0.3, 0.5, 0.7]}, 4)
    b = _result([0.5, 0.5, 0.9], {"t0": [0.4, 0.4, 0.8], "t1": [0.6, 0.6, 1.0]}, 16)
    out = reevaluate.pooled([a, b])
    np.testing.assert_allclose(out["mean"], (4 * np.array(a["mean"]) + 16 * np.array(b["mean"])) / 20, atol=1e-15)
    np.testing.assert_allclose(out["per_task"]["t1"], [(4 * 0.3 + 16 * 0.6) / 20, (4 * 0.5 + 16 * 0.6) / 20,
                                                       (4 * 0.7 + 16 * 1.0) / 20], atol=1e-15)
    assert out["avg_at_n"] == 20 and "traces" not in out and "std" not in out
    assert a["avg_at_n"] == 4 and "traces" in a  # inputs untouched
    with pytest.raises(ValueError, match="same tasks"):
        reevaluate.pooled([a, _result([0.1, 0.2, 0.3], {"t0": [0.1, 0.2, 0.3]}, 4)])
    with pytest.raises(ValueError, match="nothing"):
        reevaluate.pooled([])


def test_summary_pools_and_applies_criterion_a(tmp_path):
    # Own evaluations (1 chain each, as write_member writes them): ExIt ahead by 0.05 in area, GRPO's spread 0.1, so
    # (a) fails. The re-evaluations (16 chains) bring GRPO's seeds together: (a) passes on them and on the pool.
    own = {"grpo": [[0.5, 0.6, 0.6], [0.5, 0.7, 0.7], [0.5, 0.8, 0.8]],
           "exit": [[0.5, 0.7, 0.7], [0.5, 0.75, 0.75], [0.5, 0.8, 0.8]]}
    new = {"grpo": [[0.5, 0.68, 0.68], [0.5, 0.70, 0.70], [0.5, 0.72, 0.72]],
           "exit": [[0.5, 0.78, 0.78], [0.5, 0.80, 0.80], [0.5, 0.82, 0.82]]}
    planned = write_sweep(tmp_path, own)
    for member in planned:
        if member.label in new:
            curve = new[member.label][member.overrides["seed"]]
            path = reevaluate.reeval_path(member.workdir, 10, 1, 16)
            path.parent.mkdir()
            path.write_text(json.dumps(_result(curve, {"t0": curve}, 16)))
    text = reevaluate.summarize(tmp_path, ["grpo", "exit"], [(1, 16)])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| own") or line.startswith("| draw")
            or line.startswith("| pooled")}
    assert rows["own"][1] == "FAIL" and rows["draw 1 (n=16)"][1] == "PASS" and rows["pooled"][1] == "PASS"

    def area(curve):
        return np.mean(curve[1:])

    pooled_areas = {label: [(area(o) + 16 * area(n)) / 17 for o, n in zip(own[label], new[label], strict=True)]
                    for label in own}
    expected_gap = np.mean(pooled_areas["exit"]) - np.mean(pooled_areas["grpo"])
    spread = max(np.std(pooled_areas["exit"], ddof=1), np.std(pooled_areas["grpo"], ddof=1))
    assert expected_gap > spread
    from exit_jax.report import format_number
    assert f"exit {format_number(np.mean(pooled_areas['exit']))}" in rows["pooled"][2]
    assert f"spread {format_number(spread)}" in rows["pooled"][2]
    per_run = [line for line in text.splitlines() if line.startswith("| grpo |")]
    assert len(per_run) == 3 and per_run[0].split("|")[-2].strip() == format_number(pooled_areas["grpo"][0])


def test_draw_zero_repeats_the_runs_own_evaluation(tmp_path_factory, tmp_path):
    source, _ = rh.shared_run(tmp_path_factory, "math", rh.MATH_SMOKE)
    run = tmp_path / "run"
    shutil.copytree(source, run)
    own = json.loads((run / "eval" / f"step_{rh.MATH_ITERATIONS:06d}.json").read_text())
    cache = rh.cache_dir_for(tmp_path_factory)
    done = subprocess.run([sys.executable, "-m", "exit_jax.reevaluate", str(run), "--num_samples",
                           str(own["avg_at_n"]), "--draw", "0"], cwd=rh.REPO, env=rh.run_env(cache),
                          capture_output=True, text=True, timeout=rh.RUN_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    again = json.loads(reevaluate.reeval_path(run, rh.MATH_ITERATIONS, 0, own["avg_at_n"]).read_text())
    assert again == own
    assert rh.tree_digest(run / "eval") == rh.tree_digest(source / "eval")  # the run's own files untouched

    done = subprocess.run([sys.executable, "-m", "exit_jax.reevaluate", str(run), "--num_samples", "3",
                           "--draw", "1"], cwd=rh.REPO, env=rh.run_env(cache),
                          capture_output=True, text=True, timeout=rh.RUN_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    extra = json.loads(reevaluate.reeval_path(run, rh.MATH_ITERATIONS, 1, 3).read_text())
    assert extra["avg_at_n"] == 3 and extra["per_task"].keys() == own["per_task"].keys()

    # An earlier checkpoint on the training split; a step that was never saved is a clear error.
    done = subprocess.run([sys.executable, "-m", "exit_jax.reevaluate", str(run), "--num_samples", "1",
                           "--steps", str(rh.MATH_ITERATIONS - 1), "999", "--split", "train"], cwd=rh.REPO,
                          env=rh.run_env(cache), capture_output=True, text=True, timeout=rh.RUN_TIMEOUT_S,
                          check=False)
    assert done.returncode == 1 and "no checkpoint at step 999" in done.stderr
    earlier = json.loads(reevaluate.reeval_path(run, rh.MATH_ITERATIONS - 1, 1, 1, "train").read_text())
    assert earlier["step"] == rh.MATH_ITERATIONS - 1 and earlier["split"] == "train"
    assert set(earlier["per_task"]).isdisjoint(own["per_task"])  # training problems, not the held-out ones


def test_a_run_without_checkpoints_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    done = subprocess.run([sys.executable, "-m", "exit_jax.reevaluate", str(tmp_path)], cwd=rh.REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "no readable config.json" in done.stderr


def test_by_step_table_reads_each_checkpoints_file(tmp_path):
    curves = {"grpo": [[0.5, 0.6, 0.6]] * 3, "exit": [[0.5, 0.7, 0.7]] * 3}
    planned = write_sweep(tmp_path, curves)
    areas = {}
    for member in planned:
        if member.label not in curves:
            continue
        seed = member.overrides["seed"]
        for step, base in ((20, 0.4), (40, 0.6)):
            value = base + 0.01 * seed + (0.05 if member.label == "exit" else 0.0)
            curve = [0.3, value, value + 0.02]
            path = reevaluate.reeval_path(member.workdir, step, 1, 2, "train")
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(_result(curve, {"t0": curve}, 2)))
            areas.setdefault((member.label, step), []).append(np.mean(curve[1:]))
    table = reevaluate.by_step(tmp_path, ["grpo", "exit"], [20, 40, 60], 1, 2, "train")
    from exit_jax.report import format_number
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")[1:]]
            for line in table.splitlines()[2:]}
    for label, name in (("grpo", "GRPO"), ("exit", "Full ExIt")):
        for column, step in enumerate((20, 40)):
            values = areas[(label, step)]
            assert rows[name][column] == (f"{format_number(np.mean(values))} ± "
                                          f"{format_number(np.std(values, ddof=1))} (n=3)")
        assert rows[name][2] == "–"  # no step-60 files
    assert not reevaluate.reeval_path(tmp_path, 20, 1, 2).name.count("train")
