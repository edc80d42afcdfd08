"""The graph walk that emits the lowered module: `lower`.

`_Lowering` first reads every layer (`graph.binary_spec`, BatchNorm affines, the
binary kernels as variables, the float twin's cost), then, traced inside
``_Module.serve``, walks the Keras graph and emits for each layer the ops LCE
recognises, recording in each `Value`'s origin what a later fold needs
(`folding.fold_sign_chain`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
from larq import math as lq_math
from larq.quantizers import Quantizer

from deploy.errors import DeployError
from deploy.lowering import cost, graph
from deploy.lowering.folding import (
    Affine, FoldError, MaxPool, Relu, fold_sign_chain, integer_threshold, per_channel)
from deploy.lowering.plan import (
    INPUT_SCOPE, PRE_SCOPE, LayerPlan, Lowered, LoweringError, Role)
from deploy.lowering.quantize import (
    fake_quant_activation, fake_quant_weights, folded_weights, int8_chains)
from deploy.lowering.values import (
    AffineOrigin, BconvOrigin, MaxPoolOrigin, ReluOrigin, SignOrigin, Value)
from xnor_keras import scaling


def _same_padded(x, *, padding, pad_values, kernel_size, strides, dilation):
    """(input, conv padding) for a convolution padding with ``pad_values``: TensorFlow
    pads "SAME" with zeros, so a nonzero value pads explicitly and convolves "VALID".

    SAME pads each spatial axis of size n by max((⌈n/s⌉ - 1)·s + (k - 1)·d + 1 - n, 0),
    the smaller half before, the larger after."""
    if pad_values == 0.0 or padding != "same":
        return x, padding.upper()
    pads = [[0, 0]]
    for size, k, s, d in zip(x.shape[1:3], kernel_size, strides, dilation):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        pads.append([total // 2, total - total // 2])
    pads.append([0, 0])
    return tf.pad(x, pads, constant_values=pad_values), "VALID"


class _Lowering:
    """One lowering run: pre-pass (specs, variables), then the traced walk."""

    def __init__(self, model, *, allow_float_fallback, int8_ranges=None):
        self.model = model
        self.allow = allow_float_fallback
        self.int8_ranges = int8_ranges
        self.int8 = {}  # id(layer) → (its Int8Chain, its index in the chain)
        self.int8_weights = {}  # chain name → folded (kernel, bias)
        self.int8_skipped = {}  # layer name → why it stays float
        self.plans = {}
        self.order = []
        self.specs = {}
        self.bn = {}
        self.kernels = {}
        self.scopes = {}
        self.sign_layers = set()
        self._prepass(model)
        if int8_ranges is not None:
            self._int8_prepass(model)

    # ---------------------------------------------------------------- pre-pass
    def _prepass(self, model):
        for layer in graph.topological_layers(model):
            if isinstance(layer, tf.keras.Model):
                self._prepass(layer)
                continue
            scope = f"L{len(self.order)}"
            plan = LayerPlan(name=layer.name, class_name=type(layer).__name__, role=Role.OTHER,
                             scope=scope)
            self.plans[id(layer)] = plan
            self.order.append(plan)
            self.scopes[scope] = layer.name
            spec = graph.binary_spec(layer)
            plan.float_twin_params = cost.inference_params(layer)
            plan.float_twin_macs = cost.float_macs(layer)
            if isinstance(spec, graph.BinarySpec):
                self.specs[id(layer)] = spec
                plan.role = Role.BINARY if spec.kind == "xnor" else Role.BINARY_WEIGHT
                kernel = spec.kernel
                if spec.kind == "xnor" and spec.op == "dense":
                    # Stored in its final (H, W, C, units) shape: MLIR does not fold a
                    # reshape of a constant this large, and LCE needs a constant filter.
                    spatial = (graph.dense_input_spatial(layer, self.specs)
                               or (1, 1, kernel.shape[0]))
                    kernel = kernel.reshape(*spatial, kernel.shape[-1])
                self.kernels[id(layer)] = tf.Variable(kernel, trainable=False,
                                                      name=f"{layer.name}_binary_kernel")
            elif isinstance(spec, graph.Unlowerable):
                plan.role = Role.FALLBACK
                plan.fallback_reason = spec.reason
                if not self.allow:
                    raise LoweringError(
                        f"layer {layer.name!r} ({type(layer).__name__}) cannot be lowered to a "
                        f"binary op: {spec.reason}. Pass --allow-float-fallback to run it in "
                        "float.")
            elif isinstance(layer, tf.keras.layers.BatchNormalization):
                self.bn[id(layer)] = graph.batch_norm(layer)
            elif isinstance(layer, Quantizer) and graph.is_sign_quantizer(layer):
                self.sign_layers.add(id(layer))
            if plan.role is Role.OTHER and layer.weights:
                plan.role = Role.FLOAT

    def _int8_prepass(self, model):
        chains, self.int8_skipped = int8_chains(model)
        for chain in chains:
            if chain.name not in self.int8_ranges:
                raise LoweringError(f"layer {chain.name!r}: no calibrated int8 ranges")
            self.int8_weights[chain.name] = folded_weights(chain)
            self.plans[id(chain.layers[0])].int8 = True
            for i, layer in enumerate(chain.layers):
                self.int8[id(layer)] = (chain, i)

    # ---------------------------------------------------------------- walk
    def run(self, x):
        # TensorFlow may trace more than once: the plans' notes describe one trace.
        for plan in self.order:
            plan.notes, plan.lowering = [], ""
        return self._walk(self.model, [Value(x)])[0].keras()

    def _walk(self, model, inputs):
        values = {}
        for keras_input, value in zip(model.inputs, inputs):
            values[id(keras_input)] = value
        for node in graph.topological_nodes(model):
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
        if id(layer) in self.int8:
            return [self._int8(*self.int8[id(layer)], args[0], plan)]
        if layer.name in self.int8_skipped:
            plan.notes.append(f"stays float with --int8_float_layers: "
                              f"{self.int8_skipped[layer.name]}")
        if id(layer) in self.specs:
            return [self._binary(layer, self.specs[id(layer)], args[0], plan)]
        if plan.role is Role.FALLBACK:
            plan.lowering = "float (fallback)"
            plan.notes.append(f"runs in float: {plan.fallback_reason}")
        if id(layer) in self.sign_layers and len(args) == 1:
            return [self._sign_activation(args[0], plan)]
        if isinstance(layer, tf.keras.layers.InputLayer):
            return args
        if graph.is_identity_layer(layer):
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
        if graph.is_relu_layer(layer):
            value = args[0]
            return [Value(tf.nn.relu(value.tensor), flat=value.flat, origin=ReluOrigin(value))]
        if isinstance(layer, tf.keras.layers.MaxPool2D) and not args[0].flat:
            value = args[0]
            if isinstance(value.origin, SignOrigin):
                # maxpool(sign(t)) = sign(maxpool(t)): LCE pools bitpacked (LceBMaxPool2d).
                with tf.name_scope(PRE_SCOPE):
                    pooled = layer(value.origin.pre_sign)
                return [Value(lq_math.sign(pooled), origin=SignOrigin(pooled))]
            return [Value(layer(value.tensor), origin=MaxPoolOrigin(layer, value))]
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
        return [Value(t) for t in tf.nest.flatten(outputs)]

    def _batch_norm(self, layer, value):
        m, b = self.bn[id(layer)].m, self.bn[id(layer)].b
        rank = value.tensor.shape.rank
        if not value.flat and layer.axis[0] not in (-1, rank - 1):
            return Value(layer(value.tensor, training=False))
        if value.flat:
            channels = value.tensor.shape[-1]
            m_c, b_c = per_channel(m, channels), per_channel(b, channels)
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
        return Value(out, flat=value.flat,
                     origin=AffineOrigin(m.reshape(shape), b.reshape(shape), value))

    def _sign_activation(self, value, plan):
        """A sign quantizer layer: sign(``value``), folded into the binary convolution
        that produced it where possible; its origin keeps the pre-sign tensor."""
        with tf.name_scope(PRE_SCOPE):
            t = self._folded_pre_sign(value, value.tensor, plan, target=repr(plan.name),
                                      folded_note="sign folded into")
        if t is None:
            return Value(lq_math.sign(value.tensor), flat=value.flat,
                         origin=SignOrigin(value.tensor))
        return Value(self._shaped_like(lq_math.sign(t), value.tensor), flat=value.flat,
                     origin=SignOrigin(self._shaped_like(t, value.tensor)))

    # ---------------------------------------------------------------- int8 layers
    def _int8(self, chain, index, value, plan):
        """One layer of an int8 chain (`deploy.lowering.quantize`): the first emits
        fake-quant(input) and the convolution with the folded, fake-quantized kernel;
        the last the bias, ReLU and fake-quant(output), in its own name scope, so that
        the converted int8 op's output names the Keras tensor it stands for."""
        kernel, bias = self.int8_weights[chain.name]
        y = value.tensor
        if index == 0:
            layer = chain.layers[0]
            x = fake_quant_activation(value.keras(), self.int8_ranges[chain.name].input)
            if chain.kind == "dense":
                x = tf.reshape(x, [-1, 1, 1, kernel.shape[0]])
                y = tf.nn.conv2d(x, fake_quant_weights(kernel.reshape(1, 1, *kernel.shape)),
                                 strides=1, padding="VALID")
                plan.lowering = "int8 1×1 conv (per-channel weights)"
            elif chain.kind == "conv":
                y = tf.nn.conv2d(x, fake_quant_weights(kernel), strides=list(layer.strides),
                                 padding=layer.padding.upper(),
                                 dilations=list(layer.dilation_rate))
                plan.lowering = f"int8 {kernel.shape[0]}×{kernel.shape[1]} conv"
            else:
                y = tf.nn.depthwise_conv2d(x, fake_quant_weights(kernel, depthwise=True),
                                           strides=[1, *layer.strides, 1],
                                           padding=layer.padding.upper(),
                                           dilations=list(layer.dilation_rate))
                plan.lowering = f"int8 {kernel.shape[0]}×{kernel.shape[1]} depthwise conv"
            folded = [other.name for other in chain.layers[1:]]
            if folded:
                plan.lowering += f" + {' + '.join(folded)}"
        else:
            plan.lowering = f"folded into {chain.name!r} (int8)"
        if index == len(chain.layers) - 1:
            y = tf.nn.bias_add(y, tf.constant(bias))
            if chain.relu:
                y = tf.nn.relu(y)
            y = fake_quant_activation(y, self.int8_ranges[chain.name].output)
            if chain.kind == "dense":
                y = tf.reshape(y, [-1, kernel.shape[-1]])
        return Value(y)

    # ---------------------------------------------------------------- binary layers
    def _binary(self, layer, spec, value, plan):
        kernel = self.kernels[id(layer)]
        if spec.kind == "bwn":
            return self._bwn(spec, value, plan, kernel)
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

        # The binarized input gets its own name scope ("L8/in"), so that the converted
        # file's tensors say which of them is sign(input of this layer): deploy.certify
        # cuts the file there.
        with tf.name_scope(INPUT_SCOPE):
            binary = self._binarized_input(spec, value, x, plan)
        binary, conv_padding = _same_padded(binary, padding=padding,
                                            pad_values=spec.pad_values,
                                            kernel_size=kernel_size, strides=strides,
                                            dilation=dilation)
        acc = tf.nn.conv2d(binary, kernel, strides=list(strides), padding=conv_padding,
                           dilations=list(dilation))
        acc_value = Value(acc, origin=BconvOrigin(spec.scale), producer=plan)
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
        if spec.input_scaling:
            origin_value = None
        elif m0 is not None or spec.bias is not None:
            channels = spec.kernel.shape[-1]
            m = np.ones(channels) if m0 is None else m0.astype(np.float64)
            b = np.zeros(channels) if spec.bias is None else spec.bias.astype(np.float64)
            origin_value = Value(y, origin=AffineOrigin(m, b, acc_value))
        if graph.is_relu(spec.activation):
            y = tf.nn.relu(y)
            if origin_value is not None:
                origin_value = Value(y, origin=ReluOrigin(origin_value))
        elif not graph.is_linear(spec.activation):
            y = spec.activation(y)
            origin_value = None
        return Value(y, flat=spec.op == "dense", producer=plan,
                     origin=None if origin_value is None else origin_value.origin)

    def _bwn(self, spec, value, plan, kernel):
        x = value.keras()
        if spec.op == "dense":
            y = tf.matmul(x, kernel)
            plan.lowering = "float dense, 1-bit weights (LceDequantize)"
            plan.filter_signs = np.where(spec.kernel.T < 0, -1.0, 1.0)
        else:
            x, padding = _same_padded(x, padding=spec.padding, pad_values=spec.pad_values,
                                      kernel_size=spec.kernel_size, strides=spec.strides,
                                      dilation=spec.dilation)
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
        if not graph.is_linear(spec.activation):
            y = spec.activation(y)
        return Value(y)

    def _binarized_input(self, spec, value, x, plan):
        """sign(``x``), the input of binary layer ``plan``, folded into the binary
        convolution that produced it where possible."""
        binary = None
        if isinstance(value.origin, SignOrigin) and not spec.input_scaling:
            binary = x  # already sign(·): binarizing twice would leave a float SIGN op
        elif not spec.input_scaling:
            binary = self._folded_input(value, x, plan)
        else:
            plan.notes.append("input scaling (K, eq. 11 / β, eq. 10) is computed in float and "
                              "needs the float input, so the BatchNorm/pool before this layer "
                              "stay float")
        return lq_math.sign(x) if binary is None else binary

    # ---------------------------------------------------------------- folds
    def _folded_input(self, value, x, plan):
        """The binary input sign(``value``) of a binary layer without input scaling,
        folded into the binary convolution that produced ``value`` and shaped like
        ``x``; or None (then the caller binarizes ``x``; reason noted)."""
        t = self._folded_pre_sign(value, x, plan, target="the next binary layer",
                                  folded_note="input binarization folded into",
                                  float_note="input comes from float layers: binarized "
                                             "by LceQuantize")
        return None if t is None else self._shaped_like(lq_math.sign(t), x)

    @staticmethod
    def _shaped_like(tensor, x):
        if tuple(tensor.shape[1:]) != tuple(x.shape[1:]):  # e.g. deferred flatten on 1×1
            return tf.reshape(tensor, [-1, *x.shape[1:]])
        return tensor

    def _folded_pre_sign(self, value, x, plan, *, target, folded_note, float_note=None):
        """t = pools(m·acc + b) with sign(t) = sign(``value``), where acc is the
        accumulator of the binary convolution that produced ``value`` through
        BatchNorm / ReLU / max-pool ops (`fold_sign_chain`); or None if there is no
        such fold (reason noted on ``plan``, ``float_note`` if ``value`` is float).
        ``target``/``folded_note`` word the notes on the producer and on ``plan``."""
        chain = []
        current = value
        while current.origin is not None and not isinstance(current.origin, BconvOrigin):
            origin = current.origin
            if isinstance(origin, AffineOrigin):
                chain.append(origin)
            elif isinstance(origin, ReluOrigin):
                chain.append(Relu())
            elif isinstance(origin, MaxPoolOrigin):
                chain.append(MaxPool(origin.pool))
            else:  # SignOrigin: already ±1 (max-pooling keeps it so)
                return None
            current = origin.parent
        if current.origin is not None and not chain:
            return None  # sign(y) of a binary layer: LCE writes bitpacked output itself
        if current.origin is None:
            if float_note is not None:
                plan.notes.append(float_note)
            return None
        producer = current.producer
        acc = current.tensor
        channels = acc.shape[-1]
        chain.reverse()
        for i, op in enumerate(chain):
            if isinstance(op, AffineOrigin):
                m, b = per_channel(op.m, channels), per_channel(op.b, channels)
                if m is None or b is None:
                    plan.notes.append("BatchNorm after Flatten is per position, not per channel: "
                                      "no fold into the previous binary layer")
                    return None
                chain[i] = Affine(m, b)
        try:
            fold = fold_sign_chain(chain, channels=channels)
        except FoldError as error:
            plan.notes.append(f"no BatchNorm+sign fold into {producer.name!r}: {error}")
            return None
        b = integer_threshold(fold.m, fold.b, current.origin.alpha)
        t = acc * tf.constant(fold.m) + tf.constant(b)
        for pool in fold.pools:
            t = pool(t)
        ops = "BatchNorm" + (" + max-pool" if fold.pools else "") + " + sign"
        producer.notes.append(f"{ops} of {target} folded into this layer's output "
                              "transform (exact)")
        plan.notes.append(f"{folded_note} {producer.name!r}")
        return t


class _Module(tf.Module):
    def __init__(self, lowering, variables):
        super().__init__()
        self._lowering = lowering
        self.kept_variables = list(variables)

    @tf.function(autograph=False)
    def serve(self, x):
        return {"output": self._lowering.run(x)}


def lower(model: tf.keras.Model, *, allow_float_fallback: bool = False,
          int8_ranges: dict | None = None) -> Lowered:
    """Lowers ``model`` (single input, single output, NHWC) for LCE; see `deploy.lowering`.

    ``int8_ranges``: {float layer name: `quantize.ChainRanges`} for every int8 chain
    (`deploy.calibration.calibrate`): its float layers are emitted as int8 (see
    `deploy.lowering.quantize`); None keeps them float.

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
    lowering = _Lowering(model, allow_float_fallback=allow_float_fallback,
                         int8_ranges=int8_ranges)
    variables = list(model.variables) + list(lowering.kernels.values())
    module = _Module(lowering, variables)
    try:
        function = module.serve.get_concrete_function(
            tf.TensorSpec((1, *input_shape), tf.float32, name="input"))
    except DeployError:
        raise
    return Lowered(module=module, function=function, plans=lowering.order,
                   scopes=dict(lowering.scopes), input_shape=input_shape)
