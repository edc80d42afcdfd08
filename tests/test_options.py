"""The one vocabulary of binary options, and larq's flip_ratio metric on our quantizers."""

import dataclasses

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from xnor_keras import layers as xl
from xnor_keras import models
from xnor_keras.options import BinaryOptions, Scope
from xnor_keras.training import TrainConfig


@pytest.mark.parametrize("kwargs, message", [
    ({"alpha": "l1"}, "alpha must be one of .* Received: alpha='l1'"),
    ({"block_order": "abcd"}, "Received: block_order='abcd'"),
    ({"input_scaling": 1}, "input_scaling must be True or False. Received: input_scaling=1"),
    ({"weight_bits": 0},
     r"^weight_bits must be None or a positive integer\. Received: weight_bits=0$"),
    ({"input_bits": True}, "Received: input_bits=True"),
    ({"weight_gradient": "exact"}, "Received: weight_gradient='exact'"),
    ({"binary_gradient": "global"},
     r"^binary_gradient must be True, False or one of \('position', 'example', 'channel', "
     r"'tensor'\)\. Received: binary_gradient='global'$"),
    ({"binary_gradient": 1}, "Received: binary_gradient=1$"),
])
def test_invalid_values_are_refused_with_the_received_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BinaryOptions(**kwargs)


def test_options_are_frozen_and_none_means_not_given():
    options = BinaryOptions(alpha="learned", input_scaling=False)
    assert options.given() == {"alpha": "learned", "input_scaling": False}
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.alpha = "none"


def test_every_layer_option_is_a_keyword_only_argument_of_the_layers():
    import inspect

    weight = set(BinaryOptions.field_names(Scope.WEIGHT))
    inputs = set(BinaryOptions.field_names(Scope.INPUT))
    for cls, expected in [(xl.BinaryWeightConv2D, weight), (xl.BinaryWeightDense, weight),
                          (xl.XnorConv2D, weight | inputs), (xl.XnorDense, weight | inputs)]:
        params = inspect.signature(cls.__init__).parameters.values()
        assert {p.name for p in params if p.kind == p.KEYWORD_ONLY} == expected, cls


def test_layer_config_keys_are_the_options_of_its_scope():
    conv = xl.XnorConv2D(4, 3, alpha="learned", input_scaling=False)
    config = conv.get_config()
    assert {k: config[k] for k in BinaryOptions.field_names(Scope.WEIGHT, Scope.INPUT)} == {
        "alpha": "learned", "weight_gradient": None, "binary_gradient": False,
        "binary_gradient_for": "both",
        "weight_bits": None, "input_scaling": False, "input_bits": None}
    bwn = xl.BinaryWeightDense(4).get_config()
    assert "input_scaling" not in bwn and "input_bits" not in bwn


@pytest.mark.parametrize("layer, float_class", [
    (xl.XnorConv2D(4, 3, padding="same", input_scaling=False), tf.keras.layers.Conv2D),
    (xl.BinaryWeightDense(5, alpha="learned"), tf.keras.layers.Dense),
    (lq.layers.QuantConv2D(4, 3, input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                           pad_values=1.0), tf.keras.layers.Conv2D),
])
def test_float_twin_config_is_the_float_layers_config(layer, float_class):
    twin = float_class.from_config(xl.float_twin_config(layer.get_config()))
    layer.build((None, 6, 6, 3) if float_class is tf.keras.layers.Conv2D else (None, 7))
    twin.build((None, 6, 6, 3) if float_class is tf.keras.layers.Conv2D else (None, 7))
    assert [w.shape for w in twin.weights] == [w.shape for w in layer.weights
                                               if "alpha_scale" not in w.name]
    assert twin.get_config() == {**twin.get_config(), **xl.float_twin_config(layer.get_config())}


def test_bwn_layers_refuse_input_options():
    with pytest.raises(TypeError, match="input_scaling"):
        xl.BinaryWeightConv2D(4, 3, input_scaling=True)


