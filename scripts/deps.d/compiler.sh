#!/usr/bin/env bash
# The host C++ compiler that deploy/native.py builds the native binary kernels with (the
# main job runs on them). Idempotent (see scripts/lib/apt.sh). Runs as root.
set -euo pipefail
source "$(dirname "$0")/../lib/apt.sh"

apt_ensure compiler.sh "g++" "g++"
