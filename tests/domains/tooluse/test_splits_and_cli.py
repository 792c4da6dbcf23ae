"""The committed 100/100 split and the scoring command line."""

import collections
import json

import pytest

from exit_jax.domains.tooluse import score
from exit_jax.domains.tooluse.bfcl_data import load_tasks
from exit_jax.domains.tooluse.splits import load_split, stratified_split, stratum


def test_committed_split_is_the_seeded_stratified_split():
    tasks = load_tasks("multi_turn_base")
    committed = load_split()
    assert committed == stratified_split(tasks, seed=0)
    train, test = set(committed["train"]), set(committed["test"])
    assert len(train) == len(test) == 100 and not train & test and train | test == set(tasks)
    counts = collections.Counter((stratum(tasks[i]), side) for side, ids in committed.items() for i in ids)
    for key in {stratum(task) for task in tasks.values()}:
        assert abs(counts[(key, "train")] - counts[(key, "test")]) <= 1


def _run(capsys, argv):
    assert score.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_scores_ground_truth_and_a_corrupted_file(tmp_path, capsys):
    task = load_tasks("multi_turn_base")["multi_turn_base_0"]
    good = tmp_path / "good.json"
    good.write_text(json.dumps([list(calls) for calls in task.ground_truth]))
    output = _run(capsys, ["--category", "multi_turn_base", "--task_id", task.task_id, "--calls", str(good)])
    assert output["reward"] == 1.0 and output["total_return"] == 4.0 and output["state_diff"] == []
    assert [turn["passed"] for turn in output["per_turn"]] == [True] * 4

    calls = [list(c) for c in task.ground_truth]
    calls[0] = calls[0][:2] + ['{"name": "mv", "arguments": {"source": "final_report.pdf", "destination": "archive"}}']
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(calls))
    output = _run(capsys, ["--task_id", task.task_id, "--calls", str(bad)])
    assert output["reward"] == 0.0 and output["first_turn_correct"] is False
    assert output["per_turn"][0]["state_match"] is False
    assert any(d["path"].endswith("temp.contents.final_report.pdf") for d in output["state_diff"])


def test_cli_rejects_bad_input(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("[[")
    with pytest.raises(SystemExit, match="not valid JSON"):
        score.main(["--task_id", "multi_turn_base_0", "--calls", str(broken)])
    shaped = tmp_path / "shaped.json"
    shaped.write_text('{"calls": []}')
    with pytest.raises(SystemExit, match="per-request lists"):
        score.main(["--task_id", "multi_turn_base_0", "--calls", str(shaped)])
    with pytest.raises(SystemExit, match="not in --category"):
        score.main(
            [
                "--category",
                "multi_turn_base",
                "--task_id",
                "multi_turn_miss_func_0",
                "--ground_truth",
            ]
        )


def test_categories_and_split_file_as_fields(tmp_path):
    from exit_jax.domains.tooluse.domain import ToolUseDomain

    base, miss = load_tasks("multi_turn_base"), load_tasks("multi_turn_miss_func")
    pooled = ToolUseDomain({"category": "multi_turn_base,multi_turn_miss_func"})
    assert pooled.task_ids("train") == load_split()["train"]  # the committed split for base tasks
    assert pooled.task_ids("test") == load_split()["test"] + list(miss)  # the other category held out
    assert pooled.task_ids("all") == [*base, *miss]
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["multi_turn_base_3", "multi_turn_miss_func_1"],
                                 "test": ["multi_turn_miss_func_2"]}))
    own = ToolUseDomain({"category": "multi_turn_base,multi_turn_miss_func", "split_file": str(split)})
    assert own.task_ids("train") == ["multi_turn_base_3", "multi_turn_miss_func_1"]
    assert own.task_ids("heldout") == ["multi_turn_miss_func_2"]
    with pytest.raises(ValueError, match=r"split_file .*train ids \['multi_turn_miss_func_1'\] are not tasks of"):
        ToolUseDomain({"category": "multi_turn_base", "split_file": str(split)})
    split.write_text(json.dumps({"train": ["multi_turn_base_3"], "test": ["multi_turn_base_3"]}))
    with pytest.raises(ValueError, match=r"on both sides"):
        ToolUseDomain({"split_file": str(split)})
    split.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r'must hold \{"train"'):
        ToolUseDomain({"split_file": str(split)})
    with pytest.raises(ValueError, match=r"domain.category must be one or more"):
        ToolUseDomain({"category": "multi_turn_base,single_turn"})
