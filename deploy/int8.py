"""Affine int8/uint8 (de)quantization of a TFLite tensor, shared by every runner.

TFLite stores a quantized tensor as integers q with real value
``x = (q − zero_point) · scale``; quantizing is the inverse, rounded and clipped to
the integer type's range: ``q = clip(round(x / scale) + zero_point)``.

Example:

>>> quant = quantization_params(np.int8, [0.5], [-3])
>>> quantize(np.array([1.0], np.float32), quant)
array([-1], dtype=int8)
>>> dequantize(np.array([-1], np.int8), quant)
array([1.], dtype=float32)
"""

from __future__ import annotations

import numpy as np

__all__ = ["quantization_params", "quantize", "dequantize"]


def quantization_params(dtype, scale, zero_point):
    """``(dtype, scale, zero_point)`` of an int8/uint8 tensor, ``None`` for float ones.

    ``scale``/``zero_point`` may be scalars or the per-tensor lists TFLite reports.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or dtype.itemsize != 1:
        return None
    if isinstance(scale, (list, tuple)):
        scale = scale[0] if scale else 0.0
    if isinstance(zero_point, (list, tuple)):
        zero_point = zero_point[0] if zero_point else 0
    return dtype, float(scale or 1.0), int(zero_point or 0)


def quantize(x, quant):
    """float32 ``x`` → the tensor's integer type: round(x / scale) + zero_point, clipped."""
    if quant is None:
        return x
    dtype, scale, zero_point = quant
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(y, quant):
    """An integer tensor → float32: (y − zero_point)·scale; float tensors pass through."""
    if quant is None:
        return np.asarray(y, np.float32)
    _, scale, zero_point = quant
    return ((np.asarray(y, np.float32) - zero_point) * scale).astype(np.float32)
