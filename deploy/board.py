"""Run a converted model on an aarch64 Linux board (Raspberry Pi OS 64-bit, ...) with a
TFLite Python runtime and this project's delegate — no TensorFlow, no LCE on the board.

LCE publishes no aarch64 Linux wheel, and stock TFLite cannot run LCE's custom ops; the
delegate (``libxnor_kernels.so``, NEON kernels) runs them. This file is standalone
(standard library + NumPy + ``tflite_runtime`` or ``ai_edge_litert``): copy it to the
board with the model and the delegate, built there with ``python -m deploy.native`` or
cross-built on x86-64 with ``python -m deploy.native --target aarch64 --output
libxnor_kernels.so``. Inputs are preprocessed float32 arrays, ``[N, H, W, C]`` in one
``.npy`` (the model's recorded preprocessing: ``deploy.inputs.load_inputs`` on the host);
outputs are the model's raw outputs, ``[N, ...]``, written atomically.

    python3 board.py --model model.tflite --delegate ./libxnor_kernels.so \\
        --inputs images.npy --output logits.npy --threads 4

Runtimes: the delegate relies on TFLite's C structs (``native/tflite_abi.h``), declared
from TensorFlow 2.21's ``common.h``. Only the runtimes in `VERIFIED_RUNTIMES` were run
with it (tflite-runtime 2.14.0 under qemu-aarch64, tests/test_deploy_native_aarch64.py);
another one is refused unless ``--allow_unverified_runtime``, and the delegate's own
layout check still fails loudly when it is applied to structs that do not fit.

Example (on the board):

>>> runner = BoardRunner("model.tflite", "./libxnor_kernels.so", threads=4)  # doctest: +SKIP
>>> runner.run(np.zeros((2, 28, 28, 1), np.float32)).shape                  # doctest: +SKIP
(2, 10)
>>> runner.describe()                                                       # doctest: +SKIP
'tflite_runtime 2.14.0 + xnor_keras delegate (neon, 4 thread(s)) for 4 LceBconv2d, ...'
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import os
import sys
import uuid

import numpy as np

__all__ = ["VERIFIED_RUNTIMES", "BoardError", "BoardRunner", "load_runtime", "main"]

# Python TFLite runtime → versions run with the delegate and compared with LCE's outputs.
VERIFIED_RUNTIMES = {"tflite_runtime": ("2.14.0",), "ai_edge_litert": ()}


class BoardError(Exception):
    """A one-line problem with the board's runtime, the delegate, the model or the inputs."""


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def load_runtime(name: str | None = None, *, allow_unverified: bool = False):
    """``(name, version, interpreter module)`` of the TFLite Python runtime: ``name``, or
    the first of `VERIFIED_RUNTIMES` that is installed. An unverified version is a
    `BoardError` unless ``allow_unverified``."""
    names = [name] if name else list(VERIFIED_RUNTIMES)
    if name is not None and name not in VERIFIED_RUNTIMES:
        raise BoardError(f"runtime must be one of {', '.join(VERIFIED_RUNTIMES)}. "
                         f"Received: {name!r}")
    for candidate in names:
        try:
            module = importlib.import_module(f"{candidate}.interpreter")
        except ImportError:
            continue
        version = getattr(importlib.import_module(candidate), "__version__", "unknown")
        if version not in VERIFIED_RUNTIMES[candidate] and not allow_unverified:
            verified = ", ".join(f"{n} {v}" for n, vs in VERIFIED_RUNTIMES.items() for v in vs)
            raise BoardError(f"{candidate} {version} was not verified with the delegate's "
                             f"TFLite ABI (verified: {verified}); pass "
                             "--allow_unverified_runtime to try it anyway")
        return candidate, version, module
    raise BoardError(f"no TFLite runtime: pip install {' or '.join(n.replace('_', '-') for n in names)}")


