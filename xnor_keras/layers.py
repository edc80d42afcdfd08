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
- ``binary_gradient``: binarize the gradient flowing back into the convolution
  (§3.2 "Binary Gradient").
- ``weight_bits``: None for binary weights, or k for the k-bit quantizer q_k.
- XNOR layers only: ``input_scaling`` (K for convolutions, β for dense; False is the
  paper's "removing β" experiment) and ``input_bits`` (None for sign, or k for q_k).

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

__all__ = [
    "BinaryWeightConv2D",
    "BinaryWeightDense",
    "XnorConv2D",
    "XnorDense",
    "ALPHA_MODES",
]

ALPHA_MODES = ("mean_abs", "learned", "none")

# larq config entries that these layers derive from their own options.
_DERIVED_CONFIG = ("input_quantizer", "kernel_quantizer", "pad_values", "metrics")


def _register(cls):
    tf.keras.utils.get_custom_objects()[cls.__name__] = cls
    return cls


def _check_bits(name, value):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{name} must be None or an integer >= 1. Received: {name}={value!r}"
        )


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False. Received: {name}={value!r}")


def _kernel_quantizer(alpha, weight_gradient, weight_bits):
    """The weight quantizer that an ``alpha`` / gradient / bit-width choice means."""
    if alpha not in ALPHA_MODES:
        raise ValueError(f"alpha must be one of {ALPHA_MODES}. Received: alpha={alpha!r}")
    if weight_gradient not in (None, *xq.WEIGHT_GRADIENTS):
        raise ValueError(
            f"weight_gradient must be None or one of {xq.WEIGHT_GRADIENTS}. "
            f"Received: weight_gradient={weight_gradient!r}"
        )
    _check_bits("weight_bits", weight_bits)
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
    _check_bits("input_bits", input_bits)
    return xq.BinaryInput() if input_bits is None else xq.KBit(k=input_bits)


class _BinaryLayer:
    """Options, weights, output path and config shared by the four binary layers.

    Subclasses implement ``_product(x, kernel)`` (the convolution or matrix product on
    quantized operands) and ``_input_scale(inputs)`` (K or β from the raw inputs).
    """

    _binary_inputs = False  # XNOR layers binarize (or k-bit quantize) their inputs
    _OPTIONS = ("alpha", "weight_gradient", "binary_gradient", "weight_bits",
                "input_scaling", "input_bits")

    def _setup(self, init_locals):
        """Validates the options and initializes the larq layer from ``locals()``.

        Everything in the constructor's locals that is not an option (or ``self``,
        ``kwargs``) is an argument of the mirrored Keras layer.
        """
        keras_args = {k: v for k, v in init_locals.items()
                      if k not in (*self._OPTIONS, "self", "kwargs", "__class__")}
        self.alpha = init_locals["alpha"]
        self.weight_gradient = init_locals["weight_gradient"]
        self.binary_gradient = init_locals["binary_gradient"]
        self.weight_bits = init_locals["weight_bits"]
        self.input_scaling = init_locals.get("input_scaling", False)
        self.input_bits = init_locals.get("input_bits")
        _check_bool("binary_gradient", self.binary_gradient)
        _check_bool("input_scaling", self.input_scaling)
        kernel_quantizer = _kernel_quantizer(self.alpha, self.weight_gradient,
                                             self.weight_bits)
        input_quantizer = _input_quantizer(self.input_bits) if self._binary_inputs else None
        self._validate(keras_args)
        with _no_starved_weights_warning(kernel_quantizer):
            self._larq_class.__init__(
                self, **keras_args, input_quantizer=input_quantizer,
                kernel_quantizer=kernel_quantizer, **self._larq_extra,
                **init_locals["kwargs"],
            )

    def _validate(self, keras_args):
        """Checks of the Keras arguments that a subclass needs beyond Keras' own."""

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
            y = self._product(x, self.kernel)
        if self.binary_gradient:
            y = xq.binary_gradient(y)
        if self.alpha == "learned":
            y = y * self.alpha_scale
        if self.input_scaling:
            y = y * self._input_scale(inputs)
        if self.use_bias:
            y = tf.nn.bias_add(y, self.bias)
        if self.activation is not None:
            y = self.activation(y)
        return y

    def get_config(self):
        config = {k: v for k, v in super().get_config().items() if k not in _DERIVED_CONFIG}
        config.update(
            alpha=self.alpha,
            weight_gradient=self.weight_gradient,
            binary_gradient=self.binary_gradient,
            weight_bits=self.weight_bits,
        )
        if self._binary_inputs:
            config.update(input_scaling=self.input_scaling, input_bits=self.input_bits)
        return config


class _BinaryConv2D(_BinaryLayer, lq.layers.QuantConv2D):
    _larq_class = lq.layers.QuantConv2D
    _larq_extra = {"pad_values": 0.0}  # zero padding after binarization, as Conv2D

    def _validate(self, keras_args):
        if keras_args["data_format"] not in (None, "channels_last"):
            raise ValueError(
                "xnor_keras layers support channels_last only. "
                f"Received: data_format={keras_args['data_format']!r}"
            )
        if self.input_scaling and keras_args["groups"] != 1:
            raise ValueError(
                "input_scaling (K of eq. 11) is defined for ungrouped convolutions; pass "
                f"input_scaling=False for groups > 1. Received: groups={keras_args['groups']}"
            )

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
    _larq_class = lq.layers.QuantDense
    _larq_extra = {}

    def _product(self, x, kernel):
        if x.shape.rank == 2:
            return tf.matmul(x, kernel)
        y = tf.tensordot(x, kernel, [[x.shape.rank - 1], [0]])
        y.set_shape(x.shape[:-1].concatenate(kernel.shape[-1:]))
        return y

    def _input_scale(self, inputs):
        return scaling.dense_input_scale(inputs)


@_register
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
                 weight_gradient=None, binary_gradient=False, weight_bits=None,
                 **kwargs):
        self._setup(locals())


@_register
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
                 weight_bits=None, input_bits=None, **kwargs):
        self._setup(locals())


@_register
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
                 binary_gradient=False, weight_bits=None, **kwargs):
        self._setup(locals())


@_register
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
                 weight_gradient=None, binary_gradient=False, weight_bits=None,
                 input_bits=None, **kwargs):
        self._setup(locals())
