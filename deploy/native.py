"""This project's C++ binary kernels, run inside stock TensorFlow's ``tf.lite`` interpreter.

``native/`` implements larq-compute-engine's custom ops (``LceQuantize``,
``LceDequantize``, ``LceBconv2d``, ``LceBMaxPool2d``) with the same numerics as LCE's
own interpreter, on 64-bit words with AVX-512 VPOPCNTDQ or AVX2 (x86-64) or NEON (ARM64)
and a portable C++ fallback chosen at run time (CPUID, and XGETBV for AVX-512). The library is a TFLite *external delegate*: TFLite
hands it every LCE node and keeps all other (float) ops on its builtin kernels and its
default XNNPACK delegate. `native/tflite_abi.h` documents the TFLite ABI it relies on;
the delegate checks it when it is applied and fails with an error if it does not match.

Build: the first use compiles the library with the system C++ compiler (``g++``, or
``$CXX``) into ``$XNOR_KERAS_NATIVE_CACHE`` (default ``~/.cache/xnor_keras/native``),
keyed by a hash of the sources, compiler and flags; later uses load the cached file.
``python -m deploy.native`` builds it ahead of time (``scripts/install.sh`` does);
``--target aarch64`` cross-builds it on x86-64 for ARM64 Linux boards (run there with
``deploy/board.py``), ``--sanitize`` builds the AddressSanitizer/UBSan variant the fuzz
test loads, ``--output PATH`` copies the result.

Fusion: by default the delegate also claims the float glue of each XNOR layer with input
scaling K (eq. 11) — the BatchNorm MUL/ADD on its input, ABS → MEAN → box CONV_2D (or
RESHAPE), and the MUL of the binary convolution's output by K — and runs it fused with the
LceBconv2d (``native/fusion.h``); ``fuse=False`` leaves it to TFLite (the unfused graph, the
fused kernel's oracle). `delegate_report` lists the fused patterns and, for candidates that
were not fused, why.

Environment: ``XNOR_KERAS_NATIVE_ISA`` = ``auto`` (default: ``avx512`` where the CPU has
AVX512F/BW/VL + VPOPCNTDQ and the OS enables the zmm state, else ``avx2``, ``neon``,
``portable``), or one of those names, forces a kernel path; forcing one this CPU cannot
run is an error naming the missing feature (``portable`` is how the fallback is tested).

Example:

>>> runner = make_interpreter(open("model.tflite", "rb").read(), num_threads=2)  # doctest: +SKIP
>>> runner.run(np.zeros(runner.input_shape, np.float32)).shape                     # doctest: +SKIP
(1, 10)
>>> runner.kernels["nodes"]["LceBconv2d"], runner.kernels["isa"]                   # doctest: +SKIP
(8, 'avx2')
"""

from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from concurrent import futures
from pathlib import Path

from deploy.cache import cache_dir
from deploy.errors import DeployError, first_line
from deploy.tflite_model import LCE_OPS, TFLiteFormatError, TFLiteModel
from deploy.tflite_runner import TFLiteRunner, load_interpreter
from deploy.validation import validate_bytes

__all__ = [
    "NATIVE_DIR",
    "ISAS",
    "TARGETS",
    "BuildSpec",
    "build_library",
    "sanitizer_preload",
    "library_info",
    "load_delegate",
    "delegate_report",
    "delegate_profile",
    "describe_fusion",
    "tflite_interpreter",
    "NativeRunner",
    "make_interpreter",
]

NATIVE_DIR = Path(__file__).resolve().parent.parent / "native"
ISAS = ("auto", "portable", "avx2", "avx512", "neon")
LIBRARY_SOURCES = ("kernels.cc", "bconv_plan.cc", "isa_portable.cc", "isa_avx2.cc",
                   "isa_avx512.cc", "isa_neon.cc", "fusion.cc", "fusion_match.cc",
                   "fusion_tflite.cc", "delegate.cc")
