"""deploy.lowering.folding: the NumPy fold algebra against direct evaluation of the math."""

import numpy as np
import pytest
import tensorflow as tf

from deploy.lowering.folding import (
    Affine, FoldError, MaxPool, Relu, batch_norm_affine, canonical_signs, fold_sign_chain,
    integer_threshold, per_channel)


def _sign(y):
    return np.where(y >= 0, 1.0, -1.0)  # sign(0) = +1, as larq.math.sign


def _chain_reference(chain, y):
    """sign(chain(y)) evaluated op by op on y [positions, channels] (max-pool: axis 0)."""
    for op in chain:
        if isinstance(op, Affine):
            y = op.m * y + op.b
        elif isinstance(op, Relu):
            y = np.maximum(y, 0.0)
        else:
            y = y.max(axis=0, keepdims=True)
    return _sign(y)


@pytest.mark.parametrize("shape", ["A", "AR", "RA", "ARA", "ARPA", "RPA", "PA", "APRA", "R", "RP"])
def test_fold_sign_chain_against_brute_force(rng, shape):
    channels = 64
    alpha = rng.uniform(0.05, 1.0, channels)
    refused = 0
    for trial in range(20):
        chain = []
        for kind in shape:
            if kind == "A":
                m = rng.uniform(0.2, 2.0, channels) * np.where(rng.random(channels) < 0.2, -1, 1)
                m[rng.random(channels) < 0.05] = 0.0
                chain.append(Affine(m, rng.normal(0, 2.0, channels)))
            elif kind == "R":
                chain.append(Relu())
            else:
                chain.append(MaxPool("pool"))
        z = rng.integers(-30, 31, size=(9, channels)).astype(np.float64)
        z[0, :8] = 0.0  # exact ties of the accumulator
        y = alpha * z
        expected = _chain_reference(chain, y)
        try:
            fold = fold_sign_chain(chain, channels=channels)
        except FoldError as error:
            assert "P" in shape and "decreasing" in str(error)
            refused += 1
            continue
        assert fold.pools == (("pool",) if "P" in shape else ())
        b = integer_threshold(fold.m, fold.b, alpha)
        t = fold.m * y + b
        if fold.pools:
            t = t.max(axis=0, keepdims=True)
        np.testing.assert_array_equal(_sign(t), expected)
        assert np.all(np.abs(t) >= 0.5 * np.abs(fold.m) * alpha - 1e-6)  # no near-ties
    if shape in ("A", "AR", "RA", "ARA", "R", "RP"):
        assert refused == 0  # no pool after a possibly decreasing op: always foldable


def test_relu_alone_is_the_constant_plus_one():
    fold = fold_sign_chain([Relu()], channels=3)  # sign(max(y, 0)) = +1 for every y
    np.testing.assert_array_equal(fold.m, np.zeros(3))
    np.testing.assert_array_equal(fold.b, np.ones(3))


def test_fold_refuses_relu_affine_relu_and_bad_arguments():
    one = np.ones(2)
    with pytest.raises(FoldError, match="two ReLUs"):
        fold_sign_chain([Relu(), Affine(one, one), Relu()], channels=2)
    with pytest.raises(ValueError, match="Received: channels=0"):
        fold_sign_chain([], channels=0)
    with pytest.raises(TypeError, match="Received"):
        fold_sign_chain([("relu",)], channels=2)


def test_decreasing_affine_before_a_pool_is_refused_only_where_it_matters():
    # Channel 0: m < 0 before the pool (max does not commute); channel 1: m = 0 after it.
    chain = [Affine(np.array([-1.0, 1.0]), np.zeros(2)), MaxPool(),
             Affine(np.array([1.0, 0.0]), np.array([0.0, 2.0]))]
    with pytest.raises(FoldError, match="1 channel"):
        fold_sign_chain(chain, channels=2)


def test_integer_threshold_preserves_the_sign_at_every_integer(rng):
    channels = 200
    # Dyadic m and α, so that m·α·z + b is exact in float64 and ties are exact zeros.
    m = rng.integers(-16, 17, channels) / 8.0
    m[:20] = 0.0
    alpha = rng.integers(1, 33, channels) / 16.0
    # Thresholds exactly on integers (ties) for half the channels.
    b = np.where(rng.random(channels) < 0.5, -m * alpha * rng.integers(-5, 6, channels),
                 rng.normal(0, 3.0, channels))
    z = np.arange(-40, 41, dtype=np.float64)[:, None]
    moved = integer_threshold(m, b, alpha)
    assert moved.dtype == np.float32
    np.testing.assert_array_equal(_sign(m * alpha * z + moved), _sign(m * alpha * z + b))
    gap = np.abs(m * alpha * z + moved)
    assert np.all(gap >= 0.5 * np.abs(m) * alpha * (1 - 1e-6))
    np.testing.assert_array_equal(moved[:20], _sign(b[:20]))  # m = 0: exactly ±1


def test_integer_threshold_keeps_sign_zero_positive():
    m = np.array([1.0, -1.0, 0.0, 0.0])
    b = np.array([0.0, 0.0, 0.0, -0.5])
    t = m * 0.0 + integer_threshold(m, b, np.ones(4))  # z = 0: an exact tie for the first two
    np.testing.assert_array_equal(np.sign(t), [1.0, 1.0, 1.0, -1.0])


@pytest.mark.parametrize("scale,center", [(True, True), (False, True), (True, False)])
def test_batch_norm_affine_matches_keras_inference(rng, scale, center):
    c = 7
    layer = tf.keras.layers.BatchNormalization(scale=scale, center=center, epsilon=1e-3)
    layer.build((None, 3, c))
    gamma, beta = rng.uniform(-1.5, 1.5, c), rng.normal(0, 1, c)
    mean, variance = rng.normal(0, 1, c), rng.uniform(0.1, 3.0, c)
    layer.set_weights([w for w, keep in ((gamma, scale), (beta, center), (mean, True),
                                         (variance, True)) if keep])
    x = rng.normal(0, 2, (4, 3, c)).astype(np.float32)
    expected = layer(x, training=False).numpy()
    affine = batch_norm_affine(mean=mean, variance=variance, epsilon=1e-3,
                               gamma=gamma if scale else None, beta=beta if center else None)
    assert affine.m.dtype == np.float64 and affine.m.shape == (c,)
    np.testing.assert_allclose(affine.m * x + affine.b, expected, rtol=1e-5, atol=1e-5)


def test_per_channel():
    v = np.array([1.0, -2.0, 3.0])
    np.testing.assert_array_equal(per_channel(np.tile(v, (2, 2, 1)), 3), v)
    varying = np.tile(v, (2, 2, 1))
    varying[1, 0, 2] = 4.0
    assert per_channel(varying, 3) is None
    assert per_channel(np.ones(5), 3) is None  # not a whole number of channels


def test_canonical_signs(rng):
    signs = np.where(rng.random((6, 3, 3, 4)) < 0.5, -1.0, 1.0)
    canonical = canonical_signs(signs)
    flat, flat_in = canonical.reshape(6, -1), signs.reshape(6, -1)
    assert np.all(flat[:, 0] == 1.0)
    for row, original in zip(flat, flat_in):  # each channel is the filter or its negation
        assert np.array_equal(row, original) or np.array_equal(row, -original)
    np.testing.assert_array_equal(canonical_signs(-signs), canonical)
