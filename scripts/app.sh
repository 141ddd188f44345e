#!/usr/bin/env bash
# Starts the Gradio app: installs into .venv on first use (scripts/bootstrap.sh), then runs app.py.
# Extra arguments go to app.py (e.g. `bash scripts/app.sh --port 7870 --host 0.0.0.0`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python app.py "$@"
