#!/usr/bin/env bash
# System packages for native/ (the C++ binary-kernel library and its tests): the host
# C++ compiler, the aarch64 cross compiler with its sysroot (/usr/aarch64-linux-gnu),
# qemu-aarch64-static, which runs the ARM64 (NEON) unit tests as
# `qemu-aarch64-static -L /usr/aarch64-linux-gnu ./prog` (binfmt is not needed), and
# Bazel 4 with Debian's rules_java for the offline Bazel build (native/WORKSPACE).
# Idempotent: a quick no-op when everything is already installed; otherwise apt-get update
# once, then install. Runs as root.
set -euo pipefail

packages=(g++ g++-aarch64-linux-gnu qemu-user-static bazel-bootstrap bazel-rules-java)
commands=(g++ aarch64-linux-gnu-g++ qemu-aarch64-static bazel)

missing=0
for cmd in "${commands[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing=1
done
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing=1
done
if [ "$missing" = 0 ]; then
  echo "native.sh: ${packages[*]} already installed"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"
for cmd in "${commands[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "native.sh: $cmd still missing after install" >&2; exit 1; }
done
echo "native.sh: installed ${packages[*]}"
