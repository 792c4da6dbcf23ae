"""Hugging Face checkpoints in and out: safetensors (single or index-sharded) <-> a sharded ``Decoder``.

Loading never holds a second full copy of the model on the host: safetensors files are memory-mapped, and each
tensor is read, re-laid-out, cast and placed on its ``NamedSharding`` before the next one is touched. Export writes a
directory that ``transformers.AutoModelForCausalLM.from_pretrained`` loads (config.json + model.safetensors).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import ml_dtypes
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from exit_jax.models.config import CheckpointError, ModelConfig
from exit_jax.models.decoder import Decoder
from exit_jax.sharding import logical_sharding

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16, "F64": np.float64,
           "I64": np.int64, "I32": np.int32, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


class SafetensorsDirectory:
    """Lazy, memory-mapped access to every tensor of a HF model directory."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        index = self.directory / "model.safetensors.index.json"
        single = self.directory / "model.safetensors"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError) as err:
                raise CheckpointError(f"{index}: malformed index ({err!r}); expected a 'weight_map'") from err
            files = sorted(set(weight_map.values()))
        elif single.is_file():
            files = [single.name]
        else:
            raise CheckpointError(
                f"{self.directory}: no model.safetensors or model.safetensors.index.json found")
        self._entries: dict[str, tuple[Path, dict[str, Any], int]] = {}
        for name in files:
            path = self.directory / name
            if not path.is_file():
                raise CheckpointError(f"{path}: listed in the index but missing")
            header, data_start = self._read_header(path)
            for key, meta in header.items():
                if key != "__metadata__":
                    self._entries[key] = (path, meta, data_start)

    @staticmethod
    def _read_header(path: Path) -> tuple[dict[str, Any], int]:
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise CheckpointError(f"{path}: truncated safetensors file")
            (length,) = struct.unpack("<Q", raw)
            if length > 100_000_000 or length > path.stat().st_size:
                raise CheckpointError(f"{path}: corrupt safetensors header")
            try:
                header = json.loads(f.read(length))
            except json.JSONDecodeError as err:
                raise CheckpointError(f"{path}: corrupt safetensors header ({err})") from err
        return header, 8 + length

    def keys(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> np.ndarray:
        """The tensor as a read-only memory-mapped array (no copy)."""
        if key not in self._entries:
            raise CheckpointError(f"{self.directory}: tensor {key!r} missing from the checkpoint")
        path, meta, start = self._entries[key]
        dtype = _DTYPES.get(meta["dtype"])
        if dtype is None:
            raise CheckpointError(f"{path}: tensor {key!r} has unsupported dtype {meta['dtype']}")
        begin, end = meta["data_offsets"]
        shape = tuple(meta["shape"])
        if (end - begin) != int(np.prod(shape)) * np.dtype(dtype).itemsize or start + end > path.stat().st_size:
            raise CheckpointError(f"{path}: tensor {key!r} is truncated or its offsets are corrupt")
        return np.memmap(path, dtype=dtype, mode="r", offset=start + begin, shape=shape)


# (our path, HF name, HF -> ours, ours -> HF)
Mapping = tuple[tuple[Any, ...], str, Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def weight_mapping(config: ModelConfig) -> Iterator[Mapping]:
    """Every parameter of ``Decoder`` with its HF name and the layout changes both ways."""
    d, h, k, hd = config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim
    ident = lambda a: a  # noqa: E731

    def proj(heads: int):  # HF [heads*hd, d] <-> ours [d, heads, hd]
        return (lambda a: np.asarray(a).T.reshape(d, heads, hd),
                lambda a: np.asarray(a).reshape(d, heads * hd).T)

    def bias(heads: int):
        return (lambda a: np.asarray(a).reshape(heads, hd), lambda a: np.asarray(a).reshape(heads * hd))

    out_to, out_from = (lambda a: np.asarray(a).T.reshape(h, hd, d),
                        lambda a: np.asarray(a).reshape(h * hd, d).T)
    transpose = (lambda a: np.asarray(a).T, lambda a: np.asarray(a).T)
    yield ("embed",), "model.embed_tokens.weight", ident, ident
    yield ("final_norm", "scale"), "model.norm.weight", ident, ident
    if not config.tie_word_embeddings:
        yield ("lm_head",), "lm_head.weight", *transpose
    for i in range(config.num_layers):
        p = f"model.layers.{i}."
        yield ("layers", i, "attn_norm", "scale"), p + "input_layernorm.weight", ident, ident
        yield ("layers", i, "mlp_norm", "scale"), p + "post_attention_layernorm.weight", ident, ident
        for name, heads in (("q", h), ("k", k), ("v", k)):
            yield ("layers", i, "attn", name), p + f"self_attn.{name}_proj.weight", *proj(heads)
            if config.attention_bias:
                yield ("layers", i, "attn", f"{name}_bias"), p + f"self_attn.{name}_proj.bias", *bias(heads)
        if config.qk_norm:
            yield ("layers", i, "attn", "q_norm", "scale"), p + "self_attn.q_norm.weight", ident, ident
            yield ("layers", i, "attn", "k_norm", "scale"), p + "self_attn.k_norm.weight", ident, ident
        yield ("layers", i, "attn", "o"), p + "self_attn.o_proj.weight", out_to, out_from
        if config.output_bias:
            yield ("layers", i, "attn", "o_bias"), p + "self_attn.o_proj.bias", ident, ident
        yield ("layers", i, "mlp", "gate"), p + "mlp.gate_proj.weight", *transpose
        yield ("layers", i, "mlp", "up"), p + "mlp.up_proj.weight", *transpose
        yield ("layers", i, "mlp", "down"), p + "mlp.down_proj.weight", *transpose


def _path_key(path: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(getattr(p, "key", getattr(p, "idx", p)) for p in path)


def _variables(model: nnx.Module) -> dict[tuple[Any, ...], nnx.Variable]:
    _, state = nnx.split(model)
    leaves = jax.tree_util.tree_flatten_with_path(state, is_leaf=lambda x: isinstance(x, nnx.Variable))[0]
    return {_path_key(path): var for path, var in leaves}


def load_hf_model(directory: str | Path, mesh: Mesh | None = None, **config_overrides: Any
                  ) -> Decoder:
    """Load a HF Llama / Qwen2 / Qwen3 directory into a ``Decoder``, tensor by tensor, sharded on ``mesh``.

    ``config_overrides`` (e.g. ``param_dtype="bfloat16"``, ``compute_dtype="bfloat16"``) replace config fields.
    """
    config = ModelConfig.from_hf_dir(directory, **config_overrides)
    tensors = SafetensorsDirectory(directory)
    abstract = nnx.eval_shape(lambda: Decoder(config, nnx.Rngs(0)))
    variables = _variables(abstract)
    expected = {path for path, _, _, _ in weight_mapping(config)}
    unmapped = set(variables) - expected
    if unmapped:  # a bug in weight_mapping, not in the user's files
        raise AssertionError(f"parameters without an HF mapping: {sorted(unmapped)}")
    for path, hf_name, to_ours, _ in weight_mapping(config):
        variable = variables[path]
        target = variable.get_value()
        array = to_ours(tensors.get(hf_name))
        if array.shape != target.shape:
            raise CheckpointError(
                f"{directory}: tensor {hf_name!r} has shape {tensors.get(hf_name).shape}, which does not match "
                f"config.json (expected {target.shape} after re-layout)")
        array = np.ascontiguousarray(array, dtype=target.dtype)
        if mesh is not None:
            sharding = logical_sharding(mesh, variable.get_metadata()["logical_axes"], array.shape)
            value = jax.device_put(array, sharding)
        else:
            value = jax.device_put(array)
        variable.set_value(value)
        del array
    return abstract


def export_hf_model(model: Decoder, directory: str | Path, tokenizer: Any = None,
                    dtype: str | None = None) -> Path:
    """Write ``model`` as a HF directory (config.json + model.safetensors [+ tokenizer files])."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config
    variables = _variables(model)
    tensors = {}
    for path, hf_name, _, to_hf in weight_mapping(config):
        value = np.asarray(jax.device_get(variables[path].get_value()))
        if dtype is not None:
            value = value.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
        tensors[hf_name] = np.ascontiguousarray(to_hf(value))
    hf_config = config.to_hf_dict()
    if dtype is not None:
        hf_config["torch_dtype"] = dtype
    tmp = directory / "model.safetensors.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.replace(directory / "model.safetensors")
    (directory / "config.json").write_text(json.dumps(hf_config, indent=2))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(directory))
    return directory
