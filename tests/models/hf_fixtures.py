"""Tiny random HF checkpoints built inside the tests with transformers + torch (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers


def tiny_llama(directory: Path, seed: int = 0) -> Path:
    """Llama with GQA, llama3 rope scaling and untied embeddings."""
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=160, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False, rms_norm_eps=1e-5,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 32},
    )
    model = transformers.LlamaForCausalLM(config).eval()
    model.save_pretrained(directory)
    return directory


def tiny_qwen2(directory: Path, seed: int = 1) -> Path:
    """Qwen2 with q/k/v bias and tied embeddings (biases randomised so they matter)."""
    torch.manual_seed(seed)
    config = transformers.Qwen2Config(
        vocab_size=160, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True, rope_theta=10000.0,
    )
    model = transformers.Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.1)
    model.save_pretrained(directory)
    return directory


def tiny_qwen3(directory: Path, seed: int = 2, attention_bias: bool = False, tie_word_embeddings: bool = True,
               max_shard_size: str | None = None) -> Path:
    """Qwen3 with GQA (4 query / 2 KV heads), head_dim 24 != hidden / heads = 16, q_norm / k_norm weights randomised
    around 1 so they matter, rope_theta 1e6; ``attention_bias`` adds q/k/v and o_proj biases (randomised too).
    ``max_shard_size`` (e.g. "20KB") saves a sharded model.safetensors.index.json checkpoint."""
    torch.manual_seed(seed)
    config = transformers.Qwen3Config(
        vocab_size=160, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=24, max_position_embeddings=256, tie_word_embeddings=tie_word_embeddings,
        attention_bias=attention_bias, rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    )
    model = transformers.Qwen3ForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("q_norm.weight", "k_norm.weight")):
                param.normal_(1.0, 0.5)
            elif name.endswith("bias"):
                param.normal_(0.0, 0.1)
    if max_shard_size is None:
        model.save_pretrained(directory)
    else:
        model.save_pretrained(directory, max_shard_size=max_shard_size)
    return directory
