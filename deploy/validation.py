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
- `check_builtin_ranks`: convolutions, pools, products and reductions have the inputs
  (and ranks) their kernels index;
- `check_types`: every builtin op reads and writes the tensor types its TFLite kernel
  handles (element-wise inputs of the output's type, a conv's filter and bias types
  for its input type, int32 axes and shapes, no VARIANT/STRING/RESOURCE tensors);
- `check_builtin_shapes`: builtin options against shapes: strides, dilations and
  pool sizes in range, padding and activation known, a conv's filter fitting its input
  channels (groups), fully-connected inputs of whole rows, reduction axes within the
  rank, broadcasting, and the output shapes these give;
- `check_quantization`: INT8/UINT8/INT16 tensors have positive finite scales and
  matching zero points (kernels divide by them unchecked);
- `check_metadata`: the deploy metadata has the keys and value types its readers
  index (`_METADATA`), and the input/output shapes it records (what the Keras twins of
  ``bench`` and ``verify`` take) are the graph's;
- `check_lce_ops`: the custom options of every LCE op (``LceBconv2d``,
  ``LceQuantize``, ``LceDequantize``, ``LceBMaxPool2d``) against what the op reads,
  and their tensors' shapes and types (bitpacked int32 last axis = ceil(C/32)).

Each problem is a `Problem` (operator index, op name, message) formatted as one
line; `validate` raises `ValidationError` (a `DeployError`) for the first file with
problems, `problems` lists them all. A kernel that still refuses a validated file is
reported by `deploy.runtime` as one line naming the node.

Example:

>>> validate(TFLiteModel(data), path="model.tflite")      # doctest: +SKIP
DeployError: model.tflite: node 3 (LceBconv2d): stride_height must be >= 1, got 0
"""

from __future__ import annotations

import dataclasses
import math

from deploy.errors import DeployError
from deploy.tflite_model import LCE_OPS, TFLiteFormatError, TFLiteModel, schema

METADATA_NAME = "xnor_keras"  # the flatbuffer metadata entry written by `deploy.convert`

__all__ = ["Problem", "ValidationError", "validate", "validate_bytes", "problems",
           "check_graph", "check_dataflow", "check_builtin_ranks", "check_types",
           "check_builtin_shapes", "check_quantization", "check_metadata", "check_lce_ops",
           "METADATA_NAME", "METADATA_FORMAT"]

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
    return (check_dataflow(tflite) + check_builtin_ranks(tflite) + check_types(tflite)
            + check_builtin_shapes(tflite)
            + check_quantization(tflite) + check_metadata(tflite) + check_lce_ops(tflite))


# (input slot, minimum rank) that builtin ops' kernels and `TFLiteModel.op_macs` index.
_BUILTIN_RANKS = {"CONV_2D": ((0, 4), (1, 4)), "DEPTHWISE_CONV_2D": ((0, 4), (1, 4)),
                  "MAX_POOL_2D": ((0, 4),), "AVERAGE_POOL_2D": ((0, 4),),
                  **{name: ((0, 0), (1, 0)) for name in ("MEAN", "SUM", "REDUCE_MAX",
                                                         "REDUCE_MIN", "REDUCE_PROD")},
                  "TRANSPOSE_CONV": ((1, 4), (2, 4)), "FULLY_CONNECTED": ((0, 1), (1, 2)),
                  "BATCH_MATMUL": ((0, 2), (1, 2))}


def check_builtin_ranks(tflite: TFLiteModel) -> list[Problem]:
    """Convolutions and products have their inputs, of the ranks their kernels index."""
    return [Problem(message, op.index, op.name) for op in tflite.ops
            for message in _rank_problems(tflite, op)]


def _rank_problems(tflite, op) -> list[str]:
    """Missing or low-rank inputs of one op (see `_BUILTIN_RANKS`)."""
    messages = []
    for slot, rank in _BUILTIN_RANKS.get(op.name, ()):
        if slot >= len(op.inputs) or op.inputs[slot] < 0:
            messages.append(f"input {slot} is missing")
        elif len(tflite.tensors[op.inputs[slot]].shape) < rank:
            messages.append(f"input {slot} has shape "
                            f"{list(tflite.tensors[op.inputs[slot]].shape)}, needs rank >= {rank}")
    return messages


def check_builtin_shapes(tflite: TFLiteModel) -> list[Problem]:
    """The options and shapes of convolutions, pools, products, reductions and
    broadcasting element-wise ops agree (`_SHAPE_CHECKS`). TFLite's kernels trust them:
    a stride of 4097, a conv whose filter has 1 input channel for a 64-channel input,
    or a MEAN over axis 1,000,000 crashed LCE's interpreter (SIGFPE, SIGSEGV, abort)."""
    found = []
    for op in tflite.ops:
        check = _SHAPE_CHECKS.get(op.name)
        if check and not _rank_problems(tflite, op):
            found += [Problem(message, op.index, op.name) for message in check(tflite, op)]
    return found