class BoardRunner:
    """A model on a TFLite Python runtime with the delegate running every LCE op."""

    def __init__(self, model_path, delegate_path, *, threads: int = 1, runtime: str | None = None,
                 allow_unverified: bool = False):
        if not isinstance(threads, int) or threads < 1:
            raise BoardError(f"threads must be a positive integer. Received: {threads!r}")
        for what, path in (("model", model_path), ("delegate", delegate_path)):
            if not os.path.isfile(path):
                raise BoardError(f"{what} {path}: no such file")
        self.runtime, self.version, module = load_runtime(runtime,
                                                          allow_unverified=allow_unverified)
        self.threads = threads
        try:
            self._library = ctypes.CDLL(os.path.abspath(delegate_path))
        except OSError as error:  # e.g. built for another machine
            raise BoardError(f"delegate {delegate_path}: {_first_line(error)}") from None
        self._library.xnor_keras_delegate_info.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                           ctypes.c_int]
        try:
            self.delegate = module.load_delegate(os.path.abspath(delegate_path),
                                                 {"num_threads": str(threads)})
            self.interpreter = module.Interpreter(model_path=os.fspath(model_path),
                                                  experimental_delegates=[self.delegate],
                                                  num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            raise BoardError(f"{model_path}: {_first_line(error)}") from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]

    def report(self) -> dict:
        """The delegate's own account: ``{"isa", "threads", "nodes": {op: count}, ...}``."""
        buffer = ctypes.create_string_buffer(1024)
        self._library.xnor_keras_delegate_info(self.delegate._get_native_delegate_pointer(),
                                               buffer, len(buffer))
        return json.loads(buffer.value.decode())

    def describe(self) -> str:
        report = self.report()
        nodes = ", ".join(f"{n} {op}" for op, n in report["nodes"].items() if n)
        return (f"{self.runtime} {self.version} + xnor_keras delegate ({report['isa']}, "
                f"{self.threads} thread(s)) for {nodes or 'no LCE ops'}")

    def run(self, x: np.ndarray) -> np.ndarray:
        """Outputs for the inputs ``x`` [N, H, W, C] (one invoke per input)."""
        shape = tuple(self._input["shape"][1:])
        x = np.asarray(x)
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
            raise BoardError(f"inputs of shape {x.shape}, but the model takes [N, "
                             f"{', '.join(map(str, shape))}]")
        outputs = []
        for sample in x.astype(self._input["dtype"]):
            self.interpreter.set_tensor(self._input["index"], sample[None])
            self.interpreter.invoke()
            outputs.append(self.interpreter.get_tensor(self._output["index"])[0].copy())
        return np.stack(outputs)


def _save_atomic(path, array):
    temporary = f"{path}.{uuid.uuid4().hex}.tmp"
    try:
        with open(temporary, "wb") as stream:
            np.save(stream, array)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv=None) -> int:
    """The command line (module docstring); ``error: ...`` and exit status 2 on bad input."""
    parser = _Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the converted .tflite")
    parser.add_argument("--delegate", required=True, help="libxnor_kernels.so for this board")
    parser.add_argument("--inputs", required=True, help=".npy of preprocessed [N, H, W, C]")
    parser.add_argument("--output", required=True, help=".npy to write the outputs to")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runtime", choices=sorted(VERIFIED_RUNTIMES), default=None)
    parser.add_argument("--allow_unverified_runtime", action="store_true")
    args = parser.parse_args(argv)
    try:
        try:
            x = np.load(args.inputs, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise BoardError(f"{args.inputs}: not a readable .npy ({_first_line(error)})") from None
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
            raise BoardError(f"--output: directory of {args.output} does not exist")
        runner = BoardRunner(args.model, args.delegate, threads=args.threads,
                             runtime=args.runtime,
                             allow_unverified=args.allow_unverified_runtime)
        _save_atomic(args.output, runner.run(x))
    except BoardError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(x)} input(s) -> {args.output}: {runner.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
