#!/usr/bin/env bash
# System packages for android_demo/: a JDK (javac, keytool) and Debian bookworm's
# Android build tools (aapt2, apksigner, zipalign, dexdump). The API-23 android.jar and
# dx come from Debian bullseye; android_demo/build.sh fetches those into its own cache
# with a separate apt configuration, so nothing here touches the system's apt sources.
# clang + lld build android_demo/'s freestanding JNI library (libxnor_kernels.so for
# arm64-v8a, and an x86-64 twin for the host-JVM tests) without an NDK; qemu-user-static and
# gcc-aarch64-linux-gnu run its aarch64 test harness. Idempotent (see scripts/lib/apt.sh). Runs as root.
set -euo pipefail
source "$(dirname "$0")/../lib/apt.sh"

apt_ensure android.sh \
  "openjdk-17-jdk-headless zip unzip android-sdk android-sdk-build-tools aapt apksigner zipalign dexdump \
   clang lld llvm qemu-user-static gcc-aarch64-linux-gnu" \
  "javac keytool zip unzip aapt2 apksigner zipalign dexdump clang ld.lld llvm-readelf qemu-aarch64-static aarch64-linux-gnu-gcc"