def _builtin_options(op, keys, enums=()) -> list[str]:
    """Messages for missing or out-of-range builtin options: ``keys`` integers in
    1.._MAX_DIM, ``enums`` (key, names) decoded by name (an undecoded number is unknown)."""
    messages = []
    for key in keys:
        value = op.options.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_DIM:
            messages.append(f"option {key!r} must be in 1..{_MAX_DIM}, got {value!r}")
    for key, names in enums:
        if op.options.get(key) not in names:
            messages.append(f"option {key!r} must be one of {', '.join(names)}, got "
                            f"{op.options.get(key)!r}")
    return messages


_PADDINGS = ("SAME", "VALID")
_FUSED = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6")


def _check_window(tflite, op) -> list[str]:
    """CONV_2D, DEPTHWISE_CONV_2D, MAX/AVERAGE_POOL_2D: strides, dilations or filter
    sizes ≥ 1, known padding and activation, 4-D input and output, channels (a conv's
    groups divide its input and output channels), output shape."""
    conv = op.name in ("CONV_2D", "DEPTHWISE_CONV_2D")
    sizes = ("dilation_h_factor", "dilation_w_factor") if conv else ("filter_height",
                                                                       "filter_width")
    keys = ("stride_h", "stride_w") + sizes + (("depth_multiplier",)
                                               if op.name == "DEPTHWISE_CONV_2D" else ())
    messages = _builtin_options(op, keys, (("padding", _PADDINGS),
                                           ("fused_activation_function", _FUSED)))
    x, y = tflite.tensors[op.inputs[0]].shape, tflite.tensors[op.outputs[0]].shape
    if len(x) != 4 or len(y) != 4:
        messages.append(f"input and output must be 4-D, got {list(x)} and {list(y)}")
    if messages:
        return messages
    o = op.options
    if conv:
        f = tflite.tensors[op.inputs[1]].shape
        kh, kw, dh, dw = f[1], f[2], o["dilation_h_factor"], o["dilation_w_factor"]
        channels, messages = _conv_channels(tflite, op, x[3], f)
        if messages:
            return messages
    else:
        kh, kw, dh, dw, channels = o["filter_height"], o["filter_width"], 1, 1, x[3]
    same = o["padding"] == "SAME"
    expected = (x[0], _spatial(x[1], kh, o["stride_h"], dh, same),
                _spatial(x[2], kw, o["stride_w"], dw, same), channels)
    if y != expected or 0 in expected:
        return [f"output shape {list(y)}, expected {list(expected)} (input {list(x)})"]
    return []


