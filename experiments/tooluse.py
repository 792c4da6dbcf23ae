"""Multi-turn tool use on BFCL multi_turn_base (paper §3.2, Table 5): one JSON tool call per assistant turn executed
against bfcl-eval's simulated APIs; reward 1 when the final state and calls match the ground truth.

Commands and expectations:
  python launch/tpu_run.py --config=experiments/tooluse.py
      Embedded ~4M policy on the paper's 100 training tasks (first request, 10 actions), 2 CPU cores, about 20
      minutes. The tool schemas alone exceed the tiny policy's context, so it stays near 0: this preset exercises
      the multi-turn machinery (masking, per-turn partial histories in the buffer), it is not a capability claim.
  python launch/tpu_run.py --config=experiments/tooluse.py:smoke --workdir=/tmp/w
      Under 2 minutes; used by the tests.
  python launch/tpu_run.py --config=experiments/tooluse.py:qwen2.5-7b --config.model.hf_dir=DIR
      Qwen2.5-7B-Instruct (or EXIT_JAX_QWEN25_7B=DIR) with Table 5 hyperparameters on a TPU pod; the paper reports
      76.4 +- 1.0 % (Full ExIt) vs 73.5 +- 1.5 % (GRPO) first-turn accuracy on the 100 test tasks after K = 4 steps.
  python launch/tpu_run.py --config=experiments/tooluse.py:qwen2.5-7b --config.model.hf_dir=DIR \
      --config.domain.category=multi_turn_base,multi_turn_miss_func --config.domain.split_file=/data/split.json
      Other BFCL categories (pooled) and a user's own train / test split ({"train": [ids], "test": [ids]}).
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

PRESETS = ("default", "smoke", "qwen2.5-7b")
# The paper's Table 5 (BFCLv3 multi-turn base): values under GRPO apply to every method; the per-method columns.
TABLE_5 = {
    "shared": {"train.num_prompts": 16, "rl.num_generations": 8, "rl.num_iterations": 2,
               "rl.ref_update_interval": 100, "rl.ref_update_alpha": 1.0},
    "per_method": {
        "grpo": {"rl.learning_rate": 1e-6},
        "curriculum": {"rl.learning_rate": 5e-7, "curriculum.buffer_size": 320, "curriculum.min_buffer_size": 320,
                       "curriculum.replay_prob": 0.2},
        "improve": {"rl.learning_rate": 5e-7, "curriculum.buffer_size": 640, "curriculum.min_buffer_size": 320,
                    "curriculum.replay_prob": 0.5},
        "diverge": {"rl.learning_rate": 5e-7, "curriculum.buffer_size": 640, "curriculum.min_buffer_size": 320,
                    "curriculum.replay_prob": 0.5, "curriculum.divergence_prob": 0.2},
        "exit": {"rl.learning_rate": 1e-6, "curriculum.buffer_size": 640, "curriculum.min_buffer_size": 320,
                 "curriculum.replay_prob": 0.5, "curriculum.divergence_prob": 0.5},
    },
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    preset, options = parse_arg(arg, PRESETS)
    c = base_config("tooluse", preset, options)
    # category: one BFCL multi-turn category or several joined by commas; split_file: a JSON {"train": [ids],
    # "test": [ids]} ("" = the committed stratified 100 / 100 split of multi_turn_base).
    c.domain = ml_collections.ConfigDict(dict(name="tooluse", category="multi_turn_base", split_file="",
                                              requests="first", max_actions_per_request=10))
    c.eval.split = "test"
    c.eval.K = 4
    c.eval.binary = True
    c.eval.max_tasks = 20
    c.rl.num_generations = 8
    c.rl.learning_rate = 2e-4
    c.rl.loss_type = "dr_grpo"  # the paper's tool-use runs use Dr. GRPO's normalised objective
    c.sampling.max_prompt_length = 768
    c.sampling.max_new_tokens = 48
    c.curriculum.min_buffer_size = 16
    c.curriculum.replay_prob = 0.5
    c.train.num_prompts = 4
    c.train.num_iterations = 40
    c.sweep = sweep_from_options(options, TABLE_5["per_method"] if preset == "qwen2.5-7b" else None)
    if preset == "smoke":
        apply_smoke(c, num_generations=2, K=1, max_tasks=2)
        c.domain.max_actions_per_request = 2
        c.sampling.max_new_tokens = 16
    elif preset == "qwen2.5-7b":  # Table 5
        apply_real_model(c, "EXIT_JAX_QWEN25_7B")
        apply_paper_table(c, TABLE_5)
        c.rl.micro_batch_size = 16
        c.train.num_iterations = 500
        c.sampling.max_prompt_length = 8192
        c.sampling.max_new_tokens = 512
        c.eval.max_tasks = 0
        c.eval.num_samples = 8
    return finalize(c)
