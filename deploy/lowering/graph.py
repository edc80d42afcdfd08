"""Reading the Keras graph: layer order, what kind each layer is, binary layers read out.

`binary_spec` reads a larq quantized layer into a `BinarySpec` (its effective ±α_c
kernel through its own quantizer, eq. 6), or an `Unlowerable` saying why it has no
LCE binary op;
`batch_norm` reads a BatchNorm's inference-mode affine; the ``is_*`` predicates
classify activations; `topological_nodes` orders a functional model's nodes.

Example:

>>> from xnor_keras.layers import XnorConv2D
>>> layer = XnorConv2D(8, 3)
>>> layer.build((None, 8, 8, 3))
>>> spec = binary_spec(layer)
>>> spec.kind, spec.op
('xnor', 'conv')
"""

from __future__ import annotations

import dataclasses

import larq as lq
import numpy as np
import tensorflow as tf

from deploy.lowering.folding import Affine, batch_norm_affine

IDENTITY_LAYERS = (
    tf.keras.layers.Dropout,
    tf.keras.layers.GaussianNoise,
    tf.keras.layers.GaussianDropout,
    tf.keras.layers.AlphaDropout,
    tf.keras.layers.ActivityRegularization,
)
_PROBE = np.array([-3.0, -1.0, -0.25, -1e-7, -0.0, 0.0, 1e-7, 0.25, 1.0, 3.0], np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class BinarySpec:
    """A binary layer, read out: everything the lowered graph needs from it."""

    kind: str  # "xnor" (binary inputs) or "bwn" (float inputs)
    op: str  # "conv" or "dense"
    kernel: np.ndarray  # effective kernel, Keras layout, exactly ±scale[c]
    scale: np.ndarray
    post_scale: np.ndarray | None  # alpha="learned"
    bias: np.ndarray | None
    input_scaling: bool
    activation: object
    strides: tuple = (1, 1)
    padding: str = "valid"
    dilation: tuple = (1, 1)
    groups: int = 1
    pad_values: float = 0.0
    kernel_size: tuple = (1, 1)


@dataclasses.dataclass(frozen=True)
class Unlowerable:
    """A quantized layer that has no LCE binary op: ``reason`` says why."""

    reason: str


def is_relu(activation) -> bool:
    """True if ``activation`` is Keras' ReLU."""
    return activation is tf.keras.activations.relu or getattr(activation, "__name__", "") == "relu"


def is_linear(activation) -> bool:
    """True if ``activation`` is None or the identity."""
    return activation is None or activation is tf.keras.activations.linear or \
        getattr(activation, "__name__", "") == "linear"


def is_relu_layer(layer) -> bool:
    """True if ``layer`` computes max(x, 0) (a plain ReLU layer or Activation("relu"))."""
    if isinstance(layer, tf.keras.layers.ReLU):
        return (layer.max_value is None and float(layer.negative_slope) == 0.0
                and float(layer.threshold) == 0.0)
    return isinstance(layer, tf.keras.layers.Activation) and is_relu(layer.activation)


def is_identity_layer(layer) -> bool:
    """True if ``layer`` is the identity at inference (dropout, noise, linear activation)."""
    return isinstance(layer, IDENTITY_LAYERS) or (
        isinstance(layer, tf.keras.layers.Activation) and is_linear(layer.activation))


def is_sign_quantizer(quantizer) -> bool:
    """True if ``quantizer``'s forward pass is larq.math.sign (sign(0) = +1)."""
    try:
        out = np.asarray(quantizer(tf.constant(_PROBE)))
    except Exception:
        return False
    return out.shape == _PROBE.shape and np.array_equal(out, np.where(_PROBE >= 0, 1.0, -1.0))


def binary_spec(layer) -> BinarySpec | Unlowerable | None:
    """A `BinarySpec` for a lowerable binary layer, an `Unlowerable` for a quantized
    layer that cannot be lowered, None for anything else."""
    if not hasattr(layer, "kernel_quantizer"):
        return None
    input_quantizer = getattr(layer, "input_quantizer", None)
    kernel_quantizer = layer.kernel_quantizer
    if input_quantizer is None and kernel_quantizer is None:
        return None
    is_conv = isinstance(layer, lq.layers.QuantConv2D)
    is_dense = isinstance(layer, lq.layers.QuantDense)
    if not (is_conv or is_dense):
        return Unlowerable(f"{type(layer).__name__} has no binary op in larq-compute-engine "
                           "(only Conv2D and Dense layers are lowered)")
    for option in ("weight_bits", "input_bits"):
        if getattr(layer, option, None) is not None:
            return Unlowerable(f"{option}={getattr(layer, option)}: k-bit quantizers have no "
                               "binary op in larq-compute-engine")
    if kernel_quantizer is None:
        return Unlowerable("inputs are binarized but weights are float: no LCE op computes that")
    with lq.context.quantized_scope(True):
        kernel = tf.convert_to_tensor(layer.kernel).numpy().astype(np.float32)
    per_channel = np.abs(kernel.reshape(-1, kernel.shape[-1]))
    scale = per_channel.max(axis=0)
    if not np.all(per_channel == scale):
        return Unlowerable("its quantized kernel is not ±s per output channel, so it is not "
                           "binary (kernel quantizer: "
                           f"{getattr(kernel_quantizer, 'name', type(kernel_quantizer).__name__)})")
    if np.any(scale == 0):
        return Unlowerable(f"{int(np.sum(scale == 0))} output channel(s) have an all-zero kernel "
                           "(α = 0), which LCE cannot express as a binary filter")
    if input_quantizer is not None and not is_sign_quantizer(input_quantizer):
        return Unlowerable("its input quantizer is not sign() (sign(0) = +1), so its inputs are "
                           "not binary")
    post_scale = None
    if getattr(layer, "alpha", None) == "learned":
        post_scale = layer.alpha_scale.numpy().astype(np.float32)
    bias = layer.bias.numpy().astype(np.float32) if getattr(layer, "use_bias", False) else None
    conv = {}
    if is_conv:
        if layer.data_format not in (None, "channels_last"):
            return Unlowerable("channels_first convolutions are not supported")
        conv = dict(strides=tuple(layer.strides), padding=layer.padding,
                    dilation=tuple(layer.dilation_rate),
                    groups=int(getattr(layer, "groups", 1)),
                    pad_values=float(getattr(layer, "pad_values", 0.0) or 0.0),
                    kernel_size=tuple(layer.kernel_size))
    return BinarySpec(
        kind="xnor" if input_quantizer is not None else "bwn",
        op="conv" if is_conv else "dense",
        kernel=kernel, scale=scale, post_scale=post_scale, bias=bias,
        input_scaling=bool(getattr(layer, "input_scaling", False)),
        activation=layer.activation, **conv,
    )


def batch_norm(layer) -> Affine | None:
    """BN(x) = m·x + b of a BatchNormalization layer in inference mode (float64), or
    None if it normalizes over more than one axis."""
    if len(layer.axis) != 1:
        return None
    return batch_norm_affine(
        mean=layer.moving_mean.numpy(), variance=layer.moving_variance.numpy(),
        epsilon=layer.epsilon,
        gamma=layer.gamma.numpy() if layer.scale else None,
        beta=layer.beta.numpy() if layer.center else None)


def topological_nodes(model):
    """The model's nodes in execution order (inputs first)."""
    nodes = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        nodes.extend(node for node in model._nodes_by_depth[depth] if not node.is_input)
    return nodes


def topological_layers(model):
    """The model's layers in execution order, each once (nested models included as one)."""
    seen, layers = set(), []
    for node in topological_nodes(model):
        if id(node.layer) not in seen:
            seen.add(id(node.layer))
            layers.append(node.layer)
    return layers


def dense_input_spatial(layer, specs):
    """The (H, W, C) tensor binary dense ``layer`` will read once lowered (a Flatten
    deferred through BatchNorm / ReLU / identity layers, or another binary dense
    layer's 1×1 output), or None for a plain (N, n) input. ``specs``: id(layer) →
    `BinarySpec` of the layers read so far."""
    tensor = layer._inbound_nodes[0].keras_inputs[0]
    while True:
        source = tensor._keras_history.layer
        node = source._inbound_nodes[tensor._keras_history.node_index]
        if isinstance(source, tf.keras.layers.Flatten):
            shape = tuple(node.keras_inputs[0].shape[1:])
            return shape if len(shape) == 3 else None
        spec = specs.get(id(source))
        if spec is not None and spec.kind == "xnor" and spec.op == "dense":
            return (1, 1, int(spec.kernel.shape[-1]))
        passes_flat = (isinstance(source, tf.keras.layers.BatchNormalization)
                       or is_relu_layer(source) or is_identity_layer(source))
        if not passes_flat or not node.keras_inputs:
            return None
        tensor = node.keras_inputs[0]
