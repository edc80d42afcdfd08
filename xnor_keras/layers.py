"""Binary-Weight-Network and XNOR-Network layers (§3.1, §3.2), built on larq.

| layer                | mirrors       | computes                                           |
|----------------------|---------------|----------------------------------------------------|
| `BinaryWeightConv2D` | `Conv2D`      | I ⊛ (α·sign(W))                      (eq. 1)       |
| `BinaryWeightDense`  | `Dense`       | X · (α·sign(W))                      (eq. 1)       |
| `XnorConv2D`         | `Conv2D`      | (sign(I) ⊛ sign(W)) ⊙ K·α            (eq. 11)      |
| `XnorDense`          | `Dense`       | (sign(X) · sign(W)) · β·α            (eq. 10)      |

Each takes exactly the constructor arguments of the Keras layer it mirrors (same
defaults; channels_last only) plus keyword-only options:

- ``alpha``: ``"mean_abs"`` (eq. 6, α = mean|W| per filter, the default),
  ``"learned"`` (sign(W) times a trainable per-filter scale: Table 3a's "separate
  layer"), or ``"none"`` (plain sign(W): the BinaryConnect / BinaryNet baselines).
- ``weight_gradient``: ``"paper"`` (∂C/∂W̃·(1/n + α·1{|W| ≤ 1}), only with
  ``alpha="mean_abs"``) or ``"ste"`` (clipped straight-through); None picks
  ``"paper"`` for ``alpha="mean_abs"`` and ``"ste"`` otherwise.
- ``binary_gradient``: False, or binarize the gradient ∂C/∂y entering the
  convolution's (or matrix product's) backward pass, which feeds both ∂C/∂I and ∂C/∂W
  (§3.2 "Binary Gradient"): True (= ``"position"``), or the sub-tensor that shares one
  scale max|g|: ``"position"`` (max over channels at each example and position; per
  example in dense layers), ``"example"``, ``"channel"`` or ``"tensor"``
  (`xnor_keras.quantizers.binary_gradient`).
- ``binary_gradient_for``: which products of the backward pass take the binarized
  gradient: ``"both"`` (the default: ∂C/∂I = g ⊛ q(W)ᵀ and ∂C/∂W = q(I)ᵀ ⊛ g),
  ``"weights"`` (∂C/∂W only; the gradient passed back to the previous layer stays
  real-valued) or ``"inputs"`` (∂C/∂I only). Only with ``binary_gradient`` on.
- ``weight_bits``: None for binary weights, or k for the k-bit quantizer q_k.
- XNOR layers only: ``input_scaling`` (K for convolutions, β for dense; False is the
  paper's "removing β" experiment) and ``input_bits`` (None for sign, or k for q_k).

The options are declared once, with their values and checks, in
`xnor_keras.options.BinaryOptions`. `float_twin_config` turns a layer's config into
the config of the Keras float layer it mirrors.

The output is y = op(q_in(I), q_w(W)), then ⊙ learned α, ⊙ K (or β), + bias,
activation. The quantizers live in `xnor_keras.quantizers` and the scaling factors
in `xnor_keras.scaling`; these layers only compose them.
"""

import contextlib
import logging

import larq as lq
import tensorflow as tf
from larq import context

from xnor_keras import quantizers as xq
from xnor_keras import scaling
from xnor_keras.options import (ALPHA_MODES, BinaryOptions, Scope, binary_gradient_mode,
                                check_option)

__all__ = [
    "BinaryWeightConv2D",
    "BinaryWeightDense",
    "XnorConv2D",
    "XnorDense",
    "ALPHA_MODES",
    "float_twin_config",
]

# larq config entries that are not Keras arguments (these layers derive them from
# their own options, so their configs leave them out).
_LARQ_CONFIG = ("input_quantizer", "kernel_quantizer", "depthwise_quantizer",
                "pointwise_quantizer", "pad_values", "metrics")


def float_twin_config(config):
    """A binary or larq layer's config minus larq's quantizer entries and the binary
    options: the config of the Keras float layer it mirrors (same weights' shapes).

    >>> conv = XnorConv2D(8, 3, padding="same", input_scaling=False)
    >>> tf.keras.layers.Conv2D.from_config(float_twin_config(conv.get_config())).padding
    'same'
    """
    return {k: v for k, v in BinaryOptions.strip(config).items() if k not in _LARQ_CONFIG}


