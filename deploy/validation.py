"""Checks every .tflite file once, before any runtime (LCE, stock TFLite, native, Java) sees it.

LCE's interpreter trusts its custom options: a few corrupt bytes in an
``LceBconv2d``'s flexbuffer options segfault the whole process. `validate` checks,
on the parsed `TFLiteModel` (no TensorFlow import), everything a runtime relies on:

- parsing (`TFLiteModel`, the one home of these checks): the file identifier, every
  index (operator inputs/outputs, opcode, buffer, graph inputs/outputs) in range, and a
  constant tensor's buffer holding exactly prod(shape)·itemsize bytes;
- `check_graph`: tensor types known, shapes non-negative, every op has an output, the
  graph has inputs and outputs;
- `check_dataflow`: every op reads constants, graph inputs or what an earlier op wrote
  (a runtime would read unset memory), writes non-constant tensors no other op writes,
  and omits (-1) only optional inputs;
- `check_builtin_ranks`: convolutions and products have the inputs (and ranks) their
  kernels index;
- `check_metadata`: the input/output shapes the deploy metadata records (what the
  Keras twins of ``bench`` and ``verify`` take) are the graph's;
- `check_lce_ops`: the custom options of every LCE op (``LceBconv2d``,
  ``LceQuantize``, ``LceDequantize``, ``LceBMaxPool2d``) against what the op reads,
  and their tensors' shapes and types (bitpacked int32 last axis = ceil(C/32)).

Each problem is a `Problem` (operator index, op name, message) formatted as one
line; `validate` raises `ValidationError` (a `DeployError`) for the first file with
problems, `problems` lists them all (``xnor-deploy inspect`` shows them).

Example:

>>> validate(TFLiteModel(data), path="model.tflite")      # doctest: +SKIP
DeployError: model.tflite: node 3 (LceBconv2d): stride_height must be >= 1, got 0
"""

from __future__ import annotations

import dataclasses

from deploy.errors import DeployError
from deploy.tflite_model import LCE_OPS, TFLiteFormatError, TFLiteModel, schema

METADATA_NAME = "xnor_keras"  # the flatbuffer metadata entry written by `deploy.convert`

__all__ = ["Problem", "ValidationError", "validate", "validate_bytes", "problems",
           "check_graph", "check_dataflow", "check_builtin_ranks",
           "check_metadata", "check_lce_ops"]

_TYPE_NAMES = {k for k in vars(schema.TensorType) if not k.startswith("_")}
_PADDING = (0, 1)  # schema.Padding: SAME, VALID
_ACTIVATIONS = (0, 1, 2, 3)  # NONE, RELU, RELU_N1_TO_1, RELU6 (what LceBconv2d fuses)
_MAX_DIM = 1 << 24  # any larger stride / filter / channel count is corruption


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a file; ``op`` is the operator index (None: not an op's)."""

    message: str
    op: int | None = None
    op_name: str = ""

    def format(self) -> str:
        where = f"node {self.op} ({self.op_name}): " if self.op is not None else ""
        return where + self.message


class ValidationError(DeployError):
    """A .tflite file that no runtime may be given (one line: path, node, problem)."""


def validate(tflite: TFLiteModel, *, path="<memory>") -> TFLiteModel:
    """``tflite`` unchanged if no check finds a problem, else `ValidationError`."""
    found = problems(tflite)
    if found:
        shown = "; ".join(problem.format() for problem in found[:3])
        more = f"; and {len(found) - 3} more" if len(found) > 3 else ""
        raise ValidationError(f"{path}: invalid model: {shown}{more}")
    return tflite


def validate_bytes(flatbuffer: bytes, *, path="<memory>") -> bytes:
    """``flatbuffer`` unchanged if it parses and passes `validate`, else `DeployError`.

    For code that builds an interpreter from bytes it did not read with
    `deploy.artifacts.load_tflite`.
    """
    try:
        tflite = TFLiteModel(flatbuffer)
    except TFLiteFormatError as error:
        raise ValidationError(f"{path}: {error}") from None
    validate(tflite, path=path)
    return flatbuffer


def problems(tflite: TFLiteModel) -> list[Problem]:
    """Every problem the checks find (empty for a sound file)."""
    found = check_graph(tflite)
    if found:  # later checks index tensors
        return found
    return (check_dataflow(tflite) + check_builtin_ranks(tflite) + check_metadata(tflite)
            + check_lce_ops(tflite))


# (input slot, minimum rank) that builtin ops' kernels and `TFLiteModel.op_macs` index.
_BUILTIN_RANKS = {"CONV_2D": ((0, 4), (1, 4)), "DEPTHWISE_CONV_2D": ((0, 4), (1, 4)),
                  "TRANSPOSE_CONV": ((1, 4), (2, 4)), "FULLY_CONNECTED": ((0, 1), (1, 2)),
                  "BATCH_MATMUL": ((0, 2), (1, 2))}


def check_builtin_ranks(tflite: TFLiteModel) -> list[Problem]:
    """Convolutions and products have their inputs, of the ranks their kernels index."""
    found = []
    for op in tflite.ops:
        for slot, rank in _BUILTIN_RANKS.get(op.name, ()):
            if slot >= len(op.inputs) or op.inputs[slot] < 0:
                found.append(Problem(f"input {slot} is missing", op.index, op.name))
            elif len(tflite.tensors[op.inputs[slot]].shape) < rank:
                found.append(Problem(f"input {slot} has shape "
                                     f"{list(tflite.tensors[op.inputs[slot]].shape)}, needs "
                                     f"rank >= {rank}", op.index, op.name))
    return found


# The first input slot an op may omit (-1): biases and LceBconv2d's post-activation tensors.
_OPTIONAL_FROM = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2,
                  "TRANSPOSE_CONV": 3, "LceBconv2d": 2}