def test_flags_are_generated_from_the_fields_and_feed_train_config():
    flag_values = flags.FlagValues()
    BinaryOptions.define_flags(flag_values)
    flag_values(["prog", "--alpha=learned", "--noinput_scaling", "--weight_bits=2"])
    assert set(BinaryOptions.field_names()) <= set(flag_values)
    config = TrainConfig(**{n: flag_values[n].value for n in BinaryOptions.field_names()})
    assert config.model_options() == {"alpha": "learned", "input_scaling": False,
                                      "weight_bits": 2}
    with pytest.raises(flags.IllegalFlagValueError):
        flag_values["block_order"].parse("abcd")


@pytest.mark.parametrize("argv, expected", [
    (["--binary_gradient=position"], "position"),
    (["--binary_gradient=tensor"], "tensor"),
    (["--binary_gradient=true"], True),
    (["--binary_gradient=False"], False),
    (["--binary_gradient"], True),
    (["--nobinary_gradient"], False),
    ([], None),
])
def test_binary_gradient_flag_takes_a_bool_or_a_mode(argv, expected):
    flag_values = flags.FlagValues()
    BinaryOptions.define_flags(flag_values)
    flag_values(["prog", *argv])
    value = flag_values.binary_gradient
    assert value == expected and type(value) is type(expected)
    config = TrainConfig(binary_gradient=value)
    assert config.model_options() == ({} if expected is None else {"binary_gradient": expected})


def test_binary_gradient_flag_refuses_other_words():
    flag_values = flags.FlagValues()
    BinaryOptions.define_flags(flag_values)
    with pytest.raises(flags.IllegalFlagValueError,
                       match="must be true, false or one of position, example, channel, tensor. "
                             "Received: 'global'"):
        flag_values(["prog", "--binary_gradient=global"])


def test_binary_gradient_mode_resolves_true_to_the_default():
    from xnor_keras.options import binary_gradient_mode

    assert [binary_gradient_mode(v) for v in (True, False, None, "tensor")] == [
        "position", None, None, "tensor"]
    with pytest.raises(ValueError, match="Received: binary_gradient='max'"):
        binary_gradient_mode("max")


def test_train_config_validates_options_at_construction():
    with pytest.raises(ValueError, match="Received: alpha='mean'"):
        TrainConfig(alpha="mean")


def test_policy_applies_options_by_scope():
    layer = models.Policy("xnor", alpha="learned", input_scaling=False).conv(8, 3)
    assert layer.alpha == "learned" and layer.input_scaling is False
    with pytest.raises(ValueError, match="block_order does not apply to precision='bwn'"):
        models.Policy("bwn", block_order="cbap")


def test_architecture_table_is_named():
    arch = models.ARCHITECTURES["fashion_net"]
    assert (arch.input_shape, arch.num_classes, arch.dataset) == ((28, 28, 1), 10,
                                                                   "fashion_mnist")


def _flip_ratio_run(flip_signs):
    """One QuantConv2D with kernel_quantizer="xnor_weight" under metrics_scope(flip_ratio)."""
    tf.keras.utils.set_random_seed(0)
    with lq.context.metrics_scope(["flip_ratio"]):
        model = tf.keras.Sequential([
            tf.keras.Input((6, 6, 2)),
            lq.layers.QuantConv2D(8, 3, kernel_quantizer="xnor_weight", use_bias=False),
            tf.keras.layers.Flatten(),
        ])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.0), loss="mse")
    layer = model.layers[0]
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 2)).astype(np.float32)
    y = np.zeros((4, 4 * 4 * 8), np.float32)
    model.train_on_batch(x, y, reset_metrics=False)  # first step: stores the signs
    if flip_signs is not None:
        w = layer.kernel.numpy()
        w.reshape(-1)[:flip_signs] *= -1.0
        layer.kernel.assign(w)
    logs = model.train_on_batch(x, y, reset_metrics=False, return_dict=True)
    (value,) = [v for k, v in logs.items() if k.startswith("flip_ratio")]
    return value, layer.kernel.shape.num_elements()


def test_flip_ratio_metric_counts_sign_changes_of_xnor_weight():
    unchanged, _ = _flip_ratio_run(None)
    assert unchanged == pytest.approx(0.0)  # lr 0: no weight moves, no sign flips
    value, n = _flip_ratio_run(36)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(36 / n)  # exactly the flipped fraction of the signs
