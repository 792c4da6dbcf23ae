"""The common GRPO benchmark workload, defined once for exit_jax, Tunix and TRL.

This file owns everything the three sides must agree on: the model sizes, the batch shape, the
sampling and optimiser settings, the toy reward, the locally built Qwen2 checkpoint with its
locally trained tokenizer, the fixed prompts, and the JSON schema each side prints.

It imports only the standard library, numpy, tokenizers and transformers at module level, so
every side's environment can import it; it never imports exit_jax. Building the checkpoint also
needs torch (present in the project's environment and in the TRL venv, not in the Tunix venv):
build it once with `python benchmarks/peers/workload.py build --size tiny` (run_all.py does).

JSON schema printed by every side (one object on stdout, `SCHEMA_VERSION`):

    {
      "schema": "exit_jax.peer_bench/1",
      "side": "exit_jax" | "tunix" | "trl",
      "size": "tiny" | "small",
      "versions": {"<package>": "<version>", ...},
      "workload": workload_spec(size),            # echoed so a mismatch is visible
      "measurements": {
        "rollout_tokens_per_s": Measurement,      # (a) new tokens / s, 64 x 128 tokens per call
        "train_step_s": Measurement,              # (b) forward + backward + optimiser, one batch
        "iteration_s": Measurement,               # (c) rollout + reward + update, one batch
        "peak_rss_bytes": {                       # (d)
          "ru_maxrss": int,                       #     getrusage peak of the whole process
          "sampled_peak": int,                    #     psutil RSS sampled every 10 ms, whole run
          "phases": {"rollout": int, "train_step": int, "iteration": int}  # VmHWM per phase
        }
      },
      "notes": ["free text: what was composed by hand, what a peer lacks, ..."]
    }

    Measurement = {
      "supported": bool,          # false: the peer lacks the feature; "note" says why
      "unit": "tokens/s" | "s",
      "values": [float, ...],     # one per timed repetition, warm-up excluded
      "warmup": int,              # repetitions run first and discarded (compilation etc.)
      "median": float, "min": float, "max": float,
      "spread": float,            # (max - min) / median
      "note": str,                # how it was measured
      "parts": {"<name>": [float, ...]}  # optional: same repetitions, a sub-phase's seconds
    }                                     # (iteration_s: "rollout_reward_s")
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import statistics
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = "exit_jax.peer_bench/1"
WORKLOAD_VERSION = 1  # bump when anything below changes: cached checkpoints are keyed by it

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = REPO_ROOT / "benchmarks" / ".out"

# Batch shape and sampling.
NUM_PROMPTS = 8
GROUP_SIZE = 8
PROMPT_TOKENS = 64
NEW_TOKENS = 128  # exactly: EOS does not stop generation on any side (see below)
TEMPERATURE = 1.0  # plain sampling over the full vocabulary: top_k = 0 / None, top_p = 1.0
# Optimiser and loss: AdamW, f32 parameters, beta (KL) = 0 so no reference model, one optimiser
# step per batch (mini batch = whole batch, num_iterations / mu = 1), PPO clip epsilon 0.2.
LEARNING_RATE = 1e-5
ADAM_B1, ADAM_B2, ADAM_EPS, WEIGHT_DECAY = 0.9, 0.999, 1e-8, 0.0
KL_BETA = 0.0
CLIP_EPSILON = 0.2
SEED = 0

# Tokenizer and model shared settings.
VOCAB_SIZE = 2048
PAD_TOKEN, EOS_TOKEN = "<|pad|>", "<|endoftext|>"
ROPE_THETA = 10_000
RMS_NORM_EPS = 1e-6
MAX_POSITIONS = 512


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """Qwen2 dimensions of one benchmark size (head_dim = hidden / heads = 64)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(hidden=256, layers=4, heads=4, kv_heads=2, ffn=704),
    "small": ModelSize(hidden=768, layers=12, heads=12, kv_heads=4, ffn=2048),
}


