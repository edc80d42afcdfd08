"""The XNOR-Net scaling factors: α for weights (eq. 6), β and K for inputs (eqs. 10, 11).

Each equation of the paper has exactly one home here; quantizers and layers call these.
"""

import tensorflow as tf

__all__ = ["mean_abs_alpha", "dense_input_scale", "conv_input_scale"]


def mean_abs_alpha(w: tf.Tensor) -> tf.Tensor:
    r"""Optimal weight scale α* = ‖W‖₁ / n per output filter (eq. 6).

    α is the mean of |W| over every axis but the last (the output-filter axis of Keras
    kernels: ``(kh, kw, c_in, c_out)`` for convolutions, ``(n_in, n_out)`` for dense).

    \\[ \alpha^* = \frac{1}{n} \sum_i |W_i|, \quad n = c \cdot w \cdot h \\]

    Returns a tensor of shape ``(c_out,)``.

    Example:

    >>> mean_abs_alpha(tf.constant([[1.0, -2.0], [-3.0, 0.0]])).numpy()
    array([2., 1.], dtype=float32)
    """
    w = tf.convert_to_tensor(w)
    return tf.reduce_mean(tf.abs(w), axis=list(range(w.shape.rank - 1)))


def dense_input_scale(x: tf.Tensor) -> tf.Tensor:
    r"""Input scale β* = ‖X‖₁ / n of a dot product (eq. 10), over the last axis.

    \\[ \beta^* = \frac{1}{n} \sum_i |X_i| \\]

    Returns a tensor shaped like ``x`` with the last axis kept as size 1, so it
    broadcasts over the output units of a dense layer.

    Example:

    >>> dense_input_scale(tf.constant([[1.0, -3.0], [0.5, 0.5]])).numpy()
    array([[2. ],
           [0.5]], dtype=float32)
    """
    return tf.reduce_mean(tf.abs(x), axis=-1, keepdims=True)


def conv_input_scale(
    inputs: tf.Tensor,
    kernel_size,
    *,
    strides=(1, 1),
    padding: str = "valid",
    dilation_rate=(1, 1),
) -> tf.Tensor:
    r"""Per-position input scale K = A ⊛ k of a binary convolution (eq. 11).

    A = Σ_c |I_{:,:,c}| / c is the mean of |I| over channels, and k is a
    ``kernel_size`` box filter with every entry 1/(w·h). K is A convolved with k using
    the convolution's own strides, padding (zeros outside the input, as in the binary
    convolution itself) and dilation, so ``K[n, i, j, 0]`` is the β of eq. 10 for the
    sub-tensor that produces output position (i, j).

    \\[ \mathbf{K} = \mathbf{A} * \mathbf{k}, \quad
        \mathbf{A} = \frac{\sum_c |\mathbf{I}_{c,:,:}|}{c}, \quad
        \mathbf{k}_{ij} = \frac{1}{w \times h} \\]

    ``inputs`` is NHWC; returns a tensor of shape ``(N, H_out, W_out, 1)``.

    Example:

    >>> x = tf.ones((1, 4, 4, 3))
    >>> conv_input_scale(x, (3, 3), padding="same")[0, :2, :2, 0].numpy()
    array([[0.44444445, 0.6666667 ],
           [0.6666667 , 1.        ]], dtype=float32)
    """
    kh, kw = kernel_size
    a = tf.reduce_mean(tf.abs(inputs), axis=-1, keepdims=True)
    box = tf.fill((kh, kw, 1, 1), tf.cast(1.0 / (kh * kw), a.dtype))
    return tf.nn.conv2d(
        a,
        box,
        strides=list(strides),
        padding=padding.upper(),
        dilations=list(dilation_rate),
    )
