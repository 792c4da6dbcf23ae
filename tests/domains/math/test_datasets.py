"""Loaders for the shapes of MATH, DeepScaleR, NuminaMath and AIME/AMC files; the fixed training
subset."""

import json

import pandas as pd
import pytest

from exit_jax.domains.math.datasets import load_problem_file, training_subset


def _write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


def test_math_shape_takes_answer_from_solution_box(tmp_path):
    rows = [
        {
            "problem": "What is 1/2 + 1/4?",
            "solution": "We get $\\boxed{\\frac{3}{4}}$.",
            "level": "Level 1",
        },
        {"problem": "no answer here", "solution": "unboxed"},
    ]
    problems = load_problem_file(_write_jsonl(tmp_path / "math.jsonl", rows))
    assert [(p.problem, p.answer) for p in problems] == [("What is 1/2 + 1/4?", "\\frac{3}{4}")]
    assert problems[0].task_id == "math/0"


def test_deepscaler_and_numina_shapes(tmp_path):
    deepscaler = [{"problem": "2+2?", "answer": "4", "solution": "\\boxed{5}"}]  # answer field wins
    numina = [{"problem": "3*3?", "solution": "so \\boxed{9}", "messages": []}]
    assert load_problem_file(_write_jsonl(tmp_path / "d.jsonl", deepscaler))[0].answer == "4"
    assert load_problem_file(_write_jsonl(tmp_path / "n.jsonl", numina))[0].answer == "9"


def test_aime_parquet_with_capitalised_fields(tmp_path):
    frame = pd.DataFrame({"ID": ["2024-I-1", "2024-I-2"], "Problem": ["p1", "p2"], "Answer": [204, 25]})
    path = tmp_path / "aime24.parquet"
    frame.to_parquet(path)
    problems = load_problem_file(path, set_name="aime24")
    assert [(p.task_id, p.answer) for p in problems] == [
        ("aime24/2024-I-1", "204"),
        ("aime24/2024-I-2", "25"),
    ]


def test_json_array_and_bad_files(tmp_path):
    path = tmp_path / "amc.json"
    path.write_text(json.dumps([{"question": "q", "answer": "7"}]))
    assert load_problem_file(path)[0].answer == "7"
    with pytest.raises(FileNotFoundError, match="not found"):
        load_problem_file(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "x", "answer": "1"}\n{not json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        load_problem_file(bad)
    empty = _write_jsonl(tmp_path / "empty.jsonl", [{"text": "no problem field"}])
    with pytest.raises(ValueError, match="no usable rows"):
        load_problem_file(empty)


def test_training_subset_is_fixed_by_seed_and_sized(tmp_path):
    rows = [{"problem": f"p{i}", "answer": str(i), "id": i} for i in range(50)]
    problems = load_problem_file(_write_jsonl(tmp_path / "pool.jsonl", rows))
    first = training_subset(problems, 20, seed=3)
    assert len(first) == 20 and len({p.task_id for p in first}) == 20
    assert first == training_subset(problems, 20, seed=3)
    assert first != training_subset(problems, 20, seed=4)
    assert len(training_subset(problems, 1280, seed=0)) == 50
