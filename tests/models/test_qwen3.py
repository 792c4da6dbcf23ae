"""Qwen3 (dense) checkpoints against transformers' Qwen3ForCausalLM: loading (single file and index-sharded), logits
with padding, greedy continuations, the parity CLI, export back to HF, and the config errors.

The reference is always transformers' PyTorch model on the same directory. The fixtures (``tiny_qwen3``) have
head_dim 24 != hidden / heads = 16, GQA (4 / 2 heads) and randomised q_norm / k_norm weights; one variant adds the
q/k/v and o_proj biases of ``attention_bias=true`` with untied embeddings.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from exit_jax.models import parity
from exit_jax.models.config import SUPPORTED_ARCHITECTURES, CheckpointError, ModelConfig
from exit_jax.models.hf_io import SafetensorsDirectory, export_hf_model, load_hf_model, weight_mapping
from tests.models.hf_fixtures import tiny_qwen3

REPO = Path(__file__).resolve().parents[2]
VARIANTS = {"tied": {}, "bias_untied": {"attention_bias": True, "tie_word_embeddings": False}}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def qwen3_dir(request, tmp_path_factory):
    return tiny_qwen3(tmp_path_factory.mktemp(f"qwen3_{request.param}"), **VARIANTS[request.param])


@pytest.fixture(scope="module")
def sharded_dir(tmp_path_factory):
    """The tied variant's weights (same seed) saved as a model.safetensors.index.json with many shards."""
    return tiny_qwen3(tmp_path_factory.mktemp("qwen3_sharded"), max_shard_size="20KB")


def _reference(directory):
    return transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32,
                                                             local_files_only=True).eval()


def _padded_batch(seed=5):
    """Three rows of random tokens, left-padded to 21 (lengths 21, 8, 14), with their mask and positions."""
    rng = np.random.default_rng(seed)
    rows = [rng.integers(0, 160, n) for n in (21, 8, 14)]
    tokens = np.zeros((3, 21), np.int32)
    mask = np.zeros((3, 21), bool)
    for i, row in enumerate(rows):
        tokens[i, 21 - len(row):], mask[i, 21 - len(row):] = row, True
    positions = np.maximum(np.cumsum(mask, 1) - 1, 0).astype(np.int32)
    return rows, tokens, mask, positions


def _our_logits(model, tokens, mask, positions):
    logits, _, _ = model(jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(mask))
    return np.asarray(logits)


def test_config_reads_qwen3_fields(qwen3_dir):
    config = ModelConfig.from_hf_dir(qwen3_dir)
    hf = json.loads((qwen3_dir / "config.json").read_text())
    assert config.architecture == "Qwen3ForCausalLM" and config.qk_norm
    assert config.head_dim == 24 != config.hidden_size // config.num_heads
    assert (config.num_heads, config.num_kv_heads) == (4, 2)
    assert config.attention_bias == config.output_bias == hf["attention_bias"]
    assert config.tie_word_embeddings == hf["tie_word_embeddings"]
    assert config.rope_theta == 1_000_000.0
    # Every tensor of the checkpoint is consumed by the mapping (q_norm / k_norm / o_proj.bias included), and its
    # parameter count is the one transformers reports.
    assert {name for _, name, _, _ in weight_mapping(config)} == set(SafetensorsDirectory(qwen3_dir).keys())
    assert config.num_params == _reference(qwen3_dir).num_parameters()


