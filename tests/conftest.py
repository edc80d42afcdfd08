"""Shared fixtures. Importing xnor_keras first activates legacy Keras for every test."""

import gzip
import os
import struct

import numpy as np
import pytest

import xnor_keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tensorflow as tf

FASHION = "/usr/share/datasets/fashion-mnist"
needs_fashion = pytest.mark.skipif(
    not os.path.exists(os.path.join(FASHION, "train-images-idx3-ubyte.gz")),
    reason="scripts/deps.d/fashion_mnist.sh installs the Debian package dataset-fashion-mnist",
)


FASHION_LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                  "Sneaker", "Bag", "Ankle boot")


def read_gz_idx(path):
    """A gzipped IDX file as a NumPy array, read by hand (independent of xnor_keras.data)."""
    raw = gzip.open(path).read()
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def trained_like(model, rng, *, negative_gamma=0.0):
    """Random BatchNorm statistics and parameters, as after training (γ < 0 in a
    fraction ``negative_gamma`` of the channels)."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            gamma = rng.uniform(0.5, 1.5, c) * np.where(rng.random(c) < negative_gamma, -1, 1)
            layer.set_weights([gamma, rng.normal(0, 0.3, c), rng.normal(0, 0.5, c),
                               rng.uniform(0.5, 2.0, c)])
    return model


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
    from xnor_keras import models

    directory = tmp_path_factory.mktemp("xnor_tflite")
    tf.keras.utils.set_random_seed(5)
    model = trained_like(models.build("fashion_net", "xnor"), np.random.default_rng(5))
    model.save(directory / "model.keras")
    convert_file(directory / "model.keras", directory / "model.tflite", target="x86_64")
    return directory / "model.tflite", directory / "model.keras"


@pytest.fixture(scope="session")
def fashion_pngs(tmp_path_factory):
    """The first 24 Fashion-MNIST test images written as PNG files: ``(directory, paths,
    uint8 images [N, 28, 28], labels [N])`` (skips without the Debian data set)."""
    if not os.path.exists(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")):
        pytest.skip("scripts/deps.d/fashion_mnist.sh installs the Debian package "
                    "dataset-fashion-mnist")
    from PIL import Image

    n = 24
    images = read_gz_idx(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz"))[:n]
    labels = read_gz_idx(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz"))[:n]
    directory = tmp_path_factory.mktemp("fashion_pngs")
    paths = []
    for i, image in enumerate(images):
        paths.append(directory / f"{i:03d}_{FASHION_LABELS[labels[i]].replace('/', '_')}.png")
        Image.fromarray(image).save(paths[-1])
    return directory, paths, images, labels
