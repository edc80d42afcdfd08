"""Stock TensorFlow Lite interpreter, with optional delegates, behind ``run(x)``.

The one place that builds a ``tf.lite.Interpreter`` for the deploy tools and does
``set_tensor`` / ``invoke`` / ``get_tensor`` with int8 (de)quantization
(`deploy.int8`): the ``tflite`` runtime uses it bare, the ``native`` runtime with the
project's delegate (`deploy.native`).

Example:

>>> runner = TFLiteRunner(open("float.tflite", "rb").read())      # doctest: +SKIP
>>> runner.run(np.zeros(runner.input_shape, np.float32)).shape     # doctest: +SKIP
(1, 10)
"""

from __future__ import annotations

import warnings

import numpy as np

from deploy.errors import DeployError
from deploy.int8 import dequantize, quantization_params, quantize

__all__ = ["load_interpreter", "TFLiteRunner"]


def load_interpreter(flatbuffer: bytes, *, num_threads: int = 1, delegates=(),
                     use_xnnpack: bool = True, what: str = "TensorFlow Lite"):
    """A ``tf.lite.Interpreter`` for ``flatbuffer`` with its tensors allocated.

    ``delegates`` are passed as ``experimental_delegates``; ``use_xnnpack=False`` runs
    float ops on TFLite's builtin kernels (no default delegate). Raises `DeployError`
    ("<what> cannot load this model: …") if TFLite rejects the model.
    """
    import tensorflow as tf
    from tensorflow.lite.python.interpreter import OpResolverType

    resolver = OpResolverType.AUTO if use_xnnpack else \
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice
            warnings.simplefilter("ignore")
            interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=num_threads,
                                              experimental_delegates=list(delegates) or None,
                                              experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as error:
        lines = [line for line in str(error).strip().splitlines() if line.strip()]
        raise DeployError(f"{what} cannot load this model: "
                          f"{lines[-1] if lines else error}") from None
    return interpreter


class TFLiteRunner:
    """``run(x)``: float32 (1, H, W, C) → float32 output of a single-input, single-output
    ``tf.lite.Interpreter``; int8/uint8 inputs and outputs are (de)quantized."""

    name = "tflite"

    def __init__(self, interpreter, *, num_threads: int = 1):
        self.interpreter = interpreter
        try:
            details_in = interpreter.get_input_details()
            details_out = interpreter.get_output_details()
        except UnicodeDecodeError:  # a corrupt tensor name (tests/test_native_fuzz.py)
            raise DeployError("the model's input/output tensor names are not UTF-8") from None
        if len(details_in) != 1 or len(details_out) != 1:
            raise DeployError(f"models with {len(details_in)} inputs / {len(details_out)} "
                              "outputs are not supported")
        self._input, self._output = details_in[0], details_out[0]
        self._quant_in = quantization_params(self._input["dtype"], *self._input["quantization"])
        self._quant_out = quantization_params(self._output["dtype"], *self._output["quantization"])
        self.input_shape = tuple(int(d) for d in self._input["shape"])
        self.output_shape = tuple(int(d) for d in self._output["shape"])
        self._threads = num_threads

    def describe(self) -> str:
        """One line: which kernels run this model."""
        return f"stock TensorFlow Lite with XNNPACK, {self._threads} thread(s)"

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.shape != self.input_shape:
            raise DeployError(f"input shape {x.shape} does not match the model's "
                              f"{self.input_shape}")
        self.interpreter.set_tensor(self._input["index"], quantize(x, self._quant_in))
        try:
            self.interpreter.invoke()
        except RuntimeError as error:  # a kernel's check on a corrupt model
            lines = [line for line in str(error).strip().splitlines() if line.strip()]
            raise DeployError(f"TensorFlow Lite failed to run this model: "
                              f"{lines[0] if lines else error}") from None
        return dequantize(self.interpreter.get_tensor(self._output["index"]), self._quant_out)
