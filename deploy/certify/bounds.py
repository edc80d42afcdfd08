r"""What a Keras layer computes, in float64, and how far a float32 runtime may be from it.

`propagate` evaluates one Keras layer on `Estimate`\ s — ``value``: the layer's math in
float64 on the given inputs (exact to ~1e-16 relative for what follows), ``error``: a
bound, per element, on |float32 result − value| for any runtime that computes the same
math in float32 in any order of summation, with constants folded (BatchNorm into a
convolution, α into the output transform) — and returns the layer's output `Estimate`.

**The bounds** (Higham, *Accuracy and Stability of Numerical Algorithms*, §2–3). With
u = 2⁻²⁴ (float32 unit roundoff) and γ_n = n·u / (1 − n·u):

- a sum of n products, in any order, is off by at most γ_n · Σ|terms| (Higham eq. 3.5);
  with the bias added and BatchNorm folded into the weights (w·m rounded) and the bias
  (two more roundings per term) that is γ_{n+3} · (Σ|w·x| + |b|);
- an input error e_x moves a linear map by at most its absolute weights applied to
  e_x (|W| ⊛ e_x), a max-pool by the max of e_x over its window, ReLU not at all;
- BatchNorm in inference: m = γ/√(σ² + ε) costs 3 roundings, m·x one, b = β − μ·m two,
  the final sum one: γ_6 · (|m·x| + |m·μ| + |β|) + |m|·e_x;
- a binary convolution (XNOR): the runtime counts the n = kh·kw·C bits exactly
  (popcount p), but forms the output in float from terms as large as the window: LCE
  computes α·(n − 2p) (its back-transformation) plus, for zero padding, a correction
  of at most α·n, so with the learned scale and the bias: γ_4 · 3·α·n + γ_4 · |y|; K = box(mean_c |x|) (eq. 11) is a
  mean of C and of k² positive terms: relative error γ_{C+k²+1}, plus the mean of e_x
  over channels and window; the product A·K one more rounding. An input whose sign
  may differ (|x| ≤ e_x) may change z by 2 per tap: 2·α·(number of such taps);
- sign(x) may differ from the exact sign only where |x| ≤ e_x (then by 2).

The float64 ``value`` uses the layer's float32 parameters exactly as stored (its ±α
kernel read through its quantizer), so it is the layer's own math, not a re-derivation.

Example:

>>> est = propagate(layer, [Estimate.exact(x)])     # doctest: +SKIP
>>> np.all(np.abs(runtime_output - est.value) <= est.error)   # doctest: +SKIP
True
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from deploy.errors import DeployError
from deploy.lowering import graph

__all__ = ["Estimate", "U", "gamma", "propagate", "signs_of", "CertifyError"]

U = 2.0 ** -24


class CertifyError(DeployError):
    """A layer whose rounding the certifier cannot bound (message names it)."""


def gamma(n) -> float:
    """γ_n = n·u / (1 − n·u), the relative error bound of n float32 roundings."""
    n = float(n)
    if n * U >= 1:
        raise CertifyError(f"γ_n undefined for n = {n:g}")
    return n * U / (1.0 - n * U)


@dataclasses.dataclass(frozen=True, eq=False)
class Estimate:
    """A float64 value and a per-element bound on a float32 runtime's distance to it."""

    value: np.ndarray
    error: np.ndarray

    @classmethod
    def exact(cls, x) -> "Estimate":
        x = np.asarray(x, np.float64)
        return cls(x, np.zeros_like(x))

    def magnitude(self) -> np.ndarray:
        """An upper bound on the runtime's |value|."""
        return np.abs(self.value) + self.error


def _conv(x, kernel, *, strides=(1, 1), padding="VALID", dilation=(1, 1)):
    return tf.nn.conv2d(tf.constant(x, tf.float64), tf.constant(kernel, tf.float64),
                        strides=list(strides), padding=padding.upper(),
                        dilations=list(dilation)).numpy()


def _padded(x, *, padding, pad_value, kernel_size, strides, dilation):
    """(x padded explicitly, "VALID") for "same" convolutions, as the layer pads."""
    if padding != "same":
        return x, "VALID"
    pads = [(0, 0)]
    for size, k, s, d in zip(x.shape[1:3], kernel_size, strides, dilation):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    pads.append((0, 0))
    return np.pad(x, pads, constant_values=pad_value), "VALID"


def _linear(layer, x: Estimate, kernel, bias, *, conv: dict | None) -> Estimate:
    """A float convolution / dense layer (kernel, bias) and its rounding bound."""
    if conv is None:
        value = x.value @ kernel
        terms = x.magnitude() @ np.abs(kernel)
        moved = x.error @ np.abs(kernel)
        n = kernel.shape[0]
    else:
        def apply(t, k, pad=0.0):
            t, padding = _padded(t, padding=conv["padding"], pad_value=pad,
                                 kernel_size=conv["kernel_size"], strides=conv["strides"],
                                 dilation=conv["dilation"])
            return _conv(t, k, strides=conv["strides"], padding=padding,
                         dilation=conv["dilation"])
        pad = conv.get("pad_values", 0.0)
        value = apply(x.value, kernel, pad)
        terms = apply(x.magnitude(), np.abs(kernel), abs(pad))
        moved = apply(x.error, np.abs(kernel))
        n = int(np.prod(kernel.shape[:3]))
    if bias is not None:
        value = value + bias
        terms = terms + np.abs(bias)
    return Estimate(value, moved + gamma(n + 3) * terms)


