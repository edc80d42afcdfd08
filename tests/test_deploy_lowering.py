"""deploy.lowering: the lowered graph computes the Keras model's function; folds are exact.

The NumPy algebra of the folds is tested in test_deploy_lowering_folding.py."""

import json

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from deploy import report
from deploy.lowering import LoweringError, Outcome, Role, lower
from deploy.lowering.graph import BinarySpec, Unlowerable, binary_spec
from xnor_keras.layers import BinaryWeightConv2D, BinaryWeightDense, XnorConv2D, XnorDense

from tests.conftest import trained_like  # noqa: F401  (re-exported: older imports use this path)

L = tf.keras.layers


def _check(model, rng, n=4, atol=2e-5):
    lowered = lower(model)
    for _ in range(n):
        x = rng.standard_normal((1, *model.input_shape[1:])).astype(np.float32)
        expected = model(x, training=False).numpy()
        np.testing.assert_allclose(lowered(x).reshape(expected.shape), expected,
                                   rtol=1e-5, atol=atol)
    return lowered


def _xnor_net(input_scaling, *, relu=False, alpha="mean_abs", use_bias=False):
    x = inputs = tf.keras.Input((10, 10, 3))
    x = L.Conv2D(16, 3, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    opts = dict(input_scaling=input_scaling, alpha=alpha, use_bias=use_bias)
    for i, pool in enumerate((True, False)):
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = XnorConv2D(32, 3, padding="same", name=f"xconv{i}", **opts)(x)
        if relu:
            x = L.ReLU()(x)
        if pool:
            x = L.MaxPool2D(2)(x)
    x = L.Flatten()(x)
    x = L.BatchNormalization()(x)
    x = XnorDense(24, name="xfc1", **opts)(x)
    x = L.BatchNormalization()(x)
    x = XnorDense(16, name="xfc2", **opts)(x)
    x = L.BatchNormalization()(x)
    return tf.keras.Model(inputs, L.Dense(5)(x))


@pytest.mark.parametrize("input_scaling", [True, False])
@pytest.mark.parametrize("relu", [False, True])
def test_xnor_lowering_is_exact(rng, input_scaling, relu):
    model = trained_like(_xnor_net(input_scaling, relu=relu), rng)
    lowered = _check(model, rng)
    roles = {p.name: p.role for p in lowered.plans}
    assert [n for n, r in roles.items() if r == "binary"] == ["xconv0", "xconv1", "xfc1", "xfc2"]
    lowering = {p.name: p.lowering for p in lowered.plans}
    assert lowering["xfc1"] == "dense → 5×5 binary conv"  # reads the unflattened 5×5×32
    assert lowering["xfc2"] == "dense → 1×1 binary conv"
    notes = " ".join(n for p in lowered.plans for n in p.notes)
    assert ("folded" in notes) == (not input_scaling)


def test_fold_with_negative_gamma_and_learned_alpha_and_bias(rng):
    model = trained_like(_xnor_net(False, relu=True, alpha="learned", use_bias=True), rng,
                         negative_gamma=0.3)
    for layer in model.layers:
        if getattr(layer, "alpha", None) == "learned":
            layer.alpha_scale.assign(rng.uniform(-1.0, 2.0, layer.alpha_scale.shape[0]))
    lowered = _check(model, rng)
    notes = {p.name: " ".join(p.notes) for p in lowered.plans}
    # γ < 0 in front of a max-pool: no fold there, but the result is still exact.
    assert "cannot move past the sign" in notes["xconv1"]


def test_bwn_and_bnn_and_larq_layers(rng):
    x = inputs = tf.keras.Input((8, 8, 3))
    x = BinaryWeightConv2D(8, 3, padding="same", use_bias=True)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = lq.layers.QuantConv2D(16, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip")(x)
    x = L.BatchNormalization()(x)
    x = lq.quantizers.SteSign()(x)
    x = L.MaxPool2D(2)(x)
    x = XnorConv2D(16, 3, input_scaling=False, alpha="none", padding="valid")(x)
    x = L.BatchNormalization()(x)
    x = L.Flatten()(x)
    x = BinaryWeightDense(6)(x)
    model = trained_like(tf.keras.Model(inputs, x), rng)
    lowered = _check(model, rng)
    roles = [p.role for p in lowered.plans if p.role.binary]
    assert roles == [Role.BINARY_WEIGHT, Role.BINARY, Role.BINARY, Role.BINARY_WEIGHT]
    assert roles == ["binary-weight", "binary", "binary", "binary-weight"]  # still strings


def test_roles_are_the_strings_the_report_reads():
    # deploy.report reads the roles back from JSON metadata as plain strings.
    assert set(Role) <= set(report.KINDS) and set(Outcome) <= set(report.KINDS)
    assert json.dumps([Role.BINARY_WEIGHT, Outcome.FLOAT]) == '["binary-weight", "float"]'
    assert f"{Role.FALLBACK}" == str(Role.FALLBACK) == "fallback"
    assert [role for role in Role if role.binary] == [Role.BINARY, Role.BINARY_WEIGHT]


def test_non_binary_layers_fail_with_the_layer_name():
    x = inputs = tf.keras.Input((8, 8, 3))
    x = XnorConv2D(8, 3, name="kbit", alpha="learned", weight_bits=2, input_bits=2)(x)
    model = tf.keras.Model(inputs, L.GlobalAveragePooling2D()(x))
    with pytest.raises(LoweringError, match="'kbit'.*k-bit"):
        lower(model)


def test_binary_spec_returns_one_type_per_answer():
    def built(layer):
        layer.build((None, 8, 8, 3))
        return layer

    spec = binary_spec(built(XnorConv2D(4, 3)))
    assert isinstance(spec, BinarySpec) and (spec.kind, spec.op) == ("xnor", "conv")
    assert binary_spec(built(BinaryWeightConv2D(4, 3))).kind == "bwn"
    refused = binary_spec(built(XnorConv2D(4, 3, alpha="learned", weight_bits=2)))
    assert refused == Unlowerable("weight_bits=2: k-bit quantizers have no binary op in "
                                  "larq-compute-engine")
    assert binary_spec(built(L.Conv2D(4, 3))) is None


def test_float_fallback_is_explicit(rng):
    x = inputs = tf.keras.Input((8, 8, 3))
    x = XnorConv2D(8, 3, name="kbit", alpha="learned", weight_bits=2)(x)
    model = tf.keras.Model(inputs, L.GlobalAveragePooling2D()(x))
    lowered = lower(model, allow_float_fallback=True)
    (plan,) = [p for p in lowered.plans if p.name == "kbit"]
    assert plan.role == "fallback" and "k-bit" in plan.fallback_reason
    x = rng.standard_normal((1, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(lowered(x), model(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size,kernel,stride,dilation", [(7, 3, 1, 1), (8, 3, 2, 1),
                                                         (9, 2, 2, 1), (10, 3, 1, 2)])
def test_same_padding_with_a_pad_value(rng, size, kernel, stride, dilation):
    # pad(x, c) = pad(x - c, 0) + c, so conv(pad(x, c), VALID) = conv(x - c, SAME) + c·Σw.
    from deploy.lowering.emit import _same_padded

    c = 1.0
    x = tf.constant(rng.normal(0, 1, (1, size, size + 1, 2)), tf.float32)
    w = tf.constant(rng.normal(0, 1, (kernel, kernel, 2, 3)), tf.float32)
    opts = dict(strides=[stride, stride], dilations=[dilation, dilation])
    padded, padding = _same_padded(x, padding="same", pad_values=c, kernel_size=(kernel, kernel),
                                   strides=(stride, stride), dilation=(dilation, dilation))
    assert padding == "VALID"
    expected = tf.nn.conv2d(x - c, w, padding="SAME", **opts) + c * tf.reduce_sum(w, [0, 1, 2])
    np.testing.assert_allclose(tf.nn.conv2d(padded, w, padding=padding, **opts).numpy(),
                               expected.numpy(), rtol=1e-5, atol=1e-5)
    assert _same_padded(x, padding="same", pad_values=0.0, kernel_size=(kernel, kernel),
                        strides=(stride, stride), dilation=(dilation, dilation))[1] == "SAME"


def test_relu_of_a_binary_conv_feeding_a_binary_conv(rng):
    # sign(relu(α·z)) = +1: a chain with a ReLU and no affine op (this once raised
    # StopIteration while tracing).
    x = inputs = tf.keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3)(x)
    x = XnorConv2D(8, 3, activation="relu", input_scaling=False, alpha="none", padding="same",
                   use_bias=False, name="xrelu")(x)
    x = XnorConv2D(8, 3, input_scaling=False, alpha="none", name="xnext")(x)
    lowered = _check(tf.keras.Model(inputs, x), rng)
    notes = {p.name: " ".join(p.notes) for p in lowered.plans}
    assert "folded into 'xrelu'" in notes["xnext"]
