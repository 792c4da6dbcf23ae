"""Tokenizers: loaded from a HF model directory through transformers, plus the embedded default's builder.

``load_tokenizer(dir)`` accepts tokenizer.json or a sentencepiece tokenizer.model (protobuf needed) and keeps the
directory's chat template. ``build_embedded_tokenizer`` deterministically trains the small byte-level BPE that ships in
``exit_jax/models/embedded/`` (rerun it with ``python -m exit_jax.models.tokenizer --out DIR``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from exit_jax.models.config import CheckpointError
from exit_jax.types import Message

SPECIAL_TOKENS = ("<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>")
# ChatML-style template, kept short because the embedded policy has a small context.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def load_tokenizer(directory: str | Path, chat_template: str = "") -> Any:
    """A transformers tokenizer from a local directory (never the hub).

    Args:
      directory: the checkpoint's directory (tokenizer.json or tokenizer.model).
      chat_template: a Jinja chat template, or the path of a file holding one, used instead of the directory's
        (``model.chat_template``); needed when the directory has none.

    Raises:
      CheckpointError: no tokenizer, a tokenizer that does not load, or no chat template from either source.
    """
    from transformers import AutoTokenizer

    directory = Path(directory)
    if not (directory / "tokenizer.json").is_file() and not (directory / "tokenizer.model").is_file():
        raise CheckpointError(f"{directory}: no tokenizer.json or tokenizer.model found")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except Exception as err:  # transformers raises many types; the user needs the path and the cause
        raise CheckpointError(f"{directory}: could not load the tokenizer ({type(err).__name__}: {err})") from err
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if chat_template:
        path = Path(chat_template).expanduser()
        looks_like_path = "{" not in chat_template and "\n" not in chat_template
        if looks_like_path and not path.is_file():
            raise CheckpointError(f"model.chat_template: {chat_template!r} is neither a file nor a Jinja template")
        tokenizer.chat_template = path.read_text() if looks_like_path else chat_template
    if not tokenizer.chat_template:
        raise CheckpointError(
            f"{directory}: the tokenizer has no chat template (no chat_template in tokenizer_config.json or "
            "chat_template.jinja). Prompts are rendered with the model's own chat format, so pass one: "
            "--config.model.chat_template=FILE (a .jinja file) or a Jinja string.")
    return tokenizer


def chat_tokens(tokenizer: Any, messages: Sequence[Message], add_generation_prompt: bool = True
                ) -> list[int]:
    """Token ids of a conversation rendered with the tokenizer's chat template."""
    conversation = [{"role": m.role, "content": m.content} for m in messages]
    if not tokenizer.chat_template:
        raise ValueError("the tokenizer has no chat template; load it with load_tokenizer(dir, chat_template=...)")
    ids = tokenizer.apply_chat_template(conversation, add_generation_prompt=add_generation_prompt,
                                        tokenize=True, return_dict=False)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


def _training_corpus() -> list[str]:
    """A fixed corpus: Python standard-library sources (code), plus numbers, JSON and math notation."""
    import json
    import random
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    texts = []
    for name in ("argparse.py", "json/__init__.py", "statistics.py", "fractions.py", "random.py",
                 "textwrap.py", "csv.py", "string.py", "heapq.py", "bisect.py", "dataclasses.py"):
        path = stdlib / name
        if path.is_file():
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    rng = random.Random(0)
    for _ in range(4000):
        a, b = rng.randint(0, 999), rng.randint(1, 99)
        texts.append(f"{a} + {b} = {a + b}; {a} * {b} = {a * b}; \\frac{{{a}}}{{{b}}} \\boxed{{{a - b}}}")
        texts.append(json.dumps({"name": rng.choice(["ls", "cd", "cat", "buy", "book"]),
                                 "arguments": {"x": a, "score": round(a / 1000, 3)}}))
    return texts


def build_embedded_tokenizer(out_dir: str | Path, vocab_size: int = 4096) -> Any:
    """Train the embedded byte-level BPE deterministically and save it as a HF tokenizer directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_training_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<|pad|>", eos_token="<|im_end|>",
                                   bos_token="<|endoftext|>", unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    return fast


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--vocab_size", type=int, default=4096)
    args = parser.parse_args()
    built = build_embedded_tokenizer(args.out, args.vocab_size)
    print(f"wrote {args.out} (vocab {len(built)})")
