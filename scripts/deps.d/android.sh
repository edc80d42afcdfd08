#!/usr/bin/env bash
# System packages for android_demo/: a JDK (javac, keytool) and Debian bookworm's
# Android build tools (aapt2, apksigner, zipalign, dexdump). The API-23 android.jar and
# dx come from Debian bullseye; android_demo/build.sh fetches those into its own cache
# with a separate apt configuration, so nothing here touches the system's apt sources.
# Idempotent: a quick no-op when everything is already installed. Runs as root.
set -euo pipefail

packages=(openjdk-17-jdk-headless zip unzip android-sdk android-sdk-build-tools aapt apksigner zipalign dexdump)
commands=(javac keytool zip unzip aapt2 apksigner zipalign dexdump)

missing=0
for cmd in "${commands[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing=1
done
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing=1
done
if [ "$missing" = 0 ]; then
  echo "android.sh: Android build tools already installed"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"
for cmd in "${commands[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "android.sh: $cmd still missing after install" >&2; exit 1; }
done
echo "android.sh: installed ${packages[*]}"
