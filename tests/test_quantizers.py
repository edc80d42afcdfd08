import re

import numpy as np
import pytest
import larq as lq
import tensorflow as tf

from xnor_keras import quantizers as xq
from tests import reference as ref


def _grad(fn, x, upstream):
    x = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return y.numpy(), tape.gradient(y, x, output_gradients=tf.constant(upstream, tf.float32)).numpy()


@pytest.mark.parametrize("shape", [(3, 3, 4, 5), (7, 2), (1, 1, 3, 1)])
def test_xnor_weight_forward_is_alpha_sign(rng, shape):
    w = rng.normal(scale=0.8, size=shape).astype(np.float32)
    w.flat[0] = 0.0  # sign(0) must be +1
    out = xq.xnor_weight(tf.constant(w)).numpy()
    np.testing.assert_allclose(out, ref.alpha(w) * ref.sign(w), rtol=1e-6)
    # Every value is exactly ±α_c, the pattern larq-compute-engine fuses.
    per_filter = np.abs(out).reshape(-1, shape[-1])
    assert np.all(per_filter == per_filter[0])


def test_xnor_weight_paper_gradient(rng):
    w = rng.normal(scale=1.2, size=(3, 3, 4, 6)).astype(np.float32)  # some |W| > 1
    g = rng.normal(size=w.shape).astype(np.float32)
    _, grad = _grad(xq.xnor_weight, w, g)
    n = 3 * 3 * 4
    expected = g * (1.0 / n + ref.alpha(w) * (np.abs(w) <= 1))
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)
    assert np.all(grad[np.abs(w) > 1] != 0)  # the 1/n term: no starved weights


def test_xnor_weight_ste_gradient(rng):
    w = rng.normal(scale=1.2, size=(5, 4)).astype(np.float32)
    g = rng.normal(size=w.shape).astype(np.float32)
    _, grad = _grad(lambda t: xq.xnor_weight(t, gradient="ste"), w, g)
    np.testing.assert_allclose(grad, g * (np.abs(w) <= 1))


def test_binary_input_forward_and_clipped_ste(rng):
    x = rng.normal(scale=1.5, size=(4, 6, 6, 3)).astype(np.float32)
    x[0, 0, 0, 0] = 0.0
    g = rng.normal(size=x.shape).astype(np.float32)
    out, grad = _grad(xq.binary_input, x, g)
    np.testing.assert_array_equal(out, ref.sign(x))
    np.testing.assert_array_equal(grad, g * (np.abs(x) <= 1))


@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_kbit_matches_q_k(rng, k):
    x = rng.uniform(-1.5, 1.5, size=(1000,)).astype(np.float32)
    g = rng.normal(size=x.shape).astype(np.float32)
    out, grad = _grad(lambda t: xq.kbit(t, k=k), x, g)
    np.testing.assert_allclose(out, ref.q_k(x, k), atol=1e-6)
    assert len(np.unique(np.round(out, 5))) <= 2**k
    np.testing.assert_array_equal(grad, g * (np.abs(x) <= 1))


def test_kbit_k1_is_sign_except_at_zero():
    x = tf.constant([-0.3, 0.0, 0.2, 5.0])
    np.testing.assert_array_equal(xq.kbit(x, k=1).numpy(), [-1.0, -1.0, 1.0, 1.0])


@pytest.mark.parametrize("mode", ["position", "example", "channel", "tensor"])
@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (4, 7)], ids=["conv", "dense"])
def test_binary_gradient_matches_the_papers_formula_per_mode(rng, mode, shape):
    x = rng.normal(size=shape).astype(np.float32)
    g = rng.normal(size=shape).astype(np.float32)
    g.reshape(-1)[::5] = 0.0  # scattered zeros
    g[1] = 0.0  # a whole example without gradient (no 0/0, stays zero)
    out, grad = _grad(lambda t: xq.binary_gradient(t, mode=mode), x, g)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_allclose(grad, ref.binary_gradient(g, mode), rtol=1e-6)
    assert np.all(grad[g == 0] == 0)
    assert np.all(np.isfinite(grad))


