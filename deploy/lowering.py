"""Lowers a Keras model of binary layers to an inference graph that LCE turns into binary ops.

larq-compute-engine's converter recognises a binary convolution only in one form: a
``Conv2D`` whose input is ``larq.math.sign(x)`` and whose kernel is a constant equal
to ±s_c in every output channel c. `lower` rewrites a trained model so that every
binary layer has that form, and so that the graph around it lets LCE fuse as much as
possible, while computing the same function:

- **Binary weights baked.** Each binary layer's kernel is read through its own
  quantizer (`larq.context.quantized_scope`), so the graph holds exactly the ±α_c
  values the layer multiplies with (eq. 6), and is checked to be of that form.
- **Dense → convolution.** A binary dense layer becomes a 1×1 binary convolution; one
  that reads a flattened H×W×C tensor (AlexNet's fc6) becomes an H×W "valid" binary
  convolution on the unflattened tensor (Keras flattens in H, W, C order, so the
  kernel is only reshaped). The following BatchNorm/sign/dense stay on the 1×1
  feature map.
- **Input scaling.** K (eq. 11) and β (eq. 10) are computed in float from the layer's
  input with `xnor_keras.scaling`, and multiplied on the binary convolution's output.
- **BatchNorm + sign fold (no K).** When a binary layer without input scaling reads
  ``sign(BN(maxpool(relu(y))))`` of another binary layer's output y, the chain is
  replaced by ``sign(maxpool(m·y + b))`` with per-channel m ≥ 0, b: exact because a
  non-decreasing per-channel function commutes with max-pooling and
  ``sign(BN(relu(u))) = sign(BN(u))`` or a constant (see `_fold_affine`). LCE then
  fuses m, b into the producing ``LceBconv2d`` and pools with ``LceBMaxPool2d``
  (writing bitpacked outputs directly when the convolution's padding allows). The
  same fold serves sign activation layers (BinaryNet's C-B-A-P blocks), and
  ``maxpool(sign(t))`` is emitted as ``sign(maxpool(t))`` so LCE pools bitpacked.
  Since the accumulator is α·z with z an integer, b is moved half a step between two
  integers (`_integer_threshold`): runtimes that round m·α·z + b differently then
  still binarize identically, and an exact tie keeps sign(0) = +1.
- **Binary-weight (BWN) layers** take float inputs; no LCE op computes with those, so
  they stay float convolutions here and their ±α_c weights are stored in 1 bit by
  `deploy.convert` after conversion.

A layer that cannot be lowered (k-bit quantizers, binary inputs with float weights,
a layer kind without an LCE binary op) raises `LoweringError` naming it, unless
``allow_float_fallback=True``, in which case it runs in float and its plan says why.

Example:

>>> import xnor_keras, tensorflow as tf
>>> from xnor_keras import models
>>> lowered = lower(models.build("fashion_net", "xnor"))
>>> [plan.name for plan in lowered.plans if plan.role == "binary"]
['conv2', 'conv3', 'conv4', 'fc5']
>>> x = tf.random.normal((1, 28, 28, 1))
>>> y = lowered(x)            # the same logits as model(x), as NumPy
"""

from __future__ import annotations

import dataclasses

import xnor_keras  # noqa: F401  (legacy Keras 2 before TensorFlow loads)
import larq as lq
import numpy as np
import tensorflow as tf
from larq import math as lq_math
from larq.quantizers import Quantizer

from deploy.errors import DeployError
from xnor_keras import scaling  # noqa: E402

__all__ = ["lower", "Lowered", "LayerPlan", "LoweringError", "canonical_signs"]

_IDENTITY_LAYERS = (
    tf.keras.layers.Dropout,
    tf.keras.layers.GaussianNoise,
    tf.keras.layers.GaussianDropout,
    tf.keras.layers.AlphaDropout,
    tf.keras.layers.ActivityRegularization,
)
_PROBE = np.array([-3.0, -1.0, -0.25, -1e-7, -0.0, 0.0, 1e-7, 0.25, 1.0, 3.0], np.float32)


class LoweringError(DeployError):
    """A binary layer cannot be lowered to an LCE binary op (message names it)."""