# No -march: only the functions in isa_avx2.cc are compiled for AVX2 (target attributes),
# so one library runs everywhere. No FMA contraction: results match LCE bit for bit.
CXXFLAGS = ("-std=c++17", "-O3", "-fPIC", "-ffp-contract=off", "-fvisibility=hidden",
            "-pthread", "-Wall", "-Wextra")


TARGETS = ("host", "aarch64")
# Compilers for targets other than this machine: "aarch64" on x86-64 is a cross-build
# (Debian's g++-aarch64-linux-gnu); on an aarch64 host (Raspberry Pi OS, ...) it is the
# host and builds with $CXX / g++.
CROSS_COMPILERS = {"aarch64": "aarch64-linux-gnu-g++"}
# The fuzz build (tests/test_native_fuzz.py): loading it needs LD_PRELOAD of libasan and
# libubsan (`sanitizer_preload`).
SANITIZER_FLAGS = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g")


@dataclasses.dataclass(frozen=True)
class BuildSpec:
    """What to build: ``target`` (`TARGETS`) and ``sanitize`` (`SANITIZER_FLAGS`)."""

    target: str = "host"
    sanitize: bool = False

    def __post_init__(self):
        if self.target not in TARGETS:
            raise DeployError(f"target must be one of {', '.join(TARGETS)}. "
                              f"Received: target={self.target!r}")

    @property
    def machine(self) -> str:
        """The target's ``platform.machine()``."""
        return platform.machine() if self.target == "host" else self.target

    @property
    def flags(self) -> tuple:
        return CXXFLAGS + (SANITIZER_FLAGS if self.sanitize else ())

    @property
    def link_flags(self) -> tuple:
        # Not -static-libstdc++ for cross-builds: bookworm's libstdc++.a needs glibc 2.36,
        # the shared one only GLIBC_2.17 (+ GCC 12's libstdc++, GLIBCXX_3.4.30).
        return SANITIZER_FLAGS[:1] if self.sanitize else ()

    @property
    def stem(self) -> str:
        """``libxnor_kernels`` plus ``-aarch64`` (cross-build) and ``-asan``."""
        parts = ["libxnor_kernels"]
        if self.machine != platform.machine():
            parts.append(self.machine)
        if self.sanitize:
            parts.append("asan")
        return "-".join(parts)

    def compiler(self) -> str:
        """The C++ compiler for this target; `DeployError` if it is not installed."""
        if self.machine == platform.machine():
            compiler = os.environ.get("CXX", "g++")
            if shutil.which(compiler) is None:
                raise DeployError(f"the native kernels need a C++17 compiler ({compiler!r} not "
                                  "found); run scripts/install.sh")
            return compiler
        compiler = CROSS_COMPILERS.get(self.machine)
        if compiler is None:
            raise DeployError(f"no cross compiler known for {self.machine} on "
                              f"{platform.machine()}")
        if shutil.which(compiler) is None:
            raise DeployError(f"cross-building the native kernels for {self.machine} needs "
                              f"{compiler} (not found); run scripts/install.sh native "
                              "(Debian package g++-aarch64-linux-gnu)")
        return compiler


def _cache_dir() -> Path:
    return cache_dir("native", "XNOR_KERAS_NATIVE_CACHE")


def _source_files() -> list[Path]:
    files = sorted(p for p in NATIVE_DIR.iterdir()
                   if p.suffix in (".cc", ".h", ".inc") or p.name == "exports.map")
    missing = [name for name in LIBRARY_SOURCES if not (NATIVE_DIR / name).is_file()]
    if missing:
        raise DeployError(f"native sources missing in {NATIVE_DIR}: {', '.join(missing)}")
    return files


def _digest(compiler: str, spec: BuildSpec) -> str:
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout
    h = hashlib.sha256()
    for part in (version, spec.machine, " ".join(spec.flags + spec.link_flags)):
        h.update(part.encode() + b"\0")
    for path in _source_files():
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


_built: dict = {}  # this process's libraries by BuildSpec, once found or built