def _conv_channels(tflite, op, c_in, f) -> tuple[int, list[str]]:
    """(output channels, problems) of a conv's filter ``f`` and bias for ``c_in``
    input channels: CONV_2D (C_out, kh, kw, C_in / groups), DEPTHWISE_CONV_2D
    (1, kh, kw, C_in · multiplier)."""
    if min(f) < 1:
        return 0, [f"filter shape {list(f)} has an empty axis"]
    if op.name == "CONV_2D":
        c_out, ok = f[0], c_in % f[3] == 0 and f[0] % (c_in // f[3] or 1) == 0 and c_in >= f[3]
    else:
        c_out, ok = f[3], f[0] == 1 and f[3] % c_in == 0
    if not ok:
        return 0, [f"filter {list(f)} does not fit {c_in} input channels"]
    bias = tflite.tensors[op.inputs[2]].shape if _dtype(tflite, op, 2) else (c_out,)
    if bias != (c_out,):
        return 0, [f"bias shape {list(bias)}, expected [{c_out}]"]
    return c_out, []


def _check_fully_connected(tflite, op) -> list[str]:
    """FULLY_CONNECTED: the input holds whole rows of the filter's depth (at least one),
    the bias has one value per unit, the output is (rows, units) or, with
    keep_num_dims, the input's leading axes and units."""
    x, f = tflite.tensors[op.inputs[0]].shape, tflite.tensors[op.inputs[1]].shape
    y = tflite.tensors[op.outputs[0]].shape
    units, depth, size = f[0], f[-1], _size(x)
    if len(f) != 2 or depth < 1 or size % depth or size < depth:
        return [f"input {list(x)} is not whole rows of the filter {list(f)}"]
    bias = tflite.tensors[op.inputs[2]].shape if _dtype(tflite, op, 2) else (units,)
    if bias != (units,):
        return [f"bias shape {list(bias)}, expected [{units}]"]
    keep = op.options.get("keep_num_dims") is True
    expected = x[:-1] + (units,) if keep and x[-1] == depth else (size // depth, units)
    if y != expected:
        return [f"output shape {list(y)}, expected {list(expected)}"]
    return []


def _check_reduce(tflite, op) -> list[str]:
    """MEAN, SUM, REDUCE_*: a constant axis list within the input's rank, and the output
    shape it gives (reduced axes 1 with keep_dims, else dropped)."""
    x, y = tflite.tensors[op.inputs[0]].shape, tflite.tensors[op.outputs[0]].shape
    axes = tflite.tensor_data(op.inputs[1])
    if axes is None:
        return ["the reduction axes (input 1) must be a constant"]
    axes = [int(a) for a in axes.reshape(-1)]
    if len(axes) > len(x) or any(not -len(x) <= a < len(x) for a in axes):
        return [f"reduction axes {_short(axes)} are not axes of the input {list(x)}"]
    reduced = {a % len(x) for a in axes}
    keep = op.options.get("keep_dims") is True
    expected = tuple(1 if i in reduced else d for i, d in enumerate(x) if keep or i not in reduced)
    if y != expected:
        return [f"output shape {list(y)}, expected {list(expected)}"]
    return []


def _check_broadcast(tflite, op) -> list[str]:
    """Element-wise binary ops: the two inputs broadcast (NumPy rules) to the output."""
    shapes = [tflite.tensors[i].shape for i in op.inputs[:2] if i >= 0]
    y = tflite.tensors[op.outputs[0]].shape
    if len(shapes) != 2:
        return [f"needs 2 inputs, has {len(shapes)}"]
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + s for s in shapes]
    if any(a != b and 1 not in (a, b) for a, b in zip(*padded)):
        return [f"input shapes {list(shapes[0])} and {list(shapes[1])} do not broadcast"]
    expected = tuple(max(a, b) if 0 not in (a, b) else 0 for a, b in zip(*padded))
    if y != expected:
        return [f"output shape {list(y)}, expected {list(expected)}"]
    return []


def _size(shape) -> int:
    size = 1
    for d in shape:
        size *= d
    return size


_SHAPE_CHECKS = {
    "CONV_2D": _check_window, "DEPTHWISE_CONV_2D": _check_window,
    "MAX_POOL_2D": _check_window, "AVERAGE_POOL_2D": _check_window,
    "FULLY_CONNECTED": _check_fully_connected,
    **{name: _check_reduce for name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN",
                                        "REDUCE_PROD")},
    **{name: _check_broadcast for name in ("ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM",
                                           "SQUARED_DIFFERENCE")},
}


_NUMERIC = ("FLOAT32", "INT8", "UINT8", "INT16", "INT32", "INT64")
_QUANTIZABLE = ("FLOAT32", "INT8", "UINT8", "INT16")  # float kernels and their quantized twins
_QUANTIZED = ("INT8", "UINT8", "INT16")
_ARRAYS = _NUMERIC + ("BOOL", "FLOAT16", "FLOAT64", "UINT16", "UINT32", "UINT64", "INT4",
                      "BFLOAT16", "INT2", "UINT4")  # plain arrays (not strings, resources, …)
