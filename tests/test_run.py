"""End-to-end runs through ``launch/tpu_run.py``: what a smoke run leaves in its workdir, for all three domains.

The math run is checked in depth: every learner and curriculum scalar in ``metrics.jsonl`` and in the TensorBoard
event files (read back with a small TFRecord reader, independent of the writer), the eval JSON against the domain's
own held-out split and NumPy summaries of its per-task scores, the report and its PNG plots, the checkpoints, and the
exported policy, which transformers loads and whose logits match our ``Decoder`` loaded from the same directory.
The MLE and tool-use runs are shrunk to one iteration and checked for complete, well-formed outputs.
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from tests import run_helpers as rh

LEARNER_KEYS = ("loss", "kl", "entropy", "grad_norm", "importance_ratio/mean", "advantages/mean",
                "clip_ratio/region_mean", "num_tokens", "completions/mean_length")
CURRICULUM_KEYS = ("buffer/size", "buffer/score_mean", "batch/replay_fraction", "batch/divergence_fraction",
                   "batch/improve_fraction", "batch/mean_depth", "buffer_update/children_admitted",
                   "diversity/coefficient_mean")
RUN_KEYS = ("reward/mean", "reward/std", "score/mean", "valid_fraction")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def math_run(tmp_path_factory):
    return rh.shared_run(tmp_path_factory, "math", rh.MATH_SMOKE)


def tensorboard_scalars(tb_dir: Path) -> dict[tuple[str, int], float]:
    """{(tag, step): value} from every event file under ``tb_dir`` (TFRecord framing, tensorboardX's protos)."""
    from tensorboardX.proto import event_pb2

    scalars = {}
    files = sorted(tb_dir.rglob("events.out.tfevents.*"))
    assert files, f"no TensorBoard event files under {tb_dir}"
    for path in files:
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            payload = data[offset + 12: offset + 12 + length]
            offset += 12 + length + 4  # length, its CRC, payload, payload CRC
            event = event_pb2.Event.FromString(payload)
            for value in event.summary.value:
                scalars[(value.tag, event.step)] = value.simple_value
    return scalars


def check_eval_json(path: Path, K: int, binary: bool) -> dict:
    """A K-step evaluation file is complete and self-consistent (summaries recomputed with NumPy)."""
    result = json.loads(path.read_text())
    assert result["K"] == K and result["k"] == list(range(K + 1))
    assert result["step"] == int(re.search(r"step_(\d+)", path.name).group(1))
    per_task = np.asarray(list(result["per_task"].values()), np.float64)
    assert per_task.ndim == 2 and per_task.shape[1] == K + 1 and len(per_task) >= 1
    assert np.all(np.isfinite(per_task))
    assert len(result["mean"]) == K + 1 and len(result["std"]) == K + 1
    if result["avg_at_n"] == 1:  # one chain per task: the summaries are plain statistics of the per-task rows
        np.testing.assert_allclose(result["mean"], per_task.mean(axis=0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(result["std"], per_task.std(axis=0), rtol=0, atol=1e-12)
    assert result["delta_K"] == pytest.approx(result["mean"][K] - result["mean"][0], abs=1e-12)
    if binary:
        assert set(np.unique(per_task)) <= {0.0, 1.0}
        start = per_task[:, :1] >= 0.5
        correct = per_task >= 0.5
        expected = ((~start & correct).sum(0) - (start & ~correct).sum(0)).tolist()
        assert result["net_corrections"] == expected
    else:
        assert result["net_corrections"] is None
    return result


def check_common_outputs(workdir: Path, final_step: int, K: int, binary: bool) -> dict:
    """Files every finished run must leave; returns the final evaluation."""
    for name in ("metrics.jsonl", "report.md", "config.json"):
        assert (workdir / name).is_file(), f"{name} missing from {workdir}"
    records = rh.read_jsonl(workdir / "metrics.jsonl")
    assert [r["step"] for r in records if r["step"] > 0][-1] == final_step
    assert list((workdir / "tb").glob("events.out.tfevents.*"))
    evals = sorted((workdir / "eval").glob("step_*.json"))
    assert evals and evals[-1].name == f"step_{final_step:06d}.json"
    final = check_eval_json(evals[-1], K, binary)
    plots = sorted((workdir / "plots").glob("*.png"))
    assert plots, "no plots written"
    for plot in plots:
        assert plot.read_bytes()[:8] == PNG_MAGIC, f"{plot} is not a PNG"
    report = (workdir / "report.md").read_text()
    for linked in re.findall(r"\]\((plots/[^)]+\.png)\)", report):
        assert (workdir / linked).is_file(), f"report links a missing plot {linked}"
    assert "plots/score_vs_k.png" in report
    assert final_step in rh.checkpoint_steps(workdir)
    policy = workdir / "policy"
    assert (policy / "config.json").is_file() and list(policy.glob("*.safetensors"))
    return final


def test_math_smoke_outputs(math_run):
    workdir, result = math_run
    final = check_common_outputs(workdir, final_step=rh.MATH_ITERATIONS, K=2, binary=True)
    assert f"report: {workdir / 'report.md'}" in result.stdout  # the closing summary names the report

    # The held-out tasks are the first eval.max_tasks of the domain's own held-out split.
    from exit_jax.domains.registry import make_domain

    config = json.loads((workdir / "config.json").read_text())
    domain = make_domain("math", {k: v for k, v in config["domain"].items() if k != "name"})
    assert list(final["per_task"]) == list(domain.task_ids("heldout"))[:2]

    records = rh.read_jsonl(workdir / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, rh.MATH_ITERATIONS + 1))
    for record in records:
        missing = [k for k in (*LEARNER_KEYS, *CURRICULUM_KEYS, *RUN_KEYS) if k not in record]
        assert not missing, f"step {record['step']} lacks {missing}"
        assert 0.0 <= record["reward/mean"] <= 1.0 and 0.0 <= record["valid_fraction"] <= 1.0
        assert record["num_tokens"] <= 2 * 4 * 16  # prompts x G x max_new_tokens of the smoke preset
    assert [r["buffer/size"] for r in records] == sorted(r["buffer/size"] for r in records)

    tb = tensorboard_scalars(workdir / "tb")
    for record in records:  # every logged scalar reached TensorBoard with its value (float32 precision)
        for key, value in record.items():
            if key == "step":
                continue
            assert (key, record["step"]) in tb, f"{key}@{record['step']} missing from TensorBoard"
            if value is None:
                assert math.isnan(tb[key, record["step"]])
            else:
                assert tb[key, record["step"]] == pytest.approx(value, rel=1e-6, abs=1e-30)

    assert len(rh.checkpoint_steps(workdir)) == config["train"]["keep_checkpoints"]  # keep-last-N
    assert "| **mean** |" in (workdir / "report.md").read_text()


def test_exported_policy_loads_in_transformers(math_run):
    """transformers reads ``policy/``; its logits equal our Decoder's from the same files (1e-4)."""
    import jax.numpy as jnp
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from exit_jax.models.hf_io import load_hf_model

    policy = math_run[0] / "policy"
    hf_model = AutoModelForCausalLM.from_pretrained(policy, torch_dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(policy)
    tokens = np.asarray([tokenizer.encode("Q: 17 mod 5\nA: 2, because 17 = 3*5 + 2.")[:24]], np.int64)
    ours = load_hf_model(policy)
    positions = np.arange(tokens.shape[1], dtype=np.int32)[None]
    our_logits = np.asarray(ours(jnp.asarray(tokens, jnp.int32), jnp.asarray(positions),
                                 jnp.ones(tokens.shape, bool))[0], np.float32)
    with torch.no_grad():
        hf_logits = hf_model(torch.from_numpy(tokens)).logits.numpy()
    assert our_logits.shape == hf_logits.shape == (1, tokens.shape[1], hf_model.config.vocab_size)
    np.testing.assert_allclose(our_logits, hf_logits, rtol=0, atol=1e-4)
    assert np.std(hf_logits) > 1e-3  # not a degenerate (all-equal) output


@pytest.mark.parametrize("experiment, overrides, K, binary", [
    ("mle", ("--config.train.num_iterations=1", "--config.eval.K=1"), 1, False),
    ("tooluse", ("--config.train.num_iterations=1", "--config.eval.max_tasks=1"), 1, True),
])
def test_other_domains_smoke(experiment, overrides, K, binary, tmp_path, tmp_path_factory):
    workdir = tmp_path / experiment
    result = rh.launch((f"--config=experiments/{experiment}.py:smoke", *overrides), workdir,
                       rh.cache_dir_for(tmp_path_factory))
    assert result.returncode == 0, result.stderr[-6000:]
    final = check_common_outputs(workdir, final_step=1, K=K, binary=binary)
    assert final["domain"] == experiment
    assert "done: 1 iterations" in result.stdout
