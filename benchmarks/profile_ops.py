"""Where exit_jax's time goes on the peers' workload: a jax.profiler trace of one rollout and one train step,
summed per XLA op (thunk) and per kind of op.

    python benchmarks/profile_ops.py [--size tiny] [--top 12] [--compute_dtype float32]

XLA:CPU names each executed thunk after its HLO instruction: ``ynn_fusion.*`` are the fusions it hands to YNNPACK
(the dots, and a few reductions such as a softmax's max-and-exp), ``copy*`` / ``transpose*`` are layout copies,
everything else is elementwise / reduction / control work.
The table says how many ops ran per decode step (the rollout) and which kinds dominate, which is what issue 8's
"the profile says why" asks for. Times are summed over threads, so read shares, not absolute numbers; run it on a
quiet machine for the cleanest picture.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gzip
import json
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import workload  # noqa: E402
from exit_jax_bench import MICRO_BATCH_SIZE, make_learner  # noqa: E402

from exit_jax.models.hf_io import load_hf_model  # noqa: E402
from exit_jax.rl.batch import completion_batch  # noqa: E402
from exit_jax.sampling import Sampler, SamplingConfig  # noqa: E402

# XLA:CPU's per-thunk events carry the HLO instruction's name ("ynn_fusion.3", "wrapped_reduce-window", "copy.5");
# runtime, thread-pool and Python events ("ThunkExecutor::Execute", "end: ...", "PjitFunction(...)") do not match.
_HLO_NAME = re.compile(r"^[a-z][a-z0-9_\-]*(\.[0-9]+)*$")


def kind_of(name: str) -> str:
    if name.startswith("ynn") or name.startswith("dot") or "convolution" in name:
        return "YNNPACK fusions (dots; a few reductions)"
    if name.startswith("copy") or name.startswith("transpose"):
        return "layout copies"
    if name.startswith("while") or name.startswith("conditional"):
        return "loop control"
    return "elementwise / reductions / other"


def op_times(run) -> tuple[dict[str, float], dict[str, int]]:
    """Microseconds and counts per XLA op name for one call of ``run`` (already compiled)."""
    with tempfile.TemporaryDirectory() as directory:
        jax.profiler.start_trace(directory, create_perfetto_trace=True)
        run()
        jax.profiler.stop_trace()
        trace = next(Path(directory).rglob("*.trace.json.gz"))
        events = json.load(gzip.open(trace))["traceEvents"]
    durations: dict[str, float] = collections.Counter()
    counts: dict[str, int] = collections.Counter()
    for event in events:
        name = event.get("name", "")
        if event.get("ph") != "X" or not _HLO_NAME.match(name):
            continue
        durations[name] += event.get("dur", 0.0)
        counts[name] += 1
    return durations, counts


def summary(title: str, durations, counts, steps: int, top: int) -> list[str]:
    total = sum(durations.values()) or 1.0
    by_kind: dict[str, float] = collections.Counter()
    ops_by_kind: dict[str, int] = collections.Counter()
    for name, micros in durations.items():
        by_kind[kind_of(name)] += micros
        ops_by_kind[kind_of(name)] += counts[name]
    lines = [f"### {title}", "", f"{sum(counts.values()) / steps:.0f} ops per step ({steps} step(s) traced)", "",
             "| kind | share of op time | ops per step |", "|---|---|---|"]
    for kind, micros in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {kind} | {micros / total:.1%} | {ops_by_kind[kind] / steps:.0f} |")
    lines += ["", "| op | share | calls |", "|---|---|---|"]
    for name, micros in sorted(durations.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"| `{name}` | {micros / total:.1%} | {counts[name]} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(workload.SIZES), default="tiny")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--compute_dtype", default="float32", choices=("float32", "bfloat16"))
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):
        model = load_hf_model(workload.build_checkpoint(args.size), compute_dtype=args.compute_dtype)
        prompts, _ = workload.load_prompts(args.size)
        learner = make_learner(model, args.compute_dtype, MICRO_BATCH_SIZE[args.size])
        sampler = Sampler(model, max_length=workload.PROMPT_TOKENS + workload.NEW_TOKENS)
        config = SamplingConfig(max_new_tokens=workload.NEW_TOKENS, num_samples=workload.GROUP_SIZE,
                                temperature=workload.TEMPERATURE, prompt_bucket=workload.PROMPT_TOKENS)

        def rollout():
            return sampler.sample(learner.policy_state(), prompts, config, jax.random.key(0))

        out = rollout()  # compile
        advantages = np.random.default_rng(0).normal(size=len(out.lengths)).astype(np.float32)
        batch = completion_batch(out.prompt_tokens, out.prompt_mask, out.tokens, out.lengths, advantages)
        learner.update(batch)  # compile
        rollout_ops = op_times(rollout)
        step_ops = op_times(lambda: learner.update(batch))
    lines = [f"## exit_jax op profile, size `{args.size}`, {args.compute_dtype} compute", ""]
    lines += summary(f"Rollout ({workload.NEW_TOKENS} decode steps)", *rollout_ops, workload.NEW_TOKENS, args.top)
    lines += summary("Train step (forward, backward, AdamW)", *step_ops, 1, args.top)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
