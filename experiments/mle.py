"""Machine-learning engineering: the policy writes solutions for Kaggle-style competitions, run in the sandbox and
graded on private answers (paper §3.3, Table 6). Improve steps are rewarded by r_imp; evaluation is the greedy-search
scaffold on the held-out competitions.

Commands and expectations:
  python launch/tpu_run.py --config=experiments/mle.py
      Embedded ~4M policy writing compact pipeline specs (full specs for new / diverge steps, edits of the previous
      spec for improve / debug steps) for the built-in competitions on 2 CPU cores: a 120-step supervised warm start
      on random valid specs and edits, 80 iterations of ExIt GRPO (4 prompts x 8) on the 13 training
      competitions, then K = 16 greedy search (avg@4) on the 6 held-out ones; the report shows the normalised
      held-out score at k = 0..16 against each competition's ceiling. 40 iterations until session 11, which doubled
      them by the rule session 9 fixed on the training competitions (docs/results/mle_analysis.md); rl.beta = 0.1
      since session 13. 9 min 25 s from empty caches with the test suite beside it (AMD EPYC), k = 0 0.639 ->
      k = 16 0.811: the same metrics and evaluation, bit for bit, as the session-13 sweep's ExIt seed-0 member.
  python launch/tpu_run.py --config=experiments/mle.py:smoke --workdir=/tmp/w
      Under 2 minutes (about 45 s here): 2 iterations and a K = 2 search on one held-out competition; for tests.
  python launch/tpu_run.py --config=experiments/mle.py --sweep --parallel=2 --results_md=docs/results.md
      The paper's ladder (base policy, grpo, curriculum, improve, diverge, exit) x 3 seeds at equal compute: all
      members share one warm-started base policy (model.seed; the seeds vary the RL run, as the paper's seeds share
      one pretrained model). With rl.beta = 0.1 (session 13, cbb471b): 50 minutes on a 2-core AMD EPYC; all four
      criteria pass (ExIt's area 0.790 +- 0.013 against GRPO's 0.720 +- 0.040; k = 16 0.819 against 0.746), and
      still pass over RL seeds 0-4 (+0.048 against a spread of 0.040). At beta = 0.05 and 0 (a) failed (+0.029
      and +0.021 against ExIt's own spread); docs/results.md has the analysis. Caveat (session 14): the same ladder
      with only sampling's last bits changed (sampling.share_prompt_cache=True) failed (a) and (b), ExIt 0.751 vs
      GRPO 0.747: the verdict is within the ladder's run-to-run spread at 3 seeds (docs/results/mle_analysis.md).
      Writes comparison.md and the results page with the verdict on issue 9's criteria.
      ``:rungs=base+grpo+exit,seeds=2`` runs part of it.
  python launch/tpu_run.py --config=experiments/mle.py:r1-distill-qwen-7b --config.model.hf_dir=DIR
      DeepSeek-R1-Distill-Qwen-7B (or EXIT_JAX_R1_DISTILL_QWEN_7B=DIR) writing full solution.py files, Table 6
      hyperparameters, on a TPU pod; the paper reports 58.6 +- 2.5 (Full ExIt) vs 48.0 +- 0.7 (GRPO) normalised
      score after 16 greedy-search steps.
  python launch/tpu_run.py --config=experiments/mle.py:r1-distill-qwen-7b --config.model.hf_dir=DIR \
      --config.domain.competition_dirs=/data/mle-bench --config.domain.builtin_competitions=False
      The paper's setting: MLE-bench's prepared competitions (the data root of `mlebench prepare`, or any directory
      of `<id>/prepared/{public,private}` or competition.json layouts), without the built-ins. The paper's six get
      Table 3's ranges and splits; --config.domain.heldout_competitions="('a','b')" names the held-out ones instead.
      The data directory is only read: metadata and a private copy of the answers live in the cache.
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

PRESETS = ("default", "smoke", "r1-distill-qwen-7b")
# The paper's Table 6 (MLE-bench): values under GRPO apply to every method; the per-method columns.
TABLE_6 = {
    "shared": {"rl.learning_rate": 1e-6, "train.num_prompts": 4, "rl.num_generations": 8, "rl.num_iterations": 1,
               "rl.ref_update_interval": 100, "rl.ref_update_alpha": 0.5},
    "per_method": {
        "curriculum": {"curriculum.buffer_size": 3, "curriculum.min_buffer_size": 3, "curriculum.replay_prob": 0.5},
        "improve": {"curriculum.buffer_size": 24, "curriculum.min_buffer_size": 8, "curriculum.replay_prob": 0.5},
        "diverge": {"curriculum.buffer_size": 32, "curriculum.min_buffer_size": 8, "curriculum.replay_prob": 0.5,
                    "curriculum.divergence_prob": 0.2},
        "exit": {"curriculum.buffer_size": 24, "curriculum.min_buffer_size": 3, "curriculum.replay_prob": 0.5,
                 "curriculum.divergence_prob": 0.5},
    },
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    preset, options = parse_arg(arg, PRESETS)
    c = base_config("mle", preset, options)
    c.domain = ml_collections.ConfigDict(dict(
        name="mle", solution_format="compact", workers=2, feedback_chars=2000,
        # Untrusted code runs only under full isolation unless the user accepts less; three batches in a row that
        # all fail the same way are an environment failure (a policy's own bugs are not that uniform).
        allow_weak_sandbox=False, max_failed_batches=3,
        # The user's own competitions (directories), whether the 19 built-ins join them, and which are held out.
        competition_dirs=(), builtin_competitions=True, heldout_competitions=(),
        # A spec gets 10 s of CPU time; the wall clock (30 s) is only a safety net. With a 10 s wall-clock cap, a
        # borderline spec timed out under one machine load and passed under another, so two runs of one seed
        # diverged (docs/results/mle_analysis.md); CPU time does not depend on what else the machine runs.
        limits=ml_collections.ConfigDict(dict(timeout_s=30.0, cpu_s=10.0, memory_mb=4096))))
    c.rl.num_generations = 8
    c.rl.learning_rate = 1e-4
    c.rl.warmup_steps = 0
    # Session 12: a KL term (k3) to the warm-started reference (ref_update_interval 100 > 80 iterations: never
    # refreshed). Chosen on training figures alone: without it the policy's token entropy collapses after iteration
    # 40 and 70-80% of GRPO's groups carry no signal; beta = 0.05 kept GRPO's entropy at 0.27 against 0.08 and its
    # zero-signal groups at 12% against 80%, at the same training reward (docs/results/mle_analysis.md).
    # Session 13: 0.05 -> 0.1, again on training figures alone: the run-to-run spread of the self-iteration rungs
    # comes from seeds whose groups lose their signal (ExIt seed 0: 49% zero-variance groups in iterations 61-80,
    # KL 0.62); beta = 0.1 gave 14% and 0.45 there at the same training reward, the profile of the seed on which
    # every self-iteration rung works (docs/results/mle_analysis.md, "a training-only probe of beta = 0.1").
    c.rl.beta = 0.1
    c.sampling.max_prompt_length = 160
    c.sampling.max_new_tokens = 48
    # The ladder of docs/results.md (session 13) sampled from a per-row copy of the prompt's KV cache; the shared
    # cache (session 14) draws from the same distribution but its sums differ in the last bits, which changes some
    # tokens and so the runs. Kept off here until the ladder is rerun with it, so the page stays reproducible.
    c.sampling.share_prompt_cache = False
    c.curriculum.buffer_size = 256
    c.curriculum.min_buffer_size = 16
    c.curriculum.replay_prob = 0.5
    c.curriculum.divergence_prob = 0.2
    c.train.num_prompts = 4  # Table 6
    c.train.num_iterations = 80  # session 11: the lead over GRPO grew with training (docs/results/mle_analysis.md)
    c.train.checkpoint_every = 10
    c.warm_start.steps = 120
    c.warm_start.batch_size = 32
    c.warm_start.learning_rate = 2e-3
    c.eval.K = 16
    c.eval.num_samples = 4  # avg@4 on the 6 held-out competitions: 24 greedy-search chains advance together
    # The curriculum rung replays base tasks only, and there are 13 of them: B_min = 16 would never open its replay
    # gate (the rung would be plain GRPO). It takes Table 6's curriculum column instead (buffer 3, B_min 3).
    embedded_per_method = {"curriculum": TABLE_6["per_method"]["curriculum"]}
    apply_paper_table(c, {"shared": {}, "per_method": embedded_per_method})
    c.sweep = sweep_from_options(options, TABLE_6["per_method"] if preset == "r1-distill-qwen-7b"
                                 else embedded_per_method)
    if preset == "smoke":
        apply_smoke(c, num_generations=4, K=2, max_tasks=1)
        c.warm_start.steps = 2
        c.warm_start.batch_size = 8
        c.domain.limits.cpu_s = 30.0
    elif preset == "r1-distill-qwen-7b":  # Table 6
        apply_real_model(c, "EXIT_JAX_R1_DISTILL_QWEN_7B")
        c.domain.solution_format = "python"
        c.domain.workers = 16
        c.domain.limits.timeout_s = c.domain.limits.cpu_s = 300.0  # the paper's 5-minute cap
        apply_paper_table(c, TABLE_6)
        c.rl.beta = 0.0  # Table 6 has no beta row
        c.rl.micro_batch_size = 8
        c.train.num_iterations = 800
        c.warm_start.steps = 0
        c.sampling.max_prompt_length = 4096
        c.sampling.max_new_tokens = 4096
        c.sampling.share_prompt_cache = True  # 4096-token prompts, G = 8: the prompt's cache once, not 8 times
        c.sampling.temperature = 0.6
        c.sampling.top_p = 0.95
        c.eval.num_samples = 16
    return finalize(c)
