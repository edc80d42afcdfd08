#!/usr/bin/env bash
# Installs what the project needs: a virtualenv in .venv with the pinned Python stack
# (pyproject.toml), then system packages, then builds the native binary kernels
# (deploy/native.py caches them by source hash).
#
#   bash scripts/install.sh                        # every scripts/deps.d/*.sh (tests, ARM64, Android)
#   bash scripts/install.sh fashion_mnist compiler  # only the named ones (the main job's)
#   bash scripts/install.sh bench                   # an optional one (scripts/optional.d/*.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -eq 0 ]; then
  deps=(scripts/deps.d/*.sh)
else
  deps=()
  for name in "$@"; do
    if [ -e "scripts/deps.d/$name.sh" ]; then
      deps+=("scripts/deps.d/$name.sh")
    elif [ -e "scripts/optional.d/$name.sh" ]; then
      deps+=("scripts/optional.d/$name.sh")
    else
      echo "install.sh: no scripts/deps.d/$name.sh or scripts/optional.d/$name.sh" >&2; exit 2
    fi
  done
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "install.sh: Python 3.11 is required; set PYTHON=/path/to/python3.11" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet --progress-bar off -e ".[test]"

for script in "${deps[@]}"; do
  echo "install.sh: $script"
  bash "$script"
done

echo "install.sh: native kernels"
.venv/bin/python -m deploy.native