@dataclasses.dataclass
class LayerPlan:
    """What `lower` did with one Keras layer (the conversion report's source).

    ``role``: ``"binary"`` (binary inputs and weights: an ``LceBconv2d``),
    ``"binary-weight"`` (BWN: float inputs, ±α_c weights), ``"float"`` (a float layer
    with weights), ``"fallback"`` (a quantized layer kept in float, with
    ``fallback_reason``) or ``"other"`` (no weights). ``filter_signs``: for binary and
    binary-weight layers, the ±1 pattern of the filter in TFLite layout (C_out, kh,
    kw, C_in) for conv-lowered layers, (units, inputs) for BWN dense layers.
    """

    name: str
    class_name: str
    role: str
    lowering: str = ""
    notes: list = dataclasses.field(default_factory=list)
    filter_signs: np.ndarray | None = None
    float_twin_params: int = 0
    float_twin_macs: int = 0
    fallback_reason: str | None = None
    scope: str = ""
    outcome: str = ""  # set by deploy.convert from the converted file


@dataclasses.dataclass
class Lowered:
    """The lowered model: a `tf.Module` whose ``serve`` signature LCE converts.

    ``function`` is the traced concrete function (batch 1), ``plans`` one `LayerPlan`
    per Keras layer in topological order, ``scopes`` maps the short name scope used
    for each layer's ops (``"L7"``) to the layer name.
    """

    module: tf.Module
    function: object
    plans: list
    scopes: dict
    input_shape: tuple

    def __call__(self, x) -> np.ndarray:
        """Runs the lowered graph on a batch-1 input (NumPy in, NumPy out)."""
        return self.function(tf.constant(x, tf.float32))["output"].numpy()


@dataclasses.dataclass
class _Spec:
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


@dataclasses.dataclass
class _Value:
    """A tensor of the lowered graph standing for one Keras tensor.

    ``flat``: Keras sees ``reshape(tensor, [N, -1])`` (a Flatten not yet applied, so
    a binary dense layer can read the spatial tensor). ``origin`` records how the
    value was computed where a fold may need it: ``("bconv", α)`` for a binary
    convolution's accumulator α·z (z an integer), ``("affine", m, b, parent)``,
    ``("relu", parent)``, ``("maxpool", layer, parent)``.
    """

    tensor: tf.Tensor
    flat: bool = False
    origin: tuple | None = None
    producer: LayerPlan | None = None

    def keras(self):
        if not self.flat:
            return self.tensor
        return tf.reshape(self.tensor, [-1, int(np.prod(self.tensor.shape[1:]))])


def canonical_signs(signs: np.ndarray) -> np.ndarray:
    """``signs`` (axis 0 = output channels) with each channel flipped to start at +1.

    LCE may store a channel's filter negated (it moves a negative output multiplier
    into the weights), so filters are compared in this form.
    """
    flat = signs.reshape(signs.shape[0], -1)
    flip = np.where(flat[:, :1] < 0, -1.0, 1.0)
    return (flat * flip).reshape(signs.shape).astype(np.float32)


def _is_relu(activation) -> bool:
    return activation is tf.keras.activations.relu or getattr(activation, "__name__", "") == "relu"


def _is_linear(activation) -> bool:
    return activation is None or activation is tf.keras.activations.linear or \
        getattr(activation, "__name__", "") == "linear"


def _is_sign_quantizer(quantizer) -> bool:
    """True if ``quantizer``'s forward pass is larq.math.sign (sign(0) = +1)."""
    try:
        out = np.asarray(quantizer(tf.constant(_PROBE)))
    except Exception:
        return False
    return out.shape == _PROBE.shape and np.array_equal(out, np.where(_PROBE >= 0, 1.0, -1.0))