def check_dataflow(tflite: TFLiteModel) -> list[Problem]:
    """Ops in execution order read only defined tensors and write fresh ones."""
    found = []
    defined = {t.index for t in tflite.tensors if t.constant} | {t.index for t in tflite.inputs}
    for op in tflite.ops:
        optional = _OPTIONAL_FROM.get(op.name, len(op.inputs))
        for slot, index in enumerate(op.inputs):
            if index < 0 and slot < optional:
                found.append(Problem(f"required input {slot} is omitted", op.index, op.name))
            elif index >= 0 and index not in defined:
                found.append(Problem(f"input {slot} reads tensor {index} before any op writes "
                                     "it", op.index, op.name))
        for index in op.outputs:
            if index in defined:
                found.append(Problem(f"writes tensor {index}, a constant, graph input or "
                                     "another op's output", op.index, op.name))
            defined.add(index)
    for tensor in tflite.outputs:
        if tensor.index not in defined:
            found.append(Problem(f"graph output {tensor.index} is never written"))
    return found


def check_metadata(tflite: TFLiteModel) -> list[Problem]:
    """The graph's input and output shapes are the ones the deploy metadata records."""
    try:
        metadata = tflite.json_metadata(METADATA_NAME)
    except TFLiteFormatError as error:
        return [Problem(str(error))]
    if not isinstance(metadata, dict):
        return [] if metadata is None else [Problem(f"metadata {METADATA_NAME!r} is not a "
                                                    "JSON object")]
    found = []
    for key, tensors in (("input", tflite.inputs), ("output", tflite.outputs)):
        recorded = (metadata.get(key) or {}).get("shape")
        if recorded is not None and (len(tensors) != 1 or list(tensors[0].shape) != recorded):
            found.append(Problem(f"the graph's {key} shape {[list(t.shape) for t in tensors]} "
                                 f"is not the {recorded} its metadata records"))
    return found


def check_graph(tflite: TFLiteModel) -> list[Problem]:
    """Tensor types known, shapes non-negative, every op with an output, graph inputs
    and outputs present (the parser has checked every index)."""
    found = []
    for tensor in tflite.tensors:
        if tensor.dtype not in _TYPE_NAMES:
            found.append(Problem(f"tensor {tensor.index} has unknown type {tensor.dtype}"))
        if any(d < 0 or d > _MAX_DIM for d in tensor.shape):
            found.append(Problem(f"tensor {tensor.index} has shape {list(tensor.shape)}"))
    if not tflite.inputs or not tflite.outputs:
        found.append(Problem("the graph has no input or no output"))
    for op in tflite.ops:
        if not op.outputs or min(op.outputs) < 0:
            found.append(Problem("has no output tensor", op.index, op.name))
    return found


