"""deploy.convert: op census, no silent float, metadata. (verify, inspection, predict, bench,
inputs and report have their own test files.)"""

import os

import numpy as np
import pytest
import tensorflow as tf

from deploy.convert import convert_file, convert_model
from deploy.errors import DeployError
from deploy.runtime import make_interpreter
from deploy.tflite_model import TFLiteModel
from deploy.verify import compare
from xnor_keras import models
from xnor_keras.layers import XnorConv2D, XnorDense

from tests.conftest import trained_like

L = tf.keras.layers


def _tiny(precision, **options):
    """The 28×28 zoo network (4 binarizable layers), trained-like BatchNorm."""
    tf.keras.utils.set_random_seed(3)
    model = models.build("fashion_net", precision, **options)
    return trained_like(model, np.random.default_rng(3))


def _agree(model, flatbuffer, n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *model.input_shape[1:])).astype(np.float32)
    runner = make_interpreter(flatbuffer, "lce")
    out = np.concatenate([runner.run(x[i:i + 1]) for i in range(n)])
    return compare(model.predict(x, verbose=0), out)


@pytest.fixture(scope="module")
def xnor_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("xnor")
    model = _tiny("xnor")
    model.save(directory / "model.keras")
    out = directory / "model.tflite"
    result = convert_file(directory / "model.keras", out, target="arm64")
    return directory / "model.keras", out, result, model


def test_xnor_every_binary_layer_is_a_bconv(xnor_files):
    _, out, result, model = xnor_files
    census = TFLiteModel.load(out).op_census()
    binary_layers = [layer for layer in model.layers if isinstance(layer, (XnorConv2D, XnorDense))]
    assert census["LceBconv2d"] == len(binary_layers) == 4
    summary = result.report.summary()
    assert summary["binary_layers_in_float"] == 0 and summary["float_fallback_layers"] == []
    assert summary["binary_layers_in_binary_ops"] == 4
    assert result.report.file_bytes == os.path.getsize(out)
    assert summary["float_twin_bytes"] > 10 * os.path.getsize(out)
    text = result.report.format()
    for name in ("conv2", "conv3", "conv4", "fc5"):
        assert any(line.startswith(name) and "LceBconv2d" in line for line in text.splitlines())
    assert _agree(model, out.read_bytes()).close_end_to_end


def test_metadata_records_target_input_preprocessing_labels(xnor_files):
    _, out, result, _ = xnor_files
    meta = TFLiteModel.load(out).json_metadata("xnor_keras")
    assert meta["target"] == "arm64" and meta["lce_target"] == "arm"
    assert meta["input"] == {"shape": [1, 28, 28, 1], "dtype": "float32"}
    assert meta["dataset"] == "fashion_mnist"
    assert meta["preprocessing"]["input_shape"] == [28, 28, 1]
    assert meta["labels"][0] == "T-shirt/top" and len(meta["labels"]) == 10
    assert meta["summary"] == result.report.summary()


def test_k_less_xnor_pools_bitpacked_and_matches():
    # fashion_net without K: BN+max-pool+sign fold into the previous LceBconv2d, so
    # LCE pools bitpacked data; fc5 (a 3×3 "valid" conv) writes bitpacked output.
    x = inputs = tf.keras.Input((12, 12, 3))
    x = L.Conv2D(16, 3, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.BatchNormalization()(x)
    x = XnorConv2D(32, 3, padding="same", use_bias=False, input_scaling=False)(x)
    x = L.MaxPool2D(2)(x)
    x = L.BatchNormalization()(x)
    x = XnorConv2D(32, 3, padding="valid", use_bias=False, input_scaling=False)(x)
    x = L.BatchNormalization()(x)
    x = XnorConv2D(64, 3, padding="valid", use_bias=False, input_scaling=False)(x)
    x = L.GlobalAveragePooling2D()(x)
    model = trained_like(tf.keras.Model(inputs, L.Dense(4)(x)), np.random.default_rng(5))
    result = convert_model(model)
    tflite = TFLiteModel(result.flatbuffer)
    census = tflite.op_census()
    assert census["LceBconv2d"] == 3
    assert census["LceBMaxPool2d"] == 1
    bitpacked = [op for op in tflite.ops if op.name == "LceBconv2d"
                 and tflite.tensors[op.outputs[0]].dtype == "INT32"]
    assert len(bitpacked) == 1  # the valid conv feeding the last one
    assert "MAX_POOL_2D" not in census  # no float pooling left
    assert _agree(model, result.flatbuffer, n=16).close_end_to_end


def test_fp_model_has_no_binary_ops():
    result = convert_model(_tiny("fp"))
    census = TFLiteModel(result.flatbuffer).op_census()
    assert not any(name.startswith("Lce") for name in census)
    assert result.report.summary()["binary_layers"] == 0


def test_bwn_weights_are_stored_in_one_bit():
    model = _tiny("bwn")
    result = convert_model(model)
    tflite = TFLiteModel(result.flatbuffer)
    assert tflite.op_census()["LceDequantize"] == 4
    summary = result.report.summary()
    assert summary["binary_weight_layers"] == 4 and summary["binary_layers_in_float"] == 0
    packed = [t for t in tflite.tensors if t.name.endswith("binary_weights/bitpacked")]
    assert len(packed) == 4 and all(t.dtype == "INT32" for t in packed)
    # fc5's 1152×256 weights: 1 bit each, not 4 bytes.
    assert summary["weight_bytes"] < 0.2 * summary["float_twin_bytes"]
    assert _agree(model, result.flatbuffer).close_end_to_end


def test_xcore_float_fallback_is_caught_and_named(tmp_path):
    # LCE's xcore graph has no zero-padded 'same' binary convolution: such layers would
    # silently stay float convolutions. convert refuses, naming the layer.
    model = _tiny("xnor")
    model.save(tmp_path / "m.keras")
    out = tmp_path / "m.tflite"
    with pytest.raises(DeployError, match="layer 'conv2' .*not converted to a binary op"):
        convert_file(tmp_path / "m.keras", out, target="xcore")
    assert not out.exists() and os.listdir(tmp_path) == ["m.keras"]
    result = convert_model(model, target="xcore", allow_float_fallback=True)
    assert result.report.summary()["binary_layers_in_float"] >= 1
    assert "FLOAT (binary layer!)" in result.report.format()


def test_bad_inputs_raise_deploy_errors(tmp_path, xnor_files):
    model_path, _, _, _ = xnor_files
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.keras").write_text("not a zip")
    cases = [
        (lambda: convert_file(tmp_path / "missing.keras", tmp_path / "a.tflite"), "no such file"),
        (lambda: convert_file(tmp_path / "notes.txt", tmp_path / "a.tflite"), "not a Keras model"),
        (lambda: convert_file(tmp_path / "fake.keras", tmp_path / "a.tflite"), "cannot load"),
        (lambda: convert_file(model_path, tmp_path / "a.tflite", target="riscv"), "unknown target"),
        (lambda: convert_file(model_path, tmp_path / "nodir" / "a.tflite"), "does not exist"),
    ]
    for call, message in cases:
        with pytest.raises(DeployError, match=message):
            call()
    assert not (tmp_path / "a.tflite").exists()
