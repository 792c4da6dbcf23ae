"""Parity check of our decoder against transformers' PyTorch model on the same HF directory.

    python -m exit_jax.models.parity --hf_dir DIR [--mesh 2,4] [--tolerance 1e-4]

Loads DIR both ways, compares logits on fixed prompts (seeded token ids of several lengths) and greedy 32-token
continuations, prints the max absolute logit difference and whether the continuations agree, and exits non-zero when
the difference exceeds the tolerance (1e-4 in f32) or a continuation differs. Run it when you bring a new checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np


def fixed_prompts(vocab_size: int, count: int = 4, seed: int = 1234) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    lengths = [5, 17, 9, 30][:count]
    return [rng.integers(0, vocab_size, size=n).tolist() for n in lengths]


def compare(hf_dir: str, mesh_shape: tuple[int, int, int] | None = None, new_tokens: int = 32,
            tolerance: float = 1e-4) -> dict[str, Any]:
    """Run both implementations and return the comparison (see module docstring)."""
    import jax
    import jax.numpy as jnp
    import torch
    import transformers
    from flax import nnx

    from exit_jax.models.hf_io import load_hf_model
    from exit_jax.sampling import Sampler, SamplingConfig
    from exit_jax.sharding import make_mesh

    mesh = make_mesh(*mesh_shape) if mesh_shape else None
    ours = load_hf_model(hf_dir, mesh=mesh)
    reference = transformers.AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=torch.float32, local_files_only=True).eval()
    prompts = fixed_prompts(ours.config.vocab_size)

    max_diff = 0.0
    forward = nnx.jit(lambda m, t, p, a: m(t, p, a)[0])
    for prompt in prompts:
        tokens = np.asarray([prompt], np.int32)
        positions = np.arange(len(prompt), dtype=np.int32)[None]
        if mesh is not None:
            with jax.set_mesh(mesh):
                logits = forward(ours, jnp.asarray(tokens), jnp.asarray(positions), jnp.ones_like(tokens, bool))
        else:
            logits = forward(ours, jnp.asarray(tokens), jnp.asarray(positions), jnp.ones_like(tokens, bool))
        with torch.no_grad():
            ref = reference(torch.as_tensor(tokens, dtype=torch.long)).logits.float().numpy()
        max_diff = max(max_diff, float(np.max(np.abs(np.asarray(logits) - ref))))

    sampler = Sampler(ours, mesh=mesh)
    _, state = nnx.split(ours)
    config = SamplingConfig(max_new_tokens=new_tokens, greedy=True, pad_id=0)
    ours_out = sampler.sample(state, prompts, config, jax.random.key(0))
    agree = []
    for i, prompt in enumerate(prompts):
        with torch.no_grad():
            generated = reference.generate(
                torch.as_tensor([prompt], dtype=torch.long), max_new_tokens=new_tokens, do_sample=False,
                min_new_tokens=new_tokens, eos_token_id=None, pad_token_id=0,
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
        theirs = generated[0, len(prompt):].tolist()
        agree.append(ours_out.tokens[i].tolist() == theirs)
    passed = max_diff <= tolerance and all(agree)
    return {"hf_dir": hf_dir, "mesh": mesh_shape, "max_abs_logit_diff": max_diff, "tolerance": tolerance,
            "continuations_agree": agree, "passed": passed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hf_dir", required=True)
    parser.add_argument("--mesh", default=None, help="data,fsdp,tensor or fsdp,tensor (e.g. 2,4)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--new_tokens", type=int, default=32)
    args = parser.parse_args(argv)
    mesh = None
    if args.mesh:
        dims = tuple(int(x) for x in args.mesh.split(","))
        mesh = (1, *dims) if len(dims) == 2 else dims
    from exit_jax.models.config import CheckpointError

    try:
        result = compare(args.hf_dir, mesh, args.new_tokens, args.tolerance)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