def _binary_spec(layer):
    """(spec, None) for a lowerable binary layer, (None, reason) for a quantized layer
    that cannot be lowered, (None, None) for anything else."""
    if not hasattr(layer, "kernel_quantizer"):
        return None, None
    input_quantizer = getattr(layer, "input_quantizer", None)
    kernel_quantizer = layer.kernel_quantizer
    if input_quantizer is None and kernel_quantizer is None:
        return None, None
    is_conv = isinstance(layer, lq.layers.QuantConv2D)
    is_dense = isinstance(layer, lq.layers.QuantDense)
    if not (is_conv or is_dense):
        return None, (f"{type(layer).__name__} has no binary op in larq-compute-engine "
                      "(only Conv2D and Dense layers are lowered)")
    for option in ("weight_bits", "input_bits"):
        if getattr(layer, option, None) is not None:
            return None, (f"{option}={getattr(layer, option)}: k-bit quantizers have no "
                          "binary op in larq-compute-engine")
    if kernel_quantizer is None:
        return None, "inputs are binarized but weights are float: no LCE op computes that"
    with lq.context.quantized_scope(True):
        kernel = tf.convert_to_tensor(layer.kernel).numpy().astype(np.float32)
    per_channel = np.abs(kernel.reshape(-1, kernel.shape[-1]))
    scale = per_channel.max(axis=0)
    if not np.all(per_channel == scale):
        return None, ("its quantized kernel is not ±s per output channel, so it is not "
                      "binary (kernel quantizer: "
                      f"{getattr(kernel_quantizer, 'name', type(kernel_quantizer).__name__)})")
    if np.any(scale == 0):
        return None, (f"{int(np.sum(scale == 0))} output channel(s) have an all-zero kernel "
                      "(α = 0), which LCE cannot express as a binary filter")
    if input_quantizer is not None and not _is_sign_quantizer(input_quantizer):
        return None, ("its input quantizer is not sign() (sign(0) = +1), so its inputs are "
                      "not binary")
    post_scale = None
    if getattr(layer, "alpha", None) == "learned":
        post_scale = layer.alpha_scale.numpy().astype(np.float32)
    bias = layer.bias.numpy().astype(np.float32) if getattr(layer, "use_bias", False) else None
    spec = _Spec(
        kind="xnor" if input_quantizer is not None else "bwn",
        op="conv" if is_conv else "dense",
        kernel=kernel, scale=scale, post_scale=post_scale, bias=bias,
        input_scaling=bool(getattr(layer, "input_scaling", False)),
        activation=layer.activation,
    )
    if is_conv:
        if layer.data_format not in (None, "channels_last"):
            return None, "channels_first convolutions are not supported"
        spec.strides = tuple(layer.strides)
        spec.padding = layer.padding
        spec.dilation = tuple(layer.dilation_rate)
        spec.groups = int(getattr(layer, "groups", 1))
        spec.pad_values = float(getattr(layer, "pad_values", 0.0) or 0.0)
        spec.kernel_size = tuple(layer.kernel_size)
    return spec, None


def _bn_affine(layer):
    """(m, b) with BN(x) = m·x + b in inference mode, float64, or None."""
    if len(layer.axis) != 1:
        return None
    variance = layer.moving_variance.numpy().astype(np.float64)
    m = 1.0 / np.sqrt(variance + layer.epsilon)
    if layer.scale:
        m = m * layer.gamma.numpy()
    b = -layer.moving_mean.numpy() * m
    if layer.center:
        b = b + layer.beta.numpy()
    return m, b


