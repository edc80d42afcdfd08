"""int8 float layers: which float layers become int8 ops, their folded weights, fake-quant.

With ``int8_float_layers`` the float convolutions and dense layers that are not binary
layers (the stem, the shortcut projections, the classifier head) are emitted between
TensorFlow fake-quant ops, which LCE's converter turns into int8 TFLite ops
(``QUANTIZE → CONV_2D/DEPTHWISE_CONV_2D int8 → DEQUANTIZE``); binary layers are untouched.

An *int8 chain* is such a layer, the per-channel BatchNorm that alone reads its output
(folded into its weights: conv(x, W)·m + b = conv(x, W·m) + b), and a ReLU that alone
reads that (fused into the int8 op). With affine quantization q = round(x/s) + z:

- **weights**: symmetric per output channel, s_c = max|W'_c| / 127, q ∈ [-127, 127]
  (``narrow_range``), zero point 0; the bias stays int32 at scale s_in·s_c;
- **activations** (chain input and output): one range [lo, hi] per tensor, calibrated
  on real images (`deploy.calibration`), widened to hold 0; s = (hi − lo) / 255.

A dense layer becomes an int8 1×1 convolution: LCE 0.16's converter cannot emit a
per-channel int8 ``FULLY_CONNECTED`` (it rejects the weight transpose "with mismatched
quantized axes"), and a 1×1 ``CONV_2D`` computes the same sums.

Example:

>>> import tensorflow as tf
>>> from xnor_keras import models
>>> chains, skipped = int8_chains(models.build("fashion_net", "xnor"))
>>> [[layer.name for layer in c.layers] for c in chains]
[['conv1', 'conv1_bn', 'conv1_relu'], ['logits']]
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from deploy.lowering import graph
from deploy.lowering.folding import per_channel

__all__ = ["ActivationRange", "ChainRanges", "Int8Chain", "int8_chains", "folded_weights",
           "fake_quant_activation", "fake_quant_weights"]

_MIN_WIDTH = 1e-6  # a constant activation still needs a nonzero scale


@dataclasses.dataclass(frozen=True)
class ActivationRange:
    """The calibrated [lo, hi] of an activation tensor (float32 values)."""

    lo: float
    hi: float

    def widened(self) -> "ActivationRange":
        """The range widened to hold 0 (TFLite's zero point must be exact) and to a
        nonzero width."""
        lo, hi = min(float(self.lo), 0.0), max(float(self.hi), 0.0)
        return ActivationRange(lo, max(hi, lo + _MIN_WIDTH))


@dataclasses.dataclass(frozen=True)
class ChainRanges:
    """The calibrated ranges of one int8 chain: its input and its output."""

    input: ActivationRange
    output: ActivationRange


@dataclasses.dataclass(frozen=True, eq=False)
class Int8Chain:
    """A float layer to quantize, with the BatchNorm and ReLU folded into it.

    ``layers``: the Keras layers (the float layer first); ``kind``: "conv", "dense" or
    "depthwise"; ``batch_norm``: the folded BatchNorm layer or None; ``relu``: whether
    a ReLU (its own activation or a following ReLU layer) is fused.
    """

    layers: tuple
    kind: str
    batch_norm: object = None
    relu: bool = False

    @property
    def name(self) -> str:
        """The float layer's name (the chain's key in calibrations)."""
        return self.layers[0].name

    @property
    def input(self):
        """The Keras tensor the chain reads."""
        return self.layers[0].input

    @property
    def output(self):
        """The Keras tensor the chain computes."""
        return self.layers[-1].output


def _kind(layer):
    if hasattr(layer, "kernel_quantizer") or hasattr(layer, "input_quantizer"):
        return None  # larq layers: binary (or refused by the lowering)
    if isinstance(layer, tf.keras.layers.DepthwiseConv2D):
        return "depthwise"
    if type(layer) is tf.keras.layers.Conv2D:
        return "conv"
    if type(layer) is tf.keras.layers.Dense:
        return "dense"
    return None


def _sole_reader(layer):
    """The one layer reading ``layer``'s output, or None."""
    nodes = layer._outbound_nodes
    return nodes[0].layer if len(nodes) == 1 else None


