"""The sandbox wherever the caller's Python lives, and nothing of it outliving its owner.

- An interpreter under /tmp (a venv made in the test's tmp_path, holding its own copy of scikit-learn) runs an honest
  solution whose imports the zygote never pre-imported: valid, with the score computed independently here; the
  answers and another file under /tmp stay unreadable from inside.
- SIGKILL of the process that owns a Sandbox leaves no zygote and no solution process alive 1 s later.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[3]
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (uid drop, namespaces)")


def _venv_under(tmp_path: Path) -> tuple[Path, Path]:
    """A venv with --system-site-packages whose own site-packages hold a copy of scikit-learn (found first), so the
    solution's sklearn submodules load from under /tmp."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    import sklearn

    source = Path(sklearn.__file__).parent.parent
    for name in ["sklearn", *(p.name for p in source.glob("scikit_learn*"))]:
        copy = shutil.copytree if (source / name).is_dir() else shutil.copy2
        copy(source / name, site / name)
    return python, site


SOLUTION = """
import os
import pandas as pd
import sklearn
from sklearn.feature_extraction import DictVectorizer  # not pre-imported by the zygote
from sklearn.linear_model import LinearRegression
print("sklearn from", os.path.dirname(sklearn.__file__))
for path in ({answers!r}, {elsewhere!r}):
    try:
        print("READ", path, open(path).read()[:40])
    except OSError as err:
        print("blocked", path, type(err).__name__)
public = os.environ["PUBLIC_RESOURCE_PATH"]
train = pd.read_csv(os.path.join(public, "train.csv"))
test = pd.read_csv(os.path.join(public, "test.csv"))
vectorizer = DictVectorizer(sparse=False)
x = vectorizer.fit_transform(train[["x0", "x1"]].to_dict("records"))
model = LinearRegression().fit(x, train["target"])
prediction = model.predict(vectorizer.transform(test[["x0", "x1"]].to_dict("records")))
pd.DataFrame({{"id": test["id"], "target": prediction}}).to_csv("submission.csv", index=False)
print("validation_score: 0.0")
"""


@needs_root
def test_an_interpreter_under_tmp_runs_solutions_and_hides_the_rest(tmp_path, toy_competition):
    python, site = _venv_under(tmp_path)
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("a file under /tmp that no solution may read")
    solution = tmp_path / "solution.py"
    solution.write_text(SOLUTION.format(answers=str(toy_competition.answers_path), elsewhere=str(elsewhere)))
    assert str(tmp_path).startswith("/tmp/") and str(site).startswith(str(tmp_path))
    done = subprocess.run([str(python), "-m", "exit_jax.domains.mle.run_solution", "--competition",
                           str(toy_competition.root), "--solution", str(solution), "--timeout", "60"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["valid"], result["feedback"]
    assert f"sklearn from {site / 'sklearn'}" in result["feedback"]  # the venv's own copy, under /tmp
    assert f"blocked {toy_competition.answers_path}" in result["feedback"]
    assert f"blocked {elsewhere}" in result["feedback"] and "READ" not in result["feedback"]
    # The expected score, computed here: least squares on the two features, RMSE against the private answers.
    public = toy_competition.public_dir
    train, test = pd.read_csv(public / "train.csv"), pd.read_csv(public / "test.csv")
    design = np.c_[train[["x0", "x1"]].to_numpy(), np.ones(len(train))]
    coef = np.linalg.lstsq(design, train["target"].to_numpy(), rcond=None)[0]
    prediction = np.c_[test[["x0", "x1"]].to_numpy(), np.ones(len(test))] @ coef
    answers = pd.read_csv(toy_competition.answers_path).set_index("id").loc[test["id"], "target"].to_numpy()
    assert result["score"] == pytest.approx(float(np.sqrt(np.mean((prediction - answers) ** 2))), rel=1e-9)


OWNER = """
import sys, threading, time
from exit_jax.domains.mle.sandbox import Sandbox, SandboxLimits
sandbox = Sandbox(workers=2, limits=SandboxLimits(timeout_s=120, cpu_s=120), isolate=sys.argv[2] == "isolated")
public = sys.argv[1]
loop = "import os, time\\nos.fork() or time.sleep(600)\\nwhile True:\\n    pass\\n"
for _ in range(2):
    threading.Thread(target=sandbox.run, args=(loop, public), daemon=True).start()
print(" ".join(str(w.process.pid) for w in sandbox._pool), flush=True)
time.sleep(600)
"""


def _descendants(pid: int) -> set[int]:
    found, frontier = set(), [pid]
    while frontier:
        parent = frontier.pop()
        for task in os.listdir(f"/proc/{parent}/task") if os.path.exists(f"/proc/{parent}/task") else []:
            try:
                kids = [int(k) for k in open(f"/proc/{parent}/task/{task}/children").read().split()]
            except OSError:
                continue
            found.update(kids)
            frontier.extend(kids)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


@pytest.mark.parametrize("mode", ["isolated", "fallback"])
def test_sigkill_of_the_owner_takes_zygotes_and_solutions_with_it(tmp_path, toy_competition, mode):
    if mode == "isolated" and os.geteuid() != 0:
        pytest.skip("needs root")
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(toy_competition.public_dir), mode],
                             stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        zygotes = [int(p) for p in owner.stdout.readline().split()]
        assert len(zygotes) == 2
        deadline = time.monotonic() + 60
        started: set[int] = set()
        while time.monotonic() < deadline:  # each zygote's job and the job's own child are running
            started = set().union(*(_descendants(z) for z in zygotes))
            if all(len(_descendants(z)) >= 2 for z in zygotes):
                break
            time.sleep(0.05)
        assert all(len(_descendants(z)) >= 2 for z in zygotes), "the looping solutions never started"
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        time.sleep(1.0)
        survivors = [pid for pid in [*zygotes, *started] if _alive(pid)]
        assert survivors == [], f"alive 1 s after the owner's SIGKILL: {survivors}"
    finally:
        owner.kill()
        for pid in [*locals().get("zygotes", []), *locals().get("started", set())]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
