"""A user's own model and data from the command line: the paper-scale presets start on local files.

Each test builds a tiny random HF checkpoint of the preset's architecture family (transformers + torch, with the
embedded tokenizer copied in) and tiny problem files in every supported layout, then runs the preset through
``launch/tpu_run.py`` with shrinking overrides, to its report. Bad inputs end with a one-line error naming the file or
field and what to do.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests import run_helpers as rh

EMBEDDED_TOKENIZER = rh.REPO / "exit_jax" / "models" / "embedded"
SHRINK = ("--config.train.num_iterations=2", "--config.train.num_prompts=2", "--config.rl.num_generations=2",
          "--config.rl.micro_batch_size=4", "--config.train.eval_every=0", "--config.train.checkpoint_every=1",
          "--config.sampling.max_prompt_length=192", "--config.sampling.max_new_tokens=8",
          "--config.rl.max_completion_length=8", "--config.eval.K=1", "--config.eval.num_samples=1",
          "--config.eval.max_tasks=2", "--config.curriculum.min_buffer_size=2", "--config.model.compute_dtype=float32")
MATH = ("--config.domain.train_size=8",)


def tiny_checkpoint(directory: Path, family: str = "llama", chat_template: bool = True) -> Path:
    """A random 2-layer checkpoint whose vocabulary is the embedded tokenizer's, with that tokenizer beside it."""
    import torch
    import transformers

    torch.manual_seed(0)
    shutil.copytree(EMBEDDED_TOKENIZER, directory)
    vocab = len(transformers.AutoTokenizer.from_pretrained(str(directory)))
    shape = dict(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=512)
    if family == "llama":
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**shape, tie_word_embeddings=False))
    else:
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**shape, tie_word_embeddings=True))
    model.save_pretrained(directory)
    if not chat_template:
        (directory / "chat_template.jinja").unlink()
        config = json.loads((directory / "tokenizer_config.json").read_text())
        config.pop("chat_template", None)
        (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return directory


def math_files(directory: Path) -> dict[str, Path]:
    """The same kind of problems in each layout the loaders support."""
    directory.mkdir(parents=True, exist_ok=True)
    problems = [(f"What is {a} + {b}?", str(a + b)) for a, b in [(1, 2), (3, 4), (2, 2), (5, 1), (0, 7), (6, 2)]]
    paths = {"math": directory / "math_train.jsonl", "deepscaler": directory / "deepscaler.json",
             "verl": directory / "verl.parquet", "trl": directory / "trl.jsonl", "aime": directory / "aime.parquet"}
    paths["math"].write_text("".join(json.dumps({"problem": p, "solution": f"So \\boxed{{{a}}}."}) + "\n"
                                     for p, a in problems))
    paths["deepscaler"].write_text(json.dumps([{"problem": p, "answer": a} for p, a in problems]))
    pd.DataFrame({"prompt": [[{"role": "user", "content": p}] for p, _ in problems],
                  "reward_model": [{"style": "rule", "ground_truth": a} for _, a in problems],
                  "extra_info": [{"index": i} for i in range(len(problems))]}).to_parquet(paths["verl"])
    paths["trl"].write_text("".join(json.dumps({"prompt": [{"role": "user", "content": p}], "answer": a}) + "\n"
                                    for p, a in problems))
    pd.DataFrame({"ID": [f"A-{i}" for i in range(3)], "Problem": [p for p, _ in problems[:3]],
                  "Answer": [int(a) for _, a in problems[:3]]}).to_parquet(paths["aime"])
    return paths


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "llama")


def test_math_preset_runs_on_local_files_of_every_layout(tmp_path, tmp_path_factory, llama_dir):
    files = math_files(tmp_path / "data")
    train = ",".join(repr(str(files[k])) for k in ("math", "deepscaler", "verl", "trl"))
    heldout = f"'aime24={files['aime']}','math={files['math']}'"
    workdir = tmp_path / "run"
    result = rh.launch(("--config=experiments/math.py:llama3.2-3b", f"--config.model.hf_dir={llama_dir}",
                        f"--config.domain.train_files=({train},)", f"--config.domain.heldout_files=({heldout},)",
                        *SHRINK, *MATH), workdir, rh.cache_dir_for(tmp_path_factory))
    assert result.returncode == 0, result.stderr[-4000:]
    assert (workdir / "report.md").is_file()
    final = json.loads(sorted((workdir / "eval").glob("step_*.json"))[-1].read_text())
    # Held-out split "heldout" is both named sets in order: AIME's ids first.
    assert list(final["per_task"])[:2] == ["aime24/A-0", "aime24/A-1"]
    steps = [r["step"] for r in rh.read_jsonl(workdir / "metrics.jsonl")]
    assert steps[-1] == 2