def _conv_options(layer) -> dict:
    return dict(padding=layer.padding, kernel_size=tuple(layer.kernel_size),
                strides=tuple(layer.strides), dilation=tuple(layer.dilation_rate),
                pad_values=float(getattr(layer, "pad_values", 0.0) or 0.0))


def _activation(layer, est: Estimate, activation) -> Estimate:
    if graph.is_linear(activation):
        return est
    if graph.is_relu(activation):
        return Estimate(np.maximum(est.value, 0.0), est.error)
    raise CertifyError(f"layer {layer.name!r}: no rounding bound for activation "
                       f"{getattr(activation, '__name__', activation)!r}")


def _float_layer(layer, x: Estimate) -> Estimate:
    kernel = layer.kernel.numpy().astype(np.float64)
    bias = layer.bias.numpy().astype(np.float64) if layer.use_bias else None
    if isinstance(layer, tf.keras.layers.Conv2D) and not isinstance(
            layer, tf.keras.layers.DepthwiseConv2D):
        if int(getattr(layer, "groups", 1)) != 1:
            raise CertifyError(f"layer {layer.name!r}: grouped convolutions are not bounded")
        est = _linear(layer, x, kernel, bias, conv=_conv_options(layer))
    else:  # Dense: over the last axis
        est = _linear(layer, x, kernel, bias, conv=None)
    return _activation(layer, est, layer.activation)


def signs_of(x: Estimate) -> tuple:
    """(sign(x) with sign(0) = +1, mask of elements whose sign a runtime may flip)."""
    signs = np.where(x.value >= 0, 1.0, -1.0)
    uncertain = (np.abs(x.value) <= x.error) & (x.error > 0)
    return signs, uncertain


def _binary_layer(layer, spec, x: Estimate) -> Estimate:
    kernel = spec.kernel.astype(np.float64)
    if spec.kind == "bwn":
        conv = None if spec.op == "dense" else dict(
            padding=spec.padding, kernel_size=spec.kernel_size, strides=spec.strides,
            dilation=spec.dilation, pad_values=spec.pad_values)
        est = _linear(layer, x, kernel, None, conv=conv)
        scale = np.ones(kernel.shape[-1]) if spec.post_scale is None else \
            spec.post_scale.astype(np.float64)
        value = est.value * scale
        error = est.error * np.abs(scale) + U * np.abs(value)
        if spec.bias is not None:
            value = value + spec.bias
            error = error + U * (np.abs(value) + np.abs(spec.bias))
        return _activation(layer, Estimate(value, error), spec.activation)
    if spec.groups != 1:
        raise CertifyError(f"layer {layer.name!r}: grouped binary convolutions are not bounded")
    signs, uncertain = signs_of(x)
    alpha = spec.scale.astype(np.float64)
    if spec.op == "dense":  # over the last axis, as the layer's tensordot
        acc = signs @ kernel
        acc_error = 2 * alpha * (uncertain.astype(np.float64) @ np.ones(kernel.shape))
        channels, window = signs.shape[-1], 1
        taps = kernel.shape[0]
        k_value = np.mean(np.abs(x.value), axis=-1, keepdims=True)  # β, eq. 10
        k_error = np.mean(x.error, axis=-1, keepdims=True)
    else:
        options = dict(padding=spec.padding, kernel_size=spec.kernel_size,
                       strides=spec.strides, dilation=spec.dilation)
        padded, padding = _padded(signs, pad_value=spec.pad_values, **{
            k: options[k] for k in ("padding", "kernel_size", "strides", "dilation")})
        acc = _conv(padded, kernel, strides=spec.strides, padding=padding,
                    dilation=spec.dilation)
        flip_taps = _conv(_padded(uncertain.astype(np.float64), pad_value=0.0, **options)[0],
                          np.ones(kernel.shape), strides=spec.strides, padding=padding,
                          dilation=spec.dilation)
        acc_error = 2 * alpha * flip_taps
        channels, window = signs.shape[-1], int(np.prod(spec.kernel_size))
        taps = int(np.prod(kernel.shape[:3]))
        box = np.full((*spec.kernel_size, 1, 1), 1.0 / window)
        a = np.mean(np.abs(x.value), axis=-1, keepdims=True)
        a_error = np.mean(x.error, axis=-1, keepdims=True)
        k_value = _conv(_padded(a, pad_value=0.0, **options)[0], box, strides=spec.strides,
                        padding="VALID", dilation=spec.dilation)
        k_error = _conv(_padded(a_error, pad_value=0.0, **options)[0], box,
                        strides=spec.strides, padding="VALID", dilation=spec.dilation)
    value, error = acc, acc_error + gamma(4) * 3 * alpha * taps
    if spec.post_scale is not None:
        scale = spec.post_scale.astype(np.float64)
        value, error = value * scale, error * np.abs(scale)
    if spec.input_scaling:
        k_error = k_error + gamma(channels + window + 1) * k_value
        error = error * (k_value + k_error) + np.abs(value) * k_error
        value = value * k_value
    if spec.bias is not None:
        value = value + spec.bias
        error = error + gamma(1) * np.abs(spec.bias)
    error = error + gamma(4) * np.abs(value)
    return _activation(layer, Estimate(value, error), spec.activation)


