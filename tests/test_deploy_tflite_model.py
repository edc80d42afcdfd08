"""deploy.tflite_model: bit layout, parsing/validation, metadata and edits of .tflite files."""

import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf

import larq_compute_engine as lce
from larq import math as lq_math

from deploy.runtime import make_interpreter
from deploy.tflite_model import TFLiteFormatError, TFLiteModel, bitpack, unpack


def _reference_bitpack(x):
    """LCE's documented layout, written out element by element: bit k of word j is
    set iff element 32·j + k of the last axis is negative."""
    x = np.asarray(x)
    n = x.shape[-1]
    words = (n + 31) // 32
    flat = x.reshape(-1, n)
    out = np.zeros((flat.shape[0], words), dtype=np.uint32)
    for row in range(flat.shape[0]):
        for i in range(n):
            if flat[row, i] < 0:
                out[row, i // 32] |= np.uint32(1) << np.uint32(i % 32)
    return out.view(np.int32).reshape(x.shape[:-1] + (words,))


@pytest.mark.parametrize("n", [1, 31, 32, 33, 70])
def test_bitpack_matches_reference_and_round_trips(rng, n):
    x = rng.standard_normal((3, 2, n)).astype(np.float32)
    x[0, 0, 0] = 0.0  # sign(0) = +1: bit clear
    packed = bitpack(x)
    np.testing.assert_array_equal(packed, _reference_bitpack(x))
    np.testing.assert_array_equal(unpack(packed, n), np.where(x < 0, -1.0, 1.0))


def _save_and_convert(module, fn):
    with tempfile.TemporaryDirectory() as directory:
        tf.saved_model.save(module, directory, signatures={"serving_default": fn})
        return lce.convert_saved_model(directory)


@pytest.fixture(scope="module")
def bconv_model():
    """A sign → 3×3 binary conv (40 → 24 channels) model and its ±1 kernel."""
    rng = np.random.default_rng(7)
    signs = np.where(rng.standard_normal((3, 3, 40, 24)) < 0, -1.0, 1.0).astype(np.float32)
    scale = rng.uniform(0.5, 2.0, 24).astype(np.float32)

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 9, 9, 40], tf.float32)])
        def serve(self, x):
            return {"y": tf.nn.conv2d(lq_math.sign(x), signs * scale, 1, "SAME")}

    module = Module()
    return _save_and_convert(module, module.serve), signs, scale, module


@pytest.fixture(scope="module")
def float_conv_model():
    """A float 3×3 conv whose kernel is ±s_c per output channel."""
    rng = np.random.default_rng(8)
    kernel = (np.where(rng.standard_normal((3, 3, 5, 6)) < 0, -1.0, 1.0)
              * rng.uniform(0.1, 1.0, 6)).astype(np.float32)

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 5], tf.float32)])
        def serve(self, x):
            return {"y": tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME") + 0.5)}

    module = Module()
    return _save_and_convert(module, module.serve), kernel, module


def test_parses_lce_ops_options_and_filter(bconv_model):
    flatbuffer, signs, scale, _ = bconv_model
    model = TFLiteModel(flatbuffer)
    assert model.op_census() == {"LceQuantize": 1, "LceBconv2d": 1}
    (bconv,) = [op for op in model.ops if op.name == "LceBconv2d"]
    assert bconv.custom and bconv.options["channels_in"] == 40
    assert bconv.options["stride_height"] == bconv.options["stride_width"] == 1
    np.testing.assert_array_equal(model.bconv_filter(bconv), np.transpose(signs, (3, 0, 1, 2)))
    np.testing.assert_allclose(model.tensor_data(bconv.inputs[2]), scale)  # α as multiplier
    binary, floating = model.op_macs(bconv)
    assert (binary, floating) == (9 * 9 * 24 * 3 * 3 * 40, 0)
    assert model.inputs[0].shape == (1, 9, 9, 40) and model.outputs[0].dtype == "FLOAT32"


@pytest.mark.parametrize("corrupt", [
    b"",
    b"not a flatbuffer at all",
    b"\x89PNG\r\n\x1a\n" + bytes(64),
    b"\x1c\x00\x00\x00TFL3" + bytes(20),
])
def test_rejects_non_models(corrupt):
    with pytest.raises(TFLiteFormatError):
        TFLiteModel(corrupt)


def test_rejects_truncated_models(bconv_model):
    flatbuffer = bconv_model[0]
    for size in (len(flatbuffer) // 4, len(flatbuffer) // 2, len(flatbuffer) - 100):
        with pytest.raises(TFLiteFormatError):
            TFLiteModel(flatbuffer[:size])


def test_metadata_round_trip_keeps_the_model_runnable(bconv_model, rng):
    flatbuffer, _, _, module = bconv_model
    model = TFLiteModel(flatbuffer)
    model.set_metadata("xnor_keras", b'{"target": "arm64"}')
    model.set_metadata("xnor_keras", b'{"target": "xcore"}')  # replaces
    again = TFLiteModel(model.to_bytes())
    assert again.json_metadata("xnor_keras") == {"target": "xcore"}
    assert again.metadata_names().count("xnor_keras") == 1
    assert again.op_census() == model.op_census()
    x = rng.standard_normal((1, 9, 9, 40)).astype(np.float32)
    expected = module.serve(tf.constant(x))["y"].numpy()
    out = make_interpreter(again.to_bytes(), "lce").run(x)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)


def test_binarize_constant_stores_one_bit_and_computes_the_same(float_conv_model, rng):
    flatbuffer, kernel, module = float_conv_model
    model = TFLiteModel(flatbuffer)
    (conv,) = [op for op in model.ops if op.name == "CONV_2D"]
    model.binarize_constant(conv.index, 1, scale_axis=0, name="w")
    edited = model.to_bytes()
    again = TFLiteModel(edited)
    assert again.op_census()["LceDequantize"] == 1 and again.op_census()["MUL"] == 1
    assert not any(t.constant and t.dtype == "FLOAT32" and t.shape == (6, 3, 3, 5)
                   for t in again.tensors)  # the float32 kernel is gone
    packed = [t for t in again.tensors if t.name == "w/bitpacked"][0]
    assert packed.dtype == "INT32" and packed.shape == (6, 3, 3, 1)
    x = rng.standard_normal((1, 8, 8, 5)).astype(np.float32)
    expected = module.serve(tf.constant(x))["y"].numpy()
    np.testing.assert_allclose(make_interpreter(edited, "lce").run(x), expected,
                               rtol=1e-6, atol=1e-6)


def test_binarize_constant_refuses_non_binary_constants(float_conv_model, rng):
    model = TFLiteModel(float_conv_model[0])
    (conv,) = [op for op in model.ops if op.name == "CONV_2D"]
    with pytest.raises(ValueError):
        model.binarize_constant(conv.index, 0)  # the input: not a constant
    kernel = rng.standard_normal((3, 3, 5, 6)).astype(np.float32)

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 5], tf.float32)])
        def serve(self, x):
            return {"y": tf.nn.conv2d(x, kernel, 1, "SAME")}

    module = Module()
    model = TFLiteModel(_save_and_convert(module, module.serve))
    (conv,) = [op for op in model.ops if op.name == "CONV_2D"]
    with pytest.raises(ValueError):
        model.binarize_constant(conv.index, 1)  # a real-valued kernel


def test_load_reads_files(bconv_model, tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(bconv_model[0])
    assert TFLiteModel.load(path).op_census()["LceBconv2d"] == 1
    assert os.path.getsize(path) == len(bconv_model[0])
