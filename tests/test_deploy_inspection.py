"""deploy.inspection: what a .tflite computes and stores, checked against the Keras model."""

import os

import numpy as np
import pytest
import tensorflow as tf

from deploy.bench import twin_flatbuffers
from deploy.errors import DeployError
from deploy.inspection import inspect_file, inspect_model
from deploy.tflite_model import TFLiteModel


def keras_macs(model):
    """{layer name: MACs} of every conv / dense layer, from Keras's own shapes:
    H_out·W_out·C_out·k_h·k_w·C_in for a convolution, C_in·C_out for a dense layer."""
    macs = {}
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.Conv2D):
            _, h, w, c_out = layer.output_shape
            kh, kw, c_in, _ = layer.kernel.shape
            macs[layer.name] = h * w * c_out * kh * kw * c_in
        elif isinstance(layer, tf.keras.layers.Dense):
            c_in, c_out = layer.kernel.shape
            macs[layer.name] = c_in * c_out
    return macs


BINARY = ("conv2", "conv3", "conv4", "fc5")


@pytest.fixture(scope="module")
def inspected(xnor_tflite):
    tflite_path, keras_path = xnor_tflite
    return inspect_file(tflite_path), tf.keras.models.load_model(keras_path)


def test_census_macs_and_sizes(inspected, xnor_tflite):
    info, model = inspected
    macs = keras_macs(model)
    assert info.census["LceBconv2d"] == 4 and info.binary_macs > 10 * info.float_macs
    assert info.binary_macs == sum(macs[name] for name in BINARY) == 14_745_600
    assert info.file_bytes == os.path.getsize(xnor_tflite[0])
    assert info.weight_bytes < info.file_bytes
    assert info.inputs[0]["shape"] == [1, 28, 28, 1] and info.outputs[0]["shape"] == [1, 10]
    assert sum(info.census.values()) == len(TFLiteModel.load(xnor_tflite[0]).ops)


def test_format_and_json(inspected):
    info, _ = inspected
    assert "LceBconv2d" in info.format() and info.report is not None
    text = info.format()
    assert "target: x86_64" in text and "labels: 10 (T-shirt/top, Trouser, Pullover" in text
    assert "mean=[0.286] std=[0.353]" in text
    d = info.as_dict()
    assert "keras_config" not in d["metadata"] and "layers" not in d["metadata"]
    assert "keras_config" in info.metadata and d["op_census"] == info.census


def test_a_stock_tflite_file_has_no_report(inspected):
    _, model = inspected
    flatbuffer = twin_flatbuffers(model, int8=False)["float32"]
    info = inspect_model(TFLiteModel(flatbuffer), "twin.tflite", file_bytes=len(flatbuffer))
    assert info.metadata is None and info.report is None and info.binary_macs == 0
    assert info.float_macs == sum(keras_macs(model).values())
    assert "metadata: none from xnor-deploy" in info.format()


def test_missing_file(tmp_path):
    with pytest.raises(DeployError, match="no such file"):
        inspect_file(tmp_path / "missing.tflite")
    with pytest.raises(DeployError, match="directory"):
        inspect_file(tmp_path)
