"""Shared fixtures. Importing xnor_keras first activates legacy Keras for every test."""

import os

import numpy as np
import pytest

import xnor_keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION, "train-images-idx3-ubyte.gz")),
    reason="scripts/deps.d/fashion_mnist.sh installs the Debian package dataset-fashion-mnist",
)


@pytest.fixture
def rng():
    """A seeded NumPy generator, and TensorFlow seeded to match."""
    tf.keras.utils.set_random_seed(1234)
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """Keeps layer names and graph state independent between tests."""
    tf.keras.backend.clear_session()
    yield


@pytest.fixture(scope="session")
def xnor_tflite(tmp_path_factory):
    """A fashion_net XNOR model with trained-like BatchNorm statistics, converted by
    `deploy.convert.convert_file` for x86_64: ``(path to .tflite, path to .keras)``."""
    from deploy.convert import convert_file
    from tests.test_deploy_lowering import trained_like
    from xnor_keras import models

    directory = tmp_path_factory.mktemp("xnor_tflite")
    tf.keras.utils.set_random_seed(5)
    model = trained_like(models.build("fashion_net", "xnor"), np.random.default_rng(5))
    model.save(directory / "model.keras")
    convert_file(directory / "model.keras", directory / "model.tflite", target="x86_64")
    return directory / "model.tflite", directory / "model.keras"