def build_library(*, force: bool = False, target: str = "host",
                  sanitize: bool = False) -> Path:
    """Path of the compiled kernel library, compiling it first if needed.

    ``target="aarch64"`` cross-builds for ARM64 Linux on x86-64 (with
    ``aarch64-linux-gnu-g++``; on an aarch64 host it is the host build); ``sanitize``
    adds AddressSanitizer + UBSan (`SANITIZER_FLAGS`). Concurrent callers (processes)
    wait for one build; the library appears atomically in the cache directory. Raises
    `DeployError` when the compiler is missing or compilation fails (with the
    compiler's first error line and the log's path).
    """
    spec = BuildSpec(target, sanitize)
    if spec not in _built or force:
        _built[spec] = _build(spec, force)
    return _built[spec]


def _build(spec: BuildSpec, force: bool) -> Path:
    compiler = spec.compiler()
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{spec.stem}-{_digest(compiler, spec)}.so"
    if target.exists() and not force:
        return target
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and not force:
            return target
        with tempfile.TemporaryDirectory(dir=cache) as work:
            objects = [Path(work) / (name + ".o") for name in LIBRARY_SOURCES]
            commands = [[compiler, *spec.flags, "-c", str(NATIVE_DIR / name), "-o", str(obj)]
                        for name, obj in zip(LIBRARY_SOURCES, objects)]
            with futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                for result in pool.map(_run_compiler, commands):
                    _raise_on_failure(result, cache)
            linked = Path(work) / target.name
            exports = NATIVE_DIR / "exports.map"
            _raise_on_failure(_run_compiler(
                [compiler, "-shared", "-pthread", *spec.link_flags,
                 f"-Wl,--version-script={exports}", *map(str, objects), "-o", str(linked)]),
                cache)
            os.replace(linked, target)
    return target


def sanitizer_preload() -> str:
    """``LD_PRELOAD`` value that lets a non-sanitized Python load the ``sanitize`` build:
    the host compiler's libasan and libubsan (ASan's runtime must come first)."""
    compiler = BuildSpec().compiler()
    paths = []
    for name in ("libasan.so", "libubsan.so"):
        path = subprocess.run([compiler, f"-print-file-name={name}"], capture_output=True,
                              text=True).stdout.strip()
        if not os.path.isabs(path) or not os.path.exists(path):
            raise DeployError(f"{compiler} has no {name} (Debian: libasan8 / libubsan1)")
        paths.append(os.path.realpath(path))
    return ":".join(paths)


def _run_compiler(command):
    return command, subprocess.run(command, capture_output=True, text=True)


def _raise_on_failure(result, cache: Path) -> None:
    command, completed = result
    if completed.returncode == 0:
        return
    log = cache / "build-error.log"
    log.write_text(" ".join(command) + "\n" + completed.stdout + completed.stderr)
    lines = [line for line in completed.stderr.splitlines() if "error" in line] or \
        completed.stderr.splitlines() or ["(no output)"]
    raise DeployError(f"building the native kernels failed: {lines[0].strip()} (log: {log})")


def _library() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build_library()))
    lib.xnor_keras_selected_isa.restype = ctypes.c_char_p
    lib.xnor_keras_delegate_info.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.xnor_keras_delegate_info.restype = ctypes.c_int
    lib.xnor_keras_delegate_profile.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                                ctypes.c_int]
    lib.xnor_keras_delegate_profile.restype = ctypes.c_int
    return lib


def library_info() -> dict:
    """``{"path": ..., "isa": ...}``: the library and the kernel path it would use."""
    selected = _library().xnor_keras_selected_isa().decode()
    if selected.startswith("error: "):
        raise DeployError(selected[len("error: "):])
    return {"path": str(build_library()), "isa": selected}