def _refused(args, tmp_path, tmp_path_factory, *needles):
    result = rh.launch(args, tmp_path / "run", rh.cache_dir_for(tmp_path_factory), timeout=300)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    for needle in needles:
        assert needle in last, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return last


def test_bad_math_inputs_name_the_file_row_and_field(tmp_path, tmp_path_factory, llama_dir):
    files = math_files(tmp_path / "data")
    bad = tmp_path / "data" / "bad.jsonl"
    bad.write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n" + json.dumps({"question": "2+2?"}) + "\n")
    base = ("--config=experiments/math.py:llama3.2-3b", f"--config.model.hf_dir={llama_dir}", *SHRINK, *MATH)
    _refused((*base, f"--config.domain.train_files=('{bad}',)", f"--config.domain.heldout_files=('{files['aime']}',)"),
             tmp_path, tmp_path_factory, str(bad), "row 2", "no answer")
    _refused((*base, f"--config.domain.heldout_files=('{files['aime']}',)"), tmp_path, tmp_path_factory,
             "domain.train_files")
    _refused(("--config=experiments/math.py:smoke", f"--config.domain.train_files=('{files['math']}',)"),
             tmp_path, tmp_path_factory, "domain.source=files")


def test_a_tokenizer_without_chat_template_is_refused_by_name(tmp_path, tmp_path_factory):
    bare = tiny_checkpoint(tmp_path / "bare", chat_template=False)
    files = math_files(tmp_path / "data")
    args = ("--config=experiments/math.py:llama3.2-3b", f"--config.model.hf_dir={bare}", *SHRINK, *MATH,
            f"--config.domain.train_files=('{files['math']}',)", f"--config.domain.heldout_files=('{files['aime']}',)")
    _refused(args, tmp_path, tmp_path_factory, "no chat template", "model.chat_template")
    template = tmp_path / "chat.jinja"
    template.write_text((rh.REPO / "exit_jax" / "models" / "embedded" / "chat_template.jinja").read_text())
    result = rh.launch((*args, f"--config.model.chat_template={template}"), tmp_path / "run2",
                       rh.cache_dir_for(tmp_path_factory))
    assert result.returncode == 0, result.stderr[-3000:]


def _doc_commands(heading: str) -> list[str]:
    """The ``python launch/tpu_run.py`` commands of a docs/running.md section, continuation lines joined."""
    text = (rh.REPO / "docs" / "running.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [line.strip() for line in block.splitlines()
            if line.strip().startswith(("python launch/tpu_run.py", "python -m exit_jax.evaluate"))]


def test_the_docs_own_model_and_data_commands_run(tmp_path, tmp_path_factory, llama_dir):
    import shlex

    data = tmp_path / "data"
    math_files(data)
    (data / "chat.jinja").write_text((EMBEDDED_TOKENIZER / "chat_template.jinja").read_text())
    from tests.domains.mle import mlebench_replicas as replicas

    mlebench = replicas.build_all(tmp_path / "mle-bench-data")
    commands = _doc_commands("Your own model and data")
    assert len(commands) >= 4
    for number, line in enumerate(commands):
        line = line.replace("$CKPT", str(llama_dir)).replace("$DATA", str(data)).replace("$MLEBENCH", str(mlebench))
        extra = (*SHRINK, *(MATH if "experiments/math.py" in line else ()),
                 *(("--config.domain.workers=2",) if "experiments/mle.py" in line else ()))
        out = tmp_path / f"run{number}"
        if line.startswith("python -m exit_jax.evaluate"):
            args = shlex.split(line)[3:]
            result = subprocess.run([sys.executable, "-m", "exit_jax.evaluate", *args, *extra, f"--out={out}"],
                                    cwd=rh.REPO, env=rh.run_env(rh.cache_dir_for(tmp_path_factory)),
                                    capture_output=True, text=True, timeout=600, check=False)
        else:
            result = rh.launch((*shlex.split(line)[2:], *extra), out, rh.cache_dir_for(tmp_path_factory))
        assert result.returncode == 0, f"{line}\n{result.stderr[-3000:]}"
        assert (out / "report.md").is_file()


