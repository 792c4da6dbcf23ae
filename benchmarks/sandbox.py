"""Solutions per second: the default sandbox (fork servers, pre-imported stack) vs a plain `python solution.py`.

    python benchmarks/sandbox.py [--repeats 2] [--workers N]

Both paths run the same solutions on the built-in competitions with the same parallelism (a pool of N workers,
N = cores by default); the plain path copies public/ into a fresh temp directory and starts `python solution.py`
there (no isolation at all). The result cache is bypassed (every solution's text is unique). Workloads:
  * overhead: a solution that reads the data and writes a constant submission (start-up and I/O only);
  * compact-fast: compiled compact specs with quick models (linear, kNN): the embedded policy's typical case;
  * compact-mixed: compiled compact specs across families (HGB, RF, MLP, SVM included);
  * policy: every solution the trained embedded policy wrote in a default run's held-out greedy search (K = 16,
    avg@4 on the six held-out competitions), in the order graded: ``benchmarks/data/mle_policy_solutions.json``,
    recorded from that run's eval JSON by ``--record EVAL_JSON``, which replays the chains' responses through the
    scaffold (the same instances, so the same compiled code) and keeps each step's full spec. This is the workload
    the default path meets in practice. Besides the cache-bypassed row it gets a "policy (result cache on)" row: the
    default path as the trainer runs it, with a fresh result cache, where a spec the search writes again is not
    run again (the plain path has no cache and runs it again).
Prints one table row per workload and path, and the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exit_jax.domains.mle import builtin, spec  # noqa: E402
from exit_jax.domains.mle.domain import MLEConfig, MLEDomain, compact_spec, solution_code  # noqa: E402
from exit_jax.domains.mle.grading import Evaluator  # noqa: E402
from exit_jax.domains.mle.sandbox import Sandbox, SandboxLimits  # noqa: E402
from exit_jax.domains.mle.scaffold import greedy_search_many  # noqa: E402

CONSTANT = """
import os
import pandas as pd
sample = pd.read_csv(os.path.join(os.environ["PUBLIC_RESOURCE_PATH"], "sample_submission.csv"))
train = pd.read_csv(os.path.join(os.environ["PUBLIC_RESOURCE_PATH"], "train.csv"))
print("validation_score: 0.0", len(train))
sample.to_csv("submission.csv", index=False)
"""
FAST_SPECS = ("model=lin scale=std", "model=knn scale=std k=25", "model=lin scale=std impute=ind c=0.3")
MIXED_SPECS = ("model=hgb n=100", "model=rf n=50", "model=mlp scale=std n=100", "model=svm scale=std",
               "model=lin scale=std feat=poly2", "model=et n=50 leaf=3")


def plain_run(code: str, public_dir: Path, timeout: float) -> bool:
    """The baseline: fresh directory, copy of public/, `python solution.py`."""
    work = Path(tempfile.mkdtemp(prefix="plain_solution_"))
    try:
        shutil.copytree(public_dir, work / "public")
        (work / "solution.py").write_text(code)
        env = {**os.environ, "PUBLIC_RESOURCE_PATH": str(work / "public"), "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "solution.py"], cwd=work, env=env, capture_output=True,
                              timeout=timeout)
        return done.returncode == 0 and (work / "submission.csv").exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)


POLICY_SOLUTIONS = Path(__file__).resolve().parent / "data" / "mle_policy_solutions.json"


def default_limits() -> SandboxLimits:
    """The sandbox limits of ``experiments/mle.py`` (the default run's), so a replay grades as that run did."""
    from experiments import mle

    return SandboxLimits(**mle.get_config().domain.limits.to_dict())


def record_policy_solutions(eval_json: Path, out: Path, workers: int) -> dict:
    """Replays the greedy-search chains of a run's eval JSON and writes the full spec of every solution graded.

    Each chain's recorded responses are fed back, step by step, to ``greedy_search_many`` on a fresh MLE domain with
    the default run's sandbox limits: the scaffold rebuilds the same instances (which node is improved, which crash
    is debugged) from the regraded solutions, so every response compiles to the code the run graded. The replayed
    test scores are compared with the recorded ones; the file says how many steps agree.
    """
    result = json.loads(Path(eval_json).read_text())
    traces = result["traces"]
    task_ids = list(traces)
    samples = len(next(iter(traces.values())))
    chains = [traces[t][i] for t in task_ids for i in range(samples)]
    steps = len(chains[0]) - 1
    domain = MLEDomain(MLEConfig(solution_format="compact", workers=workers, limits=default_limits()))
    recorded: list[dict[str, object]] = []
    grade = domain.grade

    def recording_grade(instances, responses):
        for instance, response in zip(instances, responses, strict=True):
            try:
                full = spec.format_spec(compact_spec(response, instance.mode, instance.previous_response))
            except spec.SpecError:
                continue  # unparseable: graded without running anything, on both paths alike
            recorded.append({"competition": instance.task_id, "mode": instance.mode, "spec": full})
        return grade(instances, responses)

    domain.grade = recording_grade
    step_of = [0]

    def replay(conversations):
        index = step_of[0]
        step_of[0] += 1
        return [chain[index]["response"] for chain in chains]

    try:
        replayed = greedy_search_many(domain, task_ids, replay, steps, samples)
    finally:
        domain.close()
    agree = sum(a.test_normalized == b["test_normalized"]
                for chain, result_chain in zip(chains, replayed, strict=True)
                for a, b in zip(result_chain.steps, chain, strict=True))
    payload = {"source": str(eval_json), "step": result.get("step"), "K": steps, "num_samples": samples,
               "tasks": task_ids, "replayed_steps": len(chains) * (steps + 1),
               "steps_with_the_recorded_test_score": agree, "solutions": recorded}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    return payload


def policy_jobs(path: Path = POLICY_SOLUTIONS) -> list[tuple[object, str]]:
    """The recorded policy solutions as (competition, solution.py) jobs, in the order the search graded them."""
    jobs = []
    for solution in json.loads(path.read_text())["solutions"]:
        competition = builtin.get_competition(solution["competition"])
        jobs.append((competition, solution_code(solution["spec"], competition, "compact")))
    return jobs


def workload(name: str, competitions, repeats: int) -> list[tuple[object, str]]:
    if name == "policy":
        return [(competition, code + f"\n# unique {rep} {index}\n") for rep in range(repeats)
                for index, (competition, code) in enumerate(policy_jobs())]
    jobs = []
    for rep in range(repeats):
        for competition in competitions:
            if name == "overhead":
                codes = [CONSTANT]
            else:
                specs = FAST_SPECS if name == "compact-fast" else MIXED_SPECS
                codes = [solution_code(s, competition, "compact") for s in specs]
            for index, code in enumerate(codes):
                jobs.append((competition, code + f"\n# unique {rep} {index}\n"))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workloads", default="overhead,compact-fast,compact-mixed,policy")
    parser.add_argument("--record", type=Path, default=None, metavar="EVAL_JSON",
                        help="replay this eval JSON's greedy-search chains and write the policy workload file")
    parser.add_argument("--out", type=Path, default=POLICY_SOLUTIONS, help="with --record: the file to write")
    args = parser.parse_args()
    if args.record is not None:
        payload = record_policy_solutions(args.record, args.out, args.workers)
        print(f"{args.out}: {len(payload['solutions'])} solutions from {payload['replayed_steps']} steps; "
              f"{payload['steps_with_the_recorded_test_score']} steps replayed with the recorded test score")
        return
    competitions = [builtin.get_competition(n) for n in builtin.builtin_names()]
    limits = SandboxLimits(timeout_s=300)
    start = time.perf_counter()
    sandbox = Sandbox(workers=args.workers, limits=limits)
    isolation = sandbox.isolation
    for worker in sandbox._pool:
        worker.ready()
    startup = time.perf_counter() - start
    evaluator = Evaluator(sandbox)
    print(f"workers={args.workers} cores={os.cpu_count()} sandbox start-up (one-off)={startup:.2f}s")
    print(f"isolation={isolation}")
    print("| workload | solutions | plain python (sol/s) | sandbox (sol/s) | speed-up | valid plain/sandbox |")
    print("|---|---|---|---|---|---|")
    for name in args.workloads.split(","):
        jobs = workload(name, competitions, args.repeats)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            plain_ok = list(pool.map(lambda job: plain_run(job[1], job[0].public_dir, 300), jobs))
        plain_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = evaluator.evaluate_many([c for c, _ in jobs], [code for _, code in jobs])
        sandbox_s = time.perf_counter() - t0
        plain_rate, sandbox_rate = len(jobs) / plain_s, len(jobs) / sandbox_s
        print(f"| {name} | {len(jobs)} | {plain_rate:.2f} | {sandbox_rate:.2f} | {sandbox_rate / plain_rate:.1f}x "
              f"| {sum(plain_ok)}/{sum(r.valid for r in results)} |", flush=True)
        if name == "policy":  # the same solutions without the uniqueness comments, through a fresh result cache
            repeated = [job for _ in range(args.repeats) for job in policy_jobs()]
            cached = Evaluator(sandbox)
            t0 = time.perf_counter()
            results = cached.evaluate_many([c for c, _ in repeated], [code for _, code in repeated])
            cached_rate = len(repeated) / (time.perf_counter() - t0)
            distinct = len({(c.name, code) for c, code in repeated})
            print(f"| policy (result cache on, {distinct} distinct) | {len(repeated)} | {plain_rate:.2f} "
                  f"| {cached_rate:.2f} | {cached_rate / plain_rate:.1f}x | {sum(plain_ok)}/"
                  f"{sum(r.valid for r in results)} |", flush=True)
    sandbox.close()


if __name__ == "__main__":
    main()
