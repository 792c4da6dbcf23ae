"""The embedded default policy: a ~4M-parameter Llama-architecture decoder and the shipped BPE tokenizer.

It needs nothing from outside: the tokenizer lives in ``exit_jax/models/embedded/`` and the weights start from a
seeded random initialisation (the MLE / math experiments warm-start it with a short supervised phase).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flax import nnx

from exit_jax.models.config import ModelConfig
from exit_jax.models.decoder import Decoder
from exit_jax.models.tokenizer import load_tokenizer

EMBEDDED_DIR = Path(__file__).parent / "embedded"


def embedded_config(**overrides: Any) -> ModelConfig:
    """hidden 256, 4 layers, 4 heads / 2 KV heads, FFN 704, tied embeddings, vocab 4096: about 4M parameters."""
    values = dict(vocab_size=4096, hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2,
                  intermediate_size=704, rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=1024,
                  tie_word_embeddings=True, architecture="LlamaForCausalLM",
                  bos_token_id=1, eos_token_id=3, pad_token_id=0)
    values.update(overrides)
    return ModelConfig(**values)


def embedded_tokenizer() -> Any:
    return load_tokenizer(EMBEDDED_DIR)


def embedded_policy(seed: int = 0, **overrides: Any) -> tuple[Decoder, Any]:
    """(model, tokenizer) of the embedded default, randomly initialised from ``seed``."""
    return Decoder(embedded_config(**overrides), nnx.Rngs(seed)), embedded_tokenizer()
