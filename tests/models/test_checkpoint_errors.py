"""Bad input gets a clear error naming the file or key."""

import json
import shutil

import pytest

from exit_jax.models.config import CheckpointError
from exit_jax.models.hf_io import load_hf_model
from tests.models.hf_fixtures import tiny_llama


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    return tiny_llama(tmp_path_factory.mktemp("llama"))


def _copy(good_dir, tmp_path):
    target = tmp_path / "ckpt"
    shutil.copytree(good_dir, target)
    return target


def test_missing_config(good_dir, tmp_path):
    d = _copy(good_dir, tmp_path)
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config\.json: not found"):
        load_hf_model(d)


def test_malformed_config(good_dir, tmp_path):
    d = _copy(good_dir, tmp_path)
    (d / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"config\.json: malformed JSON"):
        load_hf_model(d)


def test_missing_required_key(good_dir, tmp_path):
    d = _copy(good_dir, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    del cfg["hidden_size"]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="hidden_size"):
        load_hf_model(d)


def test_unsupported_architecture_lists_supported(good_dir, tmp_path):
    d = _copy(good_dir, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["architectures"] = ["GPT2LMHeadModel"]
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="GPT2LMHeadModel.*LlamaForCausalLM, Qwen2ForCausalLM"):
        load_hf_model(d)


def test_missing_tensor_named(good_dir, tmp_path):
    from safetensors.numpy import load_file, save_file

    d = _copy(good_dir, tmp_path)
    tensors = load_file(str(d / "model.safetensors"))
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(d / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model\.layers\.1\.mlp\.up_proj\.weight"):
        load_hf_model(d)


def test_truncated_weights(good_dir, tmp_path):
    d = _copy(good_dir, tmp_path)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated|corrupt"):
        load_hf_model(d)


def test_shape_mismatch_named(good_dir, tmp_path):
    d = _copy(good_dir, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["intermediate_size"] = 128
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="gate_proj.*does not match config.json"):
        load_hf_model(d)