def _same_paddings(size, kernel, stride, dilation):
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return [total // 2, total - total // 2]


def _fold_affine(chain):
    """Per-channel (m, b) with sign(chain(y)) = sign(m·y + b) for every y, and the
    max-pool layers to apply to m·y + b before the sign; or (None, reason).

    ``chain``: ops from the accumulator outwards: ``("affine", m, b)``, ``("relu",)``,
    ``("maxpool", layer)``. The chain must be A₂∘relu∘A₁ (or A₁) with per-channel
    affines. With u = A₁(y), A₂(v) = p·v + q:

    - p = 0: the sign is sign(q), a constant (m = 0, b = q);
    - p > 0 and q ≥ 0: p·relu(u) + q ≥ 0 always: the constant +1 (m = 0, b = 1);
    - p < 0 and q < 0: always negative: the constant -1 (m = 0, b = -1);
    - otherwise p·relu(u) + q ≥ 0 ⟺ p·u + q ≥ 0 (the threshold is on the positive
      side of the ReLU's kink), so m·y + b = A₂(A₁(y)).

    A max-pool may move past the ops before it if they are non-decreasing in that
    channel, and past the final sign if m ≥ 0 (max commutes with non-decreasing
    functions); constant channels commute trivially.
    """
    a1 = d1 = a2 = d2 = None
    relu = False
    pools = []
    blocked = None  # channels where a pool cannot move before the ops preceding it
    for op in chain:
        if op[0] == "affine":
            m, b = op[1], op[2]
            if not relu:
                a1, d1 = (m, b) if a1 is None else (m * a1, m * d1 + b)
            else:
                a2, d2 = (m, b) if a2 is None else (m * a2, m * d2 + b)
        elif op[0] == "relu":
            if relu and a2 is not None:
                return None, "two ReLUs with an affine op between them"
            relu = True
        elif op[0] == "maxpool":
            pools.append(op[1])
            slopes = [s for s in (a1, a2) if s is not None]
            decreasing = np.zeros_like(slopes[0], dtype=bool) if slopes else None
            for s in slopes:
                decreasing |= s < 0
            if decreasing is not None:
                blocked = decreasing if blocked is None else blocked | decreasing
    channels = next(len(x) for x in (a1, d1, a2, d2) if x is not None)
    one, zero = np.ones(channels), np.zeros(channels)
    a1 = one if a1 is None else a1
    d1 = zero if d1 is None else d1
    if not relu:
        m, b = a1, d1
    else:
        p = one if a2 is None else a2
        q = zero if d2 is None else d2
        m, b = p * a1, p * d1 + q
        const_pos = (p > 0) & (q >= 0)
        const_neg = (p < 0) & (q < 0)
        zero_p = p == 0
        m = np.where(const_pos | const_neg | zero_p, 0.0, m)
        b = np.where(const_pos, 1.0, np.where(const_neg, -1.0, np.where(zero_p, q, b)))
    if pools:
        constant = m == 0
        bad = (m < 0) & ~constant
        if blocked is not None:
            bad |= blocked & ~constant
        if np.any(bad):
            return None, (f"{int(np.sum(bad))} channel(s) have a decreasing BatchNorm (γ < 0) "
                          "or scale, so max-pooling cannot move past the sign")
    return (m.astype(np.float32), b.astype(np.float32), pools), None


def _integer_threshold(m, b, alpha):
    """``b`` moved half a step away from any tie: sign(m·α·z + b) is unchanged for every
    integer z, and m·α·z + b is never within float rounding of 0.

    The accumulator of a binary convolution is α·z with z an integer, so the sign
    flips between two consecutive integers; placing the threshold midway makes it
    robust to the order in which a runtime rounds m·α·z + b (LCE's optimized and
    reference kernels differ). An exact tie m·α·z + b = 0 keeps sign(0) = +1.
    Constant channels (m = 0) become exactly ±1.
    """
    m = np.asarray(m, np.float64)
    b = np.asarray(b, np.float64)
    alpha = np.asarray(alpha, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = -b / (m * alpha)  # the threshold on z
        up = -m * alpha * (np.ceil(ratio) - 0.5)  # m > 0: +1 iff z ≥ ceil(ratio)
        down = -m * alpha * (np.floor(ratio) + 0.5)  # m < 0: +1 iff z ≤ floor(ratio)
    constant = np.where(b >= 0, 1.0, -1.0)
    out = np.where(m > 0, up, np.where(m < 0, down, constant))
    return out.astype(np.float32)


def _per_channel(param, channels):
    """``param`` as a (channels,) vector if it is the same at every position, else None."""
    param = np.asarray(param, np.float64)
    flat = param.reshape(-1, channels) if param.size % channels == 0 else None
    if flat is None or not np.all(flat == flat[0]):
        return None
    return flat[0]


class _Lowering:
    """One lowering run: pre-pass (specs, variables), then the traced walk."""

    def __init__(self, model, *, allow_float_fallback):
        self.model = model
        self.allow = allow_float_fallback
        self.plans = {}
        self.order = []
        self.specs = {}
        self.bn = {}
        self.kernels = {}
        self.scopes = {}
        self.sign_layers = set()
        self._prepass(model)

    # ---------------------------------------------------------------- pre-pass
    def _prepass(self, model):
        for layer in _topological_layers(model):
            if isinstance(layer, tf.keras.Model):
                self._prepass(layer)
                continue
            scope = f"L{len(self.order)}"
            plan = LayerPlan(name=layer.name, class_name=type(layer).__name__, role="other",
                             scope=scope)
            self.plans[id(layer)] = plan
            self.order.append(plan)
            self.scopes[scope] = layer.name
            spec, reason = _binary_spec(layer)
            plan.float_twin_params = _inference_params(layer)
            plan.float_twin_macs = _float_macs(layer)
            if spec is not None:
                self.specs[id(layer)] = spec
                plan.role = "binary" if spec.kind == "xnor" else "binary-weight"
                kernel = spec.kernel
                if spec.kind == "xnor" and spec.op == "dense":
                    # Stored in its final (H, W, C, units) shape: MLIR does not fold a
                    # reshape of a constant this large, and LCE needs a constant filter.
                    spatial = self._dense_input_spatial(layer) or (1, 1, kernel.shape[0])
                    kernel = kernel.reshape(*spatial, kernel.shape[-1])
                self.kernels[id(layer)] = tf.Variable(kernel, trainable=False,
                                                      name=f"{layer.name}_binary_kernel")
            elif reason is not None:
                plan.role = "fallback"
                plan.fallback_reason = reason
                if not self.allow:
                    raise LoweringError(
                        f"layer {layer.name!r} ({type(layer).__name__}) cannot be lowered to a "
                        f"binary op: {reason}. Pass --allow-float-fallback to run it in float.")
            elif isinstance(layer, tf.keras.layers.BatchNormalization):
                self.bn[id(layer)] = _bn_affine(layer)
            elif isinstance(layer, Quantizer) and _is_sign_quantizer(layer):
                self.sign_layers.add(id(layer))
            if plan.role == "other" and layer.weights:
                plan.role = "float"

    def _dense_input_spatial(self, layer):
        """The (H, W, C) tensor a binary dense layer will read in `_walk` (a Flatten
        deferred through BatchNorm / ReLU / identity layers, or another binary dense
        layer's 1×1 output), or None for a plain (N, n) input."""
        tensor = layer._inbound_nodes[0].keras_inputs[0]
        while True:
            source = tensor._keras_history.layer
            node = source._inbound_nodes[tensor._keras_history.node_index]
            if isinstance(source, tf.keras.layers.Flatten):
                shape = tuple(node.keras_inputs[0].shape[1:])
                return shape if len(shape) == 3 else None
            spec = self.specs.get(id(source))
            if spec is not None and spec.kind == "xnor" and spec.op == "dense":
                return (1, 1, int(spec.kernel.shape[-1]))
            passes_flat = (isinstance(source, (tf.keras.layers.BatchNormalization,
                                               *_IDENTITY_LAYERS))
                           or _relu_layer(source)
                           or (isinstance(source, tf.keras.layers.Activation)
                               and _is_linear(source.activation)))
            if not passes_flat or not node.keras_inputs:
                return None
            tensor = node.keras_inputs[0]

    # ---------------------------------------------------------------- walk
    def run(self, x):
        # TensorFlow may trace more than once: the plans' notes describe one trace.
        for plan in self.order:
            plan.notes, plan.lowering = [], ""
        return self._walk(self.model, [_Value(x)])[0].keras()

    def _walk(self, model, inputs):
        values = {}
        for keras_input, value in zip(model.inputs, inputs):
            values[id(keras_input)] = value
        for node in _topological_nodes(model):
            layer = node.layer
            args = [values[id(t)] for t in node.keras_inputs]
            if isinstance(layer, tf.keras.Model):
                outputs = self._walk(layer, args)
            else:
                plan = self.plans[id(layer)]
                with tf.name_scope(plan.scope):
                    outputs = self._layer(layer, node, args, plan)
            for keras_output, value in zip(tf.nest.flatten(node.outputs), outputs):
                values[id(keras_output)] = value
        return [values[id(t)] for t in model.outputs]

    def _layer(self, layer, node, args, plan):
        if id(layer) in self.specs:
            return [self._binary(layer, self.specs[id(layer)], args[0], plan)]
        if plan.role == "fallback":
            plan.lowering = "float (fallback)"
            plan.notes.append(f"runs in float: {plan.fallback_reason}")
        if id(layer) in self.sign_layers and len(args) == 1:
            folded = self._fold(args[0], args[0].tensor, plan, what="sign activation")
            if folded is None:
                folded = (lq_math.sign(args[0].tensor), args[0].tensor)
            return [_Value(folded[0], flat=args[0].flat, origin=("sign", folded[1]))]
        if isinstance(layer, tf.keras.layers.InputLayer):
            return args
        if isinstance(layer, _IDENTITY_LAYERS) or (
                isinstance(layer, tf.keras.layers.Activation) and _is_linear(layer.activation)):
            plan.lowering = "identity at inference"
            return args
        if isinstance(layer, tf.keras.layers.Flatten) and len(args) == 1:
            value = args[0]
            if value.flat or value.tensor.shape.rank < 3:
                return [value]
            plan.lowering = "deferred (kept spatial for the next layer)"
            return [dataclasses.replace(value, flat=True)]
        if isinstance(layer, tf.keras.layers.BatchNormalization) and self.bn.get(id(layer)):
            return [self._batch_norm(layer, args[0])]
        if _relu_layer(layer):
            value = args[0]
            return [_Value(tf.nn.relu(value.tensor), flat=value.flat, origin=("relu", value))]
        if isinstance(layer, tf.keras.layers.MaxPool2D) and not args[0].flat:
            value = args[0]
            if value.origin is not None and value.origin[0] == "sign":
                # maxpool(sign(t)) = sign(maxpool(t)): LCE pools bitpacked (LceBMaxPool2d).
                pooled = layer(value.origin[1])
                return [_Value(lq_math.sign(pooled), origin=("sign", pooled))]
            return [_Value(layer(value.tensor), origin=("maxpool", layer, value))]
        return self._generic(layer, node, args, plan)

    def _generic(self, layer, node, args, plan):
        materialized = iter([value.keras() for value in args])
        structure = (node.call_args, list(node.call_kwargs.values()))
        ids = {id(t) for t in node.keras_inputs}
        filled = [next(materialized) if id(item) in ids else item
                  for item in tf.nest.flatten(structure)]
        call_args, kwarg_values = tf.nest.pack_sequence_as(structure, filled)
        call_kwargs = dict(zip(node.call_kwargs.keys(), kwarg_values))
        if getattr(layer, "_expects_training_arg", False):
            call_kwargs = {**call_kwargs, "training": False}
        outputs = layer(*call_args, **call_kwargs)
        return [_Value(t) for t in tf.nest.flatten(outputs)]

    def _batch_norm(self, layer, value):
        m, b = self.bn[id(layer)]
        rank = value.tensor.shape.rank
        if not value.flat and layer.axis[0] not in (-1, rank - 1):
            return _Value(layer(value.tensor, training=False))
        if value.flat:
            channels = value.tensor.shape[-1]
            m_c, b_c = _per_channel(m, channels), _per_channel(b, channels)
            if m_c is not None and b_c is not None:
                out = value.tensor * tf.constant(m_c, tf.float32) + tf.constant(b_c, tf.float32)
            else:
                # Per-position parameters are applied on the flat tensor: LCE would
                # otherwise fuse an (H, W, C) constant into a per-channel multiplier.
                flat = value.keras() * tf.constant(m, tf.float32) + tf.constant(b, tf.float32)
                out = tf.reshape(flat, [-1, *value.tensor.shape[1:]])
        elif rank != 4:
            out = value.tensor * tf.constant(m, tf.float32) + tf.constant(b, tf.float32)
        else:
            out = layer(value.tensor, training=False)
        shape = tuple(value.tensor.shape[1:]) if value.flat else (m.shape[0],)
        return _Value(out, flat=value.flat,
                      origin=("affine", m.reshape(shape), b.reshape(shape), value))

    # ---------------------------------------------------------------- binary layers
    def _binary(self, layer, spec, value, plan):
        kernel = self.kernels[id(layer)]
        if spec.kind == "bwn":
            return self._bwn(layer, spec, value, plan, kernel)
        if spec.op == "dense":
            x = value.tensor if value.flat else value.keras()
            if x.shape.rank == 2:
                x = tf.reshape(x, [-1, 1, 1, x.shape[-1]])
            if x.shape.rank != 4:
                raise LoweringError(f"layer {layer.name!r}: binary dense layers on rank-"
                                    f"{value.keras().shape.rank} inputs are not supported")
            height, width, channels = x.shape[1:]
            if tuple(kernel.shape[:3]) != (height, width, channels):
                kernel = tf.reshape(kernel, [height, width, channels, spec.kernel.shape[-1]])
            signs = np.sign(spec.kernel).reshape(height, width, channels, -1)
            strides, padding, dilation = (1, 1), "valid", (1, 1)
            kernel_size = (height, width)
            plan.lowering = (f"dense → {height}×{width} binary conv" if height * width > 1
                             else "dense → 1×1 binary conv")
        else:
            x = value.keras()
            signs = np.sign(spec.kernel)
            strides, padding, dilation = spec.strides, spec.padding, spec.dilation
            kernel_size = spec.kernel_size
            plan.lowering = f"{kernel_size[0]}×{kernel_size[1]} binary conv"
        plan.filter_signs = np.transpose(np.where(signs < 0, -1.0, 1.0), (3, 0, 1, 2))

        binary = None
        if value.origin is not None and value.origin[0] == "sign" and not spec.input_scaling:
            binary = x  # already sign(·): binarizing twice would leave a float SIGN op
        elif not spec.input_scaling:
            binary = self._fold(value, x, plan)
        else:
            plan.notes.append("input scaling (K, eq. 11 / β, eq. 10) is computed in float and "
                              "needs the float input, so the BatchNorm/pool before this layer "
                              "stay float")
        if binary is None:
            binary = lq_math.sign(x)
        conv_padding = padding.upper()
        if spec.pad_values != 0.0 and padding == "same":
            pads = [[0, 0]] + [_same_paddings(x.shape[1 + i], kernel_size[i], strides[i],
                                              dilation[i]) for i in range(2)] + [[0, 0]]
            binary = tf.pad(binary, pads, constant_values=spec.pad_values)
            conv_padding = "VALID"
        acc = tf.nn.conv2d(binary, kernel, strides=list(strides), padding=conv_padding,
                           dilations=list(dilation))
        acc_value = _Value(acc, origin=("bconv", spec.scale), producer=plan)
        y, origin_value = acc, acc_value
        m0 = spec.post_scale
        if m0 is not None:
            y = y * tf.constant(m0)
        if spec.input_scaling:
            if spec.op == "dense":
                beta = scaling.dense_input_scale(value.keras())
                y = y * tf.reshape(beta, [-1, 1, 1, 1])
            else:
                y = y * scaling.conv_input_scale(x, kernel_size, strides=strides,
                                                 padding=padding, dilation_rate=dilation)
        if spec.bias is not None:
            y = tf.nn.bias_add(y, tf.constant(spec.bias))
        if not spec.input_scaling:
            if m0 is not None or spec.bias is not None:
                channels = spec.kernel.shape[-1]
                m = np.ones(channels) if m0 is None else m0.astype(np.float64)
                b = np.zeros(channels) if spec.bias is None else spec.bias.astype(np.float64)
                origin_value = _Value(y, origin=("affine", m, b, acc_value))
        else:
            origin_value = None
        if _is_relu(spec.activation):
            y = tf.nn.relu(y)
            origin_value = None if origin_value is None else _Value(y, origin=("relu", origin_value))
        elif not _is_linear(spec.activation):
            y = spec.activation(y)
            origin_value = None
        return _Value(y, flat=spec.op == "dense", producer=plan,
                      origin=None if origin_value is None else origin_value.origin)

    def _bwn(self, layer, spec, value, plan, kernel):
        x = value.keras()
        if spec.op == "dense":
            y = tf.matmul(x, kernel)
            plan.lowering = "float dense, 1-bit weights (LceDequantize)"
            plan.filter_signs = np.where(spec.kernel.T < 0, -1.0, 1.0)
        else:
            padding = spec.padding.upper()
            if spec.pad_values != 0.0 and spec.padding == "same":
                pads = [[0, 0]] + [_same_paddings(x.shape[1 + i], spec.kernel_size[i],
                                                  spec.strides[i], spec.dilation[i])
                                   for i in range(2)] + [[0, 0]]
                x = tf.pad(x, pads, constant_values=spec.pad_values)
                padding = "VALID"
            y = tf.nn.conv2d(x, kernel, strides=list(spec.strides), padding=padding,
                             dilations=list(spec.dilation))
            plan.lowering = (f"float {spec.kernel_size[0]}×{spec.kernel_size[1]} conv, 1-bit "
                             "weights (LceDequantize)")
            plan.filter_signs = np.transpose(np.where(spec.kernel < 0, -1.0, 1.0), (3, 0, 1, 2))
        plan.notes.append("binary weights with float inputs (BWN): no LCE kernel multiplies "
                          "float inputs by binary weights, so it computes in float")
        if spec.post_scale is not None:
            y = y * tf.constant(spec.post_scale)
        if spec.bias is not None:
            y = tf.nn.bias_add(y, tf.constant(spec.bias))
        if not _is_linear(spec.activation):
            y = spec.activation(y)
        return _Value(y)

    def _fold(self, value, x, plan, what="binary layer"):
        """sign(``value``) computed by folding its BN/ReLU/pool chain into the binary
        convolution that produced it, shaped like ``x``; or None (reason noted).

        Used for the input of binary layers without input scaling and for sign
        activation layers."""
        chain = []
        current = value
        while current.origin is not None and current.origin[0] != "bconv":
            kind = current.origin[0]
            if kind == "affine":
                chain.append(("affine", current.origin[1], current.origin[2]))
                current = current.origin[3]
            elif kind == "relu":
                chain.append(("relu",))
                current = current.origin[1]
            elif kind == "maxpool":
                chain.append(("maxpool", current.origin[1]))
                current = current.origin[2]
            else:  # "sign": already ±1 (max-pooling keeps it so)
                return None
        if current.origin is not None and not chain:
            return None  # sign(y) of a binary layer: LCE writes bitpacked output itself
        if current.origin is None:
            if what == "binary layer":
                plan.notes.append("input comes from float layers: binarized by LceQuantize")
            return None
        producer = current.producer
        acc = current.tensor
        channels = acc.shape[-1]
        chain.reverse()
        for i, op in enumerate(chain):
            if op[0] == "affine":
                m, b = _per_channel(op[1], channels), _per_channel(op[2], channels)
                if m is None or b is None:
                    plan.notes.append("BatchNorm after Flatten is per position, not per channel: "
                                      "no fold into the previous binary layer")
                    return None
                chain[i] = ("affine", m, b)
        folded, reason = _fold_affine(chain)
        if folded is None:
            plan.notes.append(f"no BatchNorm+sign fold into {producer.name!r}: {reason}")
            return None
        m, b, pools = folded
        b = _integer_threshold(m, b, current.origin[1])
        t = acc * tf.constant(m) + tf.constant(b)
        for pool in pools:
            t = pool(t)
        ops = "BatchNorm" + (" + max-pool" if pools else "") + " + sign"
        target = "the next binary layer" if what == "binary layer" else repr(plan.name)
        producer.notes.append(f"{ops} of {target} folded into this layer's output "
                              "transform (exact)")
        plan.notes.append(f"{'input binarization' if what == 'binary layer' else 'sign'} "
                          f"folded into {producer.name!r}")
        out = lq_math.sign(t)
        if tuple(out.shape[1:]) != tuple(x.shape[1:]):  # e.g. deferred flatten on 1×1
            out = tf.reshape(out, [-1, *x.shape[1:]])
            t = tf.reshape(t, [-1, *x.shape[1:]])
        return (out, t) if what != "binary layer" else out


def _relu_layer(layer) -> bool:
    if isinstance(layer, tf.keras.layers.ReLU):
        return (layer.max_value is None and float(layer.negative_slope) == 0.0
                and float(layer.threshold) == 0.0)
    return isinstance(layer, tf.keras.layers.Activation) and _is_relu(layer.activation)


def _topological_nodes(model):
    """The model's nodes in execution order (inputs first)."""
    nodes = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        nodes.extend(node for node in model._nodes_by_depth[depth] if not node.is_input)
    return nodes


def _topological_layers(model):
    seen, layers = set(), []
    for node in _topological_nodes(model):
        if id(node.layer) not in seen:
            seen.add(id(node.layer))
            layers.append(node.layer)
    return layers


def _inference_params(layer) -> int:
    """Parameters a float32 version of ``layer`` stores for inference."""
    if isinstance(layer, tf.keras.layers.BatchNormalization):
        return 2 * int(layer.moving_mean.shape[0])  # folded scale and offset
    if hasattr(layer, "kernel"):
        count = int(np.prod(layer.kernel.shape))
        if getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            count += int(np.prod(layer.bias.shape))
        return count
    return sum(int(np.prod(w.shape)) for w in layer.weights)


def _float_macs(layer) -> int:
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


class _Module(tf.Module):
    def __init__(self, lowering, variables):
        super().__init__()
        self._lowering = lowering
        self.kept_variables = list(variables)

    @tf.function(autograph=False)
    def serve(self, x):
        return {"output": self._lowering.run(x)}


def lower(model: tf.keras.Model, *, allow_float_fallback: bool = False) -> Lowered:
    """Lowers ``model`` (single input, single output, NHWC) for LCE; see the module doc.

    Raises `LoweringError` naming the first binary layer that cannot be lowered,
    unless ``allow_float_fallback``.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise LoweringError(f"models with {len(model.inputs)} inputs and {len(model.outputs)} "
                            "outputs are not supported (one input, one output)")
    input_shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in input_shape):
        raise LoweringError(f"the model's input shape {(None, *input_shape)} must be fully "
                            "defined apart from the batch size")
    lowering = _Lowering(model, allow_float_fallback=allow_float_fallback)
    variables = list(model.variables) + list(lowering.kernels.values())
    module = _Module(lowering, variables)
    try:
        function = module.serve.get_concrete_function(
            tf.TensorSpec((1, *input_shape), tf.float32, name="input"))
    except DeployError:
        raise
    return Lowered(module=module, function=function, plans=lowering.order,
                   scopes=dict(lowering.scopes), input_shape=input_shape)
