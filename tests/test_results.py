"""The results page (exit_jax/results.py): Table 1 cells against NumPy, the verdict's PASS / FAIL / N/A, the base rung.

Member workdirs are written by hand (eval JSON, metrics.jsonl, config.json) with known curves; every expected number
is computed here with NumPy from those curves, never by the code under test.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from exit_jax import results, sweep
from experiments.common import LADDER, ladder_sweep

REPO = Path(__file__).resolve().parent.parent
K = 8
ITERATIONS = 10


def write_member(workdir: Path, curve, *, per_task=None, ceiling=None, depth=1.0, rewards=None, distinct=None,
                 cosine=None, coefficient=None, iterations=ITERATIONS, experiment="mle"):
    """A finished member: eval/step_N.json (plus an older, lower one that must not count), metrics, config."""
    curve = [float(value) for value in curve]
    (workdir / "eval").mkdir(parents=True)
    for step, offset in ([(iterations // 2, -0.3)] if iterations else []) + [(iterations, 0.0)]:
        result = {"step": step, "domain": "mle", "split": "heldout", "K": len(curve) - 1,
                  "k": list(range(len(curve))), "mean": [value + offset for value in curve],
                  "per_task": per_task or {"t0": curve}, "delta_K": curve[-1] - curve[0] + offset,
                  "net_corrections": None, "avg_at_n": 1}
        if ceiling is not None:
            result["ceiling"] = ceiling
        (workdir / "eval" / f"step_{step:06d}.json").write_text(json.dumps(result))
    records = [{"step": -3, "warm_start/nll": 2.0}]  # warm-start records sit at negative steps
    if iterations == 0:  # the base rung logs its evaluation's scalars at step 0 (exit_jax/run.py)
        records.append({"step": 0, "eval/score_k0": curve[0], "eval/delta_K": curve[-1] - curve[0]})
    for step in range(iterations):
        record = {"step": step + 1, "batch/mean_iterate": depth, "batch/mean_depth": depth}
        if rewards is not None:
            record["reward/mean"] = rewards[step]
        if distinct is not None:
            record["curriculum/distinct_trained"] = distinct[step]
        if cosine is not None:
            record["batch/pairwise_cosine"] = cosine[step]
        if coefficient is not None:
            record["diversity/coefficient_mean"] = coefficient[step]
        records.append(record)
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    config = {"experiment": experiment, "train": {"num_iterations": iterations, "num_prompts": 8},
              "rl": {"num_generations": 4}}
    (workdir / "config.json").write_text(json.dumps(config))


def write_sweep(sweep_dir: Path, curves: dict, depth: float = 1.0, seeds: int = 3):
    """Members of ``ladder_sweep(seeds)`` with ``curves[label][seed]``; a manifest as the launcher writes it."""
    planned = sweep.plan({"sweep": ladder_sweep(seeds)}, "experiments/mle.py", sweep_dir)
    for member in planned:
        if member.label in curves and curves[member.label][member.overrides["seed"]] is not None:
            write_member(member.workdir, curves[member.label][member.overrides["seed"]],
                         iterations=0 if member.label == "base" else ITERATIONS, depth=depth)
    sweep.write_manifest(sweep_dir, planned)
    return planned


def table_rows(text: str, first_header: str = "| method | seeds | score k=0") -> dict[str, list[str]]:
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(first_header))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def mean_std(cell: str) -> list[float]:
    return [float(part) for part in cell.split("±")]


def test_table_and_training_cells_match_numpy(tmp_path):
    rng = np.random.default_rng(0)
    sweep_dir = tmp_path / "sweep"
    planned = sweep.plan({"sweep": ladder_sweep(3)}, "experiments/mle.py", sweep_dir)
    expected: dict[str, dict[str, list]] = {}
    for member in planned:
        curve = rng.uniform(0, 1, K + 1)
        rewards, distinct = rng.uniform(0, 1, ITERATIONS), np.cumsum(rng.integers(1, 5, ITERATIONS)).astype(float)
        cosine, coefficient = rng.uniform(0, 1, ITERATIONS), rng.uniform(0.5, 1.5, ITERATIONS)
        depth = float(rng.uniform(0, 3))
        trains = member.label != "base"
        write_member(member.workdir, curve, depth=depth, rewards=rewards if trains else None,
                     distinct=distinct if trains else None, cosine=cosine if trains else None,
                     coefficient=coefficient if member.label == "exit" else None,
                     iterations=ITERATIONS if trains else 0)
        figures = expected.setdefault(member.label, {key: [] for key in (
            "k0", "kK", "area", "delta", "depth", "distinct", "cosine", "coefficient", "reward")})
        figures["k0"].append(curve[0])
        figures["kK"].append(curve[K])
        figures["area"].append(np.mean(curve[1:]))
        figures["delta"].append(curve[K] - curve[0])
        if trains:
            figures["depth"].append(depth)
            figures["distinct"].append(distinct[-1])
            figures["cosine"].append(np.mean(cosine))
            figures["coefficient"].append(np.mean(coefficient))
            figures["reward"].append(np.mean(rewards[-1:]))  # last 10% of 10 records
    sweep.write_manifest(sweep_dir, planned)
    page = results.write_results(sweep_dir, tmp_path / "docs" / "results.md", command="pytest")
    table = table_rows(page.table)
    assert list(table) == [results.DISPLAY[label] for label in LADDER]  # ladder order
    for label in LADDER:
        row, figures = table[results.DISPLAY[label]], expected[label]
        assert row[0] == "3/3"
        for column, key in enumerate(("k0", "kK", "area", "delta"), start=1):
            assert mean_std(row[column]) == pytest.approx(
                [np.mean(figures[key]), np.std(figures[key], ddof=1)], abs=6e-5), (label, key)
    text = page.path.read_text()
    training = table_rows(text, "| method | seeds | rollouts trained")
    assert training["Base policy (no RL)"][:3] == ["0/3", "0 ± 0", "–"]
    for label in LADDER[1:]:
        row, figures = training[results.DISPLAY[label]], expected[label]
        assert mean_std(row[1]) == [ITERATIONS * 8 * 4, 0]
        for column, key, digits in ((2, "depth", 4), (3, "depth", 4), (4, "distinct", 1), (5, "cosine", 4),
                                    (7, "reward", 4)):
            assert mean_std(row[column]) == pytest.approx(
                [np.mean(figures[key]), np.std(figures[key], ddof=1)], abs=0.6 * 10 ** -digits), (label, key)
        assert (row[6] == "–") == (label != "exit")
    assert mean_std(training["Full ExIt"][6]) == pytest.approx(
        [np.mean(expected["exit"]["coefficient"]), np.std(expected["exit"]["coefficient"], ddof=1)], abs=6e-5)
    assert "Equal training compute across the RL rungs: yes, 320 rollouts each." in text
    assert "18 found, 18 with an evaluation, 0 missing" in text and "produced by `pytest`" in text
    assert [path.name for path in page.figures] == ["mle_score_vs_k.png", "mle_training.png"]
    for path in page.figures:
        assert path.parent == tmp_path / "docs" / "results" and path.read_bytes()[:4] == b"\x89PNG"
        assert f"](results/{path.name})" in text


def ladder_curves(base=0.1, grpo=0.3, exit_curve=None, noise=0.005, seeds=3):
    """Curves per label and seed: flat base, GRPO (and the middle rungs) rising by 0.1, ExIt (default to 0.6)."""
    ks = np.arange(K + 1)
    shapes = {"base": np.full(K + 1, base), "grpo": grpo + 0.1 * ks / K,
              "exit": np.asarray(exit_curve) if exit_curve is not None else 0.35 + 0.25 * np.minimum(ks, 5) / 5}
    shapes.update({label: shapes["grpo"] for label in ("curriculum", "improve", "diverge")})
    offsets = noise * np.array([-1.0, 0.0, 1.0])[:seeds]
    return {label: [shape + offset for offset in offsets] for label, shape in shapes.items()}


ks = np.arange(K + 1)
SCENARIOS = {
    "all pass": (ladder_curves(), 1.0, dict(a="PASS", b="PASS", c="PASS", d="PASS")),
    # ExIt's area only 0.002 above GRPO's while the seeds spread by 0.005: not significant; k = K still not below.
    "a fails": (ladder_curves(exit_curve=0.302 + 0.1 * ks / K), 1.0, dict(a="FAIL", b="PASS", c="PASS", d="PASS")),
    # ExIt flat at 0.6 (big area) but GRPO jumps to 0.8 at k = K.
    "b fails": (ladder_curves(grpo=np.r_[np.full(K, 0.3), 0.8], exit_curve=np.r_[0.35, np.full(K, 0.6)]), 1.0,
                dict(a="PASS", b="FAIL", c="PASS", d="PASS")),
    # ExIt peaks at k = 4 and loses 0.06 by k = K, beyond k0 = 2 (depth 1) and far above the 0.005 tolerance.
    "c fails": (ladder_curves(grpo=0.2 + 0.05 * ks / K,
                              exit_curve=np.r_[0.3, 0.4, 0.5, 0.55, 0.6, 0.59, 0.57, 0.555, 0.54]), 1.0,
                dict(a="PASS", b="PASS", c="FAIL", d="PASS")),
    # The same decline, but training depth 4 puts k0 = ceil(2 * 4) = 8 = K: nothing beyond it to check.
    "c not applicable": (ladder_curves(exit_curve=np.r_[0.3, 0.4, 0.5, 0.55, 0.6, 0.59, 0.57, 0.555, 0.54]), 4.0,
                         dict(a="PASS", b="PASS", c="N/A", d="PASS")),
    # The base policy (flat 0.36) as good as GRPO (area 0.3 + 0.1 * 4.5 / 8 = 0.356).
    "d fails": (ladder_curves(base=0.36), 1.0, dict(a="PASS", b="PASS", c="PASS", d="FAIL")),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_verdict_flips_with_the_curves(tmp_path, scenario):
    curves, depth, expected = SCENARIOS[scenario]
    write_sweep(tmp_path / "sweep", curves, depth=depth)
    page = results.write_results(tmp_path / "sweep", tmp_path / "results.md", command="pytest")
    assert page.verdict == expected
    text = page.path.read_text()
    for key, status in expected.items():
        assert f"- ({key}) **{status}**" in text
    overall = "shown" if set(expected.values()) == {"PASS"} else "not shown"
    assert f"**Overall: the effect is {overall}**" in text


def test_verdict_figures_are_numpy_figures(tmp_path):
    curves, depth, _ = SCENARIOS["c fails"]
    write_sweep(tmp_path / "sweep", curves, depth=depth)
    text = results.write_results(tmp_path / "sweep", tmp_path / "results.md").path.read_text()
    exit_curves, grpo_curves = np.asarray(curves["exit"]), np.asarray(curves["grpo"])
    area_exit, area_grpo = exit_curves[:, 1:].mean(axis=1), grpo_curves[:, 1:].mean(axis=1)
    spread = max(area_exit.std(ddof=1), area_grpo.std(ddof=1))
    line_a = next(line for line in text.splitlines() if line.startswith("- (a) **"))
    assert f"difference {area_exit.mean() - area_grpo.mean():+.4f}" in line_a and f"spread {spread:.4f}" in line_a
    line_c = next(line for line in text.splitlines() if line.startswith("- (c) **"))
    start = math.ceil(2 * depth)
    mean = exit_curves.mean(axis=0)[start:]
    drops = np.maximum.accumulate(mean) - mean
    tolerance = exit_curves.std(axis=0, ddof=1)[start:].mean()
    assert f"k₀ = {start}" in line_c
    assert f"largest drop below the running maximum {drops.max():.4f} at k = {start + int(drops.argmax())}" in line_c
    assert f"tolerance {tolerance:.4f}" in line_c


def test_missing_members_give_not_applicable_and_are_listed(tmp_path):
    curves = ladder_curves()
    curves["exit"] = [None, None, None]  # every ExIt member crashed before its evaluation
    planned = write_sweep(tmp_path / "sweep", curves)
    (planned[-1].workdir).mkdir()  # one of them got as far as creating its workdir
    page = results.write_results(tmp_path / "sweep", tmp_path / "results.md")
    assert page.verdict == dict(a="N/A", b="N/A", c="N/A", d="N/A")
    text = page.path.read_text()
    assert "18 found, 15 with an evaluation, 3 missing" in text
    assert f"`{planned[-1].name}`: no evaluation" in text and f"`{planned[-2].name}`: no workdir" in text
    assert table_rows(page.table)["Full ExIt"] == ["0/3", "–", "–", "–", "–"]


def test_base_rung_members_run_no_iterations_and_group_as_base(tmp_path):
    entries = ladder_sweep(3)
    planned = sweep.plan({"sweep": entries}, "experiments/mle.py", tmp_path)
    assert [member.label for member in planned] == [label for label in LADDER for _ in range(3)]
    base = [member for member in planned if member.label == "base"]
    assert [member.name for member in base] == [f"base,seed={s},curriculum.seed={s}" for s in range(3)]
    for member in base:
        assert "--config.train.num_iterations=0" in member.command
        assert not any(argument.startswith("--config._label") for argument in member.command)
    for member in planned[3:]:  # RL rungs: only method and seeds, so equal iterations x prompts x G
        assert set(member.overrides) == {"curriculum.method", "seed", "curriculum.seed"}
        assert member.overrides["curriculum.method"] == member.label
    assert len(ladder_sweep(2, base=False)) == 10
    table, _ = sweep.compare({m.name: m.workdir for m in planned}, tmp_path)  # grouping from the names alone
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == list(LADDER)


def test_page_keeps_other_experiments_and_refuses_foreign_files(tmp_path):
    write_sweep(tmp_path / "mle-sweep", ladder_curves(), seeds=3)
    math_dir = tmp_path / "math-sweep"
    for member in sweep.plan({"sweep": ladder_sweep(2)}, "experiments/math.py", math_dir):
        write_member(member.workdir, np.linspace(0.1, 0.2, K + 1), experiment="math")  # no manifest: scanned
    page_path = tmp_path / "docs" / "results.md"
    results.write_results(tmp_path / "mle-sweep", page_path, command="first")
    results.write_results(math_dir, page_path)
    results.write_results(tmp_path / "mle-sweep", page_path, command="second")
    text = page_path.read_text()
    assert text.startswith(results.PAGE_TITLE + "\n")
    assert text.count("exit_jax.results:begin mle") == 1 and text.count("exit_jax.results:begin math") == 1
    assert "produced by `second`" in text and "produced by `first`" not in text
    assert "12 found, 12 with an evaluation" in text  # the math sweep, found by scanning its directories
    foreign = tmp_path / "README.md"
    foreign.write_text("# my notes\n")
    with pytest.raises(ValueError, match="not written by exit_jax.results"):
        results.write_results(tmp_path / "mle-sweep", foreign)
    assert foreign.read_text() == "# my notes\n" and not (tmp_path / "results").exists()
    assert results.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.md")]) == 1


def test_ceilings_and_per_task_panel(tmp_path):
    sweep_dir = tmp_path / "sweep"
    for member in sweep.plan({"sweep": ladder_sweep(1)}, "experiments/mle.py", sweep_dir):
        per_task = {"a": np.linspace(0.1, 0.3, K + 1).tolist(), "b": np.linspace(0.2, 0.5, K + 1).tolist()}
        write_member(member.workdir, np.mean([per_task["a"], per_task["b"]], axis=0), per_task=per_task,
                     ceiling={"a": 0.9, "b": 0.7})
    assert results.main([str(sweep_dir), "--out", str(tmp_path / "out.md"), "--title", "MLE ladder"]) == 0
    text = (tmp_path / "out.md").read_text()
    assert "## MLE ladder" in text and "`a` 0.9000, `b` 0.7000" in text
    assert (tmp_path / "results" / "mle_per_task.png").read_bytes()[:4] == b"\x89PNG"
    assert "(a) **N/A**" in text and "fewer than 2 seeds" in text  # one seed: no spread to compare against


FAKE_RUNS = """
import json, runpy, sys
from pathlib import Path
from exit_jax import sweep

