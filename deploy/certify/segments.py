"""Cutting a converted file at the tensors that stand for Keras tensors.

`deploy.lowering` emits every Keras layer's ops under the name scope of its plan
(``"L7"``) and a binary layer's binarized input under ``"L7/in"``; the converter keeps
those scopes in the tensor names, joining the names of fused ops with ``;``
(``"L8/in/add;L8/in/mul;L5/Conv2D"``: a binary convolution of layer 5 whose output
transform computes the binarized input of layer 8). A tensor's *key* is the latest
scope in its name, ordered ``L7`` < ``L8/in`` < ``L8``.

A *cut* is an activation tensor whose key differs from that of every op reading it
(or a graph input/output): the last tensor the file computes for that key. It holds

- key ``Lk``: the output of Keras layer k (reshaped; bitpacked as LCE packs signs if
  the tensor is INT32), or
- key ``Lk/in`` (bitpacked only): sign(input of Keras layer k).

Never cuts: int8 tensors (the inside of an int8 float layer, ``--int8_float_layers``:
the cut is the float tensor after its DEQUANTIZE), ``Lk/pre`` tensors (a folded pre-activation m·y + b that stands for the
Keras tensor only through its sign), float ``Lk/in`` tensors (likewise), a tensor read
by an op whose name also has a part of key ``Lk`` (the converter fused the rest of
layer k into that op: BatchNorm's ADD with the next ReLU), and a tensor whose size is
not that of its Keras tensor.

A `Segment` is the ops between cuts: everything needed to compute one cut from the
cuts before it. Running a segment's ops (the file's own, `TFLiteModel.submodel`) on
Keras's values at its input cuts checks those ops with propagation cut off.

Example:

>>> segments = find_segments(TFLiteModel.load("m.tflite"), lowered.plans)  # doctest: +SKIP
>>> [(s.output.layer, s.output.binarized_input) for s in segments][:2]     # doctest: +SKIP
[('conv1_relu', False), ('pool1', False)]
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from deploy.lowering import INPUT_SCOPE, PRE_SCOPE
from deploy.tflite_model import TFLiteModel

__all__ = ["Cut", "Segment", "QUANTIZED_TYPES", "find_cuts", "find_segments", "name_keys",
           "tensor_key", "quantized_ops"]

QUANTIZED_TYPES = ("INT8", "UINT8")  # affine-quantized tensors (int8 float layers)

_COMPONENT = re.compile(rf"^L(\d+)(?:/({INPUT_SCOPE}|{PRE_SCOPE}))?(?:/|$)")
_SUB = {INPUT_SCOPE: 0, PRE_SCOPE: 1, None: 2}  # the order of keys within one layer
_NAME_LIMIT = 50  # the converter truncates long fused names: the last part may be cut


@dataclasses.dataclass(frozen=True)
class Cut:
    """A tensor of the file that stands for a Keras tensor.

    ``position``: index of the layer's plan; ``binarized_input``: the tensor holds
    sign(input of the layer) rather than its output; ``bitpacked``: INT32, LCE's bit
    layout (a set bit is -1) over the last axis.
    """

    tensor: int
    layer: str
    position: int
    binarized_input: bool
    bitpacked: bool
    shape: tuple

    @property
    def key(self) -> tuple:
        return (self.position, _SUB[INPUT_SCOPE] if self.binarized_input else _SUB[None])

    def describe(self) -> str:
        return f"sign(input of {self.layer})" if self.binarized_input else self.layer


@dataclasses.dataclass(frozen=True)
class Segment:
    """The ops (execution order) computing cut ``output`` from cuts ``inputs``."""

    output: Cut
    inputs: tuple
    ops: tuple


def name_keys(name: str, *, positions: int) -> list:
    """Every ``(layer position, sub-scope)`` key of the parts of a tensor name."""
    parts = name.split(";")
    if len(name) >= _NAME_LIMIT and len(parts) > 1:
        parts = parts[:-1]
    keys = []
    for part in parts:
        match = _COMPONENT.match(part)
        if match and int(match.group(1)) < positions:
            keys.append((int(match.group(1)), _SUB[match.group(2)]))
    return keys


def tensor_key(name: str, *, positions: int) -> tuple | None:
    """The latest key in a tensor name: ``L7`` < ``L8/in`` < ``L8/pre`` < ``L8``."""
    keys = name_keys(name, positions=positions)
    return max(keys) if keys else None


def _keys(model: TFLiteModel, plans) -> dict:
    """Tensor index → key, for the activations written by an op from activations (not
    weights decoded from constants); the graph input is the model's input (position
    -1), a graph output without a scope its last layer."""
    keys = {t.index: (-1, _SUB[None]) for t in model.inputs}
    derived = set()  # written by ops reading only constants (LceDequantize of 1-bit weights)
    for op in model.ops:
        if all(t < 0 or model.tensors[t].constant or t in derived for t in op.inputs):
            derived.update(op.outputs)
            continue
        for t in op.outputs:
            keys[t] = tensor_key(model.tensors[t].name, positions=len(plans))
    for t in model.outputs:
        if keys.get(t.index) is None:
            keys[t.index] = (len(plans) - 1, _SUB[None])
    return keys


def find_cuts(model: TFLiteModel, plans, *, keras_size=None) -> dict:
    """Tensor index → `Cut` for every tensor that stands for a Keras tensor.

    ``keras_size(position, binarized_input)``: the number of elements of the Keras
    tensor a cut would stand for (no size check if None)."""
    keys = _keys(model, plans)
    consumers = model.consumers()
    outputs = {t.index for t in model.outputs}
    inputs = {t.index for t in model.inputs}
    cuts = {}
    for t, key in keys.items():
        if key is None:
            continue
        tensor = model.tensors[t]
        position, sub = key
        bitpacked = tensor.dtype == "INT32"
        if tensor.dtype in QUANTIZED_TYPES and t not in outputs:
            continue
        readers = [model.ops[i] for i in consumers.get(t, ())]
        if t not in outputs and t not in inputs:
            if sub == _SUB[PRE_SCOPE] or (sub == _SUB[INPUT_SCOPE] and not bitpacked):
                continue
            reader_keys = [name_keys(model.tensors[op.outputs[0]].name, positions=len(plans))
                           for op in readers if op.outputs]
            if all(keys.get(op.outputs[0]) == key for op in readers if op.outputs):
                continue
            if sub == _SUB[None] and any(key in found for found in reader_keys):
                continue
        if keras_size is not None and not _fits(tensor, keras_size(position, sub == 0),
                                                bitpacked):
            continue
        name = "input" if position < 0 else plans[position].name
        cuts[t] = Cut(tensor=t, layer=name, position=position,
                      binarized_input=sub == _SUB[INPUT_SCOPE], bitpacked=bitpacked,
                      shape=tuple(tensor.shape))
    return cuts


def _fits(tensor, size: int, bitpacked: bool) -> bool:
    """Can ``tensor`` hold a Keras tensor of ``size`` elements (batch 1)?"""
    shape = tensor.shape
    if not bitpacked:
        return int(np.prod(shape)) == size
    outer = int(np.prod(shape[:-1])) if shape else 0
    return bool(outer) and size % outer == 0 and -(-(size // outer) // 32) == shape[-1]


def quantized_ops(model: TFLiteModel, segment: "Segment") -> list:
    """The ops of ``segment`` that read or write an int8/uint8 tensor (int8 layers)."""
    return [i for i in segment.ops
            if any(t >= 0 and model.tensors[t].dtype in QUANTIZED_TYPES
                   for t in (*model.ops[i].inputs, *model.ops[i].outputs))]


def find_segments(model: TFLiteModel, plans, *, keras_size=None) -> list:
    """Every cut but the graph input, with the ops computing it from earlier cuts."""
    cuts = find_cuts(model, plans, keras_size=keras_size)
    producers = model.producers()
    segments = []
    for t, cut in cuts.items():
        if t not in producers:
            continue
        ops, inputs, stack, seen = set(), {}, [t], set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            if current != t and current in cuts:
                inputs[current] = cuts[current]
                continue
            if current not in producers:
                continue  # a constant
            op = model.ops[producers[current]]
            ops.add(op.index)
            stack.extend(i for i in op.inputs if i >= 0 and not model.tensors[i].constant)
        segments.append(Segment(output=cut, inputs=tuple(inputs[i] for i in sorted(inputs)),
                                ops=tuple(sorted(ops))))
    segments.sort(key=lambda s: s.ops[-1])
    return segments
