"""Start-up validation: each nonsensical GRPO config fails naming the field and the reason."""

import pytest
from flax import nnx

from exit_jax.rl import config as config_lib


def test_defaults_are_valid_and_follow_the_documented_choices():
    config = config_lib.get_config()
    config_lib.validate_config(config)
    assert (config.loss_type, config.beta, config.epsilon, config.reward_std_ddof) == ("grpo", 0.0, 0.2, 1)
    assert config.epsilon_high is None and config.micro_batch_size is None


@pytest.mark.parametrize("overrides,field,reason", [
    ({"num_generations": 1}, "num_generations", "at least 2"),
    ({"beta": -0.01}, "beta", ">= 0"),
    ({"num_iterations": 0}, "num_iterations", ">= 1"),
    ({"batch_size": 60}, "batch_size", "multiple of num_generations"),
    ({"micro_batch_size": 24}, "micro_batch_size", "must divide batch_size"),
    ({"loss_type": "ppo"}, "loss_type", "unknown loss type"),
    ({"importance_sampling_level": "group"}, "importance_sampling_level", "token"),
    ({"scale_rewards": "global"}, "scale_rewards", "group"),
    ({"advantage_estimator": "gae"}, "advantage_estimator", "unknown estimator"),
    ({"advantage_estimator": "dr_grpo"}, "scale_rewards", "mean-only"),
    ({"epsilon": 0.0}, "epsilon", "> 0"),
    ({"epsilon_high": -0.1}, "epsilon_high", "> 0"),
    ({"ref_update_alpha": 1.5}, "ref_update_alpha", "[0, 1]"),
    ({"learning_rate": 0.0}, "learning_rate", "> 0"),
    ({"lr_schedule": "cosine", "warmup_steps": 2000}, "num_train_steps", "more steps than warmup"),
    ({"reward_std_ddof": 2}, "reward_std_ddof", "population"),
])
def test_bad_configs_name_the_field(overrides, field, reason):
    config = config_lib.get_config()
    config.update(overrides)
    with pytest.raises(ValueError, match=f"`{field}`") as error:
        config_lib.validate_config(config)
    assert reason in str(error.value)


def test_learner_validates_before_building_anything():
    from exit_jax.rl.learner import GRPOLearner

    class Exploding(nnx.Module):
        def __init__(self):
            raise AssertionError("the model must not even be touched")

    config = config_lib.get_config()
    config.num_generations = 1
    with pytest.raises(ValueError, match="`num_generations`"):
        GRPOLearner(object.__new__(Exploding), config)