def test_binary_gradient_modes_differ_and_dense_position_is_per_example(rng):
    g = rng.normal(size=(3, 4, 4, 5)).astype(np.float32)
    x = np.zeros_like(g)
    grads = {m: _grad(lambda t: xq.binary_gradient(t, mode=m), x, g)[1] for m in xq.BINARY_GRADIENTS}
    # one distinct scale per sub-tensor: 3·4·4 positions, 3 examples, 5 channels, 1 tensor
    counts = {m: len(np.unique(np.abs(v))) for m, v in grads.items()}
    assert counts == {"position": 48, "example": 3, "channel": 5, "tensor": 1}
    dense = rng.normal(size=(6, 9)).astype(np.float32)
    per_example = np.abs(dense).max(axis=1, keepdims=True) * np.sign(dense)
    for mode in ("position", "example"):
        _, grad = _grad(lambda t: xq.binary_gradient(t, mode=mode), np.zeros_like(dense), dense)
        np.testing.assert_allclose(grad, per_example, rtol=1e-6)


def test_binary_gradient_default_mode_is_position(rng):
    g = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    _, grad = _grad(xq.binary_gradient, np.zeros_like(g), g)
    np.testing.assert_allclose(grad, ref.binary_gradient(g, "position"), rtol=1e-6)
    assert xq.BinaryGradient().mode == "position"


@pytest.mark.parametrize("mode", ["global", True, None, "Position"])
def test_binary_gradient_validates_mode(mode):
    message = rf"^mode must be one of .*\. Received: mode={re.escape(repr(mode))}$"
    with pytest.raises(ValueError, match=message):
        xq.BinaryGradient(mode=mode)
    with pytest.raises(ValueError, match=message):
        xq.binary_gradient(tf.ones((2, 2)), mode=mode)


@pytest.mark.parametrize(
    "cls, alias, kwargs, precision",
    [
        (xq.XnorWeight, "xnor_weight", {"gradient": "ste"}, 1),
        (xq.BinaryInput, "binary_input", {}, 1),
        (xq.KBit, "k_bit", {"k": 3}, 3),
        (xq.BinaryGradient, "binary_gradient", {"mode": "channel"}, None),
    ],
)
def test_quantizer_classes_are_registered_and_serializable(cls, alias, kwargs, precision):
    assert isinstance(lq.quantizers.get(alias), cls)
    assert isinstance(lq.quantizers.get(cls.__name__), cls)
    q = cls(**kwargs)
    assert q.precision == precision
    clone = lq.quantizers.get(lq.quantizers.serialize(q))
    assert type(clone) is cls and clone.get_config() == q.get_config()


def test_quantizer_classes_match_functions(rng):
    x = tf.constant(rng.normal(size=(4, 3)).astype(np.float32))
    np.testing.assert_array_equal(xq.XnorWeight()(x), xq.xnor_weight(x))
    np.testing.assert_array_equal(xq.BinaryInput()(x), xq.binary_input(x))
    np.testing.assert_array_equal(xq.KBit(k=2)(x), xq.kbit(x, k=2))
    g = rng.normal(size=(4, 3)).astype(np.float32)
    for mode in xq.BINARY_GRADIENTS:
        _, grad = _grad(xq.BinaryGradient(mode=mode), x.numpy(), g)
        np.testing.assert_allclose(grad, ref.binary_gradient(g, mode), rtol=1e-6)


def test_kernel_quantizer_string_resolves_in_larq_layer():
    layer = lq.layers.QuantDense(3, kernel_quantizer="xnor_weight")
    layer(tf.ones((1, 4)))
    assert isinstance(layer.kernel_quantizer, xq.XnorWeight)


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "2"])
def test_kbit_validates_k(k):
    with pytest.raises(ValueError, match=rf"^k must be a positive integer\. Received: k={re.escape(repr(k))}$"):
        xq.KBit(k=k)
    with pytest.raises(ValueError, match="Received: k="):
        xq.kbit(tf.ones(2), k=k)


def test_xnor_weight_validates_gradient():
    with pytest.raises(ValueError, match="Received: gradient='exact'"):
        xq.XnorWeight(gradient="exact")


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        xq.KBit(2)
    with pytest.raises(TypeError):
        xq.XnorWeight("ste")
    with pytest.raises(TypeError):
        xq.binary_gradient(tf.ones((2, 2)), "tensor")
