"""Competition math: single-turn boxed answers, reward 1/0 from math-verify (paper §3.1, Table 4).

Commands and expectations:
  python launch/tpu_run.py --config=experiments/math.py
      Embedded ~4M policy on procedural problems, 2 CPU cores: about 15 minutes; prints accuracy at k = 0..16 on the
      procedural held-out set (a tiny policy from scratch stays near chance on most families: this preset exercises
      the whole method, it is not a capability claim).
  python launch/tpu_run.py --config=experiments/math.py:smoke --workdir=/tmp/w
      Under 2 minutes: 2 iterations, K = 2 evaluation on 4 held-out problems; used by the tests.
  python launch/tpu_run.py --config=experiments/math.py:llama3.2-3b,method=exit --config.model.hf_dir=DIR
      Llama-3.2-3B-Instruct (or EXIT_JAX_LLAMA32_3B=DIR) on local MATH-style files (--config.domain.train_files=...,
      --config.domain.heldout_files=...), Table 4 hyperparameters, on a TPU pod (v4-32 class). The paper reports
      20.4 +- 0.5 % (Full ExIt) vs 18.7 +- 0.4 % (GRPO) averaged over its math test splits after 16 steps.
"""

import ml_collections

from experiments.common import (
    apply_paper_table,
    apply_real_model,
    apply_smoke,
    base_config,
    finalize,
    parse_arg,
    sweep_from_options,
)

PRESETS = ("default", "smoke", "llama3.2-3b")
# The paper's Table 4 (competition math): the same values for every method except that grpo has no buffer.
_BUFFER_4 = {"curriculum.buffer_size": 512, "curriculum.min_buffer_size": 128, "curriculum.replay_prob": 0.5}
TABLE_4 = {
    "shared": {"rl.learning_rate": 1e-6, "train.num_prompts": 128, "rl.num_generations": 8, "rl.num_iterations": 1,
               "rl.beta": 0.001, "rl.ref_update_interval": 100, "rl.ref_update_alpha": 1.0},
    "per_method": {"curriculum": _BUFFER_4, "improve": _BUFFER_4,
                   "diverge": {**_BUFFER_4, "curriculum.divergence_prob": 0.2},
                   "exit": {**_BUFFER_4, "curriculum.divergence_prob": 0.2}},
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    preset, options = parse_arg(arg, PRESETS)
    c = base_config("math", preset, options)
    c.domain = ml_collections.ConfigDict(dict(name="math", source="procedural", prompt_style="compact",
                                              seed=c.seed, train_size=1280))
    c.eval.binary = True
    c.rl.num_generations = 8
    c.rl.learning_rate = 3e-4
    c.rl.beta = 0.0
    c.sampling.max_prompt_length = 128
    c.sampling.max_new_tokens = 24
    c.curriculum.buffer_size = 512
    c.curriculum.min_buffer_size = 16
    c.train.num_prompts = 8
    c.train.num_iterations = 150
    c.train.eval_every = 0
    c.eval.K = 16
    c.eval.max_tasks = 64
    c.eval.num_samples = 1
    c.sweep = sweep_from_options(options, TABLE_4["per_method"] if preset == "llama3.2-3b" else None)
    if preset == "smoke":
        apply_smoke(c, num_generations=4, K=2, max_tasks=4)
        c.sampling.max_new_tokens = 16
    elif preset == "llama3.2-3b":  # Table 4
        apply_real_model(c, "EXIT_JAX_LLAMA32_3B")
        c.domain.source = "files"
        c.domain.prompt_style = "chat"
        apply_paper_table(c, TABLE_4)
        c.rl.micro_batch_size = 64
        c.train.num_iterations = 150
        c.train.eval_every = 50
        c.sampling.max_prompt_length = 1024
        c.sampling.max_new_tokens = 2048
        c.eval.num_samples = 8
        c.eval.max_tasks = 0
    return finalize(c)
