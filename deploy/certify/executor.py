"""Runs a cut-out piece of a converted file (several inputs, one output) on a runtime.

The pieces come from `TFLiteModel.submodel`; their inputs may be bitpacked INT32
tensors, which the one-input `deploy.runtime.Runner` interface does not take, so this
module drives the same interpreters directly: LCE's (with the options of the runtime
name), stock TensorFlow Lite, stock TensorFlow Lite with the project's native
delegate (`deploy.native.tflite_interpreter`), or the Android demo's pure-Java
interpreter on the host JVM (`deploy.certify.java`).

Example:

>>> run = SegmentExecutor(part, "lce")                     # doctest: +SKIP
>>> run([bits, floats]).shape                             # doctest: +SKIP
(1, 14, 14, 64)
"""

from __future__ import annotations

import numpy as np

from deploy.errors import DeployError

__all__ = ["SegmentExecutor", "RUNTIMES"]

RUNTIMES = ("lce", "lce-default", "lce-reference", "native", "tflite", "java")


class SegmentExecutor:
    """``executor(inputs) -> output`` for a piece of a file on ``runtime``."""

    def __init__(self, flatbuffer: bytes, runtime: str, *, num_threads: int = 1):
        if runtime not in RUNTIMES:
            raise DeployError(f"layer-wise checks run on {', '.join(RUNTIMES)}. "
                              f"Received: runtime={runtime!r}")
        self.runtime = runtime
        self._java = None
        if runtime == "java":
            from deploy.certify.java import JavaSegment

            self._java = JavaSegment(flatbuffer)
        elif runtime.startswith("lce"):
            from larq_compute_engine.tflite.python.interpreter import Interpreter

            from deploy.runtime import lce_options

            try:
                self._lce = Interpreter(flatbuffer, num_threads=num_threads,
                                        **lce_options(runtime)).interpreter
            except (RuntimeError, ValueError) as error:
                raise DeployError(f"the LCE runtime cannot load a piece of this model: "
                                  f"{str(error).strip().splitlines()[-1]}") from None
            self._tflite = None
        else:
            if runtime == "native":
                from deploy.native import tflite_interpreter

                interpreter = tflite_interpreter(flatbuffer, num_threads=num_threads)
            else:
                from deploy.tflite_runner import load_interpreter

                interpreter = load_interpreter(flatbuffer, num_threads=num_threads)
            self._tflite = interpreter
            self._inputs = [d["index"] for d in interpreter.get_input_details()]
            self._output = interpreter.get_output_details()[0]["index"]

    def __call__(self, inputs) -> np.ndarray:
        inputs = [np.ascontiguousarray(x) for x in inputs]
        if self._java is not None:
            return self._java(inputs)
        try:
            if self._tflite is None:
                return np.array(self._lce.predict(inputs)[0])
            for index, x in zip(self._inputs, inputs):
                self._tflite.set_tensor(index, x)
            self._tflite.invoke()
            return np.array(self._tflite.get_tensor(self._output))
        except (RuntimeError, ValueError) as error:
            lines = [line for line in str(error).strip().splitlines() if line.strip()]
            raise DeployError(f"{self.runtime} failed on a piece of this model: "
                              f"{lines[-1] if lines else error}") from None