_INDICES = ("INT32", "INT64")

# Builtin op → (input slots of the op's data type T, which is the output's; the types T
# may be; {input slot: its types if not any plain array}), as TFLite's kernels need them.
_ELEMENTWISE = ((0, 1), _NUMERIC, {})
_UNARY = ((0,), _QUANTIZABLE, {})
_REDUCE = ((0,), _NUMERIC, {1: ("INT32",)})
_BUILTIN_TYPES = {
    "ADD": _ELEMENTWISE, "SUB": _ELEMENTWISE, "MUL": _ELEMENTWISE, "MAXIMUM": _ELEMENTWISE,
    "MINIMUM": _ELEMENTWISE, "DIV": ((0, 1), ("FLOAT32", "INT32", "UINT8"), {}),
    "SQUARED_DIFFERENCE": ((0, 1), ("FLOAT32", "INT32", "INT8"), {}),
    "ABS": ((0,), ("FLOAT32", "INT8", "INT16", "INT32"), {}),
    "NEG": ((0,), ("FLOAT32", "INT32", "INT64", "INT8"), {}),
    "SQRT": ((0,), ("FLOAT32",), {}), "RSQRT": ((0,), ("FLOAT32", "INT8", "INT16"), {}),
    "MEAN": _REDUCE, "SUM": _REDUCE, "REDUCE_MAX": _REDUCE, "REDUCE_MIN": _REDUCE,
    "REDUCE_PROD": _REDUCE,
    "MAX_POOL_2D": _UNARY, "AVERAGE_POOL_2D": _UNARY, "RELU": _UNARY, "RELU6": _UNARY,
    "RELU_N1_TO_1": _UNARY, "LOGISTIC": _UNARY, "TANH": _UNARY, "SOFTMAX": _UNARY,
    "LOG_SOFTMAX": _UNARY, "HARD_SWISH": _UNARY, "LEAKY_RELU": _UNARY, "ELU": _UNARY,
    "GELU": _UNARY, "PRELU": ((0, 1), _QUANTIZABLE, {}),
    "RESHAPE": ((0,), _ARRAYS, {1: ("INT32",)}), "SQUEEZE": ((0,), _ARRAYS, {}),
    "EXPAND_DIMS": ((0,), _ARRAYS, {1: _INDICES}), "TRANSPOSE": ((0,), _ARRAYS, {1: _INDICES}),
    "PAD": ((0,), _ARRAYS, {1: _INDICES}), "PADV2": ((0, 2), _ARRAYS, {1: _INDICES}),
    "SLICE": ((0,), _ARRAYS, {1: _INDICES, 2: _INDICES}),
    "STRIDED_SLICE": ((0,), _ARRAYS, {1: _INDICES, 2: _INDICES, 3: _INDICES}),
    "QUANTIZE": ((), _QUANTIZED, {0: _QUANTIZABLE}),
    "DEQUANTIZE": ((), ("FLOAT32",), {0: ("INT8", "UINT8", "INT16", "FLOAT16")}),
    "BATCH_MATMUL": ((0, 1), ("FLOAT32", "INT8", "INT16"), {}),
    "CONCATENATION": ("all", _ARRAYS, {}),
}
# Convolutions and products: input type T → (filter types, bias types); output T.
_WEIGHTED = {"FLOAT32": (("FLOAT32", "INT8"), ("FLOAT32",)),  # INT8 filter: hybrid kernels
             "UINT8": (("UINT8",), ("INT32",)),
             "INT8": (("INT8", "INT4"), ("INT32",)),
             "INT16": (("INT8",), ("INT32", "INT64"))}
_WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def check_types(tflite: TFLiteModel) -> list[Problem]:
    """Every builtin op reads and writes the tensor types its TFLite kernel handles
    (`_BUILTIN_TYPES`, `_WEIGHTED`); ops without a listed signature read and write plain
    arrays. A kernel handed other types reinterprets memory: stock TFLite rejects some
    at allocation, LCE's interpreter has segfaulted on others (a VARIANT conv input)."""
    found = []
    for op in tflite.ops:
        if not op.custom:  # LCE ops: check_lce_ops
            found += [Problem(message, op.index, op.name) for message in _op_types(tflite, op)]
    return found


def _dtype(tflite, op, slot):
    """The type of input ``slot`` (None if omitted or absent)."""
    if slot >= len(op.inputs) or op.inputs[slot] < 0:
        return None
    return tflite.tensors[op.inputs[slot]].dtype


def _op_types(tflite, op) -> list[str]:
    """Type problems of one builtin op (see `check_types`)."""
    out = tflite.tensors[op.outputs[0]].dtype
    if op.name in _WEIGHTED_OPS:
        x = _dtype(tflite, op, 0)
        if x not in _WEIGHTED:
            return _expect("input 0", x, tuple(_WEIGHTED))
        filters, biases = _WEIGHTED[x]
        return (_expect("input 1 (filter)", _dtype(tflite, op, 1), filters, f" for {x} input")
                + _expect("input 2 (bias)", _dtype(tflite, op, 2), biases, f" for {x} input")
                + _expect("output", out, (x,), " (the input's type)"))
    shared, types, fixed = _BUILTIN_TYPES.get(op.name, ((), _ARRAYS, {}))
    if shared == "all":
        shared = range(len(op.inputs))
    messages = _expect("output", out, types)
    for slot in shared if not messages else ():
        messages += _expect(f"input {slot}", _dtype(tflite, op, slot), (out,),
                            " (the output's type)")
    for slot in range(len(op.inputs)):
        messages += _expect(f"input {slot}", _dtype(tflite, op, slot), fixed.get(slot, _ARRAYS))
    for index in op.outputs[1:]:
        messages += _expect(f"output tensor {index}", tflite.tensors[index].dtype, _ARRAYS)
    return messages


def _expect(what, dtype, allowed, why="") -> list[str]:
    """A message unless ``dtype`` is one of ``allowed`` (None: an omitted tensor)."""
    if dtype is None or dtype in allowed:
        return []
    return [f"{what} has type {dtype}, expected {' or '.join(allowed)}{why}"]


def check_quantization(tflite: TFLiteModel) -> list[Problem]:
    """Every INT8/UINT8/INT16 tensor an op reads or writes has quantization parameters:
    positive finite scales, one zero point per scale, one scale per tensor or per channel
    of ``quantized_dimension``. Kernels divide by and index these without checking."""
    found, seen = [], set()
    for op in tflite.ops:
        for index in op.inputs + op.outputs:
            if index >= 0 and index not in seen and tflite.tensors[index].dtype in _QUANTIZED:
                seen.add(index)
                message = _quantization_problem(tflite.tensors[index])
                if message:
                    found.append(Problem(message, op.index, op.name))
    return found


def _quantization_problem(tensor) -> str | None:
    scale, zero = tensor.scale or (), tensor.zero_point or ()
    what = f"{tensor.dtype} tensor {tensor.index}"
    if not scale or not all(math.isfinite(s) and s > 0 for s in scale):
        return f"{what} needs positive finite quantization scales, has {list(scale)}"
    axis = tensor.quantized_dimension
    channels = tensor.shape[axis] if 0 <= axis < len(tensor.shape) else None
    if len(zero) != len(scale) or (len(scale) > 1 and len(scale) != channels):
        return (f"{what} has {len(scale)} scales and {len(zero)} zero points for shape "
                f"{list(tensor.shape)} (quantized dimension {axis})")
    return None


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


METADATA_FORMAT = "xnor_keras.deploy/1"  # `deploy.convert`'s metadata: every key required

# What the readers of the metadata index (inspect, predict's preprocessing, bench's
# Keras twin, the per-layer report): a type, a tuple of alternatives (None: JSON null),
# a dict (an object with those keys; {str: t}: any keys), [t] (a list of t).
_NUMBER = (int, float)
_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string"}
_LAYER = {"name": str, "class": str, "scope": str, "role": str, "outcome": str,
          "lowering": str, "notes": [str], "float_twin_params": int, "float_twin_macs": int}
