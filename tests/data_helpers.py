"""Helpers shared by the data tests (tests/test_data*.py): NumPy only, no xnor_keras."""

import numpy as np


def noise(shape, seed):
    """Uniform random uint8 pixels, repeatable per seed."""
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def denormalize(x, mean, std):
    """Undoes ``(pixel / 255 - mean) / std`` up to the 1/255 scale, in float64."""
    return np.asarray(x, np.float64) * std + mean


def batches(ds):
    """All (images, labels) of a batched dataset, concatenated into two arrays."""
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(images), np.concatenate(labels)
