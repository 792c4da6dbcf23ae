"""report.md and plots from synthetic history / evaluations / buffer snapshots."""

import json

import numpy as np
import pytest

from exit_jax.report import lineage_layout, load_eval_results, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synthetic_eval(step: int, K: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    per_task = {f"task_{index}": rng.uniform(0, 1, K + 1).round(6).tolist() for index in range(3)}
    mean = np.mean(list(per_task.values()), axis=0)
    return {"step": step, "domain": "math", "K": K, "k": list(range(K + 1)), "mean": mean.tolist(),
            "std": rng.uniform(0, 0.1, K + 1).tolist(), "per_task": per_task,
            "ceiling": {"task_0": 0.9, "task_2": 1.0}, "delta_K": float(mean[-1] - mean[0]),
            "net_corrections": rng.integers(-3, 10, K + 1).tolist(), "avg_at_n": 4}


def synthetic_history(steps: int) -> list[dict]:
    return [{"step": step, "reward": step / steps, "loss": 1.0 / (step + 1), "kl": 0.01 * step,
             "buffer/size": float(min(step * 4, 32)), "buffer/score_mean": 0.2,
             "batch/replay_fraction": 0.5, "batch/divergence_fraction": 0.25, "batch/mean_depth": 1.0 + step / 10}
            for step in range(steps)]


SNAPSHOT = {"id": [10, 11, 12, 13, 14, 15], "parent_id": [-1, 10, 10, 11, 99, -1], "depth": [0, 1, 1, 2, 3, 0],
            "score": [0.1, 0.5, 0.2, 0.9, 0.3, 0.0], "turn": [0, 0, 0, 0, 0, 0]}


def table_rows(report: str) -> dict[str, list[str]]:
    """{first cell: other cells} of the final table (the one whose header starts with '| task |')."""
    lines = report.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("| task |"))
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def test_report_files_and_final_table_equal_the_inputs(tmp_path):
    evals = [synthetic_eval(10, 16, seed=1), synthetic_eval(20, 16, seed=2)]
    path = write_report(tmp_path, {"experiment": "math", "method": "exit", "seed": 0}, synthetic_history(30),
                        evals, SNAPSHOT)
    assert path == tmp_path / "report.md"
    for name in ("score_vs_k", "training_curves", "depth_histogram", "lineage"):
        assert (tmp_path / "plots" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
        assert f"(plots/{name}.png)" in path.read_text()

    report = path.read_text()
    rows = table_rows(report)
    latest = evals[-1]
    assert rows["task"] == ["k=0", "k=1", "k=2", "k=4", "k=8", "k=16", "Δ_K"]
    for task_id, scores in latest["per_task"].items():
        assert [float(cell) for cell in rows[task_id][:6]] == pytest.approx(
            [scores[k] for k in (0, 1, 2, 4, 8, 16)], abs=5e-5)
        assert float(rows[task_id][6]) == pytest.approx(scores[16] - scores[0], abs=5e-5)
    means = [cell.split("±") for cell in rows["**mean**"][:6]]
    assert [float(mean) for mean, _ in means] == pytest.approx([latest["mean"][k] for k in (0, 1, 2, 4, 8, 16)],
                                                               abs=5e-5)
    assert [float(std) for _, std in means] == pytest.approx([latest["std"][k] for k in (0, 1, 2, 4, 8, 16)],
                                                             abs=5e-5)
    assert float(rows["**mean**"][6]) == pytest.approx(latest["delta_K"], abs=5e-5)
    assert [int(cell) for cell in rows["net corrections"][:6]] == [latest["net_corrections"][k]
                                                                   for k in (0, 1, 2, 4, 8, 16)]
    assert '"method": "exit"' in report and "<details>" in report
    assert "| reward | 0.0000 | 0.9667 |" in report  # first and last of step/30
    assert "6 entries, depth mean 1.17, max 3." in report


def test_short_K_adds_the_last_k_column(tmp_path):
    result = synthetic_eval(5, 5, seed=3)
    report = write_report(tmp_path, {}, [], [result], None).read_text()
    assert table_rows(report)["task"] == ["k=0", "k=1", "k=2", "k=4", "k=5", "Δ_K"]


def test_missing_values_and_malformed_results_do_not_crash(tmp_path):
    result = synthetic_eval(7, 2, seed=4)
    result["per_task"]["task_0"][2] = None
    report = write_report(tmp_path, {}, [{"step": 0, "reward": None}], [result, {"step": 9}], None).read_text()
    rows = table_rows(report)
    assert rows["task_0"][2:] == ["–", "–"]  # k=2 missing, so no Δ_K for that task
    assert "1 evaluation result(s) without a 'mean' list were skipped" in report


def test_empty_inputs_write_what_there_is(tmp_path):
    path = write_report(tmp_path / "run", {}, [], [], None)
    report = path.read_text()
    assert "No evaluation results yet." in report and "No training metrics logged yet." in report
    assert "No buffer snapshot" in report
    assert list((tmp_path / "run" / "plots").iterdir()) == []


def test_lineage_layout_by_hand():
    # 10 -> {11 -> 13, 12}; 14's parent 99 was evicted (a root); 15 is a root.
    rows = lineage_layout(SNAPSHOT["id"], SNAPSHOT["parent_id"])
    # Leaves in depth-first order: 13 (row 0), 12 (row 1), 14 (row 2), 15 (row 3).
    assert rows == {13: 0.0, 11: 0.0, 12: 1.0, 10: 0.5, 14: 2.0, 15: 3.0}


def test_lineage_layout_survives_a_cycle():
    rows = lineage_layout([1, 2, 3], [2, 1, -1])
    assert set(rows) == {1, 2, 3}


def test_load_eval_results_sorts_by_step_and_skips_junk(tmp_path):
    (tmp_path / "eval").mkdir()
    for step in (20, 3):
        (tmp_path / "eval" / f"step_{step}.json").write_text(json.dumps(synthetic_eval(step, 2, seed=step)))
    (tmp_path / "eval" / "broken.json").write_text("{")
    assert [result["step"] for result in load_eval_results(tmp_path)] == [3, 20]
