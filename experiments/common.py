"""Shared defaults of every experiment and the ``:arg`` grammar of ``--config=experiments/X.py:arg``.

``arg`` is a comma-separated list of a preset name and ``key=value`` pairs, e.g. ``smoke``, ``method=grpo``,
``smoke,method=diverge,seed=2``. Presets: ``default`` (the embedded CPU run), ``smoke`` (under 2 minutes, for tests) and
one per paper model (real checkpoints on TPU, hyperparameters from the paper's Tables 4-6). ``method`` picks the rung of
the ladder grpo | curriculum | improve | diverge | exit; ``ladder_sweep`` adds the base-policy rung for ``--sweep``.
"""

from __future__ import annotations

import os

import ml_collections

from exit_jax.curriculum.config import METHODS
from exit_jax.curriculum.config import get_config as curriculum_config
from exit_jax.rl.config import get_config as rl_config

OPTIONS = ("method", "seed", "rungs", "seeds")


def parse_arg(arg: str | None, presets: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """``"smoke,method=grpo"`` -> ("smoke", {"method": "grpo"}); validates the preset and method names.

    Options: ``method=`` (the rung this run trains), ``seed=``, and for ``--sweep`` ``rungs=base+grpo+exit`` (a subset
    of the ladder, ``+``-separated) and ``seeds=N``.
    """
    preset, options = "default", {}
    for part in filter(None, (arg or "").split(",")):
        if "=" in part:
            key, value = part.split("=", 1)
            if key not in OPTIONS:
                raise ValueError(f"config arg: unknown option {key!r} in {arg!r}; use one of "
                                 + ", ".join(f"{o}=..." for o in OPTIONS))
            options[key] = value
        else:
            preset = part
    if preset not in presets:
        raise ValueError(f"config arg: unknown preset {preset!r}; choose one of {presets}")
    if options.get("method", "exit") not in METHODS:
        raise ValueError(f"config arg: unknown method {options['method']!r}; choose one of {METHODS}")
    unknown = [r for r in options.get("rungs", "base").split("+") if r not in LADDER]
    if unknown:
        raise ValueError(f"config arg: unknown rung(s) {unknown} in rungs=; choose from {'+'.join(LADDER)}")
    if not options.get("seeds", "3").isdigit() or int(options.get("seeds", "3")) < 1:
        raise ValueError(f"config arg: seeds={options['seeds']!r} must be a positive integer")
    return preset, options


def sweep_from_options(options: dict[str, str], per_method: dict[str, dict] | None = None) -> list[dict]:
    """The ``--sweep`` grid of an experiment: ``ladder_sweep`` with the arg's ``seeds=`` and ``rungs=`` (and a paper
    table's per-method columns, see ``apply_paper_table``)."""
    rungs = options.get("rungs")
    return ladder_sweep(int(options.get("seeds", 3)), rungs=tuple(rungs.split("+")) if rungs else None,
                        per_method=per_method)


def apply_paper_table(c: ml_collections.ConfigDict, table: dict[str, dict]) -> ml_collections.ConfigDict:
    """The paper's hyperparameter table (Tables 4-6) for the config's method.

    ``table["shared"]`` holds the values the paper lists under GRPO for every method; ``table["per_method"][m]`` the
    method's own column (learning rate, buffer sizes, p, p_div). Keys are dotted config paths. A sweep member whose
    method comes from an override gets its column from ``sweep_from_options(options, table["per_method"])``.
    """
    method = c.curriculum.method
    for key, value in {**table["shared"], **table["per_method"].get(method, {})}.items():
        section, field = key.split(".")
        c[section][field] = value
    return c


def base_config(experiment: str, preset: str, options: dict[str, str]) -> ml_collections.ConfigDict:
    """Fields every experiment has; the experiment file then sets its domain and preset-specific values."""
    method = options.get("method", "exit")
    c = ml_collections.ConfigDict()
    c.experiment = experiment
    c.preset = preset
    c.seed = int(options.get("seed", 0))
    # model.seed: the base policy's seed (the embedded policy's initial weights and the warm start's demonstration
    # draw): together the stand-in for a pretrained checkpoint, so it stays fixed while ``seed`` varies the RL run,
    # as the paper's seeds share one base model.
    # model.backward_dots: how the projections' backward matmuls are formed (exit_jax/models/dense.py); "auto" picks
    # the fast form for the backend and compute dtype. model.matmul_precision: "auto" makes f32 compute f32 on
    # TPU / GPU too (their default f32 dot is bf16 passes / TF32); "default" trades that for speed.
    # model.chat_template: a Jinja template (or a file holding one) for a checkpoint whose tokenizer has none; ""
    # uses the checkpoint's own (a checkpoint without one is refused rather than given an invented format).
    c.model = ml_collections.ConfigDict(dict(source="embedded", hf_dir="", param_dtype="float32",
                                             compute_dtype="float32", backward_dots="auto",
                                             matmul_precision="auto", seed=0, chat_template=""))
    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))  # data=-1: all remaining devices
    c.domain = ml_collections.ConfigDict({"name": experiment})
    # share_prompt_cache: each prompt's KV cache kept once for its G samples (exit_jax.sampling.SamplingConfig).
    c.sampling = ml_collections.ConfigDict(dict(max_prompt_length=256, max_new_tokens=64, temperature=1.0,
                                                top_p=1.0, top_k=0, share_prompt_cache=True))
    c.rl = rl_config()
    c.curriculum = curriculum_config(method)
    c.curriculum.seed = c.seed
    # train.compilation_cache_dir: JAX's persistent compilation cache ("auto": $EXIT_JAX_CACHE/xla or
    # ~/.cache/exit_jax/xla; "" turns it off; a set JAX_COMPILATION_CACHE_DIR wins). Sweep members and reruns then
    # load the programs an earlier run compiled instead of compiling them again (exit_jax/run.py).
    c.train = ml_collections.ConfigDict(dict(num_iterations=100, num_prompts=8, eval_every=0, checkpoint_every=10,
                                             keep_checkpoints=3, log_every=1, export_policy=True,
                                             compilation_cache_dir="auto"))
    c.warm_start = ml_collections.ConfigDict(dict(steps=0, batch_size=32, learning_rate=1e-3, cache_dir=""))
    c.eval = ml_collections.ConfigDict(dict(split="heldout", K=16, num_samples=1, max_tasks=0, greedy=False,
                                            binary=False))
    c.sweep = []
    return c


