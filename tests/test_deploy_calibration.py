"""deploy.calibration and deploy.lowering.quantize: which float layers become int8, their
folded weights, calibrated ranges and calibration images. (The int8 conversion itself is
tested in test_deploy_convert.py.)"""

import os

import numpy as np
import pytest
import tensorflow as tf

from deploy.calibration import calibrate, calibration_images
from deploy.errors import DeployError
from deploy.lowering.quantize import ActivationRange, folded_weights, int8_chains
from xnor_keras import models

from tests.conftest import FASHION, needs_fashion, read_gz_idx, trained_like

L = tf.keras.layers


def _names(chains):
    return [[layer.name for layer in chain.layers] for chain in chains]


def test_chains_are_the_stem_projections_and_head():
    chains, skipped = int8_chains(models.build("fashion_net", "xnor"))
    assert _names(chains) == [["conv1", "conv1_bn", "conv1_relu"], ["logits"]]
    assert skipped == {}
    chains, _ = int8_chains(models.build("resnet18", "xnor", input_shape=(64, 64, 3)))
    assert _names(chains) == [["conv1", "conv1_bn", "conv1_relu"],
                              ["res3a_proj", "res3a_proj_bn"], ["res4a_proj", "res4a_proj_bn"],
                              ["res5a_proj", "res5a_proj_bn"], ["logits"]]
    assert [c.relu for c in chains] == [True, False, False, False, False]


def test_a_shared_output_or_an_odd_activation_is_not_folded():
    x = inputs = L.Input((8, 8, 3))
    y = L.Conv2D(4, 3)(x)
    a, b = L.BatchNormalization()(y), L.ReLU()(y)  # two readers: nothing to fold
    t = L.Conv2D(4, 1, activation="tanh", name="tanh_conv")(L.Add()([a, b]))
    chains, skipped = int8_chains(tf.keras.Model(inputs, t))
    assert [len(c.layers) for c in chains] == [1]
    assert "tanh" in skipped["tanh_conv"]


def test_folded_weights_compute_conv_then_batch_norm(rng):
    x = inputs = L.Input((9, 9, 3))
    y = L.Conv2D(5, 3, strides=2, padding="same", use_bias=True)(x)
    y = L.BatchNormalization()(y)
    model = trained_like(tf.keras.Model(inputs, y), rng, negative_gamma=0.5)
    (chain,), _ = int8_chains(model)
    kernel, bias = folded_weights(chain)
    images = rng.standard_normal((4, 9, 9, 3)).astype(np.float32)
    folded = tf.nn.conv2d(images, kernel, strides=2, padding="SAME") + bias
    np.testing.assert_allclose(folded, model.predict(images, verbose=0), rtol=1e-4, atol=1e-5)


def test_ranges_are_min_and_max_over_the_images(rng):
    model = trained_like(models.build("fashion_net", "xnor"), rng)
    images = rng.uniform(-1.5, 3.0, (40, 28, 28, 1)).astype(np.float32)
    calibration = calibrate(model, images, progress=False, source="test")
    conv1 = calibration.ranges["conv1"]
    assert conv1.input == ActivationRange(float(images.min()), float(images.max()))
    assert conv1.output.lo == 0.0 and conv1.output.hi > 0  # after the folded ReLU
    stem = tf.keras.Model(model.inputs, model.get_layer("conv1_relu").output)
    assert conv1.output.hi == pytest.approx(float(np.max(stem.predict(images, verbose=0))),
                                            rel=1e-6)
    assert calibration.images == 40 and calibration.method == "min/max"
    assert ActivationRange(0.5, 2.0).widened() == ActivationRange(0.0, 2.0)


@needs_fashion
def test_calibration_images_come_from_the_train_split_or_a_folder(tmp_path):
    from PIL import Image

    from xnor_keras.data import preprocessing_spec

    spec = preprocessing_spec("fashion_mnist")
    train = read_gz_idx(os.path.join(FASHION, "train-images-idx3-ubyte.gz"))[:5]
    expected = (train.astype(np.float64) / 255.0 - spec["mean"][0]) / spec["std"][0]
    images, source = calibration_images("fashion_mnist", n=5, input_shape=(28, 28, 1),
                                        spec=spec)
    assert source == "5 fashion_mnist train images"
    np.testing.assert_allclose(images[..., 0], expected, atol=1e-5)
    for i, image in enumerate(train):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    images, source = calibration_images(tmp_path, n=3, input_shape=(28, 28, 1), spec=spec)
    assert images.shape == (3, 28, 28, 1) and source.startswith("3 images from")
    np.testing.assert_allclose(images[..., 0], expected[:3], atol=1e-5)


def test_missing_calibration_data_says_how_to_provide_it(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    cases = [
        (dict(source=None, spec=None), "needs calibration images: the model's data set is "
                                       "unknown; pass --calibration_data"),
        (dict(source="no_such_set", spec=None), "--calibration_data"),
        (dict(source=tmp_path, spec=None), "no preprocessing spec"),
    ]
    for kwargs, message in cases:
        with pytest.raises(DeployError, match=message):
            calibration_images(n=4, input_shape=(28, 28, 1), **kwargs)
    with pytest.raises(DeployError, match="Received: --calibration_n=0"):
        calibration_images("fashion_mnist", n=0, input_shape=(28, 28, 1), spec=None)
