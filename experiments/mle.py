"""MLE (machine-learning engineering) experiment: the policy writes solutions for built-in competitions.

Command:  python launch/tpu_run.py --config=experiments/mle.py
Today: builds the embedded policy and samples from it (the trainer lands with issue 6).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.experiment = "mle"
    config.preset = arg or "default"
    config.seed = 0
    config.model = ml_collections.ConfigDict({"source": "embedded", "hf_dir": ""})
    config.sampling = ml_collections.ConfigDict({"max_new_tokens": 32, "num_generations": 4,
                                                 "temperature": 1.0})
    return config
