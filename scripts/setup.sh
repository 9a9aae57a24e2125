#!/usr/bin/env bash
# Set up spikerl in ./.venv on a fresh machine with nothing but Python 3.10+.
# Idempotent: a second run only re-installs when pyproject.toml changed.
# torch: installs torch==2.13.0 (a CPU build on these machines) first when the venv has no torch,
# so that the package's own range requirement never pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${SPIKERL_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing torch==2.13.0 (CPU)"
  "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
fi
stamp="$VENV/.spikerl-installed"
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing spikerl and its dependencies (editable, extras: ${SPIKERL_EXTRAS:-dev})"
  "$VENV/bin/python" -m pip install --quiet -e ".[${SPIKERL_EXTRAS:-dev}]"
  echo "$want" > "$stamp"
fi
echo "[setup] ready: $("$VENV/bin/python" -c 'import spikerl, torch; print("spikerl", spikerl.__version__, "torch", torch.__version__)')"