_PREPROCESSING = {"version": int, "input_shape": [int], "color": str,
                  "grayscale_weights": [_NUMBER], "resize_shorter_side": int,
                  "scale": _NUMBER, "mean": [_NUMBER], "std": [_NUMBER]}
_METADATA = {
    "format": str, "target": str, "lce_target": str,
    "source": {"path": (str, None), "model_name": (str, None)},
    "versions": {str: (str, None)}, "input": {"shape": [int], "dtype": str},
    "output": {"shape": [int]}, "dataset": (str, None),
    "preprocessing": (_PREPROCESSING, None), "labels": ([str], None), "keras_config": str,
    "summary": {str: (_NUMBER, str, [str], None)}, "layers": [_LAYER],
}


def check_metadata(tflite: TFLiteModel) -> list[Problem]:
    """The deploy metadata has the keys and value types its readers index (`_METADATA`;
    all of them when ``format`` is `METADATA_FORMAT`, the present ones otherwise), and
    the graph's input and output shapes are the ones it records."""
    try:
        metadata = tflite.json_metadata(METADATA_NAME)
    except TFLiteFormatError as error:
        return [Problem(str(error))]
    if metadata is None:
        return []
    required = isinstance(metadata, dict) and metadata.get("format") == METADATA_FORMAT
    schema_ = _METADATA if required else {k: v for k, v in _METADATA.items()
                                          if k in (metadata if isinstance(metadata, dict) else {})}
    problem = _schema_problem(metadata, schema_, METADATA_NAME)
    if problem:
        return [Problem(f"metadata {problem}")]
    found = []
    for key, tensors in (("input", tflite.inputs), ("output", tflite.outputs)):
        recorded = (metadata.get(key) or {}).get("shape")
        if recorded is not None and (len(tensors) != 1 or list(tensors[0].shape) != recorded):
            found.append(Problem(f"the graph's {key} shape {[list(t.shape) for t in tensors]} "
                                 f"is not the {recorded} its metadata records"))
    return found


def _schema_problem(value, expected, where: str) -> str | None:
    """The first place ``value`` does not have the form ``expected`` (see `_METADATA`)."""
    if isinstance(expected, tuple):
        if value is None and None in expected:
            return None
        alternatives = [e for e in expected if e is not None]
        if not any(_schema_problem(value, e, where) is None for e in alternatives):
            if all(isinstance(e, type) for e in alternatives):
                names = [_TYPE_WORDS[e] for e in alternatives] + ["null"] * (None in expected)
                return f"{where} must be {' or '.join(names)}. Received: {_short(value)}"
            return _schema_problem(value, alternatives[0], where)
        return None
    if isinstance(expected, list):
        if not isinstance(value, list):
            return f"{where} must be a list. Received: {_short(value)}"
        return next((p for i, item in enumerate(value)
                     if (p := _schema_problem(item, expected[0], f"{where}[{i}]"))), None)
    if isinstance(expected, dict):
        if not isinstance(value, dict):
            return f"{where} must be an object. Received: {_short(value)}"
        if str in expected:
            return next((p for key, item in value.items()
                         if (p := _schema_problem(item, expected[str], f"{where}.{key}"))), None)
        missing = sorted(set(expected) - set(value))
        if missing:
            return f"{where} lacks {', '.join(map(repr, missing))}"
        return next((p for key, item in expected.items()
                     if (p := _schema_problem(value[key], item, f"{where}.{key}"))), None)
    if isinstance(value, bool) or not isinstance(value, expected):
        return f"{where} must be {_TYPE_WORDS[expected]}. Received: {_short(value)}"
    return None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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


# LceBconv2d's per-channel inputs: post-activation multiplier and bias, output threshold.
_BCONV_POST_TYPES = {2: ("FLOAT32",), 3: ("FLOAT32",), 4: ("INT32",)}


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
        messages += _expect(f"input {slot}", _dtype(tflite, op, slot),
                            _BCONV_POST_TYPES.get(slot, ()))
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
