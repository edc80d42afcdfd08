"""XNOR-Net quantizers in larq's two forms: a function with a custom gradient and a
serializable `larq.quantizers.Quantizer` class.

| function          | class            | forward                         | backward                             |
|-------------------|------------------|---------------------------------|--------------------------------------|
| `xnor_weight`     | `XnorWeight`     | α·sign(W), α by eq. 6           | g·(1/n + α·1{abs(W) ≤ 1}) or clipped STE |
| `binary_input`    | `BinaryInput`    | sign(x)                         | g·1{abs(x) ≤ 1}                      |
| `kbit`            | `KBit`           | q_k(clip(x, -1, 1))             | g·1{abs(x) ≤ 1}                      |
| `binary_gradient` | `BinaryGradient` | x                               | max_{i∈S} abs(g_i)·sign(g), S by mode |

sign(0) = +1 everywhere (`larq.math.sign`), which larq-compute-engine needs to
recognise binarized tensors. Every class is registered as a Keras custom object under
its class name and a snake_case alias, so ``kernel_quantizer="xnor_weight"`` resolves
and saved models load without a ``custom_object_scope``.
"""

import tensorflow as tf
from larq import math as lq_math
from larq import utils as lq_utils
from larq.quantizers import _BaseQuantizer

from xnor_keras.options import BINARY_GRADIENTS, DEFAULT_BINARY_GRADIENT, WEIGHT_GRADIENTS
from xnor_keras.scaling import mean_abs_alpha
from xnor_keras.validation import one_of, positive_int

__all__ = [
    "xnor_weight",
    "binary_input",
    "kbit",
    "binary_gradient",
    "XnorWeight",
    "BinaryInput",
    "KBit",
    "BinaryGradient",
    "WEIGHT_GRADIENTS",
    "BINARY_GRADIENTS",
]



def _clipped(x, dy):
    """The clipped straight-through gradient: dy where |x| ≤ 1, else 0."""
    return tf.where(tf.abs(x) <= 1.0, dy, 0.0)


def _check_weight_gradient(gradient):
    one_of("gradient", gradient, WEIGHT_GRADIENTS)


