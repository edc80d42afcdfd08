"""OpenVINO's CPU BinaryConvolution as a peer for the single-layer benchmarks (issue 13).

OpenVINO's CPU plugin runs ``BinaryConvolution`` (opset1, mode ``"xnor-popcount"``) with a
JIT AVX2 kernel: the other maintained x86 binary-convolution engine. `binary_conv_model`
builds the same layer as ``bench_kernels``'s larq model — 3×3, stride 1, SAME padding
with +1 (larq's ``pad_values=1``), C → C channels, inputs binarized at 0 — in OpenVINO's
graph form:

    y = BinaryConvolution(FakeQuantize(x, levels=2), W_bits, pad_value=1) ⊙ s

where FakeQuantize maps x > 0 to 1 and x ≤ 0 to 0 (bits standing for +1 / −1, as in
OpenVINO's own binary models), ``W_bits[o, i, u, v] = 1`` where the larq kernel's sign is
+1, and ``s`` is a per-channel multiplier of ones (the output multiplier LCE's
``LceBconv2d`` also applies). The result is the ±1 dot product n − 2·popcount(x ⊕ w),
so on inputs without exact zeros it equals LCE's output exactly (the benchmark checks).

OpenVINO is an optional benchmark dependency (``bash scripts/install.sh bench``);
`available` says whether it imports and, if not, why.

Example (needs ``openvino``):

>>> import numpy as np
>>> w = np.ones((3, 3, 8, 8), np.float32)              # Keras HWIO kernel, signs +1
>>> runner = OpenVinoBinaryConv(w, size=5, threads=1)
>>> float(runner(np.ones((1, 5, 5, 8), np.float32))[0, 2, 2, 0])  # all +1: n = 3·3·8
72.0
"""

import numpy as np

__all__ = ["available", "OpenVinoBinaryConv"]


def available():
    """``(True, version)`` if openvino imports, else ``(False, reason)``."""
    try:
        import openvino
    except ImportError as e:
        return False, f"openvino is not installed ({e}); `bash scripts/install.sh bench` adds it"
    return True, openvino.__version__


class OpenVinoBinaryConv:
    """One compiled OpenVINO binary 3×3 SAME convolution; ``__call__(x_nhwc)`` → NHWC output.

    ``kernel``: a Keras HWIO kernel whose signs are the binary weights (sign(0) = +1).
    The input is transposed to OpenVINO's NCHW once per call outside the timed region
    by `set_input`; `__call__` with no argument runs the last input again.
    """

    def __init__(self, kernel, *, size, threads):
        import openvino as ov
        import openvino.opset1 as op1
        import openvino.opset8 as op8

        kh, kw, cin, cout = kernel.shape
        if (kh, kw) != (3, 3) or cin % 8:
            # OpenVINO 2026.4's CPU plugin computed wrong sums for c_in = 1 and 4 here
            # (u1 weights are packed per 8 input channels).
            raise ValueError("OpenVinoBinaryConv: 3x3 kernels with a multiple of 8 input "
                             f"channels only. Received: {kh}x{kw}, c_in={cin}")
        x = op8.parameter([1, cin, size, size], np.float32, name="x")
        zero = op8.constant(np.zeros((1, 1, 1, 1), np.float32))
        one = op8.constant(np.ones((1, 1, 1, 1), np.float32))
        bits = op8.fake_quantize(x, zero, zero, zero, one, 2)
        oihw = (np.transpose(kernel, (3, 2, 0, 1)) >= 0).astype(np.uint8)
        # A u1 Constant built from a list packs element i at bit 7 - i % 8 of its byte, but
        # the CPU BinaryConvolution reads bit i % 8: reverse each group of 8 (found by
        # comparing with a NumPy ±1 convolution; bench_kernels checks it against LCE).
        bits_lsb_first = oihw.reshape(-1, 8)[:, ::-1].reshape(-1)
        weights = ov.op.Constant(ov.Type.u1, ov.Shape(list(oihw.shape)), bits_lsb_first.tolist())
        y = op1.binary_convolution(bits, weights, [1, 1], [1, 1], [1, 1], [1, 1],
                                   "xnor-popcount", 1.0)
        y = op8.multiply(y, op8.constant(np.ones((1, cout, 1, 1), np.float32)))
        config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                  "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        self.compiled = ov.Core().compile_model(ov.Model([y], [x]), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self._x = None

    def executed_layer_types(self):
        """The layer types OpenVINO's CPU plugin really runs (e.g. 'BinaryConvolution')."""
        return sorted({n.get_rt_info()["layerType"].astype(str)
                       for n in self.compiled.get_runtime_model().get_ops()})

    def set_input(self, x_nhwc):
        self._x = np.ascontiguousarray(np.transpose(x_nhwc, (0, 3, 1, 2)), np.float32)

    def __call__(self, x_nhwc=None):
        if x_nhwc is not None:
            self.set_input(x_nhwc)
        out = self.request.infer({0: self._x})
        return np.transpose(next(iter(out.values())), (0, 2, 3, 1))
