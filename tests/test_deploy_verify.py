"""deploy.verify: end-to-end statistics against Keras and LCE's interpreter run directly;
the verdict comes from deploy.certify (tested in test_deploy_certify.py)."""

import numpy as np
import pytest
import tensorflow as tf
from larq_compute_engine.tflite.python.interpreter import Interpreter

from deploy.errors import DeployError
from deploy.verify import compare, noise_floor, verify_files

from tests.conftest import needs_fashion
from tests.test_deploy_predict import _reference_inputs

L = tf.keras.layers


def test_compare_counts_inputs_within_tolerance():
    reference = np.array([[0.0, 10.0], [5.0, 1.0], [2.0, 3.0]])
    outputs = reference + np.array([[0.0, 0.001], [0.5, 0.0], [0.0, 0.0]])
    result = compare(reference, outputs, tolerance=1e-3)  # range 10: allowed |Δ| 0.01
    assert result.max_abs_diff == pytest.approx(0.5)
    assert result.within_tolerance == pytest.approx(2 / 3)
    assert result.top1_agreement == 1.0 and not result.close_end_to_end
    assert result.relative_diff == pytest.approx(0.05)
    swapped = compare(reference, reference[:, ::-1])
    assert swapped.top1_agreement == 0.0 and swapped.max_abs_diff == pytest.approx(10.0)
    with pytest.raises(DeployError, match="output shapes differ"):
        compare(reference, reference[:2])


def test_random_inputs_pass(xnor_tflite):
    tflite_path, keras_path = xnor_tflite
    result = verify_files(keras_path, tflite_path, n=30)
    assert result.passed and result.top1_agreement == 1.0 and result.n == 30
    assert result.within_tolerance == 1.0 and result.noise_floor.n == 30
    assert "noise floor" in result.format() and "verdict: PASS" in result.format()
    assert result.as_dict()["passed"] is True


def test_statistics_equal_keras_against_lce_run_directly(xnor_tflite, fashion_pngs):
    # The reference: the Keras model and LCE's own interpreter on the NumPy-preprocessed
    # images, differences taken here.
    tflite_path, keras_path = xnor_tflite
    directory, _, images, _ = fashion_pngs
    x = _reference_inputs(images)
    keras = tf.keras.models.load_model(keras_path).predict(x, verbose=0).astype(np.float64)
    lce = Interpreter(tflite_path.read_bytes(), num_threads=1, use_reference_bconv=False,
                      use_indirect_bgemm=False, use_xnnpack=False)
    outputs = np.concatenate([lce.predict(x[i:i + 1]) for i in range(len(x))]).astype(np.float64)
    result = verify_files(keras_path, tflite_path, images=directory, with_noise_floor=False)
    assert result.n == len(images) and result.source == f"{len(images)} images from {directory}"
    assert result.max_abs_diff == pytest.approx(np.abs(keras - outputs).max(), rel=1e-3, abs=1e-5)
    assert result.logit_range == pytest.approx(keras.max() - keras.min(), rel=1e-6)
    assert result.top1_agreement == np.mean(keras.argmax(1) == outputs.argmax(1)) == 1.0
    assert result.passed and result.noise_floor is None


@needs_fashion
def test_fashion_mnist_test_images_pass(xnor_tflite):
    tflite_path, keras_path = xnor_tflite
    result = verify_files(keras_path, tflite_path, data="fashion_mnist", n=40)
    assert result.passed and "fashion_mnist" in result.source and result.n == 40


def test_noise_floor_of_a_float_model_is_rounding_sized():
    # A float network is continuous: one rounding step of the input moves the logits by
    # a few float32 roundings, far below 1e-3 × range, and never the argmax on noise.
    tf.keras.utils.set_random_seed(0)
    x = inputs = tf.keras.Input((8,))
    model = tf.keras.Model(inputs, L.Dense(5)(L.Dense(16, activation="tanh")(x)))
    data = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    floor = noise_floor(model, data)
    assert floor.n == 50 and floor.relative_diff < 1e-5 and floor.within_tolerance == 1.0
    assert floor.top1_agreement == 1.0


def test_bad_inputs_raise_deploy_errors(xnor_tflite, tmp_path):
    tflite_path, keras_path = xnor_tflite
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DeployError, match="TFL3"):
        verify_files(keras_path, tmp_path / "notes.txt")
    other = tmp_path / "other.keras"
    x = tf.keras.Input((32, 32, 3))
    tf.keras.Model(x, L.Dense(10)(L.Flatten()(x))).save(other)
    with pytest.raises(DeployError, match="input size mismatch"):
        verify_files(other, tflite_path, n=2)
    with pytest.raises(DeployError, match="either --data or --images"):
        verify_files(keras_path, tflite_path, data="fashion_mnist", images=tmp_path)
    with pytest.raises(DeployError, match="-n must be a positive integer"):
        verify_files(keras_path, tflite_path, n=0)
    with pytest.raises(DeployError, match="--tolerance must be positive"):
        verify_files(keras_path, tflite_path, tolerance=0)
    with pytest.raises(DeployError, match="holds no images"):
        verify_files(keras_path, tflite_path, images=tmp_path)
