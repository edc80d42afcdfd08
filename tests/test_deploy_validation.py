"""deploy.validation: every check on hand-mutated copies of a real converted model, and
that every entry point (load_tflite, make_interpreter, the CLI) rejects them in one line."""

import os
import subprocess
import sys

import numpy as np
import pytest
from flatbuffers import flexbuffers

from deploy.artifacts import load_tflite
from deploy.errors import DeployError
from deploy.runtime import make_interpreter
from deploy.tflite_model import TFLiteModel
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
