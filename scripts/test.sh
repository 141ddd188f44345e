#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what it needs (once), then pytest.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k media -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/test_tools.sh || echo "[test] chromium/ffmpeg not installable: those tests will be skipped" >&2
export PYTHONUNBUFFERED=1
exec .venv/bin/python -m pytest "$@"
