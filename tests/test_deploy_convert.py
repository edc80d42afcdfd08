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

from tests.conftest import FASHION, trained_like

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


# ---------------------------------------------------------------- --int8_float_layers
@pytest.fixture(scope="module")
def int8_pair(tmp_path_factory):
    """The tiny XNOR model converted twice: float layers in float, and in int8 calibrated
    on 64 real Fashion-MNIST training images."""
    if not os.path.exists(os.path.join(FASHION, "train-images-idx3-ubyte.gz")):
        pytest.skip("scripts/deps.d/fashion_mnist.sh installs the Debian package "
                    "dataset-fashion-mnist")
    directory = tmp_path_factory.mktemp("int8")
    model = _tiny("xnor")
    model.save(directory / "model.keras")
    float_result = convert_file(directory / "model.keras", directory / "float.tflite")
    int8_result = convert_file(directory / "model.keras", directory / "int8.tflite",
                               int8_float_layers=True, calibration_n=64)
    return model, float_result, int8_result


def _int8_weighted_ops(tflite):
    return [op for op in tflite.ops if op.name in ("CONV_2D", "FULLY_CONNECTED")
            and tflite.tensors[op.inputs[1]].dtype == "INT8"]


def test_int8_float_layers_are_int8_and_binary_ops_unchanged(int8_pair):
    model, float_result, int8_result = int8_pair
    plain, quantized = TFLiteModel(float_result.flatbuffer), TFLiteModel(int8_result.flatbuffer)
    int8_ops = _int8_weighted_ops(quantized)
    assert not _int8_weighted_ops(plain)
    # conv1 (3×3, 32 filters) and logits (dense 256 → 10, an int8 1×1 conv)
    assert sorted(quantized.tensors[op.inputs[1]].shape for op in int8_ops) == \
        [(10, 1, 1, 256), (32, 3, 3, 1)]
    for op in int8_ops:
        weights = quantized.tensors[op.inputs[1]]
        assert len(weights.scale) == weights.shape[0] and set(weights.zero_point) == {0}
        assert quantized.tensors[op.inputs[0]].dtype == "INT8"
        assert quantized.tensors[op.outputs[0]].dtype == "INT8"
    census, reference = quantized.op_census(), plain.op_census()
    for name in ("LceBconv2d", "LceQuantize", "LceBMaxPool2d", "LceDequantize"):
        assert census[name] == reference[name]
    filters = [[tfl.bconv_filter(op).tobytes() for op in tfl.ops if op.name == "LceBconv2d"]
               for tfl in (plain, quantized)]
    assert filters[0] == filters[1] and len(filters[0]) == 4
    summary = int8_result.report.summary()
    assert summary["int8_layers"] == ["conv1", "logits"]
    assert summary["binary_layers_in_binary_ops"] == 4 and summary["binary_layers_in_float"] == 0
    text = int8_result.report.format()
    assert "int8 float layers: conv1, logits" in text
    assert "min/max over 64 fashion_mnist train images" in text
    meta = quantized.json_metadata("xnor_keras")
    assert meta["int8_calibration"]["images"] == 64
    assert set(meta["int8_calibration"]["ranges"]) == {"conv1", "logits"}
    assert float_result.report.summary()["int8_layers"] == []
    from deploy.inspection import inspect_model

    inspection = inspect_model(quantized)
    assert inspection.int8_ops == {"CONV_2D": 2} and inspect_model(plain).int8_ops == {}
    assert "int8 ops (int8 weights, int8 activations): CONV_2D×2" in inspection.format()
    assert "int8 (calibrated)" in inspection.format()  # the report rebuilt from metadata


def test_int8_agrees_with_the_float_conversion_on_fashion_mnist(int8_pair):
    from deploy.inputs import dataset_inputs

    model, float_result, int8_result = int8_pair
    x = dataset_inputs("fashion_mnist", 300, (28, 28, 1))
    outputs = []
    for flatbuffer in (float_result.flatbuffer, int8_result.flatbuffer):
        runner = make_interpreter(flatbuffer, "lce")
        outputs.append(np.concatenate([runner.run(x[i:i + 1]) for i in range(len(x))]))
    agreement = compare(outputs[0], outputs[1]).top1_agreement
    assert agreement >= 0.95, agreement  # measured 98.8% on 500 images
    assert compare(outputs[0], outputs[1]).max_abs_diff > 0  # int8 is not a no-op


