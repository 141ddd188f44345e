#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv.
# Idempotent: re-runs only when pyproject.toml or this script changed.
# Works around three packaging traps of this stack (explained here; README "Quick start" runs this script):
#   * torch: pinned to the CPU wheel 2.13.0 *before* anything else, so no dependency pulls a CUDA build
#     (numpy comes in the same step: torch imported without numpy prints "Failed to initialize NumPy");
#   * descript-audio-codec pulls a torchaudio whose native libraries do not match the CPU torch: they are
#     removed so torchaudio falls back to pure Python (we decode audio ourselves with PyAV);
#   * lpips and scikit-video are installed without their dependencies (they would pull torchvision / old pins);
#     lpips's pin is read from pyproject.toml's `lpips` extra (which requirements.txt, for Spaces, carries).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${AVTOK_VENV:-.venv}
TORCH_SPEC=${AVTOK_TORCH_SPEC:-torch==2.13.0}
stamp="$VENV/.avtok-stamp"
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[bootstrap] creating $VENV (one-time, a few minutes)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
NUMPY_SPEC=$(grep -o '"numpy[^"]*"' pyproject.toml | head -n1 | tr -d '"')
LPIPS_SPEC=$(grep -o '"lpips==[^"]*"' pyproject.toml | head -n1 | tr -d '"')
$PIP install "$TORCH_SPEC" "${NUMPY_SPEC:-numpy}" 2>&1 | grep -v "is ignored" || true
"$VENV/bin/python" -c "import torch, numpy" || { echo "[bootstrap] torch failed to install" >&2; exit 1; }
$PIP install -e ".[dev]" 2>&1 | grep -v "is ignored" || true
$PIP install --no-deps "${LPIPS_SPEC:?no lpips pin in pyproject.toml}" "scikit-video==1.1.11" 2>&1 | grep -v "is ignored" || true
# the dataset extra, pinned, in its own step (see pyproject.toml: ray's protobuf pin conflicts on paper only)
$PIP install "ray[data]==2.60.0" "webdataset==1.0.2" "pyarrow==26.0.1" 2>&1 | grep -v -e "is ignored" -e "protobuf" -e "dependency resolver" || true
# torchaudio's compiled libs are built for another torch: drop them (pure-Python fallback is enough for dac).
site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -f "$site"/torchaudio/lib/*.so
"$VENV/bin/python" -c "import importlib.util as u, avtok_ui, dac, av, safetensors, ray.data, webdataset, pyarrow; assert u.find_spec('lpips') and u.find_spec('skvideo')" || { echo "[bootstrap] import check failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "[bootstrap] ready: $VENV" >&2
