#!/usr/bin/env bash
# Installs exit_jax's requirements on one Cloud TPU VM worker (run on every worker by the --tpu launch).
#
#   bash launch/tpu_setup.sh            # from the unpacked code directory, e.g. ~/exit_jax
#
# requirements.txt pins the CPU jax/jaxlib used on development machines. Here jax is installed with the [tpu]
# extra at the same version, which pulls the matching libtpu from JAX's libtpu release index (the install command
# documented in JAX's installation guide), then everything else in requirements.txt without jax/jaxlib.
# A stamp file keyed by requirements.txt's hash makes repeated launches skip the install.
#
# Environment:
#   PYTHON   interpreter to install into (default python3)
#   VENV     if set, create/use a virtual environment at this path (e.g. ~/exit_jax_venv)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
LIBTPU_INDEX="https://storage.googleapis.com/jax-releases/libtpu_releases.html"

if [[ -n "${VENV:-}" ]]; then
  if [[ ! -x "${VENV}/bin/python" ]]; then
    "${PYTHON}" -m venv "${VENV}"
  fi
  PYTHON="${VENV}/bin/python"
fi

STAMP="${HOME}/.exit_jax_setup_$(sha256sum requirements.txt | cut -c1-16)"
if [[ -f "${STAMP}" ]]; then
  echo "tpu_setup: requirements already installed (${STAMP}); skipping"
  exit 0
fi

JAX_VERSION="$(sed -n 's/^jax==\([^ ;#]*\).*/\1/p' requirements.txt)"
if [[ -z "${JAX_VERSION}" ]]; then
  echo "tpu_setup: no 'jax==<version>' pin in requirements.txt" >&2
  exit 1
fi

TPU_REQUIREMENTS="$(mktemp)"
trap 'rm -f "${TPU_REQUIREMENTS}"' EXIT
grep -v -E '^(jax|jaxlib)==' requirements.txt > "${TPU_REQUIREMENTS}"

"${PYTHON}" -m pip install --upgrade pip
"${PYTHON}" -m pip install "jax[tpu]==${JAX_VERSION}" -f "${LIBTPU_INDEX}"
"${PYTHON}" -m pip install -r "${TPU_REQUIREMENTS}"

# Every worker sees only its local chips before jax.distributed.initialize(); this just proves libtpu loads.
"${PYTHON}" -c "import jax; print('tpu_setup: jax', jax.__version__, 'local devices:', jax.local_device_count(), \
jax.devices()[0].platform)"
touch "${STAMP}"
