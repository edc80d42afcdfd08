#!/usr/bin/env bash
# Installs only what the main job needs (the Python stack, Fashion-MNIST, a C++ compiler
# for the native kernels; the ARM64, Bazel and Android tools are installed by
# scripts/test.sh), then runs the main job: train the default XNOR model on the offline
# Fashion-MNIST data, convert, verify and report (deploy/pipeline.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh fashion_mnist compiler
exec .venv/bin/python -m deploy.pipeline "$@"