def _kernel_quantizer(alpha, weight_gradient, weight_bits):
    """The weight quantizer that an ``alpha`` / gradient / bit-width choice means."""
    check_option("alpha", alpha)
    check_option("weight_gradient", weight_gradient, optional=True)
    check_option("weight_bits", weight_bits)
    if weight_bits is not None:
        if alpha == "mean_abs":
            raise ValueError(
                "alpha='mean_abs' (eq. 6) scales binary weights; with k-bit weights use "
                f"alpha='learned' or alpha='none'. Received: alpha='mean_abs', "
                f"weight_bits={weight_bits}"
            )
        if weight_gradient == "paper":
            raise ValueError(
                "weight_gradient='paper' is the gradient of α·sign(W); k-bit weights use "
                f"the straight-through gradient. Received: weight_gradient='paper', "
                f"weight_bits={weight_bits}"
            )
        return xq.KBit(k=weight_bits)
    if alpha == "mean_abs":
        return xq.XnorWeight(gradient=weight_gradient or "paper")
    if weight_gradient == "paper":
        raise ValueError(
            "weight_gradient='paper' needs alpha='mean_abs' (the gradient involves α of "
            f"eq. 6). Received: weight_gradient='paper', alpha={alpha!r}"
        )
    return lq.quantizers.SteSign()


@contextlib.contextmanager
def _no_starved_weights_warning(kernel_quantizer):
    """Silences larq's "starved weights" warning where it does not apply.

    The paper's weight gradient has a 1/n term, so weights outside [-1, 1] still get
    a gradient; for the straight-through variants the warning stays.
    """
    if not (isinstance(kernel_quantizer, xq.XnorWeight) and kernel_quantizer.gradient == "paper"):
        yield
        return
    logger = logging.getLogger("larq.layers_base")

    def drop(record):
        return "starved weights" not in record.getMessage()

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _input_quantizer(input_bits):
    check_option("input_bits", input_bits)
    return xq.BinaryInput() if input_bits is None else xq.KBit(k=input_bits)


class _BinaryLayer:
    """Options, weights, output path and config shared by the four binary layers.

    A cooperative mixin: its ``__init__`` takes the binary options (keyword-only),
    validates them, derives the larq quantizers and passes everything else up the
    ``super().__init__`` chain to the larq layer. Subclasses implement
    ``_product(x, kernel)`` (the convolution or matrix product on quantized
    operands) and ``_input_scale(inputs)`` (K or β from the raw inputs).
    """

    _binary_inputs = False  # XNOR layers binarize (or k-bit quantize) their inputs

    def __init__(self, *, alpha, weight_gradient, binary_gradient, binary_gradient_for,
                 weight_bits, input_scaling=None, input_bits=None, **kwargs):
        if not self._binary_inputs and (input_scaling is not None or input_bits is not None):
            raise TypeError(
                f"{type(self).__name__} has float inputs: input_scaling and input_bits "
                f"apply to XNOR layers. Received: input_scaling={input_scaling!r}, "
                f"input_bits={input_bits!r}"
            )
        self.alpha = alpha
        self.weight_gradient = weight_gradient
        self.binary_gradient = binary_gradient
        self.binary_gradient_for = binary_gradient_for
        self.weight_bits = weight_bits
        self.input_scaling = bool(input_scaling) if input_scaling is None else input_scaling
        self.input_bits = input_bits
        check_option("binary_gradient", binary_gradient)
        self._binary_gradient_mode = binary_gradient_mode(binary_gradient)
        check_option("binary_gradient_for", binary_gradient_for)
        if binary_gradient_for != "both" and not self._binary_gradient_mode:
            raise ValueError(f"binary_gradient_for={binary_gradient_for!r} needs binary_gradient "
                             f"on. Received: binary_gradient={binary_gradient!r}")
        check_option("input_scaling", self.input_scaling)
        kernel_quantizer = _kernel_quantizer(alpha, weight_gradient, weight_bits)
        input_quantizer = _input_quantizer(input_bits) if self._binary_inputs else None
        with _no_starved_weights_warning(kernel_quantizer):
            super().__init__(input_quantizer=input_quantizer,
                             kernel_quantizer=kernel_quantizer, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        if self.alpha == "learned":
            self.alpha_scale = self.add_weight(
                name="alpha_scale",
                shape=(self.kernel.shape[-1],),
                initializer="ones",
                trainable=True,
                dtype=self.dtype,
            )

    def call(self, inputs):
        x = self.input_quantizer(inputs) if self.input_quantizer else inputs
        with context.quantized_scope(True):
            y = self._binarized_gradient_product(x, self.kernel)
        if self.alpha == "learned":
            y = y * self.alpha_scale
        if self.input_scaling:
            y = y * self._input_scale(inputs)
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias)
        if self.activation is not None:
            y = self.activation(y)
        return y

    def _binarized_gradient_product(self, x, kernel):
        """``_product(x, kernel)`` whose backward pass binarizes the gradient (§3.2) for
        the products ``binary_gradient_for`` names.

        For one product only, the forward pass computes it twice: ``binarized``, whose
        gradient reaches only the named operand (W for ``"weights"``, I for ``"inputs"``)
        and is binarized, and ``plain``, whose real-valued gradient reaches only the
        other one. It returns plain + (binarized − stop(binarized)): plain's value
        exactly (the second term is 0), each gradient from its own copy.
        """
        mode = self._binary_gradient_mode
        if not mode:
            return self._product(x, kernel)
        if self.binary_gradient_for == "both":
            return xq.binary_gradient(self._product(x, kernel), mode=mode)
        binary_for_weights = self.binary_gradient_for == "weights"
        plain = (self._product(x, tf.stop_gradient(kernel)) if binary_for_weights else
                 self._product(tf.stop_gradient(x), kernel))
        binarized = xq.binary_gradient(
            self._product(tf.stop_gradient(x), kernel) if binary_for_weights else
            self._product(x, tf.stop_gradient(kernel)), mode=mode)
        return plain + (binarized - tf.stop_gradient(binarized))

    def get_config(self):
        config = {k: v for k, v in super().get_config().items() if k not in _LARQ_CONFIG}
        scopes = (Scope.WEIGHT, Scope.INPUT) if self._binary_inputs else (Scope.WEIGHT,)
        config.update({name: getattr(self, name) for name in BinaryOptions.field_names(*scopes)})
        return config


