"""The method ladder and start-up validation."""

import pytest

from exit_jax.curriculum.config import METHODS, get_config, method_components, settings_from_config

# The paper's ablation table (notes §1.8), written out independently of config.py.
LADDER = {
    "grpo": (False, False, 0.0, False),
    "curriculum": (True, False, 0.0, False),
    "improve": (True, True, 0.0, False),
    "diverge": (True, True, 0.2, False),
    "exit": (True, True, 0.2, True),
}


@pytest.mark.parametrize("method", METHODS)
def test_ladder(method):
    resolved = settings_from_config(get_config(method))
    replay, expansion, divergence_prob, bonus = LADDER[method]
    assert (resolved.effective_replay_prob > 0) == replay
    assert resolved.expansion == expansion
    assert resolved.effective_divergence_prob == divergence_prob
    assert resolved.diversity_bonus == bonus


def test_explicit_switch_overrides_method():
    config = get_config("exit")
    config.diversity_bonus = False
    assert not settings_from_config(config).diversity_bonus
    config.method = "grpo"
    config.replay = True
    assert settings_from_config(config).replay and not settings_from_config(config).expansion


@pytest.mark.parametrize("field,value,reason", [
    ("method", "ppo", "choose one of"),
    ("replay_prob", 1.5, r"\[0.0, 1.0\]"),
    ("min_buffer_size", 1000, "exceeds buffer_size"),
    ("buffer_size", 0, ">= 1"),
    ("score_fn", "entropy", "choose one of"),
    ("insert_children", "some", "choose one of"),
    ("kappa", float("nan"), "finite"),
    ("children_sample_size", 1.5, "integer"),
    ("diversity_normalization", "l1", "choose one of"),
])
def test_validation_names_field_and_reason(field, value, reason):
    values = get_config("exit").to_dict()
    values[field] = value
    with pytest.raises(ValueError, match=f"'{field}'.*{reason}"):
        settings_from_config(values)


def test_unknown_field_and_method_names():
    values = get_config().to_dict()
    values["kapa"] = 1.0
    with pytest.raises(ValueError, match="'kapa'.*unknown field"):
        settings_from_config(values)
    with pytest.raises(ValueError, match="unknown method"):
        method_components("full")
