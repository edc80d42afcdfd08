#!/usr/bin/env bash
# System packages for native/ (the C++ binary-kernel library and its tests): the host
# C++ compiler, the aarch64 cross compiler with its sysroot (/usr/aarch64-linux-gnu),
# qemu-aarch64-static, which runs the ARM64 (NEON) unit tests as
# `qemu-aarch64-static -L /usr/aarch64-linux-gnu ./prog` (binfmt is not needed), and
# Bazel 4 with Debian's rules_java for the offline Bazel build (the top-level WORKSPACE).
# Idempotent (see scripts/lib/apt.sh). Runs as root.
set -euo pipefail
source "$(dirname "$0")/../lib/apt.sh"

apt_ensure native.sh \
  "g++ g++-aarch64-linux-gnu qemu-user-static bazel-bootstrap bazel-rules-java" \
  "g++ aarch64-linux-gnu-g++ qemu-aarch64-static bazel"