class _BinaryConv2D(_BinaryLayer, lq.layers.QuantConv2D):
    def __init__(self, *, data_format=None, groups=1, **kwargs):
        if data_format not in (None, "channels_last"):
            raise ValueError(
                "xnor_keras layers support channels_last only. "
                f"Received: data_format={data_format!r}"
            )
        if kwargs.get("input_scaling") and groups != 1:
            raise ValueError(
                "input_scaling (K of eq. 11) is defined for ungrouped convolutions; pass "
                f"input_scaling=False for groups > 1. Received: groups={groups}"
            )
        # pad_values=0: zero padding after binarization, as Conv2D.
        super().__init__(data_format=data_format, groups=groups, pad_values=0.0, **kwargs)

    def _product(self, x, kernel):
        return self.convolution_op(x, kernel)

    def _input_scale(self, inputs):
        return scaling.conv_input_scale(
            inputs,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
        )


class _BinaryDense(_BinaryLayer, lq.layers.QuantDense):
    def _product(self, x, kernel):
        if x.shape.rank == 2:
            return tf.matmul(x, kernel)
        y = tf.tensordot(x, kernel, [[x.shape.rank - 1], [0]])
        y.set_shape(x.shape[:-1].concatenate(kernel.shape[-1:]))
        return y

    def _input_scale(self, inputs):
        return scaling.dense_input_scale(inputs)


@lq.utils.register_keras_custom_object
class BinaryWeightConv2D(_BinaryConv2D):
    """Binary-Weight-Network 2D convolution: I ⊛ (α·sign(W)) (eq. 1), float inputs.

    Same arguments as `tf.keras.layers.Conv2D`, plus the keyword-only options of
    `xnor_keras.layers` (``alpha``, ``weight_gradient``, ``binary_gradient``,
    ``weight_bits``).

    Example:

    >>> layer = BinaryWeightConv2D(16, 3, padding="same", use_bias=False)
    >>> layer(tf.ones((2, 8, 8, 3))).shape
    TensorShape([2, 8, 8, 16])
    """

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format=None, dilation_rate=(1, 1), groups=1, activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, *, alpha="mean_abs",
                 weight_gradient=None, binary_gradient=False, binary_gradient_for="both",
                 weight_bits=None, **kwargs):
        super().__init__(
            filters=filters, kernel_size=kernel_size, strides=strides, padding=padding,
            data_format=data_format, dilation_rate=dilation_rate, groups=groups,
            activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
            alpha=alpha, weight_gradient=weight_gradient,
            binary_gradient=binary_gradient, binary_gradient_for=binary_gradient_for,
            weight_bits=weight_bits, **kwargs)


