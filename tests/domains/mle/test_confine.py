"""The sandbox's view of the Python installation (confine._python_paths): only directories that exist.

A virtual environment's ``site.getsitepackages()`` can name directories that were never created (seen on a GPU
machine's /opt venv): every solution then failed its setup with a bare FileNotFoundError.
"""

import os
import sys

from exit_jax.domains.mle import confine


def test_missing_site_packages_are_dropped_and_existing_ones_kept(tmp_path, monkeypatch):
    real = tmp_path / "site-packages"
    real.mkdir()
    missing = tmp_path / "never-created" / "dist-packages"
    inside_missing = os.path.join(sys.prefix, "no-such-dir-for-this-test")
    monkeypatch.setattr(sys, "path", [*sys.path, inside_missing, str(tmp_path / "outside")])
    paths = confine._python_paths([str(real), str(missing)])
    assert str(real) in paths and sys.prefix in paths
    assert os.path.dirname(os.path.realpath(sys.executable)) in paths
    assert str(missing) not in paths and inside_missing not in paths
    assert str(tmp_path / "outside") not in paths  # outside the installation: hidden from solutions
    assert all(os.path.isdir(p) for p in paths)