def test_tooluse_preset_runs_on_a_users_categories_and_split(tmp_path, tmp_path_factory):
    qwen = tiny_checkpoint(tmp_path / "qwen2", family="qwen2")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["multi_turn_base_0", "multi_turn_miss_func_0", "multi_turn_base_1"],
                                 "test": ["multi_turn_miss_func_1", "multi_turn_base_2"]}))
    workdir = tmp_path / "run"
    result = rh.launch(("--config=experiments/tooluse.py:qwen2.5-7b", f"--config.model.hf_dir={qwen}",
                        "--config.domain.category=multi_turn_base,multi_turn_miss_func",
                        f"--config.domain.split_file={split}", "--config.domain.max_actions_per_request=2",
                        *SHRINK), workdir, rh.cache_dir_for(tmp_path_factory))
    assert result.returncode == 0, result.stderr[-4000:]
    assert (workdir / "report.md").is_file()
    final = json.loads(sorted((workdir / "eval").glob("step_*.json"))[-1].read_text())
    assert list(final["per_task"]) == ["multi_turn_miss_func_1", "multi_turn_base_2"]


def test_mle_preset_runs_on_the_users_mlebench_competitions_only(tmp_path, tmp_path_factory):
    from tests.domains.mle import mlebench_replicas as replicas

    qwen = tiny_checkpoint(tmp_path / "qwen2", family="qwen2")
    data = replicas.build_all(tmp_path / "mle-bench-data")
    before = rh.tree_digest(data)
    workdir = tmp_path / "run"
    result = rh.launch(("--config=experiments/mle.py:r1-distill-qwen-7b", f"--config.model.hf_dir={qwen}",
                        f"--config.domain.competition_dirs=('{data}',)", "--config.domain.builtin_competitions=False",
                        "--config.domain.workers=2", *SHRINK), workdir, rh.cache_dir_for(tmp_path_factory))
    assert result.returncode == 0, result.stderr[-4000:]
    assert (workdir / "report.md").is_file()
    final = json.loads(sorted((workdir / "eval").glob("step_*.json"))[-1].read_text())
    assert set(final["per_task"]) <= {"aerial-cactus-identification", "jigsaw-toxic-comment-classification-challenge",
                                      "nomad2018-predict-transparent-conductors"}
    assert rh.tree_digest(data) == before  # the user's data directory is byte-for-byte unchanged


def test_embedded_presets_take_local_files_too(tmp_path, tmp_path_factory):
    """The embedded policy's presets read the same fields: math from files, MLE with a user competition (the
    competition.json layout) beside the built-ins."""
    import numpy as np

    from exit_jax.domains.mle.competition import write_competition

    files = math_files(tmp_path / "data")
    result = rh.launch(("--config=experiments/math.py:smoke", "--config.domain.source=files",
                        f"--config.domain.train_files=('{files['verl']}','{files['trl']}')",
                        f"--config.domain.heldout_files=('aime24={files['aime']}',)"), tmp_path / "math",
                       rh.cache_dir_for(tmp_path_factory))
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads(sorted((tmp_path / "math" / "eval").glob("step_*.json"))[-1].read_text())
    assert all(task.startswith("aime24/") for task in final["per_task"])

    rng = np.random.RandomState(0)
    x = rng.randn(80, 2)
    y = x[:, 0] - 2 * x[:, 1]
    frame = pd.DataFrame({"id": np.arange(80), "a": x[:, 0], "b": x[:, 1], "target": y})
    answers = frame.iloc[60:][["id", "target"]]
    meta = {"metric": "rmse", "worst": float(answers["target"].std()), "best": 0.0, "id_column": "id",
            "target_columns": ["target"], "task": "regression", "split": "heldout"}
    own = write_competition(tmp_path / "comps", "own-rmse", "# Own\nPredict target.", frame.iloc[:60],
                            frame.iloc[60:][["id", "a", "b"]], answers, answers.assign(target=0.0), meta)
    before = rh.tree_digest(own.root)
    result = rh.launch(("--config=experiments/mle.py:smoke", f"--config.domain.competition_dirs=('{own.root}',)",
                        "--config.eval.max_tasks=0"), tmp_path / "mle", rh.cache_dir_for(tmp_path_factory))
    assert result.returncode == 0, result.stderr[-3000:]
    final = json.loads(sorted((tmp_path / "mle" / "eval").glob("step_*.json"))[-1].read_text())
    assert "own-rmse" in final["per_task"]
    assert rh.tree_digest(own.root) == before
