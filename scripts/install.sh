#!/usr/bin/env bash
# Installs everything the project needs: a virtualenv in .venv with the pinned Python
# stack (pyproject.toml), then the system packages of each scripts/deps.d/*.sh, then
# builds the native binary kernels (deploy/native.py caches them by source hash).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "install.sh: Python 3.11 is required; set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --progress-bar off -e ".[test]"

for script in scripts/deps.d/*.sh; do
  [ -e "$script" ] || continue
  echo "install.sh: $script"
  bash "$script"
done

echo "install.sh: native kernels"
.venv/bin/python -m deploy.native
