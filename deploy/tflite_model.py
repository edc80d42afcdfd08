"""Read, inspect and edit .tflite flatbuffers, including larq-compute-engine's ops.

This module is the project's one home for flatbuffer access: the deploy CLI, the
Android (pure-Java) interpreter tests and the native-kernel tests all read models
through it. It needs only ``numpy`` and ``flatbuffers``; TensorFlow's generated
schema module is loaded straight from its file, so importing this module does **not**
import TensorFlow (inspecting a model takes well under a second).

Stable API:

- `TFLiteModel(data)` / `TFLiteModel.load(path)`: parse and validate a flatbuffer
  (raises `TFLiteFormatError` on anything that is not a complete .tflite model).
- `.tensors` (`Tensor`), `.ops` (`Op`), `.inputs`, `.outputs`: views of the main
  subgraph, in execution order.
- `.tensor_data(i)`: a constant tensor's values as a NumPy array.
- `.op_census()`, `.op_macs(op)`, `.op_constant_bytes(op)`: what the graph computes
  and stores.
- `.bconv_filter(op)`: the ±1 filter of an ``LceBconv2d`` as ``(C_out, kh, kw, C_in)``.
- `.metadata(name)`, `.json_metadata(name)`, `.set_metadata(name, data)`.
- `.binarize_constant(op, slot)`: store a ±s_c constant in 1 bit per value
  (``LceDequantize`` → ``MUL``) — used for the binary weights of BWN layers.
- `.to_bytes()`: serialize (16-byte aligned buffers).
- `bitpack(x)` / `unpack(words, n)`: LCE's bit layout (bit k of 32-bit word j holds
  element 32·j + k of the last axis; a set bit means -1).

Example:

>>> model = TFLiteModel.load("model.tflite")          # doctest: +SKIP
>>> model.op_census()                                  # doctest: +SKIP
Counter({'LceBconv2d': 3, 'LceQuantize': 3, 'CONV_2D': 1, 'FULLY_CONNECTED': 1})
>>> [op.options["channels_in"] for op in model.ops if op.name == "LceBconv2d"]  # doctest: +SKIP
[64, 128, 128]
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import json
import os
from typing import Any

import flatbuffers
import numpy as np
from flatbuffers import flexbuffers

__all__ = [
    "TFLiteModel",
    "TFLiteFormatError",
    "Tensor",
    "Op",
    "BINARY_OPS",
    "LCE_OPS",
    "bitpack",
    "unpack",
    "schema",
]

# Ops that compute on bitpacked (1-bit) data, and every LCE custom op.
BINARY_OPS = ("LceBconv2d", "LceBMaxPool2d")
LCE_OPS = ("LceBconv2d", "LceBMaxPool2d", "LceQuantize", "LceDequantize")
_FILE_IDENTIFIER = b"TFL3"
_ALIGNMENT = 16


def _load_schema():
    """TensorFlow's generated TFLite schema, loaded without importing TensorFlow."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the TFLite schema ships with tensorflow, which is not installed")
    path = os.path.join(list(spec.submodule_search_locations)[0], "lite", "python",
                        "schema_py_generated.py")
    module_spec = importlib.util.spec_from_file_location("_xnor_deploy_tflite_schema", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


schema = _load_schema()

_BUILTIN_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_NUMPY_TYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64,
    "INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16,
    "INT32": np.int32, "UINT32": np.uint32, "INT64": np.int64, "UINT64": np.uint64,
    "BOOL": np.bool_,
}
_PADDING_NAMES = {v: k for k, v in vars(schema.Padding).items() if not k.startswith("_")}
_ACTIVATION_NAMES = {v: k for k, v in vars(schema.ActivationFunctionType).items()
                     if not k.startswith("_")}


class TFLiteFormatError(ValueError):
    """The bytes are not a complete, well-formed .tflite flatbuffer."""


@dataclasses.dataclass(frozen=True)
class Tensor:
    """A tensor of the main subgraph.

    ``dtype`` is the TFLite type name (``"FLOAT32"``, ``"INT32"``, ``"INT8"``, …);
    ``constant`` tells whether it has data in the file; ``scale`` / ``zero_point``
    are set for quantized tensors (per-tensor: length 1, per-channel: one per
    channel along ``quantized_dimension``).
    """

    index: int
    name: str
    shape: tuple
    dtype: str
    buffer: int
    constant: bool
    nbytes: int
    scale: tuple | None = None
    zero_point: tuple | None = None
    quantized_dimension: int = 0


