#!/usr/bin/env bash
# System packages for native/'s tests and ARM64 builds (the host C++ compiler is
# compiler.sh's): the aarch64 cross compiler with its sysroot (/usr/aarch64-linux-gnu),
# qemu-aarch64-static, which runs the ARM64 (NEON) unit tests as
# `qemu-aarch64-static -L /usr/aarch64-linux-gnu ./prog` (binfmt is not needed), and
# Bazel 4 with Debian's rules_java for the offline Bazel build (the top-level WORKSPACE).
# Idempotent (see scripts/lib/apt.sh). Runs as root.
set -euo pipefail
source "$(dirname "$0")/../lib/apt.sh"

apt_ensure native.sh \
  "g++-aarch64-linux-gnu qemu-user-static bazel-bootstrap bazel-rules-java" \
  "aarch64-linux-gnu-g++ qemu-aarch64-static bazel"
