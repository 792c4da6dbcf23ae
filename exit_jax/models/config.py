"""ModelConfig: the decoder's hyperparameters, read from (and written back to) a Hugging Face config.json.

One decoder covers the Llama 3.x, Qwen2 / Qwen2.5 and Qwen3 (dense) families; they differ only in a few switches
recorded here (q/k/v bias, o_proj bias, per-head q/k RMSNorm, an explicit head_dim, tied embeddings, RoPE scaling).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
# config.json's model_type -> architecture, for files without an "architectures" list (and back, for export).
MODEL_TYPES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
BACKWARD_DOTS = ("auto", "transposed", "xla")
MATMUL_PRECISIONS = ("auto", "default", "high", "highest")


class CheckpointError(ValueError):
    """A checkpoint or config that cannot be loaded; the message names the file or key and what to do."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Decoder hyperparameters (names follow HF's config.json where one exists)."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    head_dim: int | None = None
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: tuple[tuple[str, Any], ...] = ()  # e.g. (("rope_type","llama3"), ("factor", 8.0), ...)
    max_position_embeddings: int = 2048
    attention_bias: bool = False  # q/k/v projection biases
    output_bias: bool = False  # o_proj bias (Qwen3's attention_bias switches it on with the q/k/v biases)
    qk_norm: bool = False  # Qwen3: RMSNorm over head_dim of every query and key head, before RoPE
    tie_word_embeddings: bool = False
    architecture: str = "LlamaForCausalLM"
    param_dtype: str = "float32"
    compute_dtype: str = "float32"
    # How the projections' backward dots are formed: "auto" (materialised transposes for bf16 compute on the CPU
    # backend, plain autodiff elsewhere), "transposed" or "xla" to force either; see models/dense.py.
    backward_dots: str = "auto"
    # Precision of f32 matmuls on accelerators ("default" / "high" / "highest", jax.lax.Precision): TPUs and GPUs
    # run an f32 dot at reduced precision by default (bf16 passes, TF32). "auto" asks for "highest" when the compute
    # dtype is f32, so f32 compute means f32 on every backend, and for "default" otherwise. XLA:CPU computes f32
    # dots in f32 whatever this says.
    matmul_precision: str = "auto"
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int | None = None

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})"
            )
        if self.backward_dots not in BACKWARD_DOTS:
            raise ValueError(f"backward_dots must be one of {BACKWARD_DOTS}, got {self.backward_dots!r}")
        if self.matmul_precision not in MATMUL_PRECISIONS:
            raise ValueError(f"matmul_precision must be one of {MATMUL_PRECISIONS}, got {self.matmul_precision!r}")
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        if self.rope_type not in SUPPORTED_ROPE_TYPES:
            raise CheckpointError(
                f"unsupported rope_type {self.rope_type!r}; supported: {', '.join(SUPPORTED_ROPE_TYPES)}"
            )

    @property
    def precision(self) -> str:
        """The resolved ``matmul_precision``: what the decoder's dots ask for."""
        if self.matmul_precision != "auto":
            return self.matmul_precision
        return "highest" if np.dtype(self.compute_dtype) == np.float32 else "default"

    @property
    def rope_type(self) -> str:
        return dict(self.rope_scaling).get("rope_type", "default")

    @property
    def num_params(self) -> int:
        d, f, h, k, hd = (self.hidden_size, self.intermediate_size, self.num_heads,
                          self.num_kv_heads, self.head_dim)
        attn = d * h * hd * 2 + d * k * hd * 2 + (h * hd + 2 * k * hd if self.attention_bias else 0)
        attn += (d if self.output_bias else 0) + (2 * hd if self.qk_norm else 0)
        layer = attn + 3 * d * f + 2 * d
        embed = self.vocab_size * d * (1 if self.tie_word_embeddings else 2)
        return self.num_layers * layer + embed + d

    def replace(self, **kwargs: Any) -> ModelConfig:
        return dataclasses.replace(self, **kwargs)

    # ------------------------------------------------------------------ RoPE
    def rope_inverse_frequencies(self) -> np.ndarray:
        """Inverse frequencies [head_dim // 2] with the configured scaling (as in HF's rope utilities)."""
        dim = self.head_dim
        inv_freq = 1.0 / (self.rope_theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
        params = dict(self.rope_scaling)
        kind = self.rope_type
        if kind == "linear":
            inv_freq = inv_freq / float(params["factor"])
        elif kind == "llama3":
            factor = float(params["factor"])
            low, high = float(params["low_freq_factor"]), float(params["high_freq_factor"])
            old_context = float(params["original_max_position_embeddings"])
            low_wavelen, high_wavelen = old_context / low, old_context / high
            wavelen = 2 * math.pi / inv_freq
            scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
            smooth = (old_context / wavelen - low) / (high - low)
            smoothed = (1 - smooth) * scaled / factor + smooth * scaled
            medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
            inv_freq = np.where(medium, smoothed, scaled)
        return inv_freq.astype(np.float32)

    # ------------------------------------------------------------------ HF config.json
    @classmethod
    def from_hf_dict(cls, cfg: dict[str, Any], source: str = "config.json", **overrides: Any) -> ModelConfig:
        archs = cfg.get("architectures") or []
        arch = archs[0] if archs else MODEL_TYPES.get(cfg.get("model_type", ""), "")
        if arch not in SUPPORTED_ARCHITECTURES:
            found = f"architectures {archs!r}" if archs else f"model_type {cfg.get('model_type')!r}"
            raise CheckpointError(
                f"{source}: unsupported architecture ({found}); supported architectures: "
                f"{', '.join(SUPPORTED_ARCHITECTURES)} (model_type {', '.join(MODEL_TYPES)})"
            )
        required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                    "intermediate_size")
        missing = [k for k in required if k not in cfg]
        if missing:
            raise CheckpointError(f"{source}: missing required key(s) {missing}")
        # transformers >= 5 writes rope settings under rope_parameters; older files use rope_theta/rope_scaling.
        rope = dict(cfg.get("rope_parameters") or {})
        scaling = dict(cfg.get("rope_scaling") or {})
        if "type" in scaling and "rope_type" not in scaling:
            scaling["rope_type"] = scaling.pop("type")
        rope.update(scaling)
        theta = float(rope.pop("rope_theta", cfg.get("rope_theta", 10000.0)))
        rope.setdefault("rope_type", "default")
        if rope["rope_type"] not in SUPPORTED_ROPE_TYPES:
            raise CheckpointError(
                f"{source}: unsupported rope_type {rope['rope_type']!r}; "
                f"supported: {', '.join(SUPPORTED_ROPE_TYPES)}"
            )
        is_qwen2, is_qwen3 = arch == "Qwen2ForCausalLM", arch == "Qwen3ForCausalLM"
        if is_qwen3 and cfg.get("use_sliding_window"):
            raise CheckpointError(
                f"{source}: use_sliding_window=true is not supported (the decoder attends over the full context); "
                "set it to false only if the checkpoint was trained without a sliding window")
        # Qwen2 always has q/k/v biases and no o_proj bias; Qwen3's attention_bias (default false) switches q/k/v
        # and o_proj biases together, as transformers' Qwen3Attention does.
        attention_bias = bool(cfg.get("attention_bias", is_qwen2))
        eos = cfg.get("eos_token_id")
        values = dict(
            vocab_size=int(cfg["vocab_size"]),
            hidden_size=int(cfg["hidden_size"]),
            num_layers=int(cfg["num_hidden_layers"]),
            num_heads=int(cfg["num_attention_heads"]),
            num_kv_heads=int(cfg.get("num_key_value_heads") or cfg["num_attention_heads"]),
            intermediate_size=int(cfg["intermediate_size"]),
            head_dim=cfg.get("head_dim"),
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            rope_theta=theta,
            rope_scaling=tuple(sorted(rope.items())) if rope["rope_type"] != "default" else (),
            max_position_embeddings=int(cfg.get("max_position_embeddings", 2048)),
            attention_bias=attention_bias,
            output_bias=is_qwen3 and attention_bias,
            qk_norm=is_qwen3,
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            architecture=arch,
            bos_token_id=cfg.get("bos_token_id"),
            eos_token_id=tuple(eos) if isinstance(eos, list) else eos,
            pad_token_id=cfg.get("pad_token_id"),
        )
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_hf_dir(cls, directory: str | Path, **overrides: Any) -> ModelConfig:
        path = Path(directory) / "config.json"
        if not path.is_file():
            raise CheckpointError(f"{path}: not found; a HF model directory needs a config.json")
        try:
            cfg = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise CheckpointError(f"{path}: malformed JSON ({err})") from err
        if not isinstance(cfg, dict):
            raise CheckpointError(f"{path}: expected a JSON object")
        return cls.from_hf_dict(cfg, source=str(path), **overrides)

    def to_hf_dict(self) -> dict[str, Any]:
        model_type = {arch: name for name, arch in MODEL_TYPES.items()}.get(self.architecture)
        if model_type is None:
            raise CheckpointError(f"cannot export architecture {self.architecture!r}; "
                                  f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}")
        rope = {"rope_theta": self.rope_theta, "rope_type": "default", **dict(self.rope_scaling)}
        out: dict[str, Any] = {
            "architectures": [self.architecture],
            "model_type": model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "intermediate_size": self.intermediate_size,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_parameters": rope,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "torch_dtype": self.param_dtype,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": list(self.eos_token_id) if isinstance(self.eos_token_id, tuple)
            else self.eos_token_id,
            "pad_token_id": self.pad_token_id,
        }
        if model_type != "qwen3" and (self.qk_norm or self.output_bias):
            raise CheckpointError(f"{self.architecture} has no q/k norm or o_proj bias; set qk_norm=False and "
                                  "output_bias=False, or architecture='Qwen3ForCausalLM'")
        if model_type == "llama":
            out["attention_bias"] = self.attention_bias
            out["mlp_bias"] = False
        elif model_type == "qwen2" and not self.attention_bias:
            raise CheckpointError("Qwen2 checkpoints always carry q/k/v biases; set attention_bias=True")
        elif model_type == "qwen3":
            if not self.qk_norm:
                raise CheckpointError("Qwen3 checkpoints always carry q_norm / k_norm; set qk_norm=True")
            if self.output_bias != self.attention_bias:
                raise CheckpointError(
                    "Qwen3's attention_bias switches the q/k/v and o_proj biases together; got "
                    f"attention_bias={self.attention_bias}, output_bias={self.output_bias}")
            out["attention_bias"] = self.attention_bias
            out["use_sliding_window"] = False
            out["sliding_window"] = None
        return out
