"""End-to-end: GRPO raises the embedded policy's reward on a toy task (fraction of one target token).

The real embedded config (vocab 4096, ~4M parameters), the real KV-cache sampler, seeded. A random policy emits the
target with probability ~1/4096 per token, so the first steps are mostly zero-variance groups (zero advantage, no
gradient) until a group contains a hit; from there GRPO amplifies it.
"""

import jax
import numpy as np
from flax import nnx

from exit_jax.models.decoder import Decoder
from exit_jax.models.embedded import embedded_config
from exit_jax.rl import config as config_lib
from exit_jax.rl.batch import completion_batch
from exit_jax.rl.learner import GRPOLearner
from exit_jax.sampling import Sampler, SamplingConfig

TARGET_TOKEN = 7
PROMPTS, GROUP, COMPLETION = 8, 8, 8


def test_grpo_learns_to_emit_the_target_token():
    config = config_lib.get_config()
    config.batch_size, config.num_generations, config.max_completion_length = PROMPTS * GROUP, GROUP, COMPLETION
    config.learning_rate, config.loss_type, config.max_grad_norm = 1e-2, "dapo", 1.0
    model = Decoder(embedded_config(), rngs=nnx.Rngs(0))
    sampler = Sampler(model, max_length=32)
    learner = GRPOLearner(model, config)
    reference_forwards = []
    log_probs = learner._log_probs
    learner._log_probs = lambda *args: reference_forwards.append(1) or log_probs(*args)
    sampling = SamplingConfig(max_new_tokens=COMPLETION, num_samples=GROUP, temperature=1.0, prompt_bucket=4)
    prompts = [[1, 20 + i, 30 + i] for i in range(PROMPTS)]
    key = jax.random.key(0)
    rewards_per_step = []
    for _ in range(100):
        key, sample_key = jax.random.split(key)
        out = sampler.sample(learner.policy_state(), prompts, sampling, sample_key)
        rewards = (out.tokens == TARGET_TOKEN).mean(axis=1).astype(np.float32)
        rewards_per_step.append(float(rewards.mean()))
        if len(rewards_per_step) >= 2 and np.mean(rewards_per_step[-2:]) > 0.8:
            break
        batch = completion_batch(out.prompt_tokens, out.prompt_mask, out.tokens, out.lengths,
                                 np.asarray(learner.advantages(rewards)))
        metrics = learner.update(batch)
        assert np.isfinite(metrics["loss"]) and np.isfinite(metrics["grad_norm"])
    assert rewards_per_step[0] < 0.2
    # beta = 0 and mu = 1: no reference copy, no reference or old-log-prob forward, ever.
    assert learner.ref_params is None and not reference_forwards
    assert np.mean(rewards_per_step[-2:]) > 0.8, rewards_per_step
