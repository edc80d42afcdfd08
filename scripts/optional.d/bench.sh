#!/usr/bin/env bash
# Optional benchmark peers (not needed by the main job or the tests): OpenVINO for
# benchmarks/bench_kernels.py's BinaryConvolution column. `bash scripts/install.sh bench`.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python -m pip install --quiet --progress-bar off -e ".[bench]"
