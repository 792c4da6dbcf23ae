"""Solutions per second: the default sandbox (fork servers, pre-imported stack) vs a plain `python solution.py`.

    python benchmarks/sandbox.py [--repeats 2] [--workers N]

Both paths run the same solutions on the built-in competitions with the same parallelism (a pool of N workers,
N = cores by default); the plain path copies public/ into a fresh temp directory and starts `python solution.py`
there (no isolation at all). The result cache is bypassed (every solution's text is unique). Workloads:
  * overhead: a solution that reads the data and writes a constant submission (start-up and I/O only);
  * compact-fast: compiled compact specs with quick models (linear, kNN): the embedded policy's typical case;
  * compact-mixed: compiled compact specs across families (HGB, RF, MLP, SVM included).
Prints one table row per workload and path, and the speed-up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exit_jax.domains.mle import builtin  # noqa: E402
from exit_jax.domains.mle.domain import solution_code  # noqa: E402
from exit_jax.domains.mle.grading import Evaluator  # noqa: E402
from exit_jax.domains.mle.sandbox import Sandbox, SandboxLimits  # noqa: E402

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


def workload(name: str, competitions, repeats: int) -> list[tuple[object, str]]:
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
    parser.add_argument("--workloads", default="overhead,compact-fast,compact-mixed")
    args = parser.parse_args()
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
    sandbox.close()


if __name__ == "__main__":
    main()