def workload_spec(size: str) -> dict[str, Any]:
    """Everything a side must honour, as a JSON-able dict (echoed in every result)."""
    dims = SIZES[size]
    return {
        "workload_version": WORKLOAD_VERSION,
        "size": size,
        "model": {
            **dataclasses.asdict(dims),
            "head_dim": dims.head_dim,
            "vocab": VOCAB_SIZE,
            "tied_embeddings": True,
            "dtype": "float32",
        },
        "num_prompts": NUM_PROMPTS,
        "group_size": GROUP_SIZE,
        "prompt_tokens": PROMPT_TOKENS,
        "new_tokens": NEW_TOKENS,
        "temperature": TEMPERATURE,
        "top_k": None,
        "top_p": 1.0,
        "eos_stops_generation": False,
        "optimizer": {
            "name": "adamw",
            "learning_rate": LEARNING_RATE,
            "b1": ADAM_B1,
            "b2": ADAM_B2,
            "eps": ADAM_EPS,
            "weight_decay": WEIGHT_DECAY,
        },
        "kl_beta": KL_BETA,
        "clip_epsilon": CLIP_EPSILON,
        "optimizer_steps_per_batch": 1,
        "reward": "toy_reward: fraction of completion characters that are lowercase vowels",
    }


def toy_reward(prompt: str, completion: str) -> float:
    """The workload's reward: the fraction of the completion's characters in 'aeiou'.

    Cheap, deterministic and varied within a group, so GRPO advantages are non-zero.
    """
    del prompt
    if not completion:
        return 0.0
    return sum(character in "aeiou" for character in completion) / len(completion)


def parameter_count(size: str) -> int:
    """Parameters of the tied-embedding Qwen2 model of `size` (q/k/v biases included)."""
    d = SIZES[size]
    kv = d.kv_heads * d.head_dim
    attention = d.hidden * d.hidden * 2 + d.hidden * kv * 2 + d.hidden + 2 * kv
    per_layer = attention + 3 * d.hidden * d.ffn + 2 * d.hidden
    return d.layers * per_layer + VOCAB_SIZE * d.hidden + d.hidden


def train_step_flops(size: str) -> float:
    """Model FLOPs of one train step: 3 x forward (forward + backward) over the whole batch.

    Forward = 2 x tokens x (matmul weights incl. the tied LM head) + dense attention
    (QK^T and AV over the full [L, L] square, 4 x B x L^2 x hidden per layer), with
    B = NUM_PROMPTS x GROUP_SIZE rows of L = PROMPT_TOKENS + NEW_TOKENS tokens.
    """
    d = SIZES[size]
    rows, length = NUM_PROMPTS * GROUP_SIZE, PROMPT_TOKENS + NEW_TOKENS
    kv = d.kv_heads * d.head_dim
    matmul_weights = (
        d.layers * (2 * d.hidden * d.hidden + 2 * d.hidden * kv + 3 * d.hidden * d.ffn)
        + d.hidden * VOCAB_SIZE
    )
    forward = 2 * rows * length * matmul_weights + d.layers * 4 * rows * length**2 * d.hidden
    return 3.0 * forward


def decode_bytes_per_step(size: str) -> float:
    """Bytes one decode step must read: all f32 weights once plus every row's K and V cache
    over the mean context (PROMPT_TOKENS + NEW_TOKENS / 2). Bandwidth / this = steps/s bound."""
    d = SIZES[size]
    rows = NUM_PROMPTS * GROUP_SIZE
    mean_context = PROMPT_TOKENS + NEW_TOKENS / 2
    kv_cache = rows * d.layers * 2 * d.kv_heads * d.head_dim * mean_context * 4
    return 4.0 * parameter_count(size) + kv_cache


# ----------------------------------------------------------------------------------------------
# Corpus, tokenizer, prompts.

