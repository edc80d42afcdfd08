"""deploy.validation: every check on hand-mutated copies of a real converted model, and
that every entry point (load_tflite, make_interpreter, the CLI) rejects them in one line."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from flatbuffers import flexbuffers

from deploy.artifacts import METADATA_NAME, load_tflite
from deploy.errors import DeployError
from deploy.inspection import inspect_file, inspect_model
from deploy.runtime import make_interpreter
from deploy.tflite_model import TFLiteModel, schema
from deploy.validation import ValidationError, problems, validate, validate_bytes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def good(xnor_tflite):
    return xnor_tflite[0].read_bytes()


def _first(model, name):
    return next(op.index for op in model.ops if op.name == name)


def _edit(data, edit):
    """``data`` re-serialized after ``edit(model_t, parsed)`` changed the object tree."""
    model = TFLiteModel(data)
    edit(model._model, model)
    return model.to_bytes()


def _with_options(data, name, **changes):
    """The first ``name`` op's flexbuffer options with ``changes`` (None deletes a key)."""
    def edit(model_t, parsed):
        index = _first(parsed, name)
        options = {k: v for k, v in {**parsed.ops[index].options, **changes}.items()
                   if v is not None}
        model_t.subgraphs[0].operators[index].customOptions = list(flexbuffers.Dumps(options))
    return _edit(data, edit)


