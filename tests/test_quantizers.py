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


def test_binary_gradient_forward_identity_backward_max_sign(rng):
    x = rng.normal(size=(3, 5)).astype(np.float32)
    g = rng.normal(size=x.shape).astype(np.float32)
    g[1, 2] = 0.0
    out, grad = _grad(xq.binary_gradient, x, g)
    np.testing.assert_array_equal(out, x)
    np.testing.assert_allclose(grad, np.abs(g).max() * np.sign(g))


@pytest.mark.parametrize(
    "cls, alias, kwargs, precision",
    [
        (xq.XnorWeight, "xnor_weight", {"gradient": "ste"}, 1),
        (xq.BinaryInput, "binary_input", {}, 1),
        (xq.KBit, "k_bit", {"k": 3}, 3),
        (xq.BinaryGradient, "binary_gradient", {}, None),
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
