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