def load_delegate(*, num_threads: int | None = None, isa: str | None = None,
                  fuse: bool = True):
    """A ``tf.lite.experimental.load_delegate`` handle for the kernel library.

    ``num_threads`` (default: the interpreter's ``num_threads``) sets the threads of the
    binary ops; ``isa`` forces a kernel path; ``fuse`` claims and fuses the float glue
    around the binary convolutions (see the module docstring).
    """
    import tensorflow as tf

    from xnor_keras.validation import positive_int

    options = {}
    if num_threads is not None:
        positive_int("num_threads", num_threads, error=DeployError)
        options["num_threads"] = num_threads
    if isa is not None:
        if isa not in ISAS:
            raise DeployError(f"isa must be one of {', '.join(ISAS)}. Received: {isa!r}")
        options["isa"] = isa
    if not isinstance(fuse, bool):
        raise DeployError(f"fuse must be True or False. Received: fuse={fuse!r}")
    options["fuse"] = "on" if fuse else "off"
    try:
        return tf.lite.experimental.load_delegate(str(build_library()), options)
    except ValueError as error:
        raise DeployError(f"native kernels: {error}") from None


def _json_from(function, *args) -> dict:
    """Calls a library function that writes JSON into a buffer and returns the length it
    needs, growing the buffer until the text fits."""
    size = 4096
    while True:
        buffer = ctypes.create_string_buffer(size)
        needed = function(*args[:1], buffer, size, *args[1:])
        if needed < size:
            return json.loads(buffer.value.decode())
        size = needed + 1


def delegate_report(delegate) -> dict:
    """What the delegate ran: ``{"isa", "threads", "partitions", "invocations", "seconds",
    "nodes", "fuse", "fused", "not_fused"}`` — the kernel path, threads, delegate kernels
    (runs of consecutive claimed ops), their invocations and total time, the LCE nodes
    taken over by op name, whether fusion was on, the patterns run fused
    (``{"kind": "K", "bconv": node, "nodes": [...]}``) and the candidates that were not
    (``{"node": LceBconv2d node, "reason": one line}``)."""
    return _json_from(_library().xnor_keras_delegate_info, delegate._get_native_delegate_pointer())


def describe_fusion(report: dict) -> str:
    """One line from a `delegate_report`: which nodes ran fused, and why others did not."""
    if not report.get("fuse", False):
        return "fusion off"
    fused = report.get("fused", [])
    text = f"{len(fused)} K pattern(s) fused"
    if fused:
        text += " (" + "; ".join(f"LceBconv2d {f['bconv']}: nodes {_ranges(f['nodes'])}"
                                 for f in fused) + ")"
    for item in report.get("not_fused", []):
        text += f"; not fused at LceBconv2d {item['node']}: {item['reason']}"
    return text


def _ranges(nodes) -> str:
    """[2, 3, 4, 5, 9] -> '2-5, 9'."""
    parts, start = [], None
    for i, n in enumerate(nodes):
        if start is None:
            start = n
        if i + 1 == len(nodes) or nodes[i + 1] != n + 1:
            parts.append(f"{start}-{n}" if n != start else f"{n}")
            start = None
    return ", ".join(parts)


def delegate_profile(delegate, *, reset: bool = False) -> list:
    """Time inside the kernels per LCE node: ``[{"node", "op", "runs", "seconds"}]``
    (TFLite node index = operator index in the model), accumulated since the delegate was
    applied or last reset; ``reset`` zeroes the counters after reading. Measured around
    each node's kernel in the delegate (steady_clock), so it excludes TFLite's own
    per-node overhead."""
    return _json_from(_library().xnor_keras_delegate_profile,
                      delegate._get_native_delegate_pointer(), int(reset))["nodes"]


def _check_ops(flatbuffer: bytes) -> TFLiteModel:
    try:
        model = TFLiteModel(flatbuffer)
    except TFLiteFormatError as error:
        raise DeployError(str(error)) from None
    unknown = sorted({op.name for op in model.ops if op.custom and op.name not in LCE_OPS})
    if unknown:
        raise DeployError(f"the native runtime cannot run custom op(s) {', '.join(unknown)}; "
                          f"it implements {', '.join(LCE_OPS)}")
    return model