def finalize(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Keep derived fields consistent: batch = prompts x G, dr_grpo's constant = max new tokens."""
    c.rl.batch_size = c.train.num_prompts * c.rl.num_generations
    c.rl.max_completion_length = max(c.rl.max_completion_length, c.sampling.max_new_tokens)
    return c


def hf_checkpoint(env_var: str) -> str:
    """Real-model presets read the checkpoint path from ``--config.model.hf_dir`` or this environment variable."""
    return os.environ.get(env_var, "")


def apply_smoke(c: ml_collections.ConfigDict, *, num_generations: int, K: int, max_tasks: int
                ) -> ml_collections.ConfigDict:
    """The shared shape of every ``smoke`` preset: 2 iterations of 2 prompts, a checkpoint each, a short eval."""
    c.train.num_iterations = 2
    c.train.num_prompts = 2
    c.train.checkpoint_every = 1
    c.rl.num_generations = num_generations
    c.curriculum.min_buffer_size = 2
    c.eval.K = K
    c.eval.max_tasks = max_tasks
    c.eval.num_samples = 1
    return c


def apply_real_model(c: ml_collections.ConfigDict, env_var: str) -> ml_collections.ConfigDict:
    """The shared shape of every paper-model preset: a local HF checkpoint, bf16 compute, FSDP over the pod."""
    c.model.source = "hf"
    c.model.hf_dir = hf_checkpoint(env_var)
    c.model.compute_dtype = "bfloat16"
    c.mesh.fsdp, c.mesh.data = -1, 1
    c.rl.learning_rate = 1e-6
    c.train.eval_every = 100
    return c


BASE_RUNG = "base"
LADDER: tuple[str, ...] = (BASE_RUNG, *METHODS)  # the rows of the paper's Table 1, in order


def base_rung(seed: int) -> dict:
    """The base policy's sweep entry: warm start and evaluation only (``train.num_iterations=0``), labelled ``base``.

    ``exit_jax.run`` evaluates right after the warm start when there are no iterations, so this member's score is
    the warm-started policy's (the stand-in for the paper's instruction-tuned base model). The method it names is
    irrelevant (nothing is trained); ``grpo`` keeps its config simplest.
    """
    return {"_label": BASE_RUNG, "curriculum.method": "grpo", "train.num_iterations": 0, "seed": seed,
            "curriculum.seed": seed}


def ladder_sweep(seeds: int = 3, *, base: bool = True, rungs: tuple[str, ...] | None = None,
                 per_method: dict[str, dict] | None = None) -> list[dict]:
    """The paper's ladder (base policy, then the RL methods ``METHODS``) x seeds, as entries for ``--sweep``.

    Every entry carries the display label ``"_label"`` (``exit_jax.sweep.LABEL_KEY``; not a config override): the
    rung's name, so members are named ``grpo,seed=0,curriculum.seed=0`` and grouped as ``grpo`` in tables. The RL
    rungs override only the method and the seeds, so they share the config's ``train.num_iterations``,
    ``train.num_prompts`` and ``rl.num_generations``: equal training compute.

    Args:
      seeds: seeds 0..seeds-1 for every rung.
      base: include the base-policy rung (``base_rung``).
      rungs: only these rungs of ``LADDER`` (e.g. ``("base", "grpo", "exit")``), in ladder order; overrides ``base``.
      per_method: dotted overrides added to each RL rung's entries (a paper table's per-method columns).
    """
    if seeds < 1:
        raise ValueError(f"ladder_sweep needs at least one seed, got {seeds}")
    chosen = set(rungs) if rungs is not None else set(LADDER if base else METHODS)
    unknown = chosen - set(LADDER)
    if unknown:
        raise ValueError(f"ladder_sweep: unknown rung(s) {sorted(unknown)}; choose from {LADDER}")
    entries = [base_rung(s) for s in range(seeds)] if BASE_RUNG in chosen else []
    per_method = per_method or {}
    return entries + [{"_label": m, "curriculum.method": m, **per_method.get(m, {}), "seed": s, "curriculum.seed": s}
                      for m in METHODS if m in chosen for s in range(seeds)]
