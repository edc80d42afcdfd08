"""Roofline of the binary kernels (issue 13, deliverable 3), in one run.

Builds native/bench/roofline.cc with g++ -O3 -mavx2 -mpopcnt together with the kernel
sources (isa_avx512.cc carries its own AVX-512 target attributes) and runs it on the
single layers of benchmarks/bench_kernels.py (imported, not repeated): the machine's
binary peak (XNOR+popcount of 64-bit words from L1 for scalar popcnt, vpshufb,
Harley-Seal and, where the CPU and OS support it, AVX-512 vpopcntq) and each kernel's time
on every layer (portable, AVX2 vpshufb, AVX-512 VPOPCNTDQ by default; also harley_seal)
with its share of the best peak and its speed-up over vpshufb, medians of interleaved
rounds, 1 thread, CPU named.

  python benchmarks/bench_popcount.py [--rounds 9] [--kernels portable,vpshufb,avx512]
"""
import argparse
import hashlib
import os
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NATIVE = ROOT / "native"
BUILD_DIR = os.path.join(tempfile.gettempdir(), "xnor_roofline")
SOURCES = [NATIVE / "bench" / "roofline.cc",
           *(NATIVE / n for n in ("kernels.cc", "bconv_plan.cc", "isa_portable.cc", "isa_avx2.cc",
                                  "isa_avx512.cc", "isa_neon.cc"))]
FLAGS = ["-std=c++17", "-O3", "-mavx2", "-mpopcnt", "-ffp-contract=off", "-pthread"]


def cpu_description():
    name, flags, family, model = "unknown CPU", set(), "?", "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "cpu family":
                family = value.strip()
            elif key.strip() == "model":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
            if name != "unknown CPU" and flags:
                break
    shown = " ".join(f"{flag.upper()}={'yes' if flag in flags else 'no'}"
                     for flag in ("avx2", "fma", "popcnt", "bmi2", "avx512f", "avx512bw",
                                  "avx512vl", "avx512_vpopcntdq"))
    return f"{name}, family {family} model {model} ({shown})"


def build(out_dir):
    digest = hashlib.sha256()
    for path in [*SOURCES, *sorted(NATIVE.glob("*.h")), NATIVE / "kernels_impl.inc"]:
        digest.update(path.read_bytes())
    binary = pathlib.Path(out_dir) / f"roofline-{digest.hexdigest()[:12]}"
    if not binary.exists():
        result = subprocess.run(["g++", *FLAGS, *map(str, SOURCES), "-o", str(binary)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"building roofline failed:\n{result.stderr[-3000:]}")
    return binary


def measure_peak(build_dir=None, *, rounds=5) -> float:
    """The machine's best XNOR+popcount rate (64-bit words per second, 1 thread, operands
    in L1; the "best" line of the roofline), measured now. Kernels and layers are not
    timed: this is the ceiling `bench_kernels.py` sets beside its single layers."""
    build_dir = build_dir or BUILD_DIR
    os.makedirs(build_dir, exist_ok=True)
    result = subprocess.run([str(build(build_dir)), "--rounds", str(rounds), "--kernels",
                             "portable"], capture_output=True, text=True)
    found = re.search(r"^\s*best\s+([0-9.]+) G words/s", result.stdout, re.MULTILINE)
    if result.returncode != 0 or found is None:
        sys.exit(f"roofline peak failed: {(result.stderr or result.stdout).strip()[-500:]}")
    return float(found.group(1)) * 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--kernels", default="portable,vpshufb,avx512",
                        help="comma-separated: portable, vpshufb (AVX2), harley_seal (AVX2), "
                             "avx512 (VPOPCNTDQ)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads of the kernels' pool (the peak loops run on one)")
    parser.add_argument("--build_dir", default=BUILD_DIR)
    args = parser.parse_args()
    if args.threads < 1:
        sys.exit(f"error: --threads must be >= 1. Received: {args.threads}")
    from benchmarks.bench_kernels import LAYERS  # not at the top: bench_kernels imports us

    os.makedirs(args.build_dir, exist_ok=True)
    binary = build(args.build_dir)
    layers = [f"{name}:{size}:{channels}" for name, (size, channels) in LAYERS.items()]
    print(f"CPU: {cpu_description()}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    sys.stdout.flush()
    result = subprocess.run([str(binary), "--rounds", str(args.rounds), "--kernels", args.kernels,
                             "--threads", str(args.threads), *layers],
                            capture_output=True, text=True)
    print(result.stdout, end="")
    if result.returncode != 0:
        sys.exit(result.stderr)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