def tflite_interpreter(flatbuffer: bytes, *, num_threads: int = 1, isa: str | None = None,
                       use_xnnpack: bool = True, fuse: bool = True):
    """A stock ``tf.lite.Interpreter`` (tensors allocated) running LCE ops natively.

    Float ops run on TFLite's builtin kernels, on XNNPACK when ``use_xnnpack`` (TFLite's
    default). ``interpreter.xnor_keras_delegate`` is the delegate (see `delegate_report`).
    """
    from xnor_keras.validation import positive_int

    positive_int("num_threads", num_threads, error=DeployError)
    validate_bytes(flatbuffer)
    _check_ops(flatbuffer)
    delegate = load_delegate(isa=isa, fuse=fuse)
    interpreter = load_interpreter(flatbuffer, num_threads=num_threads, delegates=[delegate],
                                   use_xnnpack=use_xnnpack, what="the native runtime")
    interpreter.xnor_keras_delegate = delegate
    return interpreter


class NativeRunner(TFLiteRunner):
    """``run(x)``: float32 (1, H, W, C) → float32 output; int8 models are (de)quantized."""

    name = "native"

    def __init__(self, flatbuffer: bytes, *, num_threads: int = 1, isa: str | None = None,
                 fuse: bool = True):
        super().__init__(tflite_interpreter(flatbuffer, num_threads=num_threads, isa=isa,
                                            fuse=fuse),
                         num_threads=num_threads)

    def describe(self) -> str:
        """One line: the kernels, threads, and which nodes ran fused (and why not)."""
        report = self.kernels
        return (f"stock TensorFlow Lite with XNNPACK, {self._threads} thread(s); LCE ops on "
                f"this project's native kernels ({report['isa']}); {describe_fusion(report)}")

    @property
    def kernels(self) -> dict:
        """Which kernels ran: ISA, threads and the LCE nodes the library executes."""
        return delegate_report(self.interpreter.xnor_keras_delegate)


def make_interpreter(flatbuffer: bytes, *, num_threads: int = 1, isa: str | None = None,
                     fuse: bool = True) -> NativeRunner:
    """The ``native`` runtime of ``deploy.runtime``: a `NativeRunner` for ``flatbuffer``."""
    return NativeRunner(flatbuffer, num_threads=num_threads, isa=isa, fuse=fuse)


def main(argv=None) -> int:
    """``python -m deploy.native [--target host|aarch64] [--sanitize] [--output PATH]``:
    build the library (or find it in the cache) and print its path — and, for the host
    build, the kernel path it selects on this CPU; ``--output`` also copies it to PATH
    (atomically). Bad flags or a missing compiler: one ``error:`` line, exit status 2."""
    from absl import flags

    values = flags.FlagValues()
    flags.DEFINE_enum("target", "host", TARGETS, "host, or aarch64 (cross-build on x86-64 "
                      "with aarch64-linux-gnu-g++; the host build on an aarch64 machine).",
                      flag_values=values)
    flags.DEFINE_boolean("sanitize", False, "build with -fsanitize=address,undefined (the "
                         "fuzz build; loading it needs LD_PRELOAD of libasan and libubsan).",
                         flag_values=values)
    flags.DEFINE_string("output", None, "also copy the library to this path.",
                        flag_values=values)
    try:
        extra = values(list(sys.argv if argv is None else argv))[1:]
        if extra:
            raise DeployError(f"unexpected arguments: {' '.join(extra)}")
        spec = BuildSpec(values.target, values.sanitize)
        path = build_library(target=spec.target, sanitize=spec.sanitize)
        # Only a plain host build can be loaded into this process to ask its ISA.
        native_here = spec.machine == platform.machine() and not spec.sanitize
        description = f"{path} ({library_info()['isa']})" if native_here else \
            f"{path} ({spec.machine}{', sanitizers' if spec.sanitize else ''})"
        if values.output:
            output = Path(values.output)
            if not output.parent.is_dir():
                raise DeployError(f"--output: directory {output.parent} does not exist")
            from xnor_keras.io import atomic_write  # imports TensorFlow: only when needed

            atomic_write(output, path.read_bytes())
            description += f" -> {output}"
    except (flags.Error, DeployError) as error:
        print(f"error: {first_line(error)}", file=sys.stderr)
        return 2
    print(description)
    return 0


if __name__ == "__main__":
    sys.exit(main())