def _unsupported(layer, kind):
    """Why ``layer`` cannot become an int8 op, or None."""
    if len(layer._inbound_nodes) != 1:
        return "the layer is called more than once"
    activation = layer.activation
    if not (graph.is_linear(activation) or graph.is_relu(activation)):
        return f"activation {getattr(activation, '__name__', activation)!r} has no int8 fusion"
    if kind == "dense":
        return None if layer.input.shape.rank == 2 else "dense layers on rank>2 inputs"
    if layer.data_format not in (None, "channels_last"):
        return "channels_first convolutions"
    if int(getattr(layer, "groups", 1)) != 1:
        return "grouped convolutions"
    return None


def _per_channel_batch_norm(layer, channels):
    if not isinstance(layer, tf.keras.layers.BatchNormalization) or len(layer.axis) != 1:
        return False
    if layer.axis[0] not in (-1, layer.input.shape.rank - 1):
        return False
    affine = graph.batch_norm(layer)
    return affine is not None and per_channel(affine.m, channels) is not None


def int8_chains(model) -> tuple[list, dict]:
    """The model's int8 chains, and {layer name: reason} for float conv/dense layers
    that stay float (see the module docstring)."""
    chains, skipped = [], {}
    for layer in graph.topological_layers(model):
        if isinstance(layer, tf.keras.Model):
            inner, inner_skipped = int8_chains(layer)
            chains += inner
            skipped.update(inner_skipped)
            continue
        kind = _kind(layer)
        if kind is None:
            continue
        reason = _unsupported(layer, kind)
        if reason is not None:
            skipped[layer.name] = reason
            continue
        layers, batch_norm, relu = [layer], None, graph.is_relu(layer.activation)
        channels = int(layer.output.shape[-1])
        reader = _sole_reader(layer)
        if not relu and reader is not None and _per_channel_batch_norm(reader, channels):
            batch_norm = reader
            layers.append(reader)
            reader = _sole_reader(reader)
        if not relu and reader is not None and graph.is_relu_layer(reader):
            relu = True
            layers.append(reader)
        chains.append(Int8Chain(layers=tuple(layers), kind=kind, batch_norm=batch_norm,
                                relu=relu))
    return chains, skipped


def folded_weights(chain: Int8Chain) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) float32 of the chain with its BatchNorm folded in: W·m, bias·m + b.

    The kernel keeps the Keras layout (the output channel last; depthwise kernels
    (kh, kw, C, multiplier), output channel c·multiplier + j).
    """
    layer = chain.layers[0]
    kernel = layer.depthwise_kernel if chain.kind == "depthwise" else layer.kernel
    kernel = np.asarray(kernel.numpy(), np.float64)
    channels = int(layer.output.shape[-1])
    bias = (np.asarray(layer.bias.numpy(), np.float64) if layer.use_bias
            else np.zeros(channels))
    if chain.batch_norm is not None:
        affine = graph.batch_norm(chain.batch_norm)
        m, b = per_channel(affine.m, channels), per_channel(affine.b, channels)
        scale = m.reshape(kernel.shape[-2:]) if chain.kind == "depthwise" else m
        kernel = kernel * scale
        bias = bias * m + b
    return kernel.astype(np.float32), bias.astype(np.float32)


def fake_quant_activation(x, bounds: ActivationRange):
    """``x`` through an 8-bit affine fake-quant op over the (widened) calibrated range."""
    bounds = bounds.widened()
    return tf.quantization.fake_quant_with_min_max_vars(x, bounds.lo, bounds.hi, num_bits=8,
                                                        narrow_range=False)


def fake_quant_weights(kernel: np.ndarray, *, depthwise: bool = False):
    """A constant kernel through a symmetric per-output-channel 8-bit fake-quant op.

    The output channel is the last axis (depthwise kernels (kh, kw, C, multiplier): the
    last two, flattened); max|W_c| sets channel c's range, [-127, 127] (``narrow_range``).
    """
    flat = kernel.reshape(*kernel.shape[:-2], -1) if depthwise else kernel
    bound = np.abs(flat.reshape(-1, flat.shape[-1])).max(axis=0)
    bound = np.maximum(bound, 1e-8).astype(np.float32)
    quantized = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        tf.constant(flat), -bound, bound, num_bits=8, narrow_range=True)
    return tf.reshape(quantized, kernel.shape) if depthwise else quantized
