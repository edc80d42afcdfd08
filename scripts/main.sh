#!/usr/bin/env bash
# Installs everything, then runs the main job: train the default XNOR model on the offline
# Fashion-MNIST data, convert, verify and report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/python -m deploy.pipeline "$@"
