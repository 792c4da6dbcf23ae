"""Renders the side-by-side benchmark report (Markdown) from the sides' JSON results.

Used by benchmarks/run_all.py. One table per measurement and size: median, min, max, spread and
repetitions per side, exit_jax's ratio to each peer (speed-up: higher is better for exit_jax; a
bf16 peer such as trl_bf16 is compared with exit_jax_bf16), and the issue's targets marked met or
missed; plus the machine, the workload and the commands.
"""

from __future__ import annotations

from typing import Any

import workload

GIB = 2**30
# exit_jax_bf16 / trl_bf16: bf16 compute with f32 parameters, opt-in; a *_bf16 peer is compared with exit_jax_bf16.
# exit_jax_1dev: exit_jax on one XLA CPU device where its default splits the cores (opt-in; compared with no peer).
SIDE_ORDER = ("exit_jax", "exit_jax_1dev", "exit_jax_bf16", "tunix", "trl", "trl_bf16")
# Issue 8's targets: exit_jax's speed-up over each peer for rollout and the full iteration.
SPEEDUP_TARGETS = {"tunix": 1.5, "trl": 3.0}
TRAIN_STEP_BF16_PEAK_TARGET = 0.40  # small size
PEAK_RSS_TARGET_BYTES = 4 * GIB  # small size, whole GRPO iteration


def _ours(side: str) -> bool:
    """exit_jax's own rows (f32 and bf16 compute, one device): no speed-up over themselves, the issue's own-limit
    targets."""
    return side.startswith("exit_jax")


def _reference(sides: dict[str, dict], side: str, key: str) -> dict | None:
    """The exit_jax measurement a peer is compared with: exit_jax_bf16's for a bf16 peer, else exit_jax's."""
    ours = "exit_jax_bf16" if side.endswith("_bf16") else "exit_jax"
    return sides.get(ours, {}).get("measurements", {}).get(key)


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:,.0f}"


def _ratio(exit_record: dict | None, peer_record: dict, higher_is_better: bool) -> float | None:
    """exit_jax's speed-up over a peer (>1: exit_jax is better), from the medians."""
    if not exit_record or not exit_record.get("supported") or not peer_record.get("supported"):
        return None
    mine, theirs = exit_record["median"], peer_record["median"]
    if not mine or not theirs:
        return None
    return mine / theirs if higher_is_better else theirs / mine


def _target_cell(ratio: float | None, peer: str, targeted: bool) -> str:
    if not targeted or peer not in SPEEDUP_TARGETS:
        return ""
    goal = SPEEDUP_TARGETS[peer]
    if ratio is None:
        return f"≥ {goal}x: not measured"
    return f"≥ {goal}x: {'met' if ratio >= goal else 'MISSED'}"


def _timing_table(
    sides: dict[str, dict],
    key: str,
    title: str,
    higher_is_better: bool,
    targeted: bool,
    extra: dict[str, Any] | None = None,
) -> list[str]:
    extra = extra or {}
    header = "| side | median | min | max | spread | n | exit_jax speed-up | target |"
    extra_names = list(extra)
    if extra_names:
        header += "".join(f" {name} |" for name in extra_names)
    lines = [f"#### {title}", "", header, "|" + "---|" * (header.count("|") - 1)]
    for side in SIDE_ORDER:
        if side not in sides:
            continue
        record = sides[side]["measurements"].get(key) or workload.unsupported("", "not reported")
        if not record.get("supported"):
            row = f"| {side} | not supported: {record.get('note', '')} | | | | | | |"
        else:
            ratio = None if _ours(side) else _ratio(_reference(sides, side, key), record, higher_is_better)
            ratio_cell = (
                "—"
                if _ours(side)
                else (f"{ratio:.2f}x" if ratio is not None else "exit_jax not run")
            )
            row = (
                f"| {side} | {_number(record['median'])} | {_number(record['min'])} | "
                f"{_number(record['max'])} | {record['spread']:.0%} | {len(record['values'])} | "
                f"{ratio_cell} | {_target_cell(ratio, side, targeted)} |"
            )
        for name in extra_names:
            row += f" {extra[name](side, record)} |"
        lines.append(row)
    return lines + [""]


def _flops_cells(size: str, probe: dict | None) -> dict[str, Any]:
    """Extra train-step columns: achieved model FLOP/s and its share of the measured peaks."""
    flops = workload.train_step_flops(size)

    def achieved(side, record):
        return _number(flops / record["median"] / 1e9) if record.get("supported") else ""

    def share(peak_key):
        def cell(side, record):
            if not record.get("supported") or not probe:
                return ""
            fraction = flops / record["median"] / probe[peak_key]
            goal = ""
            if _ours(side) and size == "small" and peak_key.startswith("matmul_bf16"):
                met = fraction >= TRAIN_STEP_BF16_PEAK_TARGET
                goal = f" (target ≥ 40%: {'met' if met else 'MISSED'})"
            return f"{fraction:.1%}{goal}"

        return cell

    return {
        "achieved GFLOP/s": achieved,
        "of f32 peak": share("matmul_f32_flops_per_s"),
        "of bf16 peak": share("matmul_bf16_f32acc_flops_per_s"),
    }


