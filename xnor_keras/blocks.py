"""The binary CNN block of Fig. 3 and the standard block it replaces (Table 3b).

- ``order="bacp"`` (the paper's XNOR-Net block, Fig. 3 right):
  BatchNorm → binary activation → binary conv → [ReLU] → pool. The binary activation
  (sign(I) and K) is the binary conv layer's own input quantizer and input scaling,
  so it sees the batch-normalized, zero-mean input, as §3.2 prescribes.
- ``order="cbap"`` (the typical block, Fig. 3 left, the ablation):
  binary conv → BatchNorm → binary activation → pool. The activation is an explicit
  sign layer before the pooling, so pooling acts on binary values (which the paper
  shows loses information).

Example:

>>> import tensorflow as tf
>>> from xnor_keras.blocks import binary_block
>>> x = tf.keras.Input((16, 16, 32))
>>> y = binary_block(x, 64, 3, order="bacp", pool="max")
>>> tf.keras.Model(x, y).output_shape
(None, 8, 8, 64)
"""

import tensorflow as tf

from xnor_keras import layers as xl
from xnor_keras import quantizers as xq

__all__ = ["binary_block", "BLOCK_ORDERS", "POOLS"]

BLOCK_ORDERS = ("bacp", "cbap")
POOLS = (None, "max", "avg")


def binary_block(
    x,
    filters,
    kernel_size,
    *,
    order="bacp",
    strides=1,
    padding="same",
    pool=None,
    pool_size=2,
    pool_strides=None,
    relu=False,
    conv=xl.XnorConv2D,
    batch_norm_momentum=0.9,
    batch_norm_epsilon=1e-4,
    name=None,
    **conv_kwargs,
):
    """Applies one binary block to the Keras tensor ``x`` and returns its output.

    ``conv`` is the binary convolution class (`XnorConv2D` by default; any layer with
    Conv2D's arguments works, e.g. `BinaryWeightConv2D` or a plain `Conv2D`), and
    ``conv_kwargs`` are passed to it (``alpha``, ``input_scaling``, ...). ``relu``
    inserts the optional non-binary activation after the binary convolution
    (§3.2, used for AlexNet and VGG). ``pool`` is None, "max" or "avg".
    """
    if order not in BLOCK_ORDERS:
        raise ValueError(f"order must be one of {BLOCK_ORDERS}. Received: order={order!r}")
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}. Received: pool={pool!r}")

    def sub(suffix):
        return None if name is None else f"{name}_{suffix}"

    def batch_norm(t):
        return tf.keras.layers.BatchNormalization(
            momentum=batch_norm_momentum, epsilon=batch_norm_epsilon, name=sub("bn")
        )(t)

    conv_layer = conv(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False,
        name=sub("conv"), **conv_kwargs,
    )
    if order == "bacp":
        x = conv_layer(batch_norm(x))
        if relu:
            x = tf.keras.layers.ReLU(name=sub("relu"))(x)
    else:
        x = batch_norm(conv_layer(x))
        x = xq.BinaryInput(name=sub("sign"))(x)
    if pool == "max":
        x = tf.keras.layers.MaxPool2D(pool_size, pool_strides, padding="same",
                                      name=sub("pool"))(x)
    elif pool == "avg":
        x = tf.keras.layers.AveragePooling2D(pool_size, pool_strides, padding="same",
                                             name=sub("pool"))(x)
    return x
