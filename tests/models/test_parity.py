"""Our decoder vs transformers' PyTorch model on tiny random Llama / Qwen2 checkpoints, 1 device and (2, 4) mesh."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from exit_jax.models import parity
from exit_jax.models.hf_io import export_hf_model, load_hf_model
from tests.models.hf_fixtures import tiny_llama, tiny_qwen2

BUILDERS = {"llama": tiny_llama, "qwen2": tiny_qwen2}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def hf_dir(request, tmp_path_factory):
    return BUILDERS[request.param](tmp_path_factory.mktemp(request.param))


@pytest.mark.parametrize("mesh", [None, (1, 2, 4)], ids=["1dev", "mesh2x4"])
def test_parity_tool_passes(hf_dir, mesh):
    result = parity.compare(str(hf_dir), mesh, new_tokens=32, tolerance=1e-4)
    assert result["max_abs_logit_diff"] <= 1e-4, result
    assert all(result["continuations_agree"]), result
    assert result["passed"]


def test_parity_cli_exit_codes(hf_dir, capsys):
    assert parity.main(["--hf_dir", str(hf_dir)]) == 0
    assert json.loads(capsys.readouterr().out.strip())["passed"]
    # An impossible tolerance must fail: the tool really compares.
    assert parity.main(["--hf_dir", str(hf_dir), "--tolerance", "0", "--new_tokens", "2"]) == 1


def test_export_reloads_in_transformers(hf_dir, tmp_path):
    ours = load_hf_model(hf_dir)
    out = export_hf_model(ours, tmp_path / "export")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    original = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, local_files_only=True).eval()
    tokens = torch.as_tensor(np.random.default_rng(0).integers(0, 160, (2, 23)))
    with torch.no_grad():
        np.testing.assert_allclose(reloaded(tokens).logits.numpy(), original(tokens).logits.numpy(),
                                   atol=1e-6, rtol=0)


def test_padding_and_positions_match_reference(hf_dir):
    """Left-padded batches: the real tokens' logits equal the unpadded reference."""
    ours = load_hf_model(hf_dir)
    reference = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, local_files_only=True).eval()
    rng = np.random.default_rng(3)
    short, long = rng.integers(0, 160, 7), rng.integers(0, 160, 19)
    tokens = np.zeros((2, 19), np.int32)
    mask = np.zeros((2, 19), bool)
    tokens[0, 12:], mask[0, 12:] = short, True
    tokens[1], mask[1] = long, True
    positions = np.maximum(np.cumsum(mask, 1) - 1, 0)
    logits, _, _ = ours(jnp.asarray(tokens), jnp.asarray(positions), jnp.asarray(mask))
    with torch.no_grad():
        ref_short = reference(torch.as_tensor(short[None])).logits.numpy()[0]
        ref_long = reference(torch.as_tensor(long[None])).logits.numpy()[0]
    np.testing.assert_allclose(np.asarray(logits[0, 12:]), ref_short, atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(logits[1]), ref_long, atol=1e-4, rtol=0)


def test_loaded_params_are_sharded_on_mesh(hf_dir):
    from exit_jax.sharding import make_mesh

    mesh = make_mesh(1, 2, 4)
    ours = load_hf_model(hf_dir, mesh=mesh)
    q = ours.layers[0].attn.q.get_value()
    assert q.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor", None)
    assert len(q.addressable_shards) == 8 and q.addressable_shards[0].data.shape == (32, 1, 16)
    # 2 KV heads do not divide the tensor axis of 4: replicated over it rather than failing.
    k = ours.layers[0].attn.k.get_value()
    assert k.sharding.spec == jax.sharding.PartitionSpec("fsdp", None, None)
    assert nnx.state(ours, nnx.Param)  # the model is usable