def check_lce_ops(tflite: TFLiteModel) -> list[Problem]:
    """The options and tensors of every LCE custom op (see the per-op checks)."""
    checks = {"LceBconv2d": _check_bconv2d, "LceBMaxPool2d": _check_bmaxpool2d,
              "LceQuantize": _check_quantize, "LceDequantize": _check_dequantize}
    found = []
    for op in tflite.ops:
        if op.name in LCE_OPS:
            found += [Problem(message, op.index, op.name) for message in checks[op.name](tflite, op)]
    return found


def _words(channels: int) -> int:
    """Bitpacked int32 words for ``channels`` values: ceil(C/32)."""
    return -(-channels // 32)


def _options(op, keys: dict) -> list[str]:
    """Messages for missing or mistyped keys; ``keys`` maps key → (lowest, highest)."""
    if "_raw" in op.options or "_value" in op.options:
        return ["custom options are not a FlexBuffer map"]
    messages = []
    for key, (low, high) in keys.items():
        value = op.options.get(key)
        if value is None:
            messages.append(f"custom option {key!r} is missing")
        elif not isinstance(value, int) or isinstance(value, bool):
            messages.append(f"custom option {key!r} must be an integer, got {value!r}")
        elif not low <= value <= high:
            messages.append(f"custom option {key!r} must be in {low}..{high}, got {value}")
    return messages


def _io(tflite, op, n_in: int, n_out: int = 1) -> list[str]:
    if len(op.inputs) < n_in or min(op.inputs[:n_in]) < 0 or len(op.outputs) != n_out:
        return [f"needs {n_in} input(s) and {n_out} output(s), has {len(op.inputs)} and "
                f"{len(op.outputs)}"]
    return []


def _spatial(size: int, filt: int, stride: int, dilation: int, same: bool) -> int:
    """Output extent of a conv/pool: ceil(H/s) (SAME) or ceil((H - (k-1)·d)/s) (VALID)."""
    if same:
        return -(-size // stride)
    return max(0, -(-(size - (filt - 1) * dilation) // stride))


def _check_bconv2d(tflite, op) -> list[str]:
    """``LceBconv2d``: options (strides, dilations, padding, pad_values, channels_in,
    fused activation), filter (C_out, kh, kw, words-or-C per group), groups dividing the
    channels, input (N, H, W, C or ceil(C/32) words), per-channel post-activation
    tensors of C_out values, output shape."""
    messages = _options(op, {
        "stride_height": (1, _MAX_DIM), "stride_width": (1, _MAX_DIM),
        "dilation_height_factor": (1, _MAX_DIM), "dilation_width_factor": (1, _MAX_DIM),
        "padding": (min(_PADDING), max(_PADDING)), "pad_values": (0, 1),
        "channels_in": (1, _MAX_DIM),
        "fused_activation_function": (min(_ACTIVATIONS), max(_ACTIVATIONS))})
    messages += _io(tflite, op, 2)
    if messages:
        return messages
    o = op.options
    x, f, y = (tflite.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
    if len(x.shape) != 4 or len(f.shape) != 4 or len(y.shape) != 4:
        return [f"input, filter and output must be 4-D, got {list(x.shape)}, {list(f.shape)}, "
                f"{list(y.shape)}"]
    if not f.constant or f.dtype not in ("INT32", "FLOAT32"):
        return [f"filter must be a constant INT32 (bitpacked) or FLOAT32 tensor, got "
                f"{'constant ' if f.constant else ''}{f.dtype}"]
    channels, c_out = o["channels_in"], f.shape[0]
    per_group = f.shape[3] * 32 if f.dtype == "INT32" else f.shape[3]
    if f.dtype == "INT32" and f.shape[3] == _words(channels):
        per_group = channels
    if per_group < 1 or channels % per_group or min(f.shape) < 1:
        return [f"channels_in={channels} is not a multiple of the filter's per-group "
                f"channels {per_group} (filter {list(f.shape)})"]
    groups = channels // per_group
    if c_out % groups:
        return [f"{groups} groups (channels_in={channels}) do not divide C_out={c_out}"]
    if groups > 1 and per_group % 32:
        return [f"{groups} groups leave {per_group} channels per group, not a multiple of 32"]
    if x.dtype == "INT32":
        if x.shape[3] != _words(channels):
            messages.append(f"bitpacked input has {x.shape[3]} words per pixel, "
                            f"channels_in={channels} needs {_words(channels)}")
    elif x.dtype in ("FLOAT32", "INT8"):
        if x.shape[3] != channels:
            messages.append(f"input has {x.shape[3]} channels, channels_in={channels}")
    else:
        messages.append(f"input type {x.dtype} is not INT32, FLOAT32 or INT8")
    for slot in range(2, len(op.inputs)):
        t = op.inputs[slot]
        if t >= 0 and tflite.tensors[t].shape != (c_out,):
            messages.append(f"input {slot} has shape {list(tflite.tensors[t].shape)}, "
                            f"expected [{c_out}]")
    if y.dtype not in ("INT32", "FLOAT32", "INT8"):
        messages.append(f"output type {y.dtype} is not INT32, FLOAT32 or INT8")
    same = o["padding"] == 0
    expected = (x.shape[0],
                _spatial(x.shape[1], f.shape[1], o["stride_height"], o["dilation_height_factor"],
                         same),
                _spatial(x.shape[2], f.shape[2], o["stride_width"], o["dilation_width_factor"],
                         same),
                _words(c_out) if y.dtype == "INT32" else c_out)
    if y.shape != expected:
        messages.append(f"output shape {list(y.shape)}, expected {list(expected)}")
    return messages


def _check_bmaxpool2d(tflite, op) -> list[str]:
    """``LceBMaxPool2d``: strides and filter ≥ 1, padding enum, bitpacked 4-D input and
    output with the same words per pixel, output spatial shape."""
    messages = _options(op, {
        "stride_height": (1, _MAX_DIM), "stride_width": (1, _MAX_DIM),
        "filter_height": (1, _MAX_DIM), "filter_width": (1, _MAX_DIM),
        "padding": (min(_PADDING), max(_PADDING))})
    messages += _io(tflite, op, 1)
    if messages:
        return messages
    o = op.options
    x, y = tflite.tensors[op.inputs[0]], tflite.tensors[op.outputs[0]]
    if x.dtype != "INT32" or y.dtype != "INT32" or len(x.shape) != 4 or len(y.shape) != 4:
        return [f"input and output must be 4-D bitpacked INT32, got {x.dtype} {list(x.shape)} "
                f"and {y.dtype} {list(y.shape)}"]
    same = o["padding"] == 0
    expected = (x.shape[0], _spatial(x.shape[1], o["filter_height"], o["stride_height"], 1, same),
                _spatial(x.shape[2], o["filter_width"], o["stride_width"], 1, same), x.shape[3])
    if y.shape != expected:
        messages.append(f"output shape {list(y.shape)}, expected {list(expected)}")
    return messages


def _check_quantize(tflite, op) -> list[str]:
    """``LceQuantize``: a FLOAT32/INT8/BOOL input bitpacked to INT32, ceil(C/32) words."""
    messages = _io(tflite, op, 1)
    if messages:
        return messages
    x, y = tflite.tensors[op.inputs[0]], tflite.tensors[op.outputs[0]]
    if x.dtype not in ("FLOAT32", "INT8", "BOOL") or y.dtype != "INT32":
        return [f"bitpacks {x.dtype} to {y.dtype}, expected FLOAT32/INT8/BOOL to INT32"]
    return _packed_pair(x, y)


def _check_dequantize(tflite, op) -> list[str]:
    """``LceDequantize``: a bitpacked INT32 input unpacked to FLOAT32/INT8/BOOL."""
    messages = _io(tflite, op, 1)
    if messages:
        return messages
    x, y = tflite.tensors[op.inputs[0]], tflite.tensors[op.outputs[0]]
    if x.dtype != "INT32" or y.dtype not in ("FLOAT32", "INT8", "BOOL"):
        return [f"unpacks {x.dtype} to {y.dtype}, expected INT32 to FLOAT32/INT8/BOOL"]
    return _packed_pair(y, x)


def _packed_pair(unpacked, packed) -> list[str]:
    """Same leading dims; the packed last axis holds ceil(C/32) words of the unpacked one."""
    u, p = unpacked.shape, packed.shape
    if not u or len(u) != len(p) or u[:-1] != p[:-1] or p[-1] != _words(u[-1]):
        return [f"bitpacked shape {list(p)} does not match unpacked shape {list(u)}"]
    return []
