"""The real-model presets carry the paper's Tables 4-6 (transcribed here row by row from
shared/exit-paper-notes.md §2.3, independently of the experiment files), for every method, also when the method comes
from a sweep member's overrides; the embedded defaults keep one set of hyperparameters for every rung."""

import importlib

import pytest

METHODS = ("grpo", "curriculum", "improve", "diverge", "exit")
# experiment, preset, {config path: value for every method, or a tuple in METHODS order (None: not applicable)}
TABLES = [
    ("math", "llama3.2-3b", {
        "rl.learning_rate": 1e-6, "train.num_prompts": 128, "rl.num_generations": 8, "rl.num_iterations": 1,
        "rl.beta": 0.001, "rl.ref_update_interval": 100, "rl.ref_update_alpha": 1.0, "domain.train_size": 1280,
        "curriculum.buffer_size": (None, 512, 512, 512, 512), "curriculum.min_buffer_size": (None, 128, 128, 128, 128),
        "curriculum.replay_prob": (None, 0.5, 0.5, 0.5, 0.5),
        "curriculum.divergence_prob": (None, None, None, 0.2, 0.2),
    }),
    ("tooluse", "qwen2.5-7b", {
        "rl.learning_rate": (1e-6, 5e-7, 5e-7, 5e-7, 1e-6), "train.num_prompts": 16, "rl.num_generations": 8,
        "rl.num_iterations": 2, "rl.ref_update_interval": 100, "rl.ref_update_alpha": 1.0,
        "curriculum.buffer_size": (None, 320, 640, 640, 640), "curriculum.min_buffer_size": (None, 320, 320, 320, 320),
        "curriculum.replay_prob": (None, 0.2, 0.5, 0.5, 0.5),
        "curriculum.divergence_prob": (None, None, None, 0.2, 0.5),
    }),
    ("mle", "r1-distill-qwen-7b", {
        "rl.learning_rate": 1e-6, "train.num_prompts": 4, "rl.num_generations": 8, "rl.num_iterations": 1,
        "rl.ref_update_interval": 100, "rl.ref_update_alpha": 0.5,
        "curriculum.buffer_size": (None, 3, 24, 32, 24), "curriculum.min_buffer_size": (None, 3, 8, 8, 3),
        "curriculum.replay_prob": (None, 0.5, 0.5, 0.5, 0.5),
        "curriculum.divergence_prob": (None, None, None, 0.2, 0.5),
    }),
]


def _value(config, path):
    section, field = path.split(".")
    return config[section][field]


def _expected(row, method):
    return row[METHODS.index(method)] if isinstance(row, tuple) else row


@pytest.mark.parametrize("experiment, preset, table", TABLES)
def test_real_model_presets_follow_the_paper_table(experiment, preset, table):
    module = importlib.import_module(f"experiments.{experiment}")
    for method in METHODS:
        config = module.get_config(f"{preset},method={method}")
        for path, row in table.items():
            want = _expected(row, method)
            if want is not None:
                assert _value(config, path) == pytest.approx(want), (experiment, method, path)
        assert config.rl.batch_size == config.train.num_prompts * config.rl.num_generations
    # A sweep member's method arrives as an override: its entry must carry the method's own column too.
    sweep = module.get_config(preset).sweep
    for entry in sweep:
        if entry.get("_label") == "base":
            continue
        method = entry["curriculum.method"]
        for path, row in table.items():
            want = _expected(row, method)
            if want is not None and isinstance(row, tuple):
                assert entry.get(path) == pytest.approx(want), (experiment, method, path, entry)


def test_embedded_defaults_train_every_rung_with_the_same_hyperparameters():
    """Equal compute and optimiser for every rung; the expanding rungs share one buffer; the curriculum rung, whose
    buffer holds the 10 base tasks only, takes Table 6's curriculum column (3 / 3) so its replay gate can open."""
    from experiments.mle import get_config

    configs = {m: get_config(f"method={m}") for m in METHODS}
    for path in ("rl.learning_rate", "train.num_prompts", "rl.num_generations"):
        assert len({_value(c, path) for c in configs.values()}) == 1, path
    for path in ("curriculum.buffer_size", "curriculum.min_buffer_size"):
        assert len({_value(configs[m], path) for m in ("improve", "diverge", "exit")}) == 1, path
    assert (configs["curriculum"].curriculum.buffer_size, configs["curriculum"].curriculum.min_buffer_size) == (3, 3)
    sweep = get_config(None).sweep
    plain = {"_label", "curriculum.method", "seed", "curriculum.seed", "train.num_iterations"}
    assert all(set(entry) <= plain for entry in sweep if entry["curriculum.method"] != "curriculum")
    curriculum_entries = [e for e in sweep if e.get("_label") == "curriculum"]
    assert len(curriculum_entries) == 3
    assert all((e["curriculum.buffer_size"], e["curriculum.min_buffer_size"]) == (3, 3) for e in curriculum_entries)


def test_mle_presets_cap_cpu_time_with_the_wall_clock_as_a_safety_net():
    """The embedded default grades a spec on 10 s of CPU time (load-independent), with a 30 s wall-clock net; the
    real-model preset keeps the paper's 5-minute cap on both."""
    from exit_jax.domains.registry import make_domain
    from experiments.mle import get_config

    limits = get_config(None).domain.limits
    assert (limits.cpu_s, limits.timeout_s) == (10.0, 30.0)
    job = make_domain("mle", {k: v for k, v in get_config(None).domain.items() if k != "name"}).config.limits.to_job()
    assert (job["cpu_s"], job["timeout_s"]) == (10, 30.0)
    smoke = get_config("smoke").domain.limits
    assert (smoke.cpu_s, smoke.timeout_s) == (30.0, 30.0)
    real = get_config("r1-distill-qwen-7b").domain.limits
    assert (real.cpu_s, real.timeout_s) == (300.0, 300.0)
