#!/usr/bin/env bash
# System packages for native/'s tests and ARM64 builds (the host C++ compiler is
# compiler.sh's): the aarch64 cross compiler with its sysroot (/usr/aarch64-linux-gnu),
# qemu-aarch64-static, which runs the ARM64 (NEON) unit tests as
# `qemu-aarch64-static -L /usr/aarch64-linux-gnu ./prog` (binfmt is not needed), and
# Bazel 4 with Debian's rules_java for the offline Bazel build (the top-level WORKSPACE),
# and mmdebstrap, which scripts/arm64_python.sh uses to unpack an aarch64 Debian userland
# (Python 3.11) that runs the cross-built delegate under qemu (tests/test_deploy_native_aarch64.py).
# Idempotent (see scripts/lib/apt.sh). Runs as root.
set -euo pipefail
source "$(dirname "$0")/../lib/apt.sh"

apt_ensure native.sh \
  "g++-aarch64-linux-gnu qemu-user-static bazel-bootstrap bazel-rules-java mmdebstrap" \
  "aarch64-linux-gnu-g++ qemu-aarch64-static bazel mmdebstrap"
