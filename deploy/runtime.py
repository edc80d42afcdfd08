"""Runtimes that execute .tflite files, behind one small interface.

``make_interpreter(flatbuffer, runtime=..., num_threads=1)`` returns a `Runner`:
``runner.run(x)`` maps one float32 batch-1 input to the float32 output (int8 models
are quantized / dequantized inside). Runtimes:

| name            | what                                                                  |
|-----------------|-----------------------------------------------------------------------|
| ``lce``         | larq-compute-engine's interpreter, its fastest x86 setting:           |
|                 | optimized indirect-BGEMM binary kernels, float ops on XNNPACK         |
| ``lce-default`` | LCE's interpreter with its default settings (no indirect BGEMM)       |
| ``lce-reference``| LCE's reference (unoptimized) binary convolution, for cross-checks   |
| ``tflite``      | stock TensorFlow Lite (XNNPACK); no LCE ops                           |
| ``native``      | this project's C++ kernels: ``deploy.native.make_interpreter``        |
| ``auto``        | `default_runtime()`: ``native`` on x86-64, ``lce`` elsewhere          |

The ``native`` runtime is provided by ``deploy/native.py``, which must define
``make_interpreter(flatbuffer: bytes, *, num_threads: int = 1)`` returning an object
with ``run(x: np.ndarray) -> np.ndarray`` (float32, batch 1, NHWC) and a ``kernels``
dict (see `deploy.native.delegate_report`). ``runner.describe()`` says in one line
which kernels ran, for every runtime.

Example:

>>> runner = make_interpreter(open("model.tflite", "rb").read())    # doctest: +SKIP
>>> runner.run(np.zeros(runner.input_shape, np.float32)).shape      # doctest: +SKIP
(1, 10)
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import re
import sys
import tempfile

import numpy as np

from deploy.errors import DeployError, first_line
from deploy.int8 import dequantize, quantization_params, quantize
from deploy.tflite_model import LCE_OPS, TFLiteFormatError, TFLiteModel
from deploy.tflite_runner import TFLiteRunner, load_interpreter
from deploy.validation import validate

__all__ = ["RUNTIMES", "Runner", "default_runtime", "make_interpreter"]

RUNTIMES = ("lce", "lce-default", "lce-reference", "tflite", "native", "auto")

# LCE interpreter options per runtime name.
_LCE_OPTIONS = {
    "lce": dict(use_reference_bconv=False, use_indirect_bgemm=True, use_xnnpack=True),
    "lce-default": dict(use_reference_bconv=False, use_indirect_bgemm=False, use_xnnpack=False),
    "lce-reference": dict(use_reference_bconv=True, use_indirect_bgemm=False, use_xnnpack=False),
}


def lce_options(runtime: str) -> dict:
    """The LCE ``Interpreter`` keyword options of an ``lce*`` runtime name."""
    return dict(_LCE_OPTIONS[runtime])


@contextlib.contextmanager
def _interpreter_errors(runtime: str, *, capture: bool = False):
    """Turns a runtime's RuntimeError/ValueError (a kernel refusing the model while
    allocating or invoking) into a one-line `DeployError` naming the node, so no
    traceback reaches a CLI verb. ``capture``: also read what TFLite's error reporter
    writes to file descriptor 2 (LCE's exception does not say which node failed)."""
    with (_stderr_log() if capture else contextlib.nullcontext(lambda: "")) as log:
        try:
            yield
        except (RuntimeError, ValueError) as error:
            raise DeployError(_rejection(runtime, f"{log()}\n{error}", error)) from None


@contextlib.contextmanager
def _stderr_log():
    """Yields a function returning what was written to fd 2 inside the block (C++
    code's messages); the text is passed on to the real stderr afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield lambda: (log.seek(0), log.read().decode("utf-8", "replace"))[1]
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            os.write(2, log.read())


def _rejection(runtime: str, text: str, error: BaseException) -> str:
    """One line: "the <runtime> runtime rejected the model at node N (OP): <reason>".

    TFLite reports "<kernel file:line> <check>" then "Node number N (OP) failed to
    prepare/invoke"; the reason is that kernel line (else the error's first line).
    """
    lines = [re.sub(r"^ERROR:\s*", "", line.strip()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    for i, line in enumerate(lines):
        node = re.search(r"[Nn]ode number (\d+) \(([^)]*)\)", line)
        if node:
            before = line[:node.start()].strip() or (lines[i - 1] if i else "")
            reason = before.rsplit("/", 1)[-1] or first_line(error)
            return (f"the {runtime} runtime rejected the model at node {node[1]} "
                    f"({node[2]}): {reason}")
    return f"the {runtime} runtime rejected the model: {first_line(error)}"


class Runner:
    """Runs one model; ``run(x)``: float32 (1, H, W, C) → float32 outputs."""

    name = "runner"
    input_shape: tuple = ()
    output_shape: tuple = ()

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        """One line: which kernels run this model."""
        raise NotImplementedError


class _LceRunner(Runner):
    def __init__(self, flatbuffer, name, num_threads, options):
        from larq_compute_engine.tflite.python.interpreter import Interpreter

        self.name = name
        with _interpreter_errors(name, capture=True):
            self._interpreter = Interpreter(flatbuffer, num_threads=num_threads, **options)
        self.input_shape = tuple(self._interpreter.input_shapes[0])
        self.output_shape = tuple(self._interpreter.output_shapes[0])
        self._quant_in = quantization_params(self._interpreter.input_types[0],
                                             self._interpreter.input_scales[0],
                                             self._interpreter.input_zero_points[0])
        self._quant_out = quantization_params(self._interpreter.output_types[0],
                                              self._interpreter.output_scales[0],
                                              self._interpreter.output_zero_points[0])
        self._raw = self._interpreter.interpreter
        self._options = options
        self._threads = num_threads

    def describe(self):
        binary = ("reference" if self._options["use_reference_bconv"] else
                  "optimized indirect-BGEMM" if self._options["use_indirect_bgemm"] else
                  "optimized BGEMM")
        floats = "XNNPACK" if self._options["use_xnnpack"] else "TFLite builtin kernels"
        return (f"larq-compute-engine interpreter, {binary} binary kernels, "
                f"float ops on {floats}, {self._threads} thread(s)")

    def run(self, x):
        x = quantize(np.ascontiguousarray(x, np.float32), self._quant_in)
        with _interpreter_errors(self.name):
            y = self._raw.predict([x])[0]
        return dequantize(y, self._quant_out)


class _TFLiteRunner(TFLiteRunner, Runner):
    """The ``tflite`` runtime: stock TensorFlow Lite with XNNPACK."""

    def __init__(self, flatbuffer, num_threads):
        super().__init__(load_interpreter(flatbuffer, num_threads=num_threads),
                         num_threads=num_threads)

    def run(self, x):
        with _interpreter_errors(self.name):
            return super().run(x)


class _NativeRunner(Runner):
    name = "native"

    def __init__(self, flatbuffer, num_threads):
        try:
            native = importlib.import_module("deploy.native")
        except ImportError as error:
            raise DeployError(f"runtime 'native' is not available ({error})") from None
        self._runner = native.make_interpreter(flatbuffer, num_threads=num_threads)
        model = TFLiteModel(flatbuffer)
        self.input_shape = getattr(self._runner, "input_shape", model.inputs[0].shape)
        self.output_shape = getattr(self._runner, "output_shape", model.outputs[0].shape)

    def run(self, x):
        with _interpreter_errors(self.name):
            y = self._runner.run(np.asarray(x, np.float32))
        return np.asarray(y, np.float32)

    @property
    def kernels(self) -> dict:
        return self._runner.kernels

    def describe(self):
        info = self.kernels
        nodes = ", ".join(f"{count} {op}" for op, count in sorted(info["nodes"].items())
                          if count)
        return (f"xnor_keras C++ kernels ({info['isa']}, {info['threads']} thread(s)) "
                f"for {nodes or 'no LCE ops'}; float ops on stock TensorFlow Lite with XNNPACK; "
                f"{importlib.import_module('deploy.native').describe_fusion(info)}")


def default_runtime() -> str:
    """The runtime ``auto`` stands for: ``native`` on x86-64, ``lce`` elsewhere.

    On x86-64 LCE ships only portable scalar binary kernels, which the AVX2 kernels in
    ``native/`` beat several times over (``benchmarks/bench_kernels.py``); on ARM64
    LCE's own NEON kernels are the tested, device-proven path.
    """
    return "native" if platform.machine().lower() in ("x86_64", "amd64") else "lce"


def make_interpreter(flatbuffer: bytes, runtime: str = "lce", *, num_threads: int = 1) -> Runner:
    """A `Runner` for ``flatbuffer`` on ``runtime`` (see the module table).

    ``auto`` never falls back silently: if it means ``native`` and the kernels cannot
    be built or loaded, the error says so (pass ``runtime="lce"`` to use LCE instead).

    Raises `DeployError` for an unknown runtime, a file that is not a valid .tflite
    model, or a model the runtime cannot load (e.g. LCE ops on ``tflite``).
    """
    if runtime not in RUNTIMES:
        raise DeployError(f"unknown runtime {runtime!r}: expected one of {', '.join(RUNTIMES)}")
    chose = runtime == "auto"
    if chose:
        runtime = default_runtime()
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise DeployError(f"threads must be a positive integer. Received: {num_threads!r}")
    try:
        model = TFLiteModel(flatbuffer)
    except TFLiteFormatError as error:
        raise DeployError(str(error)) from None
    validate(model)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise DeployError(f"models with {len(model.inputs)} inputs / {len(model.outputs)} "
                          "outputs are not supported")
    if runtime in _LCE_OPTIONS:
        return _LceRunner(flatbuffer, runtime, num_threads, _LCE_OPTIONS[runtime])
    if runtime == "tflite":
        lce_ops = sorted({op.name for op in model.ops if op.name in LCE_OPS})
        if lce_ops:
            raise DeployError(f"runtime 'tflite' cannot run LCE ops ({', '.join(lce_ops)}); "
                              "use runtime 'lce'")
        return _TFLiteRunner(flatbuffer, num_threads)
    try:
        return _NativeRunner(flatbuffer, num_threads)
    except DeployError as error:
        if not chose:
            raise
        raise DeployError(f"{error} (runtime 'auto' means 'native' on this x86-64 machine; "
                          "pass --runtime lce to run LCE's own kernels instead)") from None
