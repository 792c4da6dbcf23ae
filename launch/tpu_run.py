"""Entry point: ``python launch/tpu_run.py --config=experiments/X.py[:preset] [--config.a.b=value]``.

Today it loads the config, builds the policy (embedded default or a HF directory), and samples one GRPO group from
it to show the stack works end to end; the ExIt trainer lands with issue 6.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file", lock_config=True)


def main(argv):
    del argv
    import jax
    from flax import nnx

    from exit_jax.models.embedded import embedded_policy
    from exit_jax.models.hf_io import load_hf_model
    from exit_jax.models.tokenizer import chat_tokens, load_tokenizer
    from exit_jax.sampling import Sampler, SamplingConfig
    from exit_jax.types import Message

    config = _CONFIG.value
    if config is None:
        raise app.UsageError("--config=experiments/<name>.py is required")
    if config.model.source == "embedded":
        model, tokenizer = embedded_policy(config.seed)
    else:
        model, tokenizer = load_hf_model(config.model.hf_dir), load_tokenizer(config.model.hf_dir)
    prompt = chat_tokens(tokenizer, [Message("user", f"{config.experiment}: write a solution")])
    sampling = SamplingConfig(max_new_tokens=config.sampling.max_new_tokens,
                              num_samples=config.sampling.num_generations,
                              temperature=config.sampling.temperature,
                              stop_token_ids=(tokenizer.eos_token_id,), pad_id=tokenizer.pad_token_id)
    out = Sampler(model).sample(nnx.state(model), [prompt], sampling, jax.random.key(config.seed))
    print(f"policy: {model.config.num_params:,} parameters; sampled {len(out.tokens)} responses")
    for row in range(len(out.tokens)):
        print(" -", repr(tokenizer.decode(out.tokens[row, : out.lengths[row]])[:80]))
    print("The ExIt trainer is not wired in yet (issue 6): this run only exercised the policy and sampler.")


if __name__ == "__main__":
    app.run(main)
