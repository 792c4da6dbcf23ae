"""Runs exit_jax, Tunix and TRL side by side on the common workload and writes the report.

Each side runs as its own subprocess in its own environment, one after the other (never at the
same time: they would share the cores), and prints one JSON object in the schema documented in
benchmarks/peers/workload.py:
  * machine probe: benchmarks/peers/machine_probe.py in the project's environment;
  * exit_jax: benchmarks/exit_jax_bench.py in the project's environment (skipped if absent);
  * tunix: benchmarks/peers/tunix_bench.py in benchmarks/peers/.venvs/tunix;
  * trl: benchmarks/peers/trl_bench.py in benchmarks/peers/.venvs/trl.
Every side is called as `<python> <script> --size SIZE --warmup W --repetitions R`.
Raw JSON goes to benchmarks/.out/results/, logs to benchmarks/.out/logs/, the report to --docs.

    bash benchmarks/peers/setup.sh            # once: the peers' virtual environments
    python benchmarks/run_all.py --sizes tiny
    python benchmarks/run_all.py --report-only --sizes tiny   # rewrite the report from saved JSON
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
PEERS = BENCHMARKS / "peers"
sys.path.insert(0, str(PEERS))

import report  # noqa: E402
import workload  # noqa: E402

RESULTS = workload.OUT_DIR / "results"
LOGS = workload.OUT_DIR / "logs"
SIDES = {
    "exit_jax": (Path(sys.executable), BENCHMARKS / "exit_jax_bench.py"),
    "tunix": (PEERS / ".venvs" / "tunix" / "bin" / "python", PEERS / "tunix_bench.py"),
    "trl": (PEERS / ".venvs" / "trl" / "bin" / "python", PEERS / "trl_bench.py"),
    # Not a peer: exit_jax with bf16 compute (f32 parameters), for the small size's bf16-peak target. Opt-in.
    "exit_jax_bf16": (Path(sys.executable), BENCHMARKS / "exit_jax_bench.py"),
    # Not a peer: exit_jax on one XLA CPU device where its default splits the cores into several (exit_jax_bench's
    # CPU_DEVICES: the tiny size), to show what the split buys. Opt-in.
    "exit_jax_1dev": (Path(sys.executable), BENCHMARKS / "exit_jax_bench.py"),
    # TRL in bf16 autocast (f32 parameters): the counterpart of exit_jax_bf16. Opt-in.
    "trl_bf16": (PEERS / ".venvs" / "trl" / "bin" / "python", PEERS / "trl_bench.py"),
}
SIDE_ARGS = {"exit_jax_bf16": ["--compute_dtype", "bfloat16"], "exit_jax_1dev": ["--cpu_devices", "1"],
             "trl_bf16": ["--bf16"]}
DEFAULT_SIDES = ["exit_jax", "tunix", "trl"]


def side_command(side: str, size: str, warmup: int, repetitions: int) -> list[str]:
    python, script = SIDES[side]
    return [
        str(python),
        str(script),
        "--size",
        size,
        "--warmup",
        str(warmup),
        "--repetitions",
        str(repetitions),
        *SIDE_ARGS.get(side, []),
    ]


def display(command: list[str]) -> str:
    """A command as a user types it from the repository root."""
    parts = []
    for part in command:
        path = Path(part)
        if path.is_absolute() and path.is_relative_to(REPO_ROOT):
            part = str(path.relative_to(REPO_ROOT))
        elif part == sys.executable:
            part = "python"
        parts.append(part)
    return " ".join(parts)


def run_json(command: list[str], log_name: str, timeout_s: float) -> dict | None:
    """Runs `command`, logs its stderr, returns the JSON object on its last stdout line."""
    LOGS.mkdir(parents=True, exist_ok=True)
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
    print(f"$ {display(command)}", file=sys.stderr, flush=True)
    log_path = LOGS / f"{log_name}.log"
    with log_path.open("w") as log:
        try:
            completed = subprocess.run(
                command,
                cwd=REPO_ROOT,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            print(f"  timed out after {timeout_s:.0f} s (log: {log_path})", file=sys.stderr)
            return None
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        print(f"  failed with exit code {completed.returncode} (log: {log_path})", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def merge_rounds(rounds: list[dict]) -> dict:
    """One result from several runs of the same side: timed values pooled, memory peaks maxed."""
    merged = json.loads(json.dumps(rounds[0]))
    for name, first in merged["measurements"].items():
        records = [r["measurements"][name] for r in rounds]
        if name == "peak_rss_bytes":
            first["ru_maxrss"] = max(r["ru_maxrss"] for r in records)
            first["sampled_peak"] = max(r["sampled_peak"] for r in records)
            first["phases"] = {
                k: max(r["phases"].get(k, 0) for r in records) for k in first["phases"]
            }
        elif first.get("supported"):
            parts = {
                k: [v for r in records for v in r.get("parts", {}).get(k, [])]
                for k in first.get("parts", {})
            }
            merged["measurements"][name] = workload.measurement(
                [v for r in records for v in r["values"]],
                first["unit"],
                first["warmup"],
                first["note"],
                parts=parts or None,
            )
    merged["rounds"] = len(rounds)
    return merged


def merge_probes(probes: list[dict]) -> dict | None:
    """The machine's limits as the best figure over several probes, with every load average."""
    if not probes:
        return None
    merged = json.loads(json.dumps(probes[0]))
    for key in (
        "matmul_f32_flops_per_s",
        "matmul_bf16_f32acc_flops_per_s",
        "read_bandwidth_bytes_per_s",
    ):
        merged[key] = max(probe[key] for probe in probes)
    merged["machine"]["load_average_1_5_15"] = [
        probe["machine"]["load_average_1_5_15"] for probe in probes
    ]
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        nargs="+",
        choices=sorted(workload.SIZES),
        default=["tiny"],
        help="the small size needs ~19 GiB free for Tunix",
    )
    parser.add_argument("--sides", nargs="+", choices=sorted(SIDES), default=DEFAULT_SIDES)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument(
        "--rounds", type=int, default=1, help="run every side this many times, interleaved"
    )
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per side and round")
    parser.add_argument("--skip-probe", action="store_true", help="reuse the saved machine probe")
    parser.add_argument(
        "--report-only", action="store_true", help="only rewrite the report from saved JSON"
    )
    parser.add_argument("--docs", type=Path, default=REPO_ROOT / "docs" / "benchmarks-peers.md")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    commands = {
        "setup": "bash benchmarks/peers/setup.sh",
        "run_all": display([sys.executable, *sys.argv]),
    }

    probe_path = RESULTS / "machine_probe.json"
    probe_command = [sys.executable, str(PEERS / "machine_probe.py")]
    commands["probe"] = display(probe_command)
    probes = []
    if not (args.report_only or args.skip_probe):
        probes.append(run_json(probe_command, "machine_probe-before", args.timeout))

    results: dict[str, dict[str, dict]] = {}
    for size in args.sizes:
        build_command = [sys.executable, str(PEERS / "workload.py"), "build", "--size", size]
        commands[f"build {size}"] = display(build_command)
        if not args.report_only:
            subprocess.run(build_command, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
        rounds: dict[str, list[dict]] = {side: [] for side in args.sides}
        for round_index in range(0 if args.report_only else args.rounds):
            for side in args.sides:
                command = side_command(side, size, args.warmup, args.repetitions)
                if not SIDES[side][0].exists() or not SIDES[side][1].exists():
                    print(
                        f"skipping {side}: {SIDES[side][0]} or {SIDES[side][1]} is missing",
                        file=sys.stderr,
                    )
                    continue
                output = run_json(command, f"{size}-{side}-round{round_index}", args.timeout)
                if output is not None:
                    rounds[side].append(output)
        results[size] = {}
        for side in args.sides:
            path = RESULTS / f"{size}-{side}.json"
            command = display(side_command(side, size, args.warmup, args.repetitions))
            if rounds[side]:
                merged = merge_rounds(rounds[side])
                # Saved with the result, so a later --report-only page lists the command that measured it.
                merged["command"] = command
                merged["run_all_command"] = commands["run_all"]
                path.write_text(json.dumps(merged, indent=1))
            if path.exists():
                results[size][side] = json.loads(path.read_text())
            if side not in results[size]:
                continue  # neither run now nor saved before: no command to list
            saved = results[size][side]
            commands[f"{side} {size}"] = saved.get("command") or (
                command
                + ("   # flags not recorded with the saved result (this rendering's);" if args.report_only else "")
            )
            if args.report_only and saved.get("run_all_command"):
                commands.setdefault(f"measured by ({size})", saved["run_all_command"])

    if probes:
        # Probe again after the sides: the peak is the best of both (load only lowers it).
        probes.append(run_json(probe_command, "machine_probe-after", args.timeout))
        merged_probe = merge_probes([p for p in probes if p is not None])
        if merged_probe is not None:
            probe_path.write_text(json.dumps(merged_probe, indent=1))
    probe = json.loads(probe_path.read_text()) if probe_path.exists() else None
    generated = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    args.docs.parent.mkdir(parents=True, exist_ok=True)
    args.docs.write_text(report.render(results, probe, commands, generated, args.report_only))
    print(f"wrote {display([str(args.docs)])}", file=sys.stderr)
    for size, sides in results.items():
        for side, result in sides.items():
            medians = {
                k: v.get("median") for k, v in result["measurements"].items() if "median" in v
            }
            print(size, side, json.dumps(medians), file=sys.stderr)


if __name__ == "__main__":
    main()
