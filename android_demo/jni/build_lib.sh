#!/usr/bin/env bash
# Builds the freestanding JNI library libxnor_kernels.so from native/'s kernel sources and
# xnor_jni.cc, without an NDK: Debian's clang + lld, no libc (no DT_NEEDED, no undefined
# symbols), DT_HASH + DT_GNU_HASH (Android < 23 needs DT_HASH), 16 KB page alignment.
#
#   android_demo/jni/build_lib.sh arm64-v8a OUT.so   # --target=aarch64-linux-android21, NEON
#   android_demo/jni/build_lib.sh x86_64 OUT.so      # host twin for the JVM tests, portable
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
native=$(cd "$here/../../native" && pwd)
abi=${1:?usage: build_lib.sh arm64-v8a|x86_64 OUT.so}
out=${2:?usage: build_lib.sh arm64-v8a|x86_64 OUT.so}
jdk=$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")
case "$abi" in
  arm64-v8a)
    # libstdc++/glibc headers of the aarch64 cross toolchain, for declarations and inline
    # templates only (nothing is linked from them); x18 stays reserved (Android's ABI).
    target=(--target=aarch64-linux-android21 -ffixed-x18 -mno-outline-atomics
            -isystem /usr/aarch64-linux-gnu/include/c++/12
            -isystem /usr/aarch64-linux-gnu/include/c++/12/aarch64-linux-gnu
            -isystem /usr/aarch64-linux-gnu/include) ;;
  x86_64) target=(--target=x86_64-linux-gnu) ;;
  *) echo "build_lib.sh: unknown ABI $abi" >&2; exit 2 ;;
esac
flags=(-std=c++17 -O3 -ffp-contract=off -fPIC -ffreestanding -fno-builtin -fno-exceptions
       -fno-rtti -fno-stack-protector -fno-threadsafe-statics -fvisibility=hidden
       -fno-asynchronous-unwind-tables -fno-unwind-tables -ffunction-sections -fdata-sections
       -Wall -Wextra -Werror -I"$jdk/include" -I"$jdk/include/linux")
link=(-fuse-ld=lld -nostdlib -shared -Wl,-soname,libxnor_kernels.so -Wl,--hash-style=both
      -Wl,-z,max-page-size=16384 -Wl,-z,noexecstack -Wl,-z,relro -Wl,-z,now -Wl,-z,defs
      -Wl,--no-undefined -Wl,-z,text -Wl,--gc-sections -Wl,--build-id=sha1)
mkdir -p "$(dirname "$out")"
clang++ "${target[@]}" "${flags[@]}" "${link[@]}" -o "$out.tmp" \
  "$here/xnor_jni.cc" "$native/bconv_plan.cc" "$native/isa_neon.cc" "$native/isa_portable.cc"
mv -f "$out.tmp" "$out"