def _batch_norm(layer, x: Estimate) -> Estimate:
    axis = layer.axis[0] if len(layer.axis) == 1 else None
    if axis not in (-1, x.value.ndim - 1):
        raise CertifyError(f"layer {layer.name!r}: BatchNorm over axis {layer.axis} is not "
                           "bounded (only the last axis)")
    mean = layer.moving_mean.numpy().astype(np.float64)
    variance = layer.moving_variance.numpy().astype(np.float64)
    g = layer.gamma.numpy().astype(np.float64) if layer.scale else 1.0
    beta = layer.beta.numpy().astype(np.float64) if layer.center else 0.0
    m = g / np.sqrt(variance + layer.epsilon)
    value = (x.value - mean) * m + beta
    terms = np.abs(m) * x.magnitude() + np.abs(m * mean) + np.abs(beta)
    return Estimate(value, np.abs(m) * x.error + gamma(6) * terms)


def _pool(layer, x: Estimate, kind) -> Estimate:
    def apply(t):
        return kind(tf.constant(t), ksize=list(layer.pool_size), strides=list(layer.strides),
                    padding=layer.padding.upper()).numpy()
    if kind is tf.nn.max_pool2d:
        return Estimate(apply(x.value), apply(x.error))
    window = int(np.prod(layer.pool_size))
    if layer.padding != "valid":
        raise CertifyError(f"layer {layer.name!r}: 'same' average pooling is not bounded")
    return Estimate(apply(x.value),
                    apply(x.error) + gamma(window + 1) * apply(x.magnitude()))


def propagate(layer, inputs: list) -> Estimate:
    """The output `Estimate` of Keras ``layer`` on input `Estimate`\\ s (see module)."""
    L = tf.keras.layers
    x = inputs[0]
    spec = graph.binary_spec(layer)
    if isinstance(spec, graph.BinarySpec):
        return _binary_layer(layer, spec, x)
    if isinstance(spec, graph.Unlowerable):
        raise CertifyError(f"layer {layer.name!r}: {spec.reason}")
    if graph.is_identity_layer(layer) or isinstance(layer, L.InputLayer):
        return x
    if graph.is_relu_layer(layer):
        return Estimate(np.maximum(x.value, 0.0), x.error)
    if isinstance(layer, L.BatchNormalization):
        return _batch_norm(layer, x)
    if isinstance(layer, (L.Conv2D, L.Dense)) and type(layer).__module__.startswith(
            ("keras", "tf_keras", "tensorflow")):
        return _float_layer(layer, x)
    if isinstance(layer, L.MaxPooling2D):
        return _pool(layer, x, tf.nn.max_pool2d)
    if isinstance(layer, L.AveragePooling2D):
        return _pool(layer, x, tf.nn.avg_pool2d)
    if isinstance(layer, L.GlobalAveragePooling2D):
        n = int(np.prod(x.value.shape[1:3]))
        keep = bool(getattr(layer, "keepdims", False))
        mean = lambda t: np.mean(t, axis=(1, 2), keepdims=keep)  # noqa: E731
        return Estimate(mean(x.value), mean(x.error) + gamma(n + 1) * mean(x.magnitude()))
    if isinstance(layer, L.Flatten):
        return Estimate(x.value.reshape(len(x.value), -1), x.error.reshape(len(x.error), -1))
    if isinstance(layer, L.ZeroPadding2D):
        (top, bottom), (left, right) = layer.padding
        pads = [(0, 0), (top, bottom), (left, right), (0, 0)]
        return Estimate(np.pad(x.value, pads), np.pad(x.error, pads))
    if isinstance(layer, L.Add):
        value = sum(i.value for i in inputs)
        return Estimate(value, sum(i.error for i in inputs)
                        + gamma(len(inputs) - 1) * sum(i.magnitude() for i in inputs))
    if graph.is_sign_quantizer(layer):
        signs, uncertain = signs_of(x)
        return Estimate(signs, 2.0 * uncertain)
    raise CertifyError(f"layer {layer.name!r} ({type(layer).__name__}): no rounding bound "
                       "for this kind of layer")