def fake_run_local(commands, parallel=1, names=None, **kwargs):
    for command in commands:
        workdir = sweep._workdir_of(command)
        label = workdir.name.split(",")[0]
        level = {"base": 0.1, "grpo": 0.3}.get(label, 0.5)
        seed = int(workdir.name.split("seed=")[1].split(",")[0])
        (workdir / "eval").mkdir(parents=True)
        curve = [level + 0.01 * seed + 0.02 * k for k in range(5)]
        (workdir / "eval" / "step_000001.json").write_text(json.dumps({"step": 1, "K": 4, "mean": curve}))
        (workdir / "command.json").write_text(json.dumps(command))
    return [0] * len(commands)

sweep.run_local = fake_run_local
sys.argv = ["launch/tpu_run.py", *sys.argv[1:]]
runpy.run_path("launch/tpu_run.py", run_name="__main__")
"""


def test_launcher_sweep_writes_the_results_pages(tmp_path):
    script = tmp_path / "fake_sweep.py"
    script.write_text(FAKE_RUNS)
    sweep_dir, page = tmp_path / "sweep", tmp_path / "docs" / "results.md"
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, str(script), "--config=experiments/mle.py:smoke", "--sweep",
                           f"--workdir={sweep_dir}", f"--results_md={page}"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for path in (sweep_dir / "results.md", page):
        assert "18 found, 18 with an evaluation, 0 missing" in path.read_text()
    assert (sweep_dir / "comparison.md").exists() and (sweep_dir / sweep.MANIFEST_FILE).exists()
    base_command = json.loads((sweep_dir / "base,seed=0,curriculum.seed=0" / "command.json").read_text())
    assert "--config.train.num_iterations=0" in base_command
    assert not any(argument.startswith(("--results_md", "--config._label")) for argument in base_command)
    assert "| base |" in (sweep_dir / "comparison.md").read_text()
