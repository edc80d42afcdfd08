"""Cutting a converted file at the tensors that stand for Keras tensors.

`deploy.lowering` emits every Keras layer's ops under the name scope of its plan
(``"L7"``) and a binary layer's binarized input under ``"L7/in"``; the converter keeps
those scopes in the tensor names, joining the names of fused ops with ``;``
(``"L8/in/add;L8/in/mul;L5/Conv2D"``: a binary convolution of layer 5 whose output
transform computes the binarized input of layer 8). A tensor's *key* is the latest
scope in its name, ordered ``L7`` < ``L8/in`` < ``L8``.

A *cut* is an activation tensor whose key differs from that of an op reading it (or a
graph input/output): the last tensor the file computes for that key. It holds

- key ``Lk``: the output of Keras layer k (reshaped; bitpacked as LCE packs signs if
  the tensor is INT32), or
- key ``Lk/in``: sign(input of Keras layer k), bitpacked or ±1 floats.

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

from deploy.lowering import INPUT_SCOPE
from deploy.tflite_model import TFLiteModel

__all__ = ["Cut", "Segment", "find_segments", "tensor_key"]

_COMPONENT = re.compile(r"^L(\d+)(/" + INPUT_SCOPE + r")?(?:/|$)")
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
        return (self.position, 0 if self.binarized_input else 1)

    def describe(self) -> str:
        return f"sign(input of {self.layer})" if self.binarized_input else self.layer


@dataclasses.dataclass(frozen=True)
class Segment:
    """The ops (execution order) computing cut ``output`` from cuts ``inputs``."""

    output: Cut
    inputs: tuple
    ops: tuple


def tensor_key(name: str, *, positions: int) -> tuple | None:
    """The latest ``(layer position, 0 for "/in" else 1)`` scope in a tensor name."""
    parts = name.split(";")
    if len(name) >= _NAME_LIMIT and len(parts) > 1:
        parts = parts[:-1]
    keys = []
    for part in parts:
        match = _COMPONENT.match(part)
        if match and int(match.group(1)) < positions:
            keys.append((int(match.group(1)), 0 if match.group(2) else 1))
    return max(keys) if keys else None


def _keys(model: TFLiteModel, plans) -> dict:
    """Tensor index → key, for the activations written by an op; the graph input is
    the model's input (position -1), a graph output without a scope its last layer."""
    keys = {t.index: (-1, 1) for t in model.inputs}
    for op in model.ops:
        for t in op.outputs:
            keys[t] = tensor_key(model.tensors[t].name, positions=len(plans))
    for t in model.outputs:
        if keys.get(t.index) is None:
            keys[t.index] = (len(plans) - 1, 1)
    return keys


def find_cuts(model: TFLiteModel, plans) -> dict:
    """Tensor index → `Cut` for every tensor that stands for a Keras tensor."""
    keys = _keys(model, plans)
    consumers = model.consumers()
    outputs = {t.index for t in model.outputs}
    inputs = {t.index for t in model.inputs}
    cuts = {}
    for t, key in keys.items():
        if key is None:
            continue
        readers = [model.ops[i] for i in consumers.get(t, ())]
        leaves = t in outputs or t in inputs or any(
            keys.get(op.outputs[0]) != key for op in readers if op.outputs)
        if not leaves:
            continue
        tensor = model.tensors[t]
        position, sub = key
        name = "input" if position < 0 else plans[position].name
        cuts[t] = Cut(tensor=t, layer=name, position=position, binarized_input=sub == 0,
                      bitpacked=tensor.dtype == "INT32", shape=tuple(tensor.shape))
    return cuts


def find_segments(model: TFLiteModel, plans) -> list:
    """Every cut but the graph input, with the ops computing it from earlier cuts."""
    cuts = find_cuts(model, plans)
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
