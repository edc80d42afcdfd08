#!/usr/bin/env bash
# An aarch64 Linux userland with Python 3.11 + tflite-runtime under qemu-user: the closest
# thing to a Raspberry Pi OS (64-bit, bookworm) board here. Correctness only; emulated
# timings mean nothing. No binfmt and no root file-system image: Debian bookworm's arm64
# packages are unpacked by mmdebstrap (--variant=extract), the aarch64 wheels by pip.
#
#   bash scripts/arm64_python.sh DIR [PACKAGE==VERSION]   # default tflite-runtime==2.14.0
#   DIR/py -c 'import platform; print(platform.machine())'  # -> aarch64
#
# Idempotent: a rerun only reinstalls the wheel if DIR/site lacks it (about 20 s from
# scratch). Needs mmdebstrap and qemu-aarch64-static (scripts/deps.d/native.sh). The Debian
# mirror is read from this machine's apt sources, never hard-coded. Used by
# tests/test_deploy_native_aarch64.py (DIR in the project's cache, see deploy/cache.py).
set -euo pipefail
dir=${1:?usage: $0 DIR [PACKAGE==VERSION]}
runtime=${2:-tflite-runtime==2.14.0}
python=${PYTHON:-python3}
for tool in mmdebstrap qemu-aarch64-static; do
  command -v "$tool" >/dev/null || { echo "arm64_python.sh: $tool is missing; run scripts/install.sh native" >&2; exit 2; }
done
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
exec 9>"$dir/.lock"
flock 9  # concurrent test runs wait for one setup

if [ ! -x "$dir/root/usr/bin/python3.11" ]; then
  mirror=$(grep -rhoE '^(URIs:|deb) +[a-z]+://[^ ]+/debian\b' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
           | grep -v security | head -1 | awk '{print $2}' || true)
  [ -n "$mirror" ] || { echo "arm64_python.sh: no Debian mirror in this machine's apt sources" >&2; exit 2; }
  rm -rf "$dir/root.tmp"
  mmdebstrap --quiet --variant=extract --arch=arm64 \
    --include=python3.11-minimal,libpython3.11-stdlib,python3.11,libstdc++6,libgcc-s1,zlib1g \
    bookworm "$dir/root.tmp" "$mirror"
  mv "$dir/root.tmp" "$dir/root"  # a half-unpacked userland never looks finished
fi

stamp="$dir/site-$runtime.done"
if [ ! -e "$stamp" ]; then
  rm -rf "$dir/site" "$dir"/site-*.done
  "$python" -m pip install --quiet --no-deps --only-binary=:all: --platform manylinux_2_34_aarch64 \
    --platform manylinux2014_aarch64 --python-version 3.11 --target "$dir/site" "$runtime" 'numpy==1.26.4' 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
  touch "$stamp"
fi

cat > "$dir/py.tmp" <<EOS
#!/bin/sh
exec qemu-aarch64-static -L "$dir/root" -E PYTHONPATH="$dir/site" -E PYTHONHOME="$dir/root/usr" "$dir/root/usr/bin/python3.11" "\$@"
EOS
chmod +x "$dir/py.tmp"
mv "$dir/py.tmp" "$dir/py"
"$dir/py" -c "import platform, sys; print(platform.machine(), 'python', sys.version.split()[0])"
