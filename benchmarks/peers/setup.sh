#!/usr/bin/env bash
# Installs the benchmark peers, each in its own virtual environment under benchmarks/peers/.venvs/.
#
#   .venvs/tunix : google-tunix==0.1.7 with its registry dependencies (CPU jax/jaxlib come with flax).
#   .venvs/trl   : torch==2.13.0 (the CPU build), then trl==1.16.0 and transformers, torch held fixed.
#
# Never touches the project's environment: the venvs are plain `python -m venv` without
# --system-site-packages, and every pip call goes through the venv's own interpreter.
# Idempotent: an existing venv whose pinned packages already import is left as it is.
# Usage: bash benchmarks/peers/setup.sh [tunix|trl]...   (default: both)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENVS="${HERE}/.venvs"
PYTHON="${PYTHON:-python3.11}"
command -v "${PYTHON}" >/dev/null || PYTHON=python3
TUNIX_VERSION="0.1.7"
TRL_VERSION="1.16.0"
TORCH_VERSION="2.13.0"
mkdir -p "${VENVS}"

make_venv() {  # make_venv NAME -> prints the venv's python
  local dir="${VENVS}/$1"
  if [[ ! -x "${dir}/bin/python" ]]; then
    "${PYTHON}" -m venv "${dir}" >&2
    "${dir}/bin/python" -m pip install --quiet --upgrade pip >&2
  fi
  if grep -q "include-system-site-packages = true" "${dir}/pyvenv.cfg"; then
    echo "error: ${dir} uses system site-packages; delete it and re-run" >&2
    exit 1
  fi
  echo "${dir}/bin/python"
}

setup_tunix() {
  local py
  py="$(make_venv tunix)"
  if ! "${py}" -c "import importlib.metadata as m, sys; \
sys.exit(m.version('google-tunix') != '${TUNIX_VERSION}')" 2>/dev/null; then
    # The benchmark also samples memory with psutil; everything else comes from Tunix's own pins.
    "${py}" -m pip install "google-tunix==${TUNIX_VERSION}" psutil
  fi
  "${py}" - <<'EOF'
import importlib.metadata as m
import jax
from tunix.models.qwen2 import model as _m, params as _p  # noqa: F401
from tunix.generate import sampler as _s  # noqa: F401
from tunix.rl.grpo import grpo_learner as _g  # noqa: F401
names = ["google-tunix", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "transformers",
         "safetensors", "numpy"]
print("tunix venv:", ", ".join(f"{n}=={m.version(n)}" for n in names), "| backend:",
      jax.default_backend())
EOF
}

setup_trl() {
  local py
  py="$(make_venv trl)"
  local constraint="${VENVS}/trl-constraints.txt"
  # Any other torch would pull a multi-GB CUDA build; the CPU wheel lies in pip's find-links.
  echo "torch==${TORCH_VERSION}+cpu" >"${constraint}"
  if ! "${py}" -c "import torch, sys; sys.exit(torch.__version__ != '${TORCH_VERSION}+cpu')" \
    2>/dev/null; then
    "${py}" -m pip install "torch==${TORCH_VERSION}+cpu"
  fi
  if ! "${py}" -c "import importlib.metadata as m, sys; \
sys.exit(m.version('trl') != '${TRL_VERSION}')" 2>/dev/null; then
    "${py}" -m pip install -c "${constraint}" "trl==${TRL_VERSION}" transformers psutil
  fi
  "${py}" - <<EOF
import importlib.metadata as m
import torch
assert torch.__version__ == "${TORCH_VERSION}+cpu", f"pip replaced torch: {torch.__version__}"
import trl  # noqa: F401
names = ["trl", "torch", "transformers", "accelerate", "datasets", "tokenizers", "numpy"]
print("trl venv:", ", ".join(f"{n}=={m.version(n)}" for n in names))
EOF
}

targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(tunix trl)
for target in "${targets[@]}"; do
  case "${target}" in
    tunix) setup_tunix ;;
    trl) setup_trl ;;
    *) echo "unknown peer: ${target} (expected tunix or trl)" >&2; exit 2 ;;
  esac
done