@lq.utils.register_keras_custom_object
class XnorConv2D(_BinaryConv2D):
    """XNOR-Network 2D convolution: (sign(I) ⊛ sign(W)) ⊙ K·α (eq. 11).

    K (`xnor_keras.scaling.conv_input_scale`) is the channel-mean of |I| box-filtered
    with this layer's kernel size, strides, padding and dilation. Same arguments as
    `tf.keras.layers.Conv2D`, plus the keyword-only options of `xnor_keras.layers`
    (``alpha``, ``input_scaling``, ``weight_gradient``, ``binary_gradient``,
    ``weight_bits``, ``input_bits``).

    Example:

    >>> layer = XnorConv2D(16, 3, strides=2, padding="same", use_bias=False)
    >>> layer(tf.random.normal((2, 8, 8, 3))).shape
    TensorShape([2, 4, 4, 16])
    """

    _binary_inputs = True

    def __init__(self, filters, kernel_size, strides=(1, 1), padding="valid",
                 data_format=None, dilation_rate=(1, 1), groups=1, activation=None,
                 use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, *, alpha="mean_abs",
                 input_scaling=True, weight_gradient=None, binary_gradient=False,
                 binary_gradient_for="both", weight_bits=None, input_bits=None, **kwargs):
        super().__init__(
            filters=filters, kernel_size=kernel_size, strides=strides, padding=padding,
            data_format=data_format, dilation_rate=dilation_rate, groups=groups,
            activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
            alpha=alpha, weight_gradient=weight_gradient,
            binary_gradient=binary_gradient, binary_gradient_for=binary_gradient_for,
            weight_bits=weight_bits,
            input_scaling=input_scaling, input_bits=input_bits, **kwargs)


@lq.utils.register_keras_custom_object
class BinaryWeightDense(_BinaryDense):
    """Binary-Weight-Network dense layer: X · (α·sign(W)) (eq. 1), float inputs.

    Same arguments as `tf.keras.layers.Dense`, plus the keyword-only options of
    `xnor_keras.layers`. α is per output unit (mean|W| over the input axis, eq. 6).

    Example:

    >>> BinaryWeightDense(10)(tf.ones((4, 32))).shape
    TensorShape([4, 10])
    """

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, *, alpha="mean_abs", weight_gradient=None,
                 binary_gradient=False, binary_gradient_for="both", weight_bits=None, **kwargs):
        super().__init__(
            units=units, activation=activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            alpha=alpha, weight_gradient=weight_gradient,
            binary_gradient=binary_gradient, binary_gradient_for=binary_gradient_for,
            weight_bits=weight_bits, **kwargs)


@lq.utils.register_keras_custom_object
class XnorDense(_BinaryDense):
    """XNOR-Network dense layer: (sign(X) · sign(W)) · β·α (eq. 10).

    β = mean|X| per sample over the input axis (`xnor_keras.scaling.dense_input_scale`),
    α = mean|W| per output unit (eq. 6). Same arguments as `tf.keras.layers.Dense`,
    plus the keyword-only options of `xnor_keras.layers`.

    Example:

    >>> XnorDense(10, use_bias=False)(tf.random.normal((4, 32))).shape
    TensorShape([4, 10])
    """

    _binary_inputs = True

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, *, alpha="mean_abs", input_scaling=True,
                 weight_gradient=None, binary_gradient=False, binary_gradient_for="both",
                 weight_bits=None, input_bits=None, **kwargs):
        super().__init__(
            units=units, activation=activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            alpha=alpha, weight_gradient=weight_gradient,
            binary_gradient=binary_gradient, binary_gradient_for=binary_gradient_for,
            weight_bits=weight_bits,
            input_scaling=input_scaling, input_bits=input_bits, **kwargs)
