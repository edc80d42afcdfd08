"""deploy.runtime: the runtime names, the x86-64 default, one-line kernel descriptions
and the int8 (de)quantization around every runner."""

import collections
import platform

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf

from deploy import native
from deploy.errors import DeployError
from deploy.tflite_model import TFLiteModel
from deploy.int8 import dequantize, quantization_params, quantize
from deploy.runtime import RUNTIMES, default_runtime, make_interpreter


@pytest.fixture(scope="module")
def flatbuffer():
    """Two binary 3×3 convolutions between float ops, converted by LCE itself."""
    tf.keras.utils.set_random_seed(3)
    x = inputs = tf.keras.Input((12, 12, 3))
    x = tf.keras.layers.Conv2D(16, 3, padding="same")(x)
    for _ in range(2):
        x = lq.layers.QuantConv2D(16, 3, padding="same", pad_values=1.0, use_bias=False,
                                  input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                                  kernel_constraint="weight_clip")(x)
        x = tf.keras.layers.BatchNormalization(beta_initializer="random_normal")(x)
    x = tf.keras.layers.Dense(5)(tf.keras.layers.GlobalAveragePooling2D()(x))
    return lce.convert_keras_model(tf.keras.Model(inputs, x), target="arm")


def test_quantize_and_dequantize_follow_the_affine_int8_definition():
    quant = quantization_params(np.int8, [0.5], [-3])
    assert quant == (np.dtype(np.int8), 0.5, -3)
    # round(x / 0.5) − 3, clipped to [−128, 127]
    q = quantize(np.array([1.0, -200.0, 300.0, 0.26], np.float32), quant)
    assert q.dtype == np.int8 and q.tolist() == [-1, -128, 127, -2]
    np.testing.assert_array_equal(dequantize(np.array([-1, 5], np.int8), quant), [1.0, 4.0])
    assert quantization_params(np.float32, 0.0, 0) is None
    x = np.array([0.3], np.float32)
    assert quantize(x, None) is x and dequantize(x, None).dtype == np.float32


def test_default_runtime_is_native_only_on_x86_64(monkeypatch):
    for machine, expected in (("x86_64", "native"), ("AMD64", "native"), ("aarch64", "lce"),
                              ("armv7l", "lce")):
        monkeypatch.setattr(platform, "machine", lambda machine=machine: machine)
        assert default_runtime() == expected
    assert "auto" in RUNTIMES


def test_auto_runs_the_default_runtime_and_says_which_kernels(flatbuffer):
    x = np.random.default_rng(0).standard_normal((1, 12, 12, 3)).astype(np.float32)
    auto = make_interpreter(flatbuffer, "auto")
    assert auto.name == default_runtime()
    reference = make_interpreter(flatbuffer, "lce-reference")
    np.testing.assert_allclose(auto.run(x), reference.run(x), rtol=1e-5, atol=1e-5)
    assert reference.describe() == ("larq-compute-engine interpreter, reference "
                                    "binary kernels, float ops on TFLite builtin kernels, "
                                    "1 thread(s)")
    mine = make_interpreter(flatbuffer, "native", num_threads=2).describe()
    census = collections.Counter(op.name for op in TFLiteModel(flatbuffer).ops)
    assert census["LceBconv2d"] == 2
    assert mine.startswith("xnor_keras C++ kernels (") and (
        f", 2 thread(s)) for 2 LceBconv2d, {census['LceQuantize']} LceQuantize; float ops on "
        "stock TensorFlow Lite with XNNPACK") in mine


def test_auto_never_falls_back_silently(flatbuffer, monkeypatch, tmp_path):
    if default_runtime() != "native":
        pytest.skip("auto means lce here")
    monkeypatch.setenv("CXX", "no-such-c++-compiler")
    monkeypatch.setenv("XNOR_KERAS_NATIVE_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_built", {})  # forget this process's built library
    with pytest.raises(DeployError, match=r"no-such-c\+\+-compiler.*runtime 'auto' means "
                                          r"'native'.*--runtime lce"):
        make_interpreter(flatbuffer, "auto")
    with pytest.raises(DeployError, match="no-such") as error:
        make_interpreter(flatbuffer, "native")
    assert "auto" not in str(error.value)


@pytest.mark.parametrize("runtime,threads,message", [
    ("gpu", 1, "unknown runtime 'gpu'"),
    ("auto", 0, "threads must be a positive integer. Received: 0"),
    ("tflite", 1, "runtime 'tflite' cannot run LCE ops"),
])
def test_bad_requests(flatbuffer, runtime, threads, message):
    with pytest.raises(DeployError, match=message):
        make_interpreter(flatbuffer, runtime, num_threads=threads)