def test_logits_match_reference_with_padding(qwen3_dir):
    """Left-padded batch vs transformers: each row unpadded, and the same padded batch with its attention mask."""
    ours = load_hf_model(qwen3_dir)
    reference = _reference(qwen3_dir)
    rows, tokens, mask, positions = _padded_batch()
    logits = _our_logits(ours, tokens, mask, positions)
    with torch.no_grad():
        padded_ref = reference(torch.as_tensor(tokens, dtype=torch.long),
                               attention_mask=torch.as_tensor(mask, dtype=torch.long),
                               position_ids=torch.as_tensor(positions, dtype=torch.long)).logits.numpy()
        for i, row in enumerate(rows):
            ref = reference(torch.as_tensor(row[None], dtype=torch.long)).logits.numpy()[0]
            np.testing.assert_allclose(logits[i, 21 - len(row):], ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(logits[mask], padded_ref[mask], atol=1e-4, rtol=0)


def test_qk_norm_weights_matter(qwen3_dir):
    """The fixture's q_norm / k_norm are far from 1: resetting ours to 1 moves the logits well past the tolerance,
    so the parity above really checks that they are loaded and applied."""
    ours = load_hf_model(qwen3_dir)
    hf_q_norm = _reference(qwen3_dir).model.layers[1].self_attn.q_norm.weight.detach().numpy()
    np.testing.assert_array_equal(np.asarray(ours.layers[1].attn.q_norm.scale.get_value()), hf_q_norm)
    _, tokens, mask, positions = _padded_batch(seed=6)
    before = _our_logits(ours, tokens, mask, positions)
    for layer in ours.layers:
        for norm in (layer.attn.q_norm, layer.attn.k_norm):
            norm.scale.set_value(jnp.ones_like(norm.scale.get_value()))
    after = _our_logits(ours, tokens, mask, positions)
    assert np.max(np.abs(before - after)[mask]) > 1e-2


@pytest.mark.parametrize("mesh", [None, (1, 2, 4)], ids=["1dev", "mesh2x4"])
def test_parity_logits_and_greedy_continuations(qwen3_dir, mesh):
    """parity.compare: logits within 1e-4 and 32-token greedy continuations (our Sampler, prompts of 4 lengths
    left-padded into one batch) equal to transformers' generate."""
    result = parity.compare(str(qwen3_dir), mesh, new_tokens=32, tolerance=1e-4)
    assert result["max_abs_logit_diff"] <= 1e-4, result
    assert result["continuations_agree"] == [True] * 4, result
    assert result["passed"]


def test_sharded_index_loads_and_matches(sharded_dir, tmp_path_factory):
    assert not (sharded_dir / "model.safetensors").exists()
    index = json.loads((sharded_dir / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    assert "model.layers.0.self_attn.q_norm.weight" in index["weight_map"]
    ours = load_hf_model(sharded_dir)
    single = load_hf_model(tiny_qwen3(tmp_path_factory.mktemp("qwen3_single")))  # same seed, one file
    for a, b in zip(jax.tree.leaves(nnx.state(ours)), jax.tree.leaves(nnx.state(single)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    rows, tokens, mask, positions = _padded_batch(seed=7)
    logits = _our_logits(ours, tokens, mask, positions)
    reference = _reference(sharded_dir)
    with torch.no_grad():
        for i, row in enumerate(rows):
            ref = reference(torch.as_tensor(row[None], dtype=torch.long)).logits.numpy()[0]
            np.testing.assert_allclose(logits[i, 21 - len(row):], ref, atol=1e-4, rtol=0)


def test_parity_cli_exit_codes(qwen3_dir, capsys):
    assert parity.main(["--hf_dir", str(qwen3_dir)]) == 0
    assert json.loads(capsys.readouterr().out.strip())["passed"]
    assert parity.main(["--hf_dir", str(qwen3_dir), "--tolerance", "0", "--new_tokens", "2"]) == 1


def test_parity_cli_subprocess_on_sharded_checkpoint(sharded_dir):
    """``python -m exit_jax.models.parity`` as a user runs it, on the index-sharded checkpoint."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "exit_jax.models.parity", "--hf_dir", str(sharded_dir),
                           "--new_tokens", "8"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["passed"] and result["max_abs_logit_diff"] <= 1e-4 and all(result["continuations_agree"])


def test_export_reloads_in_transformers_as_qwen3(qwen3_dir, tmp_path):
    ours = load_hf_model(qwen3_dir)
    out = export_hf_model(ours, tmp_path / "export")
    reloaded = _reference(out)
    original = _reference(qwen3_dir)
    assert type(reloaded) is transformers.Qwen3ForCausalLM
    assert reloaded.config.head_dim == 24 and reloaded.config.attention_bias == original.config.attention_bias
    assert reloaded.config.tie_word_embeddings == original.config.tie_word_embeddings
    # Every tensor transformers expects was written (none left at its random init), q_norm / k_norm included.
    theirs, mine = original.state_dict(), reloaded.state_dict()
    assert set(theirs) == set(mine)
    for name, value in theirs.items():
        torch.testing.assert_close(mine[name], value, atol=0, rtol=0, msg=name)
    tokens = torch.as_tensor(np.random.default_rng(0).integers(0, 160, (2, 23)))
    with torch.no_grad():
        np.testing.assert_allclose(reloaded(tokens).logits.numpy(), original(tokens).logits.numpy(),
                                   atol=1e-6, rtol=0)
    # And our loader reads the export back to the same config.
    assert ModelConfig.from_hf_dir(out) == ours.config


def _write_config(source, tmp_path, **changes):
    target = tmp_path / "ckpt"
    shutil.copytree(source, target)
    cfg = json.loads((target / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    (target / "config.json").write_text(json.dumps(cfg))
    return target


def test_unsupported_architecture_names_value_and_supported_list(sharded_dir, tmp_path):
    assert SUPPORTED_ARCHITECTURES == ("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
    d = _write_config(sharded_dir, tmp_path, architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe")
    with pytest.raises(CheckpointError, match=r"architectures \['Qwen3MoeForCausalLM'\].*"
                       "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM"):
        load_hf_model(d)
    d = _write_config(sharded_dir, tmp_path / "no_archs", architectures=None, model_type="qwen3_moe")
    with pytest.raises(CheckpointError, match=r"model_type 'qwen3_moe'.*Qwen3ForCausalLM.*qwen3"):
        load_hf_model(d)


def test_model_type_alone_selects_qwen3(sharded_dir, tmp_path):
    d = _write_config(sharded_dir, tmp_path, architectures=None)
    config = ModelConfig.from_hf_dir(d)
    assert config.architecture == "Qwen3ForCausalLM" and config.qk_norm and not config.attention_bias


def test_sliding_window_is_refused_naming_the_field(sharded_dir, tmp_path):
    d = _write_config(sharded_dir, tmp_path, use_sliding_window=True, sliding_window=8)
    with pytest.raises(CheckpointError, match="use_sliding_window"):
        load_hf_model(d)


def test_export_refuses_inconsistent_qwen3_switches():
    base = ModelConfig(vocab_size=8, hidden_size=8, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=8,
                       architecture="Qwen3ForCausalLM", qk_norm=True)
    assert base.to_hf_dict()["model_type"] == "qwen3"
    with pytest.raises(CheckpointError, match="qk_norm"):
        base.replace(qk_norm=False).to_hf_dict()
    with pytest.raises(CheckpointError, match="attention_bias"):
        base.replace(attention_bias=True).to_hf_dict()
    with pytest.raises(CheckpointError, match="qk_norm"):
        base.replace(architecture="LlamaForCausalLM").to_hf_dict()
