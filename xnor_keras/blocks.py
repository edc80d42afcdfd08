"""The binary CNN block of Fig. 3 and the standard block it replaces (Table 3b).

- ``order="bacp"`` (the paper's XNOR-Net block, Fig. 3 right):
  BatchNorm → binary activation → binary conv → [ReLU] → pool. The binary activation
  (sign(I) and K) is the binary layer's own input quantizer and input scaling, so it
  sees the batch-normalized, zero-mean input, as §3.2 prescribes.
- ``order="cbap"`` (the typical block, Fig. 3 left; the ablation, and the
  block of full-precision, BWN, BinaryConnect and BinaryNet models):
  conv → BatchNorm → activation → pool. With ``activation="sign"`` the activation is an
  explicit binarization before the pooling, so pooling acts on binary values (which
  the paper shows loses information); ``activation="relu"`` gives the usual float block.

The block works for any Keras layer (convolutions, dense layers), binary or not.

Example:

>>> import tensorflow as tf
>>> from xnor_keras.blocks import binary_block
>>> from xnor_keras.layers import XnorConv2D
>>> x = tf.keras.Input((16, 16, 32))
>>> conv = XnorConv2D(64, 3, padding="same", use_bias=False)
>>> y = binary_block(x, conv, order="bacp", pool=tf.keras.layers.MaxPool2D())
>>> tf.keras.Model(x, y).output_shape
(None, 8, 8, 64)
"""

import tensorflow as tf

from xnor_keras import quantizers as xq
from xnor_keras.options import BLOCK_ORDERS

__all__ = ["binary_block", "BLOCK_ORDERS", "ACTIVATIONS"]

ACTIVATIONS = ("sign", "relu")


def binary_block(
    x,
    layer,
    *,
    order="bacp",
    pool=None,
    relu=False,
    activation="sign",
    batch_norm_momentum=0.9,
    batch_norm_epsilon=1e-4,
    name=None,
):
    """Applies ``layer`` to the Keras tensor ``x`` as one block; returns the output.

    ``layer`` is the block's (binary) convolution or dense layer, ``pool`` an optional
    pooling layer. For ``order="bacp"``, ``relu=True`` inserts the optional non-binary
    activation after the binary layer (§3.2, used for AlexNet and VGG). For
    ``order="cbap"``, ``activation`` is the block's activation: ``"sign"`` (binary, as
    BinaryNet) or ``"relu"``. BatchNorm layers are named ``{name}_bn`` when ``name`` is
    given.
    """
    if order not in BLOCK_ORDERS:
        raise ValueError(f"order must be one of {BLOCK_ORDERS}. Received: order={order!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {ACTIVATIONS}. Received: activation={activation!r}"
        )
    if relu and order != "bacp":
        raise ValueError(
            "relu adds a ReLU after the binary layer of a B-A-C-P block; for C-B-A-P use "
            f"activation='relu'. Received: relu=True, order={order!r}"
        )

    def sub(suffix):
        return None if name is None else f"{name}_{suffix}"

    batch_norm = tf.keras.layers.BatchNormalization(
        momentum=batch_norm_momentum, epsilon=batch_norm_epsilon, name=sub("bn")
    )
    if order == "bacp":
        x = layer(batch_norm(x))
        if relu:
            x = tf.keras.layers.ReLU(name=sub("relu"))(x)
    else:
        x = batch_norm(layer(x))
        if activation == "sign":
            x = xq.BinaryInput(name=sub("sign"))(x)
        else:
            x = tf.keras.layers.ReLU(name=sub("relu"))(x)
    if pool is not None:
        x = pool(x)
    return x