@dataclasses.dataclass(frozen=True)
class Op:
    """An operator of the main subgraph, in execution order.

    ``name`` is the builtin name (``"CONV_2D"``) or the custom code
    (``"LceBconv2d"``); ``inputs`` / ``outputs`` are tensor indices (-1 for an
    omitted optional input); ``options`` holds the decoded options: LCE's flexbuffer
    custom options as a dict (``{"channels_in": 64, "padding": 0, ...}``) and, for
    builtin ops, the schema's options object's fields (``padding`` and
    ``fused_activation_function`` as names).
    """

    index: int
    name: str
    custom: bool
    inputs: tuple
    outputs: tuple
    options: dict


def bitpack(x: np.ndarray) -> np.ndarray:
    """Packs the signs of ``x`` along its last axis into int32 words, as LCE does.

    Bit k of word j holds element 32·j + k; it is set when the element is negative
    (so 0 and +1 map to +1, as in ``larq.math.sign``). The last axis shrinks to
    ceil(n / 32); unused bits are 0.

    >>> bitpack(np.array([[1.0, -1.0, -2.0, 0.0]])).tolist()
    [[6]]
    """
    x = np.asarray(x)
    n = x.shape[-1]
    words = -(-n // 32)
    bits = np.zeros(x.shape[:-1] + (words * 32,), dtype=np.uint32)
    bits[..., :n] = x < 0
    bits = bits.reshape(x.shape[:-1] + (words, 32))
    packed = (bits << np.arange(32, dtype=np.uint32)).sum(axis=-1, dtype=np.uint64)
    return packed.astype(np.uint32).view(np.int32)


def unpack(words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of `bitpack`: ±1 float32 values, last axis of length ``n``.

    >>> unpack(np.array([[6]], dtype=np.int32), 4).tolist()
    [[1.0, -1.0, -1.0, 1.0]]
    """
    words = np.asarray(words).astype(np.int32).view(np.uint32)
    bits = (words[..., None] >> np.arange(32, dtype=np.uint32)) & 1
    bits = bits.reshape(words.shape[:-1] + (words.shape[-1] * 32,))[..., :n]
    return (1.0 - 2.0 * bits).astype(np.float32)


def _decode_builtin_options(options) -> dict:
    if options is None:
        return {}
    decoded = {}
    for key, value in vars(options).items():
        if key == "padding" and isinstance(value, int):
            value = _PADDING_NAMES.get(value, value)
        elif key == "fusedActivationFunction" and isinstance(value, int):
            value = _ACTIVATION_NAMES.get(value, value)
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        decoded[_snake(key)] = value
    return decoded


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


class _AlignedBuffer(schema.BufferT):
    """A BufferT that writes its data 16-byte aligned (kernels read weights in place)."""

    def Pack(self, builder):
        data = None
        if self.data is not None and len(self.data):
            payload = np.ascontiguousarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), _ALIGNMENT)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head:builder.head + len(payload)] = payload
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        return schema.BufferEnd(builder)


class TFLiteModel:
    """A parsed .tflite model (main subgraph), readable and editable.

    Parsing validates the file identifier, every index (tensors, buffers, operator
    codes) and that every constant's data matches its shape, so truncated or
    corrupted files raise `TFLiteFormatError` here instead of crashing a runtime.
    Edits (`set_metadata`, `binarize_constant`) change the in-memory model;
    `to_bytes` serializes it.
    """

    def __init__(self, data: bytes):
        data = bytes(data)
        if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
            raise TFLiteFormatError("not a TFLite flatbuffer (missing the 'TFL3' file identifier)")
        try:
            model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        except Exception as error:  # flatbuffers raises whatever a bad offset triggers
            raise TFLiteFormatError(
                f"corrupt or truncated TFLite flatbuffer ({type(error).__name__})") from None
        self._data = data
        self._model = model
        self._resolve_offset_buffers()
        self._validate()
        self._refresh()

    @classmethod
    def load(cls, path) -> "TFLiteModel":
        """Reads and parses a .tflite file."""
        with open(path, "rb") as f:
            return cls(f.read())

    # ------------------------------------------------------------------ parsing
    def _resolve_offset_buffers(self):
        for buffer in self._model.buffers or []:
            if buffer is not None and buffer.offset > 1:
                end = buffer.offset + buffer.size
                if end > len(self._data):
                    raise TFLiteFormatError("truncated TFLite file: a weight buffer ends past "
                                            "the end of the file")
                buffer.data = np.frombuffer(self._data[buffer.offset:end], dtype=np.uint8)
                buffer.offset = buffer.size = 0

    def _validate(self):
        model = self._model
        if not model.subgraphs or model.subgraphs[0] is None:
            raise TFLiteFormatError("TFLite model has no subgraph")
        buffers = model.buffers or []
        codes = model.operatorCodes or []
        graph = model.subgraphs[0]
        tensors = graph.tensors or []
        for tensor in tensors:
            if tensor is None or not 0 <= tensor.buffer < max(len(buffers), 1):
                raise TFLiteFormatError("corrupt TFLite model: a tensor refers to a missing buffer")
            data = buffers[tensor.buffer].data if buffers and buffers[tensor.buffer] else None
            if data is not None and len(data):
                dtype = _NUMPY_TYPES.get(_TYPE_NAMES.get(tensor.type, ""))
                shape = [] if tensor.shape is None else list(tensor.shape)
                if dtype is not None and len(data) != int(np.prod(shape)) * np.dtype(dtype).itemsize:
                    raise TFLiteFormatError(
                        f"corrupt TFLite model: tensor {_text(tensor.name)!r} holds {len(data)} "
                        f"bytes for shape {shape}")
        for op in graph.operators or []:
            if op is None or not 0 <= op.opcodeIndex < len(codes):
                raise TFLiteFormatError("corrupt TFLite model: an operator has no operator code")
            for index in list(_ints(op.inputs)) + list(_ints(op.outputs)):
                if not -1 <= index < len(tensors):
                    raise TFLiteFormatError("corrupt TFLite model: an operator refers to a "
                                            "missing tensor")
        for index in list(_ints(graph.inputs)) + list(_ints(graph.outputs)):
            if not 0 <= index < len(tensors):
                raise TFLiteFormatError("corrupt TFLite model: a graph input/output is missing")

    def _refresh(self):
        graph = self._model.subgraphs[0]
        buffers = self._model.buffers or []
        self.tensors = []
        for i, t in enumerate(graph.tensors or []):
            data = buffers[t.buffer].data if buffers and buffers[t.buffer] else None
            q = t.quantization
            scale = zero_point = None
            if q is not None and q.scale is not None and len(q.scale):
                scale = tuple(float(s) for s in q.scale)
                zero_point = tuple(int(z) for z in q.zeroPoint) if q.zeroPoint is not None else None
            self.tensors.append(Tensor(
                index=i, name=_text(t.name), shape=tuple(int(d) for d in _ints(t.shape)),
                dtype=_TYPE_NAMES.get(t.type, str(t.type)), buffer=t.buffer,
                constant=data is not None and len(data) > 0,
                nbytes=0 if data is None else len(data), scale=scale, zero_point=zero_point,
                quantized_dimension=0 if q is None else int(q.quantizedDimension)))
        self.ops = []
        for i, op in enumerate(graph.operators or []):
            code = self._model.operatorCodes[op.opcodeIndex]
            custom = code.customCode is not None and len(code.customCode) > 0
            if custom:
                name = _text(code.customCode)
                options = _decode_custom_options(op.customOptions)
            else:
                name = _BUILTIN_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode),
                                          str(code.builtinCode))
                options = _decode_builtin_options(op.builtinOptions)
            self.ops.append(Op(index=i, name=name, custom=custom,
                               inputs=tuple(int(x) for x in _ints(op.inputs)),
                               outputs=tuple(int(x) for x in _ints(op.outputs)),
                               options=options))
        self.inputs = [self.tensors[i] for i in _ints(graph.inputs)]
        self.outputs = [self.tensors[i] for i in _ints(graph.outputs)]

    # ------------------------------------------------------------------ reading
    def tensor_data(self, index: int) -> np.ndarray | None:
        """The values of constant tensor ``index`` (None for activations)."""
        tensor = self.tensors[index]
        if not tensor.constant:
            return None
        raw = self._model.buffers[tensor.buffer].data
        dtype = _NUMPY_TYPES.get(tensor.dtype)
        if dtype is None:  # packed int4 / int2, strings: raw bytes
            return np.asarray(raw, dtype=np.uint8)
        return np.frombuffer(np.asarray(raw, dtype=np.uint8).tobytes(), dtype=dtype).reshape(tensor.shape)

    def producers(self) -> dict:
        """Maps tensor index → the index of the op that writes it."""
        return {t: op.index for op in self.ops for t in op.outputs}

    def consumers(self) -> dict:
        """Maps tensor index → indices of the ops that read it."""
        result = collections.defaultdict(list)
        for op in self.ops:
            for t in op.inputs:
                if t >= 0:
                    result[t].append(op.index)
        return dict(result)

    def op_census(self) -> collections.Counter:
        """How many ops of each kind the main subgraph runs."""
        return collections.Counter(op.name for op in self.ops)

    def op_constant_bytes(self, op: Op) -> int:
        """Bytes of constant data (weights, biases, multipliers) that ``op`` reads."""
        return sum(self.tensors[i].nbytes for i in op.inputs if i >= 0)

    def op_macs(self, op: Op) -> tuple[int, int]:
        """(binary MACs, float-or-int8 MACs) of one op; 0 for ops without a product.

        Convolutions count output elements × kernel area × input channels per group,
        fully-connected layers output elements × input features; ``LceBconv2d`` reads
        its true input channels from ``channels_in`` since its filter is bitpacked.
        """
        if not op.outputs or op.outputs[0] < 0:
            return 0, 0
        out = int(np.prod(self.tensors[op.outputs[0]].shape))
        if op.name == "LceBconv2d":
            filt = self.tensors[op.inputs[1]].shape
            if self.tensors[op.outputs[0]].dtype == "INT32":  # bitpacked: count C_out, not words
                out = out // self.tensors[op.outputs[0]].shape[-1] * filt[0]
            return out * filt[1] * filt[2] * self._bconv_channels_per_group(op), 0
        if op.name == "CONV_2D":
            filt = self.tensors[op.inputs[1]].shape
            return 0, out * filt[1] * filt[2] * filt[3]
        if op.name == "DEPTHWISE_CONV_2D":
            filt = self.tensors[op.inputs[1]].shape
            return 0, out * filt[1] * filt[2]
        if op.name == "FULLY_CONNECTED":
            return 0, out * self.tensors[op.inputs[1]].shape[-1]
        if op.name == "BATCH_MATMUL":
            a = self.tensors[op.inputs[0]].shape
            adj = op.options.get("adj_x", False)
            return 0, out * (a[-2] if adj else a[-1])
        if op.name == "TRANSPOSE_CONV":
            filt = self.tensors[op.inputs[1]].shape
            return 0, int(np.prod(self.tensors[op.inputs[2]].shape)) * filt[1] * filt[2] * filt[0]
        return 0, 0

    def bconv_filter(self, op: Op) -> np.ndarray:
        """The ±1 filter of an ``LceBconv2d`` op as float32 ``(C_out, kh, kw, C_in)``.

        C_in is per group. Channels whose output multiplier the converter made
        negative (bitpacked outputs) are stored flipped; this returns what is stored.
        """
        if op.name != "LceBconv2d":
            raise ValueError(f"op {op.index} is {op.name}, not LceBconv2d")
        data = self.tensor_data(op.inputs[1])
        if data is None:
            raise ValueError(f"LceBconv2d op {op.index} has a non-constant filter")
        if data.dtype == np.float32:
            return np.where(data < 0, -1.0, 1.0).astype(np.float32)
        return unpack(data, self._bconv_channels_per_group(op))

    def _bconv_channels_per_group(self, op: Op) -> int:
        """Input channels per group of an ``LceBconv2d``: its filter's last axis holds
        ceil(C/32) words per group (C a multiple of 32 when grouped)."""
        filt = self.tensors[op.inputs[1]]
        if filt.dtype != "INT32":
            return filt.shape[3]
        channels_in = int(op.options.get("channels_in", 0))
        words = filt.shape[3]
        groups = channels_in // (words * 32) if words * 32 < channels_in else 1
        return channels_in // groups

    # ------------------------------------------------------------------ metadata
    def metadata_names(self) -> list[str]:
        return [_text(m.name) for m in self._model.metadata or []]

    def metadata(self, name: str) -> bytes | None:
        """The raw bytes of metadata entry ``name``, or None."""
        for entry in self._model.metadata or []:
            if _text(entry.name) == name:
                buffer = self._model.buffers[entry.buffer]
                return b"" if buffer.data is None else np.asarray(buffer.data, np.uint8).tobytes()
        return None

    def json_metadata(self, name: str):
        """Metadata entry ``name`` decoded as UTF-8 JSON (None if absent)."""
        raw = self.metadata(name)
        if raw is None:
            return None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise TFLiteFormatError(f"metadata {name!r} is not valid JSON") from None

    def set_metadata(self, name: str, data: bytes) -> None:
        """Adds or replaces metadata entry ``name``."""
        buffer = _AlignedBuffer()
        buffer.data = np.frombuffer(bytes(data), dtype=np.uint8)
        self._model.buffers.append(buffer)
        index = len(self._model.buffers) - 1
        entries = [m for m in self._model.metadata or [] if _text(m.name) != name]
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = index
        self._model.metadata = entries + [entry]

    # ------------------------------------------------------------------ cutting
    def submodel(self, ops, inputs, outputs) -> bytes:
        """A .tflite model of just the ops ``ops`` (indices, run in the given order)
        reading activation tensors ``inputs`` and returning ``outputs``.

        The ops, tensors and constants are the file's own (bytes unchanged), tensors
        and buffers renumbered; metadata is dropped (it describes the whole model).
        Raises `TFLiteFormatError` if an op reads an activation that is neither in
        ``inputs`` nor written by an earlier op of ``ops``.

        >>> part = model.submodel([3, 4], inputs=[33], outputs=[35])   # doctest: +SKIP
        """
        import copy

        graph = self._model.subgraphs[0]
        written = set(int(t) for t in inputs)
        for index in ops:
            for t in self.ops[index].inputs:
                if t >= 0 and not self.tensors[t].constant and t not in written:
                    raise TFLiteFormatError(
                        f"op {index} ({self.ops[index].name}) reads tensor {t}, which is "
                        "neither an input of the cut nor written before it")
            written.update(self.ops[index].outputs)
        missing = [t for t in outputs if t not in written]
        if missing:
            raise TFLiteFormatError(f"the cut does not compute tensor(s) {missing}")
        used = sorted({t for index in ops for t in (*self.ops[index].inputs,
                                                    *self.ops[index].outputs) if t >= 0}
                      | set(inputs) | set(outputs))
        tensor_map = {old: new for new, old in enumerate(used)}
        buffers = [schema.BufferT()]
        tensors = []
        for old in used:
            tensor = copy.copy(graph.tensors[old])
            if self.tensors[old].constant:
                buffers.append(self._model.buffers[tensor.buffer])
                tensor.buffer = len(buffers) - 1
            else:
                tensor.buffer = 0
            tensors.append(tensor)
        operators = []
        for index in ops:
            op = copy.copy(graph.operators[index])
            op.inputs = [tensor_map[t] if t >= 0 else -1 for t in _ints(op.inputs)]
            op.outputs = [tensor_map[t] for t in _ints(op.outputs)]
            op.intermediates = None
            operators.append(op)
        sub = schema.SubGraphT()
        sub.tensors, sub.operators, sub.name = tensors, operators, graph.name
        sub.inputs = [tensor_map[t] for t in inputs]
        sub.outputs = [tensor_map[t] for t in outputs]
        model = schema.ModelT()
        model.version, model.description = self._model.version, self._model.description
        model.operatorCodes, model.subgraphs, model.buffers = \
            self._model.operatorCodes, [sub], buffers
        return _serialize(model)

    # ------------------------------------------------------------------ editing
    def binarize_constant(self, op_index: int, slot: int, *, scale_axis: int = 0,
                          name: str | None = None) -> None:
        """Stores the constant input ``slot`` of op ``op_index`` in 1 bit per value.

        The constant must be ±s along ``scale_axis`` (every value of slice c is
        +s_c or -s_c). It is replaced by bitpacked signs (`bitpack`, along the last
        axis) decoded at run time by ``LceDequantize`` and multiplied by s (``MUL``),
        both inserted before the op: the op computes with exactly the same values.
        New tensors are named ``{name}/bitpacked``, ``…/signs``, ``…/scale``,
        ``…/decoded`` (``name`` defaults to the constant's own name). Raises ValueError if
        the constant is not of that form.
        """
        graph = self._model.subgraphs[0]
        op = graph.operators[op_index]
        tensor_index = int(op.inputs[slot])
        values = self.tensor_data(tensor_index)
        if values is None or values.dtype != np.float32:
            raise ValueError("binarize_constant needs a float32 constant input")
        moved = np.moveaxis(values, scale_axis, 0).reshape(values.shape[scale_axis], -1)
        scales = np.abs(moved[:, 0])
        if not np.all(np.abs(moved) == scales[:, None]):
            raise ValueError("constant is not ±s per slice along the scale axis")
        scale_shape = [1] * values.ndim
        scale_shape[scale_axis] = values.shape[scale_axis]
        old = graph.tensors[tensor_index]
        name = name or _text(old.name)
        packed = self._add_tensor(f"{name}/bitpacked", bitpack(values), schema.TensorType.INT32)
        signs = self._add_tensor(f"{name}/signs", None, schema.TensorType.FLOAT32, values.shape)
        scale = self._add_tensor(f"{name}/scale", scales.reshape(scale_shape).astype(np.float32),
                                 schema.TensorType.FLOAT32)
        decoded = self._add_tensor(f"{name}/decoded", None, schema.TensorType.FLOAT32,
                                   values.shape)
        dequantize = schema.OperatorT()
        dequantize.opcodeIndex = self._opcode(custom="LceDequantize")
        dequantize.inputs, dequantize.outputs = [packed], [signs]
        dequantize.customOptions = []
        multiply = schema.OperatorT()
        multiply.opcodeIndex = self._opcode(builtin=schema.BuiltinOperator.MUL)
        multiply.inputs, multiply.outputs = [signs, scale], [decoded]
        multiply.builtinOptionsType = schema.BuiltinOptions.MulOptions
        multiply.builtinOptions = schema.MulOptionsT()
        op.inputs[slot] = decoded
        still_used = any(tensor_index in _ints(o.inputs) for o in graph.operators)
        if not still_used:
            self._model.buffers[old.buffer].data = None
        graph.operators[op_index:op_index] = [dequantize, multiply]
        self._refresh()

    def _add_tensor(self, name, data, ttype, shape=None) -> int:
        graph = self._model.subgraphs[0]
        tensor = schema.TensorT()
        tensor.name = name
        tensor.type = ttype
        tensor.shape = list(data.shape if data is not None else shape)
        tensor.buffer = 0
        if data is not None:
            buffer = _AlignedBuffer()
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self._model.buffers.append(buffer)
            tensor.buffer = len(self._model.buffers) - 1
        graph.tensors.append(tensor)
        return len(graph.tensors) - 1

    def _opcode(self, *, custom=None, builtin=None) -> int:
        codes = self._model.operatorCodes
        for i, code in enumerate(codes):
            if custom is not None and code.customCode is not None and _text(code.customCode) == custom:
                return i
            if builtin is not None and not code.customCode and \
                    max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
                return i
        code = schema.OperatorCodeT()
        if custom is not None:
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
            code.customCode = custom
        else:
            code.builtinCode = builtin
            code.deprecatedBuiltinCode = min(builtin, 127)
        code.version = 1
        codes.append(code)
        return len(codes) - 1

    def to_bytes(self) -> bytes:
        """Serializes the (possibly edited) model."""
        return _serialize(self._model)


def _serialize(model) -> bytes:
    """Packs a schema ``ModelT`` (its buffers 16-byte aligned, in place)."""
    model.buffers = [_as_aligned(b) for b in model.buffers]
    size = sum(0 if b.data is None else len(b.data) for b in model.buffers)
    builder = flatbuffers.Builder(size + (1 << 16))
    builder.Finish(model.Pack(builder), file_identifier=_FILE_IDENTIFIER)
    return bytes(builder.Output())


def _as_aligned(buffer):
    if buffer is None or isinstance(buffer, _AlignedBuffer):
        return buffer or _AlignedBuffer()
    aligned = _AlignedBuffer()
    aligned.data = buffer.data
    return aligned


def _ints(values):
    return [] if values is None else values


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return value.tobytes().decode("utf-8", errors="replace")
    return str(value)


def _decode_custom_options(raw) -> dict[str, Any]:
    if raw is None or len(raw) == 0:
        return {}
    try:
        value = flexbuffers.Loads(np.asarray(raw, dtype=np.uint8).tobytes())
    except Exception:
        return {"_raw": np.asarray(raw, dtype=np.uint8).tobytes().hex()}
    return value if isinstance(value, dict) else {"_value": value}
