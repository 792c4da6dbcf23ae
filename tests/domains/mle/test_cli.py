"""The run_solution CLI: --list, and one solution through sandbox and grader printing one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys

from exit_jax.domains.mle import builtin


def _cli(*args: str, env_cache: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "exit_jax.domains.mle.run_solution", *args], capture_output=True,
                          text=True, timeout=120, env={**__import__("os").environ, "EXIT_JAX_CACHE": env_cache})


def test_list(tmp_path):
    done = _cli("--list", env_cache=str(tmp_path))
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["name"] for r in rows] == builtin.builtin_names()
    assert {r["split"] for r in rows} == {"train", "heldout"}


def test_run_compact_and_python(tmp_path, toy_competition):
    spec = tmp_path / "spec.txt"
    spec.write_text("model=lin\n")
    done = _cli("--competition", str(toy_competition.root), "--solution", str(spec), "--timeout", "30",
                env_cache=str(tmp_path))
    result = json.loads(done.stdout)
    assert set(result) >= {"valid", "score", "normalized_score", "feedback", "error", "runtime_s"}
    assert result["valid"] and result["error"] is None and "validation_score" in result["feedback"]
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("please use a forest")
    done = _cli("--competition", str(toy_competition.root), "--solution", str(garbage), env_cache=str(tmp_path))
    assert json.loads(done.stdout)["error"].startswith("unparseable")
