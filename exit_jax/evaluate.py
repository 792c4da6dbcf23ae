"""K-step evaluation of any policy, on any split or task set of an experiment, without training.

    python -m exit_jax.evaluate --config=experiments/mle.py --policy runs/mle-exit-0/policy
    python -m exit_jax.evaluate --config=experiments/mle.py --policy runs/mle-exit-0 --step 40 --split train
    python -m exit_jax.evaluate --config=experiments/math.py:llama3.2-3b --policy /ckpt/Llama-3.2-3B-Instruct \
        --config.domain.train_files="('/data/train.jsonl',)" \
        --config.domain.heldout_files="('aime25=/data/aime25.parquet',)" --split=heldout/aime25

``--policy`` is an HF checkpoint directory (config.json + safetensors: a downloaded model or a run's exported
``policy/``) or a run directory (its latest checkpoint, or ``--step``). ``--config`` and its ``--config.a.b=value``
overrides give the domain, its data, the sampler and ``config.eval`` (K, chains, greedy); the model section comes
from the policy. The evaluation's draws depend on ``config.seed`` and the iteration only: an exported policy carries
its run's seed and iteration (``exit_jax_policy.json``), so evaluating it with its run's config repeats the run's own
final evaluation exactly. ``--step`` sets the iteration of an HF directory without that file (default 0).

Writes ``<out>/eval.json`` (the evaluation JSON of exit_jax.evaluation), ``<out>/report.md`` with the score-vs-k plot,
and nothing else: no checkpoint, no optimizer state. ``--out`` defaults to ``runs/evaluate-<policy name>``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

POLICY_META = "exit_jax_policy.json"


def _load_config_file(argv: list[str]):
    """``--config=path[:arg]`` as launch/tpu_run.py reads it; the experiments package must be importable."""
    from absl import flags
    from ml_collections import config_flags

    for arg in argv:
        if arg.startswith("--config="):
            path = Path(arg.split("=", 1)[1].split(":", 1)[0]).resolve()
            if path.parent.name == "experiments" and str(path.parent.parent) not in sys.path:
                sys.path.insert(0, str(path.parent.parent))
    config = config_flags.DEFINE_config_file("config", None, "experiment config: experiments/<name>.py[:arg]",
                                             lock_config=True)
    flags.DEFINE_string("policy", None, "an HF checkpoint directory or a run directory", required=True)
    flags.DEFINE_string("out", None, "output directory (default runs/evaluate-<policy name>)")
    flags.DEFINE_integer("step", None, "run directory: the checkpoint; HF directory: the iteration of the draws")
    flags.DEFINE_string("split", None, "the split to evaluate (default config.eval.split)")
    flags.DEFINE_integer("num_samples", None, "chains per task (default config.eval.num_samples)")
    return config


def evaluate_hf_policy(config, policy_dir: Path, out: Path, step: int | None = None, split: str | None = None,
                       num_samples: int | None = None) -> dict[str, Any]:
    """Evaluate the HF checkpoint ``policy_dir`` under ``config`` (its domain, data, sampling and eval settings)."""
    import ml_collections

    from exit_jax.domains.registry import make_domain
    from exit_jax.errors import SetupError, setup_step
    from exit_jax.trainer import build_model, evaluate_policy, make_policy, mesh_from_config, validate

    meta_path = policy_dir / POLICY_META
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    from experiments.common import finalize

    config = finalize(ml_collections.ConfigDict(config.to_dict()))  # derived fields follow the overrides
    config.model.source, config.model.hf_dir = "hf", str(policy_dir)
    iteration = int(step if step is not None else meta.get("iteration", 0))
    if meta and meta.get("seed") != config.seed:
        print(f"note: {policy_dir} comes from a run with seed {meta.get('seed')}; evaluating with config.seed = "
              f"{config.seed} (pass --config.seed={meta.get('seed')} to repeat that run's draws)", file=sys.stderr)
    with setup_step("config"):
        validate(config)
        if config.eval.K < 0 or (num_samples or config.eval.num_samples) < 1:
            raise ValueError(f"eval.K = {config.eval.K} must be >= 0 and eval.num_samples >= 1")
    mesh = mesh_from_config(config.mesh)
    with setup_step("config.domain"):
        domain = make_domain(config.domain.name, {k: v for k, v in config.domain.items() if k != "name"})
        if split is not None:
            domain.task_ids(split)  # an unknown split fails here, naming the available ones
    check = getattr(domain, "check_environment", None)
    environment = check() if check is not None else {}
    with setup_step("--policy"):
        if not (policy_dir / "config.json").is_file():
            raise SetupError(f"--policy: {policy_dir} holds no config.json (an HF checkpoint directory or a run "
                             "directory with checkpoints/ is needed)")
        model, tokenizer = build_model(config, mesh)
    from flax import nnx

    try:
        result = evaluate_policy(config, domain, make_policy(config, model, tokenizer, mesh), nnx.state(model),
                                 iteration, environment, out / "eval.json", num_samples=num_samples, split=split)
    finally:
        close = getattr(domain, "close", None)
        if close is not None:
            close()
    result["policy"] = str(policy_dir)
    return result


def evaluate_run(run_dir: Path, out: Path, step: int | None = None, split: str | None = None,
                 num_samples: int | None = None) -> dict[str, Any]:
    """Evaluate a run's checkpoint (latest, or ``step``) with the run's own config."""
    from exit_jax.reevaluate import reevaluate_run

    _, result = reevaluate_run(run_dir, num_samples, 0, step=step, split=split, out=out / "eval.json")
    result["policy"] = f"{run_dir} (checkpoint {result['step']})"
    return result


def main(argv: list[str] | None = None) -> int:
    from absl import flags

    argv = list(sys.argv if argv is None else argv)
    config_flag = _load_config_file(argv)
    try:
        flags.FLAGS(argv)
    except flags.Error as error:
        sys.exit(f"error: {error}")
    FLAGS = flags.FLAGS
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from exit_jax.domains.mle.sandbox import SandboxError
    from exit_jax.errors import SetupError
    from exit_jax.report import write_report

    policy = Path(FLAGS.policy)
    out = Path(FLAGS.out or os.path.join("runs", f"evaluate-{policy.resolve().name}"))
    try:
        if (policy / "checkpoints").is_dir():
            result = evaluate_run(policy, out, FLAGS.step, FLAGS.split, FLAGS.num_samples)
            config_dict = json.loads((policy / "config.json").read_text())
        elif config_flag.value is None:
            sys.exit("error: --config=experiments/<name>.py[:preset] is required for an HF checkpoint directory")
        else:
            result = evaluate_hf_policy(config_flag.value, policy, out, FLAGS.step, FLAGS.split, FLAGS.num_samples)
            config_dict = json.loads(config_flag.value.to_json_best_effort())
    except (SetupError, SandboxError, ValueError) as error:
        sys.exit(f"error: {error}")
    (out / "eval.json").write_text(json.dumps(result, indent=1))
    report = write_report(out, config_dict, [], [result], None)
    print(f"evaluated {result['policy']} on {result['split']}: score k=0 {result['mean'][0]:.4f} -> "
          f"k={result['K']} {result['mean'][-1]:.4f}; {out / 'eval.json'}, {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
