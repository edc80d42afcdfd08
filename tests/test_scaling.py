import numpy as np
import pytest
import tensorflow as tf

from xnor_keras import scaling
from tests import reference as ref


def test_mean_abs_alpha_eq6(rng):
    w = rng.normal(size=(3, 3, 8, 5)).astype(np.float32)
    np.testing.assert_allclose(scaling.mean_abs_alpha(w).numpy(), ref.alpha(w), rtol=1e-6)


def test_dense_input_scale_eq10(rng):
    x = rng.normal(size=(6, 20)).astype(np.float32)
    expected = np.abs(x).sum(axis=1, keepdims=True) / 20
    np.testing.assert_allclose(scaling.dense_input_scale(x).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "size, kernel, stride, padding, dilation",
    [(7, 3, 1, "same", 1), (8, 3, 2, "same", 1), (9, 2, 1, "valid", 1),
     (10, 3, 1, "same", 2), (6, 4, 2, "valid", 1)],
)
def test_conv_input_scale_is_beta_of_every_subtensor(rng, size, kernel, stride, padding, dilation):
    x = rng.normal(size=(2, size, size + 1, 3)).astype(np.float32)
    k = scaling.conv_input_scale(
        x, (kernel, kernel), strides=(stride, stride), padding=padding,
        dilation_rate=(dilation, dilation),
    ).numpy()
    # β of eq. 10 for each sub-tensor = the K of eq. 11 at that position: a plain
    # conv of |I| with an all-(1/n) filter over (kh, kw, c).
    n = kernel * kernel * 3
    w = np.full((kernel, kernel, 3, 1), 1.0 / n)
    expected = ref.conv(np.abs(x), w, stride=stride, padding=padding, dilation=dilation)
    np.testing.assert_allclose(k, expected, rtol=1e-5, atol=1e-6)