def test_int8_segments_are_reported_not_certified(int8_pair):
    from deploy.certify import certify
    from deploy.inputs import dataset_inputs

    model, _, int8_result = int8_pair
    cert = certify(model, int8_result.flatbuffer, dataset_inputs("fashion_mnist", 4,
                                                                (28, 28, 1)))
    assert [c.layer for c in cert.not_certified] == ["pool1", "logits"]
    verdict = cert.format_verdict()
    assert verdict.startswith("PASS (certified segments only)")
    assert "NOT CERTIFIED, int8 quantized (approximate by design): 2 segment(s): " \
           "conv1 → conv1_bn → conv1_relu → pool1; logits" in verdict
    certified = [c for c in cert.checks if c.certified]
    assert sum("LceBconv2d" in c.ops for c in certified) == 4 and all(c.elements for c in
                                                                      certified)


def test_int8_bad_inputs_raise_one_line_errors(tmp_path, xnor_files):
    model_path, _, _, _ = xnor_files
    out = tmp_path / "a.tflite"
    cases = [
        (dict(int8_float_layers=True, calibration_n=0), "Received: --calibration_n=0"),
        (dict(int8_float_layers="yes"), "int8_float_layers must be True or False"),
        (dict(calibration_data="fashion_mnist"), "pass --int8_float_layers too"),
        (dict(int8_float_layers=True, calibration_data="no_such_set"),
         "needs calibration images.*--calibration_data"),
        (dict(int8_float_layers=True, calibration_data=tmp_path / "empty"),
         "needs calibration images.*--calibration_data"),
    ]
    (tmp_path / "empty").mkdir()
    for kwargs, message in cases:
        with pytest.raises(DeployError, match=message):
            convert_file(model_path, out, **kwargs)
    x = tf.keras.Input((5, 5, 2))  # no data set has this shape
    tf.keras.Model(x, L.Dense(3)(L.Flatten()(x))).save(tmp_path / "odd.keras")
    with pytest.raises(DeployError, match="data set is unknown; pass --calibration_data"):
        convert_file(tmp_path / "odd.keras", out, int8_float_layers=True)
    assert not out.exists()


def test_cli_int8_flag_bad_input_is_one_line_and_exit_2(tmp_path, xnor_files):
    import subprocess
    import sys

    model_path, _, _, _ = xnor_files
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "convert", str(model_path), "-o",
         str(tmp_path / "a.tflite"), "--int8_float_layers", "--calibration_n", "0"],
        capture_output=True, text=True, cwd=root, env={**os.environ, "PYTHONPATH": root},
        timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --calibration_n must be a positive integer. Received: --calibration_n=0"]
    assert not (tmp_path / "a.tflite").exists()


def test_int8_resnet18_stem_projections_and_head_on_reduced_inputs(fashion_pngs):
    # ResNet-18 at 32×32 (ImageNet's 224 would be slow here), calibrated on an image
    # folder (Fashion-MNIST PNGs, made RGB and resized by CIFAR-10's preprocessing).
    tf.keras.utils.set_random_seed(7)
    model = trained_like(models.build("resnet18", "xnor", input_shape=(32, 32, 3),
                                      num_classes=10), np.random.default_rng(7))
    result = convert_model(model, dataset="cifar10", int8_float_layers=True,
                           calibration_data=fashion_pngs[0], calibration_n=16)
    tflite = TFLiteModel(result.flatbuffer)
    shapes = sorted(tflite.tensors[op.inputs[1]].shape for op in _int8_weighted_ops(tflite))
    assert shapes == [(10, 1, 1, 512), (64, 7, 7, 3), (128, 1, 1, 64), (256, 1, 1, 128),
                      (512, 1, 1, 256)]
    assert tflite.op_census()["LceBconv2d"] == 16
    assert result.report.summary()["int8_layers"] == ["conv1", "res3a_proj", "res4a_proj",
                                                      "res5a_proj", "logits"]
    assert "16 images from" in result.report.format()
