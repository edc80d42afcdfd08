import os

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import needs_fashion
from xnor_keras import data
from xnor_keras import layers as xl
from xnor_keras import models
from xnor_keras.models import Policy

DATA = os.path.join(os.path.dirname(__file__), "data")
BINARY_LAYERS = (xl.BinaryWeightConv2D, xl.BinaryWeightDense, xl.XnorConv2D, xl.XnorDense)


def _binary_layers(model):
    return [layer for layer in model.layers if isinstance(layer, BINARY_LAYERS)]


@pytest.mark.parametrize("name", list(models.ARCHITECTURES))
@pytest.mark.parametrize("precision", models.PRECISIONS)
def test_every_model_builds_in_every_precision(name, precision):
    model = models.build(name, precision)
    arch = models.ARCHITECTURES[name]
    shape, classes = arch.input_shape, arch.num_classes
    assert model.input_shape == (None, *shape) and model.output_shape == (None, classes)
    binary = _binary_layers(model)
    if precision == "fp":
        assert not binary
        return
    assert binary
    expected = xl.XnorConv2D if precision in ("xnor", "bnn") else xl.BinaryWeightConv2D
    assert all(isinstance(layer, (expected, xl.XnorDense, xl.BinaryWeightDense)) for layer in binary)
    # First and last layers stay full precision (§4.1).
    weighted = [layer for layer in model.layers if layer.weights and not
                isinstance(layer, tf.keras.layers.BatchNormalization)]
    assert not isinstance(weighted[0], BINARY_LAYERS)
    assert not isinstance(weighted[-1], BINARY_LAYERS)
    for layer in binary:
        if precision in ("bc", "bnn"):
            assert layer.alpha == "none"
        else:
            assert layer.alpha == "mean_abs"
        if precision == "bnn":
            assert layer.input_scaling is False


@pytest.mark.parametrize("name", list(models.ARCHITECTURES))
@pytest.mark.parametrize("precision, options", [
    ("xnor", {}), ("xnor", {"block_order": "cbap"}), ("bnn", {}),
])
def test_every_binary_input_layer_sees_both_signs(rng, name, precision, options):
    """sign() of a layer's input must not be constant, or the layer learns nothing.

    A ReLU right before a binarizing layer would do that: sign(ReLU(v)) = +1.
    """
    model = models.build(name, precision, **options)
    layers = [l for l in model.layers if isinstance(l, (xl.XnorConv2D, xl.XnorDense))]
    probe = tf.keras.Model(model.inputs, [l.input for l in layers])
    x = rng.normal(size=(2, *model.input_shape[1:])).astype(np.float32)
    for layer, seen in zip(layers, probe(x, training=True)):
        seen = seen.numpy()
        assert (seen < 0).any() and (seen >= 0).any(), layer.name


@pytest.mark.parametrize("name, published, tolerance", [
    ("alexnet", 61.0e6, 0.01),   # "This network has 61M parameters" (§4.2)
    ("resnet18", 11.7e6, 0.01),  # ResNet-18 (He et al.): 11.7 M
])
def test_parameter_counts_match_the_published_figures(name, published, tolerance):
    for precision in ("fp", "xnor"):
        count = models.build(name, precision).count_params()
        assert abs(count - published) / published < tolerance, (precision, count)


def test_googlenet_variant_has_21_convolutions_alternating_1x1_3x3():
    model = models.build("googlenet", "xnor")
    convs = [l for l in model.layers if isinstance(l, tf.keras.layers.Conv2D)]
    assert len(convs) == 21
    middle = [l.kernel_size[0] for l in convs[1:-1]]
    assert set(middle) == {1, 3}
    assert all(a != b for a, b in zip(middle[2:], middle[3:]))  # after conv2/3: alternating


def test_summary_shows_the_binary_float_split(capsys):
    lq.models.summary(models.build("resnet18", "xnor"))
    out = capsys.readouterr().out
    assert "Ratio of MACs that are binarized" in out
    ratio = float(out.split("Ratio of MACs that are binarized")[1].split()[0])
    assert ratio > 0.9


def test_summary_matches_the_stored_snapshot(capsys):
    """larq's summary of fashion_net/xnor equals tests/data/summary_fashion_net_xnor.txt."""
    tf.keras.backend.clear_session()  # layer names (input_1) start from 1
    lq.models.summary(models.build("fashion_net", "xnor"))
    out = capsys.readouterr().out
    with open(os.path.join(DATA, "summary_fashion_net_xnor.txt"), encoding="utf-8") as f:
        assert out == f.read()
    # The snapshot's conv2 row, from the architecture: a 3x3 kernel, 32 -> 64 channels
    # at 14x14 outputs, binary: 3·3·32·64 one-bit weights, 14·14 times as many MACs.
    row = next(line for line in out.splitlines() if line.startswith("| conv2 ")).split()
    assert row[-6:-2] == [str(3 * 3 * 32 * 64), "0", f"{3 * 3 * 32 * 64 / 8 / 1024:.2f}",
                          str(14 * 14 * 3 * 3 * 32 * 64)]


def test_ablation_switches_reach_the_layers():
    model = models.build("fashion_net", "xnor", alpha="learned", input_scaling=False,
                         binary_gradient=True, weight_bits=None, input_bits=2)
    for layer in _binary_layers(model):
        assert layer.alpha == "learned" and layer.input_scaling is False
        assert layer.binary_gradient is True and layer.input_bits == 2
    cbap = models.build("fashion_net", "xnor", block_order="cbap")
    conv2 = cbap.get_layer("conv2")
    assert cbap.layers[cbap.layers.index(conv2) + 1].name == "conv2_bn"


@pytest.mark.parametrize("precision, kwargs, message", [
    ("fp", {"alpha": "learned"}, "alpha does not apply to precision='fp'"),
    ("bwn", {"input_scaling": False}, "input_scaling does not apply to precision='bwn'"),
    ("xnor", {"block_order": "abcd"}, "Received: block_order='abcd'"),
    ("int8", {}, "Received: precision='int8'"),
])
def test_policy_validation(precision, kwargs, message):
    with pytest.raises(ValueError, match=message):
        Policy(precision, **kwargs)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="Received: name='vgg'"):
        models.build("vgg")


@needs_fashion
def test_small_models_learn_real_images_with_fit():
    """Every precision learns 512 real Fashion-MNIST images well above chance (10%)."""
    train = data.load("fashion_mnist", "train", batch_size=32, limit=512, augment=False,
                      shuffle=False)
    test = data.load("fashion_mnist", "test", batch_size=256, limit=512)
    for precision in models.PRECISIONS:
        tf.keras.utils.set_random_seed(0)
        model = models.build("fashion_net", precision)
        model.compile(tf.keras.optimizers.Adam(2e-3),
                      tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        model.fit(train, epochs=2, verbose=0)
        accuracy = model.evaluate(test, verbose=0, return_dict=True)["accuracy"]
        assert accuracy > 0.4, (precision, accuracy)