def _decode_cells(size: str, probe: dict | None) -> dict[str, Any]:
    """Extra rollout column: throughput as a share of the memory-bandwidth bound."""
    rows = workload.NUM_PROMPTS * workload.GROUP_SIZE

    def cell(side, record):
        if not record.get("supported") or not probe:
            return ""
        bound = rows * probe["read_bandwidth_bytes_per_s"] / workload.decode_bytes_per_step(size)
        return f"{record['median'] / bound:.1%}"

    return {"of bandwidth bound": cell}


def _memory_table(sides: dict[str, dict], size: str) -> list[str]:
    lines = [
        "#### (d) Peak resident memory (GiB, lower is better)",
        "",
        "| side | ru_maxrss (process) | sampled peak | rollout phase | train-step phase | "
        "iteration phase | exit_jax ratio | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for side in SIDE_ORDER:
        if side not in sides:
            continue
        mine = _reference(sides, side, "peak_rss_bytes")
        record = sides[side]["measurements"]["peak_rss_bytes"]
        phases = record.get("phases", {})
        ratio = (
            "—"
            if _ours(side) or not mine
            else (f"{mine['ru_maxrss'] / record['ru_maxrss']:.2f}x")
        )
        target = ""
        if _ours(side) and size == "small":
            met = record["ru_maxrss"] <= PEAK_RSS_TARGET_BYTES
            target = f"≤ 4 GiB: {'met' if met else 'MISSED'}"
        lines.append(
            f"| {side} | {record['ru_maxrss'] / GIB:.2f} | {record['sampled_peak'] / GIB:.2f} | "
            + " | ".join(
                f"{phases[k] / GIB:.2f}" if k in phases else "—"
                for k in ("rollout", "train_step", "iteration")
            )
            + f" | {ratio} | {target} |"
        )
    return lines + [""]


def _loads(loads: list) -> str:
    """'a, b, c' for one probe's load averages, 'a, b, c; d, e, f' for several."""
    groups = loads if loads and isinstance(loads[0], list) else [loads]
    return "; ".join(", ".join(f"{x:.1f}" for x in group) for group in groups)


def _iteration_parts(side: str, record: dict) -> str:
    part = record.get("parts", {}).get("rollout_reward_s") if record.get("supported") else None
    return _number(sorted(part)[len(part) // 2]) if part else "—"


PEER_NOTES = [
    "Both peers have all four measurements; none is composed by hand except the train step, "
    "which calls each peer's own loss/update entry point on one fixed generated batch "
    "(Tunix `RLCluster.update_actor`, TRL `GRPOTrainer.compute_loss` + backward + AdamW step).",
    "TRL's `GRPOConfig` enables activation checkpointing by default; it is turned off here so "
    "that every side does the same arithmetic (Tunix's Qwen2 default is no remat).",
    "TRL/transformers cannot ignore EOS, so TRL suppresses it (`min_new_tokens=128`); Tunix "
    "treats it as an ordinary token (`eos_tokens=[-1]`). Either way every row decodes 128 tokens.",
    "Tunix's `RLLearner` needs the prompt batch as a NumPy array: it repeats the batch with "
    "`jax.tree.map(np.repeat)`, which splits a Python list of strings into leaves.",
    "Tunix's Qwen2 has no `init_cache`; its sampler falls back to a deprecated generic KV cache. "
    "Its RolloutConfig has no forbidden-token option (the bare Sampler has one).",
    "Every side uses its framework's default threading (torch: 2 intra-op threads here). On "
    "this shared, overloaded machine torch's 2-thread decode suffers most: one check of the TRL "
    "rollout gave 211-252 new tokens/s with 2 threads and 533-667 with `torch.set_num_threads(1)` "
    "(2026-11-21 22:58 UTC, load average 5.7). Compare figures only within one run.",
    "Tunix's code path used here imports 41 distributions (jax, flax, optax, orbax-checkpoint, "
    "tensorstore, clu, google-metrax, sentencepiece, pyarrow, pandas, ...) but not "
    "tensorflow_datasets, datasets, grain, qwix, numba or kagglehub, which its wheel also "
    "requires; setup.sh installs the wheel's full dependency set.",
    "exit_jax at the tiny size splits the 2 cores into 2 XLA CPU devices and runs data-parallel over them "
    "(`CPU_DEVICES` in benchmarks/exit_jax_bench.py; `exit_jax_1dev` is the same code on one device). The peers "
    "run their defaults: Tunix on one JAX device, TRL with torch's 2 intra-op threads. Neither was tried with a "
    "2-way data-parallel split (Tunix could be given a 2-device mesh, TRL two processes through accelerate).",
    "Peak RSS is the whole process (weights, optimiser state, compiled programs, framework "
    "overhead); phases reset the kernel's high-water mark at the phase's start.",
]


def render(
    results: dict[str, dict[str, dict]],
    probe: dict | None,
    commands: dict[str, str],
    generated: str,
    report_only: bool = False,
) -> str:
    """The whole report. `results[size][side]` is a side's JSON object (workload schema); `report_only`: re-rendered
    from saved results (sizes may come from different runs)."""
    out = [
        "# Side-by-side benchmarks: exit_jax vs Tunix vs TRL",
        "",
        (f"Re-rendered {generated} by `{commands['run_all']}` from the saved results of earlier runs "
         "(each size's sides ran one after the other in one run: see its commands below); "
         if report_only else
         f"Generated {generated} by `{commands['run_all']}`. All sides ran one after the other "
         "in one run on this machine; ")
        + "compare ratios, not absolute times (the machine is shared and noisy: see the load average).",
        "",
    ]
    out += ["## Machine", ""]
    if probe:
        machine = probe["machine"]
        out += [
            f"- CPU: {machine['cpu_model']}, {machine['logical_cores']} logical cores, "
            f"{machine['memory_bytes'] / GIB:.1f} GiB memory; {machine['platform']}",
            "- load average (1/5/15 min) at the probes: " + _loads(machine["load_average_1_5_15"]),
            f"- JAX {machine['jax']} backend `{machine['backend']}`, devices {machine['devices']}",
            f"- measured matmul peak ({probe['matmul_size']}³, best of all probes): "
            f"f32 {probe['matmul_f32_flops_per_s'] / 1e9:.1f} GFLOP/s, "
            "bf16 in / f32 accumulate "
            f"{probe['matmul_bf16_f32acc_flops_per_s'] / 1e9:.1f} GFLOP/s",
            f"- measured read bandwidth (jitted sum): "
            f"{probe['read_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s",
            "",
        ]
    else:
        out += ["Machine probe not run.", ""]
    for size, sides in results.items():
        spec = workload.workload_spec(size)
        model = spec["model"]
        out += [
            f"## Size `{size}`",
            "",
            f"Qwen2, hidden {model['hidden']}, {model['layers']} layers, {model['heads']} heads / "
            f"{model['kv_heads']} KV heads, FFN {model['ffn']}, vocab {model['vocab']} (tied), "
            f"{workload.parameter_count(size) / 1e6:.2f} M parameters, f32. "
            f"{spec['num_prompts']} prompts x group {spec['group_size']}, "
            f"{spec['prompt_tokens']}-token prompts, exactly {spec['new_tokens']} new tokens, "
            f"temperature {spec['temperature']}, "
            f"AdamW lr {spec['optimizer']['learning_rate']}, beta {spec['kl_beta']}, one optimiser "
            "step per batch. Train-step model FLOPs: "
            f"{workload.train_step_flops(size) / 1e9:.0f} G.",
            "",
        ]
        if not sides:
            out += ["No results.", ""]
            continue
        for side, result in sides.items():
            if result.get("workload") != spec:
                out += [
                    f"**Warning:** {side} reported a different workload spec than this one.",
                    "",
                ]
        out += _timing_table(
            sides,
            "rollout_tokens_per_s",
            "(a) Rollout throughput (new tokens/s, higher is better)",
            True,
            True,
            _decode_cells(size, probe),
        )
        out += _timing_table(
            sides,
            "train_step_s",
            "(b) One GRPO train step: forward + backward + AdamW (s, lower is better)",
            False,
            False,
            _flops_cells(size, probe),
        )
        out += _timing_table(
            sides,
            "iteration_s",
            "(c) One full GRPO iteration: rollout + reward + update (s, lower is better)",
            False,
            True,
            {"rollout + reward part (median s)": _iteration_parts},
        )
        out += _memory_table(sides, size)
        out += ["#### How each side measured", ""]
        for side in SIDE_ORDER:
            if side in sides:
                result = sides[side]
                versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
                out += [f"- **{side}** ({versions}; rounds: {result.get('rounds', 1)}):"]
                for name, record in result["measurements"].items():
                    if "note" in record:
                        out += [f"  - {name}: {record['note']} (warm-up {record['warmup']})"]
                out += [f"  - {note}" for note in result.get("notes", [])]
        out += [""]
    out += ["## Notes on the peers", ""] + [f"- {note}" for note in PEER_NOTES] + [""]
    out += ["## Commands", "", "```"] + [
        f"{command}   # {name}" for name, command in commands.items()
    ]
    out += ["```", ""]
    return "\n".join(out)
