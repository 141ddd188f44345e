#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv.
# Idempotent: re-runs only when pyproject.toml or this script changed.
# Works around two packaging traps of this stack (see README "Installation notes"):
#   * torch: pinned to the CPU wheel 2.13.0 *before* anything else, so no dependency pulls a CUDA build;
#   * descript-audio-codec pulls a torchaudio whose native libraries do not match the CPU torch: they are
#     removed so torchaudio falls back to pure Python (we decode audio ourselves with PyAV);
#   * lpips and scikit-video are installed without their dependencies (they would pull torchvision / old pins).
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
$PIP install "$TORCH_SPEC" 2>&1 | grep -v "is ignored" || true
"$VENV/bin/python" -c "import torch" || { echo "[bootstrap] torch failed to install" >&2; exit 1; }
$PIP install -e ".[dev]" 2>&1 | grep -v "is ignored" || true
$PIP install --no-deps "lpips==0.1.4" "scikit-video==1.1.11" 2>&1 | grep -v "is ignored" || true
# the dataset extra, pinned, in its own step (see pyproject.toml: ray's protobuf pin conflicts on paper only)
$PIP install "ray[data]==2.60.0" "webdataset==1.0.2" "pyarrow==26.0.1" 2>&1 | grep -v -e "is ignored" -e "protobuf" -e "dependency resolver" || true
# torchaudio's compiled libs are built for another torch: drop them (pure-Python fallback is enough for dac).
site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -f "$site"/torchaudio/lib/*.so
"$VENV/bin/python" -c "import importlib.util as u, avtok_ui, dac, av, safetensors, ray.data, webdataset, pyarrow; assert u.find_spec('lpips') and u.find_spec('skvideo')" || { echo "[bootstrap] import check failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "[bootstrap] ready: $VENV" >&2
