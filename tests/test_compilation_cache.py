"""``run.enable_compilation_cache``: where the persistent compilation cache goes, and that a second process loads
the first one's program instead of compiling it again, with bitwise the same result.

JAX's configuration is process-global, so every case runs in a fresh interpreter (the test process keeps its own
setting, and the other tests never write a cache because of this one).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.run_helpers import REPO

# A small jitted program (JAX stores every compilation here: min compile time 0); prints the cache directory in use
# and the result's bytes.
PROGRAM = """
import json, sys
import jax, jax.numpy as jnp
from exit_jax.run import enable_compilation_cache
used = enable_compilation_cache(sys.argv[1])
@jax.jit
def f(x):
    for i in range(20):
        x = jnp.tanh(x @ x.T * 0.01 + i)
    return x
value = f(jnp.arange(64.0 * 64.0).reshape(64, 64) / 4096.0)
print(json.dumps({"used": used, "bytes": value.tobytes().hex()}))
"""


def _run(setting: str, env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXIT_JAX_", "JAX_COMPILATION_CACHE"))}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
               **env_extra)
    done = subprocess.run([sys.executable, "-c", PROGRAM, setting], env=env, capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _entries(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


def test_auto_writes_under_exit_jax_cache_and_a_second_process_loads_it(tmp_path):
    cache = tmp_path / "exit_jax_cache" / "xla"
    first = _run("auto", {"EXIT_JAX_CACHE": str(tmp_path / "exit_jax_cache")})
    assert first["used"] == str(cache)
    written = _entries(cache)
    assert written, "the compiled program was not stored"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert any(name.endswith("-atime") for name in written)  # the bounded (locked, LRU) cache is in use
    second = _run("auto", {"EXIT_JAX_CACHE": str(tmp_path / "exit_jax_cache")})
    programs = lambda names: {n for n in names if n.endswith("-cache")}  # noqa: E731
    assert programs(written) and programs(_entries(cache)) == programs(written)  # loaded, not compiled and stored again
    assert second["bytes"] == first["bytes"]


def test_empty_setting_leaves_the_cache_off(tmp_path):
    out = _run("", {"EXIT_JAX_CACHE": str(tmp_path / "c")})
    assert out["used"] is None
    assert not (tmp_path / "c").exists()


def test_an_explicit_jax_setting_wins(tmp_path):
    chosen = tmp_path / "from_env"
    out = _run(str(tmp_path / "from_config"), {"JAX_COMPILATION_CACHE_DIR": str(chosen)})
    assert out["used"] == str(chosen)
    assert _entries(chosen) and not (tmp_path / "from_config").exists()


def test_a_directory_setting_is_used_as_given(tmp_path):
    chosen = tmp_path / "given"
    out = _run(str(chosen), {"EXIT_JAX_CACHE": str(tmp_path / "unused")})
    assert out["used"] == str(chosen)
    assert _entries(chosen) and not (tmp_path / "unused").exists()
