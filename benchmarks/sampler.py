"""Sampler throughput: exit_jax's KV-cache sampler vs transformers' PyTorch ``generate`` on the same weights.

    python benchmarks/sampler.py [--sizes embedded,100m] [--batch 64] [--new_tokens 256] [--repeats 3]

Both sides sample exactly ``new_tokens`` tokens per row (no early stop) at temperature 1.0 from the same random
weights (ours exported to an HF directory that transformers loads), in one process, one after another. Prints a
Markdown table of new tokens/s (median over repeats, warm-up excluded) and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

SIZES = {
    "embedded": None,  # exit_jax.models.embedded.embedded_config()
    "100m": dict(vocab_size=4096, hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=4,
                 intermediate_size=2816, tie_word_embeddings=True, max_position_embeddings=1024),
}


def _median(values):
    return float(np.median(values)), float(np.min(values)), float(np.max(values))


def bench_size(name: str, batch: int, prompt_len: int, new_tokens: int, repeats: int) -> dict:
    import jax
    import torch
    import transformers
    from flax import nnx

    from exit_jax.models.config import ModelConfig
    from exit_jax.models.decoder import Decoder
    from exit_jax.models.embedded import embedded_config
    from exit_jax.models.hf_io import export_hf_model
    from exit_jax.sampling import Sampler, SamplingConfig

    config = embedded_config() if SIZES[name] is None else ModelConfig(**SIZES[name])
    model = Decoder(config, nnx.Rngs(0))
    rng = np.random.default_rng(0)
    prompts = rng.integers(5, config.vocab_size, (batch, prompt_len)).tolist()
    sampler = Sampler(model)
    state = nnx.state(model)
    sampling = SamplingConfig(max_new_tokens=new_tokens, num_samples=1, temperature=1.0)
    sampler.sample(state, prompts, sampling, jax.random.key(0))  # compile + warm-up
    ours = []
    for r in range(repeats):
        start = time.perf_counter()
        out = sampler.sample(state, prompts, sampling, jax.random.key(r + 1))
        ours.append(int(out.lengths.sum()) / (time.perf_counter() - start))

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        export_hf_model(model, tmp)
        reference = transformers.AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
    inputs = torch.as_tensor(prompts)
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True, temperature=1.0,
                  top_k=0, top_p=1.0, pad_token_id=0, eos_token_id=None,
                  attention_mask=torch.ones_like(inputs))
    with torch.no_grad():
        reference.generate(inputs[:, :8], **{**kwargs, "max_new_tokens": 4, "min_new_tokens": 4,
                                             "attention_mask": torch.ones_like(inputs[:, :8])})
        theirs = []
        for _ in range(repeats):
            start = time.perf_counter()
            generated = reference.generate(inputs, **kwargs)
            theirs.append((generated.shape[1] - prompt_len) * batch / (time.perf_counter() - start))
    return {"size": name, "params": config.num_params, "ours": _median(ours), "torch": _median(theirs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="embedded,100m")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--prompt_len", type=int, default=64)
    parser.add_argument("--new_tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = [bench_size(s, args.batch, args.prompt_len, args.new_tokens, args.repeats) for s in args.sizes.split(",")]
    print(f"\nbatch {args.batch}, prompt {args.prompt_len}, {args.new_tokens} new tokens, f32, "
          f"{os.cpu_count()} CPU cores; median (min-max) over {args.repeats} repeats\n")
    print("| model | params | exit_jax tokens/s | transformers generate tokens/s | ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        (om, olo, ohi), (tm, tlo, thi) = r["ours"], r["torch"]
        print(f"| {r['size']} | {r['params'] / 1e6:.1f}M | {om:,.0f} ({olo:,.0f}-{ohi:,.0f}) | "
              f"{tm:,.0f} ({tlo:,.0f}-{thi:,.0f}) | {om / tm:.2f}x |")


if __name__ == "__main__":
    main()