def _rejected(data, tmp_path, *needles):
    path = tmp_path / "bad.tflite"
    path.write_bytes(data)
    with pytest.raises(DeployError) as error:
        load_tflite(path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    for needle in needles:
        assert needle in message, message
    return message


def test_the_converted_model_is_valid(good, tmp_path):
    model = TFLiteModel(good)
    assert {"LceBconv2d", "LceQuantize"} <= set(model.op_census())
    assert problems(model) == []
    assert validate(model) is model and validate_bytes(good) == good
    (tmp_path / "m.tflite").write_bytes(good)
    assert load_tflite(tmp_path / "m.tflite")[1] == good


@pytest.mark.parametrize("key,value,needle", [
    ("stride_height", 0, "'stride_height' must be in 1.."),
    ("stride_width", -3, "'stride_width' must be in 1.."),
    ("dilation_height_factor", 0, "'dilation_height_factor' must be in 1.."),
    ("dilation_width_factor", 1 << 30, "'dilation_width_factor' must be in 1.."),
    ("padding", 2, "'padding' must be in 0..1, got 2"),
    ("pad_values", 7, "'pad_values' must be in 0..1"),
    ("fused_activation_function", 4, "'fused_activation_function' must be in 0..3, got 4"),
    ("channels_in", 0, "'channels_in' must be in 1.."),
    ("channels_in", None, "'channels_in' is missing"),
    ("padding", None, "'padding' is missing"),
    ("stride_height", 1.5, "'stride_height' must be an integer, got 1.5"),
    ("channels_in", "32", "'channels_in' must be an integer"),
])
def test_bconv_option_values(good, tmp_path, key, value, needle):
    index = _first(TFLiteModel(good), "LceBconv2d")
    _rejected(_with_options(good, "LceBconv2d", **{key: value}), tmp_path,
              f"node {index} (LceBconv2d): ", needle)


@pytest.mark.parametrize("channels_in,needle", [
    # the first bconv: 32 channels in, filter [64, 3, 3, 1 word], input 1 word per pixel
    (33, "channels_in=33 is not a multiple of the filter's per-group channels 32"),
    (48, "channels_in=48 is not a multiple of the filter's per-group channels 32"),
    (64, "bitpacked input has 1 words per pixel, channels_in=64 needs 2"),  # 2 groups of 32
    (32 * 128, "128 groups (channels_in=4096) do not divide C_out=64"),
])
def test_bconv_channels_in_against_filter_and_input(good, tmp_path, channels_in, needle):
    _rejected(_with_options(good, "LceBconv2d", channels_in=channels_in), tmp_path,
              "(LceBconv2d): ", needle)


def test_options_that_are_not_a_flexbuffer_map(good, tmp_path):
    def edit(model_t, parsed):
        model_t.subgraphs[0].operators[_first(parsed, "LceBconv2d")].customOptions = [7, 1, 200]
    _rejected(_edit(good, edit), tmp_path, "(LceBconv2d): custom options are not a FlexBuffer map")


def test_truncated_options(good, tmp_path):
    def edit(model_t, parsed):
        op = model_t.subgraphs[0].operators[_first(parsed, "LceBconv2d")]
        op.customOptions = list(op.customOptions)[: len(op.customOptions) // 2]
    _rejected(_edit(good, edit), tmp_path, "(LceBconv2d): ")


def test_bconv_input_shape_and_output_shape(good, tmp_path):
    model = TFLiteModel(good)
    op = model.ops[_first(model, "LceBconv2d")]

    def wider_input(model_t, parsed):
        model_t.subgraphs[0].tensors[op.inputs[0]].shape = [1, 14, 14, 3]
    _rejected(_edit(good, wider_input), tmp_path, "bitpacked input has 3 words per pixel")

    def output(model_t, parsed):
        model_t.subgraphs[0].tensors[op.outputs[0]].shape = [1, 14, 13, 64]
    _rejected(_edit(good, output), tmp_path, "output shape [1, 14, 13, 64], expected [1, 14, 14, 64]")

    # stride 2 with the stride-1 output shape
    _rejected(_with_options(good, "LceBconv2d", stride_height=2), tmp_path,
              "expected [1, 7, 14, 64]")


def test_bconv_post_activation_tensors_have_c_out_values(good, tmp_path):
    model = TFLiteModel(good)
    op = model.ops[_first(model, "LceBconv2d")]

    def rewire(model_t, parsed):  # the multiplier slot points at the filter
        model_t.subgraphs[0].operators[op.index].inputs[2] = op.inputs[1]
    _rejected(_edit(good, rewire), tmp_path, "input 2 has shape [64, 3, 3, 1], expected [64]")


def test_bconv_needs_its_inputs(good, tmp_path):
    model = TFLiteModel(good)
    op = model.ops[_first(model, "LceBconv2d")]

    def drop(model_t, parsed):
        model_t.subgraphs[0].operators[op.index].inputs = [op.inputs[0]]
    _rejected(_edit(good, drop), tmp_path, f"node {op.index} (LceBconv2d): needs 2 input(s)")


def test_quantize_shapes_and_types(good, tmp_path):
    model = TFLiteModel(good)
    op = model.ops[_first(model, "LceQuantize")]

    def words(model_t, parsed):
        model_t.subgraphs[0].tensors[op.outputs[0]].shape = [1, 14, 14, 2]
    _rejected(_edit(good, words), tmp_path, f"node {op.index} (LceQuantize): bitpacked shape "
              "[1, 14, 14, 2] does not match unpacked shape [1, 14, 14, 32]")

    def as_float(model_t, parsed):
        model_t.subgraphs[0].tensors[op.outputs[0]].type = 0  # FLOAT32
    _rejected(_edit(good, as_float), tmp_path, "bitpacks FLOAT32 to FLOAT32")


def test_unknown_tensor_type(good, tmp_path):
    def edit(model_t, parsed):
        model_t.subgraphs[0].tensors[0].type = 99
    _rejected(_edit(good, edit), tmp_path, "tensor 0 has unknown type 99")


def test_dataflow(good, tmp_path):
    model = TFLiteModel(good)
    op = model.ops[_first(model, "LceBconv2d")]
    later = model.ops[-1].outputs[0]

    def omitted(model_t, parsed):
        model_t.subgraphs[0].operators[op.index].inputs[0] = -1
    _rejected(_edit(good, omitted), tmp_path, f"node {op.index} (LceBconv2d): required input 0 "
              "is omitted")

    def reads_later(model_t, parsed):
        model_t.subgraphs[0].operators[op.index].inputs[0] = later
    _rejected(_edit(good, reads_later), tmp_path, f"input 0 reads tensor {later} before any op")

    def writes_twice(model_t, parsed):
        model_t.subgraphs[0].operators[op.index].outputs[0] = op.inputs[1]
    _rejected(_edit(good, writes_twice), tmp_path, f"writes tensor {op.inputs[1]}, a constant")


def test_builtin_ranks(good, tmp_path):
    model = TFLiteModel(good)
    conv = model.ops[_first(model, "CONV_2D")]

    def bias_as_filter(model_t, parsed):
        model_t.subgraphs[0].operators[conv.index].inputs[1] = conv.inputs[2]
    _rejected(_edit(good, bias_as_filter), tmp_path,
              f"node {conv.index} (CONV_2D): input 1 has shape", "needs rank >= 4")


def test_graph_input_shape_against_metadata(good, tmp_path):
    def edit(model_t, parsed):
        model_t.subgraphs[0].tensors[parsed.inputs[0].index].shape = [1, 28, 28, 3]
    _rejected(_edit(good, edit), tmp_path,
              "the graph's input shape [[1, 28, 28, 3]] is not the [1, 28, 28, 1] its metadata")


def test_parser_checks_indices_and_buffer_sizes(good, tmp_path):
    """The checks that live in the parser are reached through load_tflite too."""
    model = TFLiteModel(good)
    op = model.ops[_first(model, "LceBconv2d")]
    filt = op.inputs[1]

    def shape(model_t, parsed):
        model_t.subgraphs[0].tensors[filt].shape = [64, 3, 3, 2]
    _rejected(_edit(good, shape), tmp_path, "bytes for shape [64, 3, 3, 2]")

    def index(model_t, parsed):
        model_t.subgraphs[0].operators[op.index].inputs[1] = 10_000
    _rejected(_edit(good, index), tmp_path, "missing tensor")

    def opcode(model_t, parsed):
        model_t.subgraphs[0].operators[op.index].opcodeIndex = 999
    _rejected(_edit(good, opcode), tmp_path, "operator code")


def test_make_interpreter_and_validate_bytes_reject_bad_bytes(good):
    bad = _with_options(good, "LceBconv2d", stride_width=0)
    with pytest.raises(ValidationError, match=r"\(LceBconv2d\): custom option 'stride_width'"):
        validate_bytes(bad)
    for runtime in ("lce", "tflite"):
        with pytest.raises(DeployError, match="stride_width"):
            make_interpreter(bad, runtime)


def test_cli_verbs_reject_corrupt_options_in_one_line(good, tmp_path):
    """inspect and bench (through load_tflite) name the node and exit 2, no traceback."""
    bad = _with_options(good, "LceBconv2d", channels_in=1 << 20)
    path = tmp_path / "bad.tflite"
    path.write_bytes(bad)
    env = {**os.environ, "PYTHONPATH": ROOT}
    for argv in (["inspect", path], ["bench", path, "--runtime", "lce", "--runs", "1"]):
        result = subprocess.run([sys.executable, "-m", "deploy.cli", *map(str, argv)],
                                capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "node 8 (LceBconv2d): 32768 groups" in lines[0], lines
        assert "Traceback" not in result.stderr


# ------------------------------------------------------- crash classes of the fuzz corpus
def _reader_of(model, tensor, name):
    """The first ``name`` op that reads ``tensor``."""
    return next(op for op in model.ops if op.name == name and tensor in op.inputs)


def _retyped(data, tensor, type_name):
    """``data`` with tensor ``tensor`` declared of TFLite type ``type_name``."""
    def edit(model_t, parsed):
        model_t.subgraphs[0].tensors[tensor].type = getattr(schema.TensorType, type_name)
    return _edit(data, edit)


def test_a_variant_tensor_between_builtin_ops(good, tmp_path):
    """A type change that segfaulted LCE's interpreter (fuzz corpus, predict/lce): the
    first MEAN's output, read by a CONV_2D, became a VARIANT."""
    model = TFLiteModel(good)
    mean = model.ops[_first(model, "MEAN")]
    conv = _reader_of(model, mean.outputs[0], "CONV_2D")
    bad = _retyped(good, mean.outputs[0], "VARIANT")
    _rejected(bad, tmp_path, f"node {mean.index} (MEAN): output has type VARIANT",
              f"node {conv.index} (CONV_2D): input 0 has type VARIANT, expected FLOAT32")
    for runtime in ("lce", "native"):  # the factories validate too (LCE crashed here)
        with pytest.raises(ValidationError, match=f"node {conv.index} \\(CONV_2D\\)"):
            make_interpreter(bad, runtime)


def test_builtin_inputs_of_another_type_than_the_output(good, tmp_path):
    """MUL's float32 per-channel scale reinterpreted as INT32 (same byte size, so the
    buffer check passes): TFLite's MUL needs both inputs of the output's type."""
    model = TFLiteModel(good)
    mul = next(op for op in model.ops if op.name == "MUL" and model.tensors[op.inputs[1]].constant)
    _rejected(_retyped(good, mul.inputs[1], "INT32"), tmp_path,
              f"node {mul.index} (MUL): input 1 has type INT32, expected FLOAT32")


def test_conv_filter_and_bias_types_follow_the_input_type(good, tmp_path):
    model = TFLiteModel(good)
    conv = model.ops[_first(model, "CONV_2D")]
    # an int32 bias belongs to int8/uint8 convolutions
    _rejected(_retyped(good, conv.inputs[2], "INT32"), tmp_path,
              f"node {conv.index} (CONV_2D): input 2 (bias) has type INT32, expected FLOAT32 "
              "for FLOAT32 input")


def test_bconv_post_activation_inputs_are_float(good, tmp_path):
    model = TFLiteModel(good)
    op = model.ops[_first(model, "LceBconv2d")]
    _rejected(_retyped(good, op.inputs[2], "INT32"), tmp_path,
              f"node {op.index} (LceBconv2d): input 2 has type INT32, expected FLOAT32")


def test_int8_tensors_need_quantization_parameters(good, tmp_path):
    """An LceBconv2d output retyped INT8 has no scale: LCE would requantize with it."""
    model = TFLiteModel(good)
    op = model.ops[_first(model, "LceBconv2d")]
    out = op.outputs[0]
    _rejected(_retyped(good, out, "INT8"), tmp_path, f"node {op.index} (LceBconv2d): INT8 tensor "
              f"{out} needs positive finite quantization scales, has []")


def _with_metadata(data, edit):
    """``data`` with its deploy metadata (a dict) changed by ``edit``."""
    model = TFLiteModel(data)
    metadata = model.json_metadata(METADATA_NAME)
    edit(metadata)
    model.set_metadata(METADATA_NAME, json.dumps(metadata).encode("utf-8"))
    return model.to_bytes()


def test_metadata_layer_records_lacking_a_key(good, tmp_path):
    """A bit flip in a key of the stored layer list made ``inspect`` raise KeyError:
    the report reads every key of every layer record."""
    def flip(metadata):
        layer = metadata["layers"][5]
        layer["float_twin_mac3"] = layer.pop("float_twin_macs")
    bad = _with_metadata(good, flip)
    _rejected(bad, tmp_path, "metadata xnor_keras.layers[5] lacks 'float_twin_macs'")
    path = tmp_path / "bad.tflite"
    with pytest.raises(DeployError, match=r"layers\[5\] lacks"):
        inspect_file(path)
    with pytest.raises(DeployError, match=r"layers\[5\] lacks"):  # even if not validated
        inspect_model(TFLiteModel(bad), path)


@pytest.mark.parametrize("edit,needle", [
    (lambda m: m.pop("keras_config"), "metadata xnor_keras lacks 'keras_config'"),
    (lambda m: m["labels"].__setitem__(2, 7), "xnor_keras.labels[2] must be a string. "
                                              "Received: 7"),
    (lambda m: m["preprocessing"].__setitem__("input_shape", "28x28"),
     "xnor_keras.preprocessing.input_shape must be a list. Received: '28x28'"),
    (lambda m: m["layers"][0].__setitem__("float_twin_params", None),
     "xnor_keras.layers[0].float_twin_params must be an integer. Received: None"),
    (lambda m: m.__setitem__("preprocessing", None), None),  # no preprocessing: valid
])
def test_metadata_schema(good, tmp_path, edit, needle):
    bad = _with_metadata(good, edit)
    if needle is None:
        assert problems(TFLiteModel(bad)) == []
    else:
        _rejected(bad, tmp_path, needle)


def test_runtime_errors_are_one_line_deploy_errors(good, tmp_path):
    """A file every check passes but a kernel refuses at allocation: RESHAPE's constant
    target shape [-1, 1152] edited to [-1, 1153] (3·3·128 = 1152 values are not rows of
    1153), a ValueError/RuntimeError inside the interpreter."""
    model = TFLiteModel(good)
    reshape = next(op for op in model.ops if op.name == "RESHAPE"
                   and model.tensor_data(op.inputs[1]).tolist() == [-1, 1152])

    def edit(model_t, parsed):
        buffer = model_t.buffers[parsed.tensors[reshape.inputs[1]].buffer]
        buffer.data = np.frombuffer(np.array([-1, 1153], np.int32).tobytes(), np.uint8)
    bad = _edit(good, edit)
    assert problems(TFLiteModel(bad)) == []
    messages = {}
    for runtime in ("lce", "native"):
        with pytest.raises(DeployError) as error:
            make_interpreter(bad, runtime).run(np.zeros((1, 28, 28, 1), np.float32))
        messages[runtime] = str(error.value)
        assert "\n" not in messages[runtime], messages
    # LCE's exception names no node: it comes from TFLite's error reporter (stderr)
    assert messages["lce"].startswith(f"the lce runtime rejected the model at node "
                                      f"{reshape.index} (RESHAPE): reshape.cc:"), messages
    assert "(1152 != 0)" in messages["lce"], messages  # 1152 values into 0 rows of 1153
    # the native runtime's XNNPACK delegate reports its own (delegate) node
    assert re.search(r"native runtime cannot load this model: .*Node number \d+ ",
                     messages["native"]), messages


def _with_builtin_option(data, name, key, value):
    """The first ``name`` op with builtin option attribute ``key`` set to ``value``."""
    def edit(model_t, parsed):
        setattr(model_t.subgraphs[0].operators[_first(parsed, name)].builtinOptions, key, value)
    return _edit(data, edit)


def test_builtin_window_options_against_shapes(good, tmp_path):
    """Bit-flipped strides (4097, 2050) crashed LCE's interpreter (SIGABRT, SIGSEGV):
    with SAME padding a 28-wide input and stride 4097 give 1 column, not 28; VALID 2×2
    pooling of 14 columns with stride 2050 gives ceil((14 - 1) / 2050) = 1, not 7."""
    model = TFLiteModel(good)
    conv, pool = _first(model, "CONV_2D"), _first(model, "MAX_POOL_2D")
    _rejected(_with_builtin_option(good, "CONV_2D", "strideW", 4097), tmp_path,
              f"node {conv} (CONV_2D): output shape [1, 28, 28, 32], expected [1, 28, 1, 32]")
    _rejected(_with_builtin_option(good, "MAX_POOL_2D", "strideW", 2050), tmp_path,
              f"node {pool} (MAX_POOL_2D): output shape [1, 14, 14, 32], expected "
              "[1, 14, 1, 32]")
    _rejected(_with_builtin_option(good, "MAX_POOL_2D", "filterHeight", 0), tmp_path,
              f"node {pool} (MAX_POOL_2D): option 'filter_height' must be in 1..")
    _rejected(_with_builtin_option(good, "CONV_2D", "padding", 7), tmp_path,
              f"node {conv} (CONV_2D): option 'padding' must be one of SAME, VALID, got 7")


def test_builtin_channels_rows_and_axes(good, tmp_path):
    """Rewired inputs that crashed LCE (SIGFPE, a zero-size output): a 1-channel 3×3
    conv fed 64 channels, a 256-deep FULLY_CONNECTED fed a 64-value constant, a MEAN
    whose axes are another op's int32 filter."""
    model = TFLiteModel(good)
    conv = model.ops[_first(model, "CONV_2D") + 6]  # the K conv after the second MEAN
    assert conv.name == "CONV_2D" and model.tensors[conv.inputs[1]].shape == (1, 3, 3, 1)
    wide = next(t.index for t in model.tensors if t.shape == (1, 14, 14, 64))
    fc = model.ops[_first(model, "FULLY_CONNECTED")]
    small = next(t.index for t in model.tensors if t.constant and t.shape == (64,))
    mean = model.ops[_first(model, "MEAN")]
    filt = next(t.index for t in model.tensors if t.dtype == "INT32" and len(t.shape) == 4)

    def rewire(op, slot, tensor):
        def edit(model_t, parsed):
            model_t.subgraphs[0].operators[op.index].inputs[slot] = tensor
        return _edit(good, edit)
    _rejected(rewire(conv, 0, wide), tmp_path,
              f"node {conv.index} (CONV_2D): filter [1, 3, 3, 1] does not fit 64 input channels")
    _rejected(rewire(fc, 0, small), tmp_path, f"node {fc.index} (FULLY_CONNECTED): input [64] "
              "is not whole rows of the filter [10, 256]")
    _rejected(rewire(mean, 1, filt), tmp_path,
              f"node {mean.index} (MEAN): reduction axes", "are not axes of the input")