_ONSETS = [
    "b",
    "c",
    "d",
    "f",
    "g",
    "h",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "w",
    "z",
    "br",
    "ch",
    "cl",
    "dr",
    "gr",
    "pl",
    "sh",
    "st",
    "th",
    "tr",
    "",
]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "y"]
_CODAS = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck", "ng"]


def training_corpus(num_lines: int = 20_000) -> list[str]:
    """A deterministic pseudo-English corpus (seeded syllable words, numbers, punctuation)."""
    rng = random.Random(SEED)
    lexicon = []
    for _ in range(6000):
        syllables = rng.choice([1, 1, 2, 2, 2, 3, 3, 4])
        lexicon.append(
            "".join(
                rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                for _ in range(syllables)
            )
        )
    # Zipf-like word frequencies so that BPE learns whole common words.
    weights = [1.0 / (rank + 1) for rank in range(len(lexicon))]
    lines = []
    for _ in range(num_lines):
        words = rng.choices(lexicon, weights=weights, k=rng.randint(6, 24))
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 9999)))
        sentence = " ".join(words)
        lines.append(sentence[0].upper() + sentence[1:] + rng.choice([".", ".", "?", "!", ","]))
    return lines


def train_tokenizer():
    """Byte-level BPE with VOCAB_SIZE entries trained on `training_corpus()`.

    Returns:
        A transformers PreTrainedTokenizerFast with pad and eos set (no BOS, no post-processor).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(training_corpus(), trainer=trainer)
    if tokenizer.get_vocab_size() != VOCAB_SIZE:
        raise RuntimeError(
            f"tokenizer has {tokenizer.get_vocab_size()} entries, "
            f"expected {VOCAB_SIZE}: enlarge the corpus"
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, padding_side="left"
    )


def make_prompts(tokenizer) -> list[list[int]]:
    """NUM_PROMPTS prompts of exactly PROMPT_TOKENS ids that survive decode -> encode unchanged.

    Each prompt is a run of whole-word tokens (' word'), so its text re-tokenizes to the same ids
    in every side's tokenizer call.
    """
    vocab = tokenizer.get_vocab()
    word_ids = sorted(
        i
        for token, i in vocab.items()
        if token.startswith("Ġ") and token[1:].isalpha() and len(token) > 2
    )
    rng = random.Random(SEED + 1)
    prompts = []
    while len(prompts) < NUM_PROMPTS:
        ids = rng.choices(word_ids, k=PROMPT_TOKENS)
        if tokenizer.encode(tokenizer.decode(ids), add_special_tokens=False) == ids:
            prompts.append(ids)
    return prompts


# ----------------------------------------------------------------------------------------------
# Checkpoint.


def checkpoint_dir(size: str) -> Path:
    return OUT_DIR / f"checkpoints-v{WORKLOAD_VERSION}" / size


def build_checkpoint(size: str, force: bool = False) -> Path:
    """Builds (once) the HF Qwen2 checkpoint, tokenizer and prompts of `size`; returns its dir.

    The directory holds config.json, model.safetensors (f32, tied embeddings so no lm_head
    tensor), tokenizer.json + tokenizer_config.json, prompts.json with ids and texts, and
    reference_logits.npy: the HF model's next-token logits after each prompt, shape
    [NUM_PROMPTS, VOCAB_SIZE], f32, which every side compares with `check_logits`.
    """
    target = checkpoint_dir(size)
    if (target / "prompts.json").exists() and not force:
        return target
    import torch  # only the builder needs torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    dims = SIZES[size]
    tokenizer = train_tokenizer()
    prompts = make_prompts(tokenizer)
    config = Qwen2Config(
        vocab_size=VOCAB_SIZE,
        hidden_size=dims.hidden,
        intermediate_size=dims.ffn,
        num_hidden_layers=dims.layers,
        num_attention_heads=dims.heads,
        num_key_value_heads=dims.kv_heads,
        max_position_embeddings=MAX_POSITIONS,
        rope_theta=float(ROPE_THETA),
        rms_norm_eps=RMS_NORM_EPS,
        tie_word_embeddings=True,
        use_sliding_window=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    torch.manual_seed(SEED)
    model = Qwen2ForCausalLM(config).to(torch.float32).eval()
    # Random q/k/v biases (the HF init zeroes them) so that a loader that drops them shows.
    with torch.no_grad():
        for layer in model.model.layers:
            for projection in (
                layer.self_attn.q_proj,
                layer.self_attn.k_proj,
                layer.self_attn.v_proj,
            ):
                projection.bias.normal_(0.0, config.initializer_range)
    staging = target.with_name(f"{size}.tmp-{os.getpid()}")
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    # Reference next-token logits after each prompt: every side checks its loaded model on them.
    with torch.no_grad():
        logits = model(torch.tensor(prompts)).logits[:, -1, :].numpy()
    np.save(staging / "reference_logits.npy", logits.astype(np.float32))
    texts = [tokenizer.decode(ids) for ids in prompts]
    (staging / "prompts.json").write_text(
        json.dumps({"ids": prompts, "texts": texts, "workload": workload_spec(size)}, indent=1)
    )
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def load_prompts(size: str) -> tuple[list[list[int]], list[str]]:
    """The (ids, texts) of the NUM_PROMPTS prompts stored beside the checkpoint."""
    path = checkpoint_dir(size) / "prompts.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `python benchmarks/peers/workload.py "
            f"build --size {size}` in the project environment first"
        )
    stored = json.loads(path.read_text())
    return stored["ids"], stored["texts"]


def check_logits(size: str, logits: np.ndarray, tolerance: float = 1e-3) -> float:
    """Raises unless `logits` ([NUM_PROMPTS, VOCAB_SIZE], next token after each prompt) match
    the HF reference within `tolerance` (max abs difference); returns that difference."""
    reference = np.load(checkpoint_dir(size) / "reference_logits.npy")
    logits = np.asarray(logits, dtype=np.float32)
    if logits.shape != reference.shape:
        raise RuntimeError(f"logits shape {logits.shape}, reference {reference.shape}")
    difference = float(np.max(np.abs(logits - reference)))
    if not difference <= tolerance:
        raise RuntimeError(
            f"loaded model differs from the HF checkpoint: max |dlogit| = "
            f"{difference:.3g} > {tolerance}"
        )
    return difference


# ----------------------------------------------------------------------------------------------
# Results.


def measurement(
    values: list[float],
    unit: str,
    warmup: int,
    note: str,
    parts: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    """A Measurement record (see the module docstring) from per-repetition values."""
    if not values:
        return unsupported(unit, note)
    median = statistics.median(values)
    record = {
        "supported": True,
        "unit": unit,
        "values": values,
        "warmup": warmup,
        "median": median,
        "min": min(values),
        "max": max(values),
        "spread": (max(values) - min(values)) / median if median else 0.0,
        "note": note,
    }
    if parts:
        record["parts"] = parts
    return record


def unsupported(unit: str, note: str) -> dict[str, Any]:
    """A Measurement record for a feature the side lacks."""
    return {
        "supported": False,
        "unit": unit,
        "values": [],
        "warmup": 0,
        "median": None,
        "min": None,
        "max": None,
        "spread": None,
        "note": note,
    }


def result(
    side: str, size: str, packages: tuple[str, ...], measurements: dict[str, Any], notes: list[str]
) -> dict[str, Any]:
    """The top-level JSON object each side prints; ``packages`` are the distributions whose versions it records."""
    import importlib.metadata

    return {
        "schema": SCHEMA_VERSION,
        "side": side,
        "size": size,
        "versions": {name: importlib.metadata.version(name) for name in packages},
        "workload": workload_spec(size),
        "measurements": measurements,
        "notes": notes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "spec"])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    if args.command == "build":
        print(build_checkpoint(args.size, force=args.force))
    else:
        print(json.dumps(workload_spec(args.size), indent=1))


if __name__ == "__main__":
    main()
