"""Cost accounting: what a float32 twin of each layer would store and compute.

`lower` records these per layer in its `LayerPlan` (``float_twin_params``,
``float_twin_macs``); the conversion report compares them with the binary model.

Example: a 3×3 convolution from 16 to 32 channels with a bias, on an 8×8 output,
stores 3·3·16·32 + 32 = 4640 parameters and computes 8·8·32 · 3·3·16 = 294912 MACs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def inference_params(layer) -> int:
    """Parameters a float32 version of ``layer`` stores for inference."""
    if isinstance(layer, tf.keras.layers.BatchNormalization):
        return 2 * int(layer.moving_mean.shape[0])  # folded scale and offset
    if hasattr(layer, "kernel"):
        count = int(np.prod(layer.kernel.shape))
        if getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            count += int(np.prod(layer.bias.shape))
        return count
    return sum(int(np.prod(w.shape)) for w in layer.weights)


def float_macs(layer) -> int:
    """MACs of a float version of a conv or dense layer (0 for others)."""
    if not hasattr(layer, "kernel"):
        return 0
    try:
        output_shape = layer.output_shape
    except AttributeError:
        return 0
    if isinstance(output_shape, list):
        output_shape = output_shape[0]
    kernel = layer.kernel.shape
    outputs = int(np.prod([d for d in output_shape[1:] if d is not None]))
    if len(kernel) == 4:
        return outputs * int(kernel[0] * kernel[1] * kernel[2])
    if len(kernel) == 2:
        return outputs * int(kernel[0])
    return 0
