"""Loaders for the layouts of MATH, DeepScaleR, NuminaMath, AIME/AMC, verl and TRL-conversational files; row errors
that name the file, the row and the field; the fixed training subset."""

import json

import pandas as pd
import pytest

from exit_jax.domains.math.datasets import ProblemFileError, load_problem_file, training_subset
from exit_jax.domains.math.domain import heldout_sets


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
    ]
    problems = load_problem_file(_write_jsonl(tmp_path / "math.jsonl", rows))
    assert [(p.problem, p.answer) for p in problems] == [("What is 1/2 + 1/4?", "\\frac{3}{4}")]
    assert problems[0].task_id == "math/0"
    rows.append({"problem": "no answer here", "solution": "unboxed"})  # never skipped: an error naming the row
    with pytest.raises(ProblemFileError, match=r"math.jsonl: row 2: .*solution has no \\boxed"):
        load_problem_file(_write_jsonl(tmp_path / "math.jsonl", rows))


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
    with pytest.raises(ProblemFileError, match=r"empty.jsonl: row 1: no problem field .*fields are \['text'\]"):
        load_problem_file(empty)
    no_answer = _write_jsonl(tmp_path / "na.jsonl", [{"problem": "p", "answer": "1"}, {"problem": "q"}])
    with pytest.raises(ProblemFileError, match=r"na.jsonl: row 2: no answer: need one of"):
        load_problem_file(no_answer)
    twice = _write_jsonl(tmp_path / "twice.jsonl", [{"id": 1, "problem": "p", "answer": "1"}] * 2)
    with pytest.raises(ProblemFileError, match=r"row 2: id 'twice/1' repeats row 1"):
        load_problem_file(twice)
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ProblemFileError, match=r"broken.parquet: not a readable Parquet file"):
        load_problem_file(tmp_path / "broken.parquet")


VERL_PROMPT = "Compute 6*7. Let's think step by step and output the final answer within \\boxed{}."


def test_verl_parquet_takes_the_user_message_and_the_ground_truth(tmp_path):
    """verl's RL layout (as its math preprocessing writes it): the prompt is a message list, the answer sits in
    reward_model.ground_truth, the id in extra_info.index; Parquet stores the lists and structs as NumPy arrays."""
    frame = pd.DataFrame({
        "data_source": ["lighteval/MATH", "lighteval/MATH"],
        "prompt": [[{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": VERL_PROMPT}],
                   [{"role": "user", "content": "What is 1+1?"}]],
        "ability": ["math", "math"],
        "reward_model": [{"style": "rule", "ground_truth": "42"}, {"style": "rule", "ground_truth": "2"}],
        "extra_info": [{"split": "train", "index": 7}, {"split": "train", "index": 8}],
    })
    path = tmp_path / "verl_train.parquet"
    frame.to_parquet(path)
    problems = load_problem_file(path, set_name="verl")
    assert [(p.task_id, p.problem, p.answer) for p in problems] == [
        ("verl/7", VERL_PROMPT, "42"), ("verl/8", "What is 1+1?", "2")]


def test_trl_conversational_rows(tmp_path):
    rows = [{"prompt": [{"role": "user", "content": "Solve x+1=3."}], "answer": "2"},
            {"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "Half of 9?"}],
             "solution": "It is \\boxed{\\frac{9}{2}}"}]
    problems = load_problem_file(_write_jsonl(tmp_path / "trl.jsonl", rows))
    assert [(p.problem, p.answer) for p in problems] == [("Solve x+1=3.", "2"), ("Half of 9?", "\\frac{9}{2}")]
    assistant_only = [{"prompt": [{"role": "assistant", "content": "hi"}], "answer": "1"}]
    with pytest.raises(ProblemFileError, match=r"trl2.jsonl: row 1: the prompt message list has no user message"):
        load_problem_file(_write_jsonl(tmp_path / "trl2.jsonl", assistant_only))


def test_heldout_sets_from_cli_strings():
    assert heldout_sets(("math500=/d/m.jsonl", "/d/aime24.parquet")) == (
        ("math500", "/d/m.jsonl"), ("aime24", "/d/aime24.parquet"))
    assert heldout_sets({"a": "/x.json"}) == (("a", "/x.json"),)
    with pytest.raises(ValueError, match=r"names \['t'\] more than once"):
        heldout_sets(("t=/a.jsonl", "t=/b.jsonl"))


def test_training_subset_is_fixed_by_seed_and_sized(tmp_path):
    rows = [{"problem": f"p{i}", "answer": str(i), "id": i} for i in range(50)]
    problems = load_problem_file(_write_jsonl(tmp_path / "pool.jsonl", rows))
    first = training_subset(problems, 20, seed=3)
    assert len(first) == 20 and len({p.task_id for p in first}) == 20
    assert first == training_subset(problems, 20, seed=3)
    assert first != training_subset(problems, 20, seed=4)
    assert len(training_subset(problems, 1280, seed=0)) == 50