def xnor_weight(w: tf.Tensor, *, gradient: str = "paper") -> tf.Tensor:
    r"""Binary weights with the optimal per-filter scale: W̃ = α·sign(W) (eqs. 4-6).

    α = mean|W| over every axis but the last (`xnor_keras.scaling.mean_abs_alpha`,
    eq. 6). Every output value is exactly +α_c or -α_c, so larq-compute-engine folds
    α into the binary convolution's output multiplier.

    Backward (§3.1, "Training Binary-Weights-Networks"), with n elements per filter:

    \\[ \frac{\partial C}{\partial W_i} = \frac{\partial C}{\partial \widetilde{W}_i}
        \left(\frac{1}{n} + \alpha \, 1_{|W_i| \le 1}\right) \\]

    ``gradient="ste"`` uses the clipped straight-through estimator
    ∂C/∂W_i = ∂C/∂W̃_i·1{|W_i| ≤ 1} instead.

    Example:

    >>> xnor_weight(tf.constant([[1.0, -2.0], [-3.0, 0.0]])).numpy()
    array([[ 2., -1.],
           [-2.,  1.]], dtype=float32)
    """
    _check_weight_gradient(gradient)

    # Both directions are written as selects between per-filter constants: the same
    # values as α·sign(W) and g·(1/n + α·1{...}) bit for bit, in fewer passes over the
    # kernel (it is ResNet-18's largest elementwise cost per training step).
    @tf.custom_gradient
    def _call(w):
        alpha = mean_abs_alpha(w)

        def grad(dy):
            if gradient == "ste":
                return _clipped(w, dy)
            inv_n = 1.0 / tf.cast(tf.size(w) // tf.shape(w)[-1], dy.dtype)
            return tf.where(tf.abs(w) <= 1.0, dy * (inv_n + alpha), dy * inv_n)

        return tf.where(w >= 0.0, alpha, -alpha), grad  # sign(0) = +1, as lq.math.sign

    return _call(w)


def binary_input(x: tf.Tensor) -> tf.Tensor:
    r"""Binarizes activations: H = sign(x) (eq. 9), clipped straight-through gradient.

    \\[ q(x) = \operatorname{sign}(x), \qquad
        \frac{\partial q}{\partial x} = 1_{|x| \le 1} \\]

    Example:

    >>> binary_input(tf.constant([-0.5, 0.0, 2.0])).numpy()
    array([-1.,  1.,  1.], dtype=float32)
    """

    @tf.custom_gradient
    def _call(x):
        def grad(dy):
            return _clipped(x, dy)

        return lq_math.sign(x), grad

    return _call(x)


def kbit(x: tf.Tensor, *, k: int) -> tf.Tensor:
    r"""The k-bit quantizer q_k of §4.2's ablations, with a straight-through gradient.

    \\[ q_k(x) = 2\left(\frac{\operatorname{round}\left((2^k - 1)\frac{x + 1}{2}\right)}
        {2^k - 1} - \frac{1}{2}\right), \quad x \in [-1, 1] \\]

    x is clipped to [-1, 1] first, giving 2^k evenly spaced levels from -1 to +1;
    the gradient is g·1{|x| ≤ 1} (the clip's own derivative). ``round`` rounds half to
    even, so k = 1 is a binarization with levels {-1, +1} that differs from sign only
    at x = 0, where q_1(0) = -1 (sign(0) = +1) — use `binary_input` for true sign.

    Example:

    >>> kbit(tf.constant([-1.0, -0.2, 0.4, 3.0]), k=2).numpy().round(4)
    array([-1.    , -0.3333,  0.3333,  1.    ], dtype=float32)
    """
    positive_int("k", k)
    levels = float(2**k - 1)

    @tf.custom_gradient
    def _call(x):
        def grad(dy):
            return _clipped(x, dy)

        clipped = tf.clip_by_value(x, -1.0, 1.0)
        return 2.0 * (tf.round(levels * (clipped + 1.0) / 2.0) / levels - 0.5), grad

    return _call(x)


def _check_binary_gradient_mode(mode):
    one_of("mode", mode, BINARY_GRADIENTS)


def _binary_gradient_axes(mode, rank):
    """The axes of an NHWC (or N…C) gradient that share one scale under ``mode``."""
    return {"position": (rank - 1,), "example": tuple(range(1, rank)),
            "channel": tuple(range(rank - 1)), "tensor": tuple(range(rank))}[mode]


def binary_gradient(x: tf.Tensor, *, mode: str = DEFAULT_BINARY_GRADIENT) -> tf.Tensor:
    r"""Identity forward; binarizes the gradient flowing back (§3.2, "Binary Gradient").

    For each sub-tensor S of the gradient g that ``mode`` names,

    \\[ g_S \mapsto \max_{i \in S} |g_i| \cdot \operatorname{sign}(g_S) \\]

    with sign(0) = 0, so exactly-zero gradients (e.g. behind a ReLU or a max-pool)
    stay zero. Modes, for a gradient of shape (N, H, W, C) (dense: (N, C)):

    | mode         | one scale per                       | max over      |
    |--------------|-------------------------------------|---------------|
    | ``position`` | example and spatial position (n,y,x) | C            |
    | ``example``  | example n                           | H, W, C       |
    | ``channel``  | output channel c                    | N, H, W       |
    | ``tensor``   | the whole gradient                  | N, H, W, C    |

    For a dense layer there are no spatial axes: ``position`` is then one scale per
    example, the same as ``example``.

    **Which reading the paper means.** §3.2 binarizes g^in "similar to binarization in
    the forward pass", with max_i |g_i^in| in place of eq. 6's mean. In the forward
    pass the convolution's real-valued operand I gets one scale per sub-tensor, β
    for each position (K, eq. 11: A is the mean over channels at each position).
    In the backward convolution that the paper names as the bottleneck (the weight
    filters convolved with g^in), g^in plays the role of I, so the faithful analogue
    is one scale per position, the max over channels: ``position``, the default
    (``binary_gradient=True``). ``tensor`` (one max for the whole batch) is the
    literal "max_i" with i over every entry; it gives every entry of every example
    the batch's single largest magnitude.

    **Which gradient.** The binary layers apply this to y = q(I) ⊛ q(W) itself,
    before ⊙ learned α, ⊙ K/β, bias and activation: the binarized g^in = ∂C/∂y is
    the gradient entering the convolution's backward pass and feeds both of its
    products, ∂C/∂I = g^in ⊛ q(W)ᵀ (the convolution with the weight filters that
    §3.2 names) and ∂C/∂W = q(I)ᵀ ⊛ g^in. With sign(I) and a binary g^in both are
    binary operations, which is what makes "a very efficient training procedure
    using binary operations". The layers' ``binary_gradient_for`` option narrows it
    to one product: ``"inputs"`` (∂C/∂I only: the convolution with the weight filters
    that §3.2 names as the bottleneck) or ``"weights"`` (∂C/∂W only, the gradient
    passed down stays real-valued); README, "Binary gradient", has the measured runs.

    Example:

    >>> x = tf.constant([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    >>> g = tf.constant([[0.5, -2.0, 0.0], [0.25, 0.1, -0.2]])
    >>> with tf.GradientTape() as tape:
    ...     tape.watch(x)
    ...     y = tf.reduce_sum(binary_gradient(x, mode="position") * g)
    >>> tape.gradient(y, x).numpy()
    array([[ 2.  , -2.  ,  0.  ],
           [ 0.25,  0.25, -0.25]], dtype=float32)
    """
    _check_binary_gradient_mode(mode)

    @tf.custom_gradient
    def _call(x):
        def grad(dy):
            axes = _binary_gradient_axes(mode, dy.shape.rank)
            return tf.reduce_max(tf.abs(dy), axis=axes, keepdims=True) * tf.sign(dy)

        return tf.identity(x), grad

    return _call(x)


class _XnorQuantizer(_BaseQuantizer):
    """Shared plumbing: a metrics-aware larq quantizer that applies ``self._fn``.

    On larq's `_BaseQuantizer`, so ``larq.context.metrics_scope(["flip_ratio"])``
    (or ``metrics=["flip_ratio"]``) tracks how many quantized values change per step;
    ``_tracked(outputs)`` is what the metric compares (the outputs themselves, or
    their signs where the outputs carry a float scale).
    """

    def call(self, inputs):
        outputs = self._fn(inputs)
        super().call(self._tracked(outputs))  # larq's metrics; returns its argument
        return outputs

    def _tracked(self, outputs):
        return outputs


@lq_utils.register_alias("xnor_weight")
@lq_utils.register_keras_custom_object
class XnorWeight(_XnorQuantizer):
    r"""Weight quantizer W̃ = α·sign(W), α = mean|W| per output filter (eq. 6).

    See `xnor_weight` for the forward and backward math. ``gradient`` is ``"paper"``
    (the paper's 1/n + α·1{|W| ≤ 1} rule) or ``"ste"`` (clipped straight-through).

    Example:

    >>> import larq as lq
    >>> layer = lq.layers.QuantDense(4, kernel_quantizer="xnor_weight")
    >>> layer(tf.ones((1, 3))).shape
    TensorShape([1, 4])
    """

    precision = 1

    def __init__(self, *, gradient: str = "paper", **kwargs):
        _check_weight_gradient(gradient)
        self.gradient = gradient
        super().__init__(**kwargs)

    def _fn(self, inputs):
        return xnor_weight(inputs, gradient=self.gradient)

    def _tracked(self, outputs):
        # ±α_c with α_c < 1 would all cast to 0 in larq's int8 flip-ratio state.
        return lq_math.sign(outputs)

    def get_config(self):
        return {**super().get_config(), "gradient": self.gradient}


@lq_utils.register_alias("binary_input")
@lq_utils.register_keras_custom_object
class BinaryInput(_XnorQuantizer):
    r"""Activation quantizer sign(x) with the clipped straight-through gradient.

    See `binary_input`. Example:

    >>> BinaryInput()(tf.constant([-0.5, 0.0])).numpy()
    array([-1.,  1.], dtype=float32)
    """

    precision = 1

    def _fn(self, inputs):
        return binary_input(inputs)


@lq_utils.register_alias("k_bit")
@lq_utils.register_keras_custom_object
class KBit(_XnorQuantizer):
    r"""The k-bit quantizer q_k on inputs clipped to [-1, 1] (see `kbit`).

    ``k`` is keyword-only and at least 1; ``precision`` is k. Example:

    >>> KBit(k=2)(tf.constant([-0.2, 0.4])).numpy().round(4)
    array([-0.3333,  0.3333], dtype=float32)
    """

    def __init__(self, *, k: int = 2, **kwargs):
        positive_int("k", k)
        self.k = k
        self.precision = k
        super().__init__(**kwargs)

    def _fn(self, inputs):
        return kbit(inputs, k=self.k)

    def get_config(self):
        return {**super().get_config(), "k": self.k}


@lq_utils.register_alias("binary_gradient")
@lq_utils.register_keras_custom_object
class BinaryGradient(_XnorQuantizer):
    r"""Identity forward, binarized gradient max_{i∈S}|g_i|·sign(g_S) backward (§3.2).

    See `binary_gradient` for the modes (``"position"``, the default, ``"example"``,
    ``"channel"``, ``"tensor"``). It quantizes gradients, not values, so ``precision``
    is None (the forward values keep their precision). Example:

    >>> BinaryGradient(mode="channel")(tf.constant([1.5])).numpy()
    array([1.5], dtype=float32)
    """

    precision = None

    def __init__(self, *, mode: str = DEFAULT_BINARY_GRADIENT, **kwargs):
        _check_binary_gradient_mode(mode)
        self.mode = mode
        super().__init__(**kwargs)

    def _fn(self, inputs):
        return binary_gradient(inputs, mode=self.mode)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
