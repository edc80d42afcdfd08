"""The evaluation preprocessing of a data set as a JSON-serialisable spec.

The spec is the one description shared by training, the ``predict`` command and the
Android app: `preprocessing_spec` writes it, `check_spec` checks a spec read back.
"""

import os

from xnor_keras.data import registry

__all__ = ["GRAYSCALE_WEIGHTS", "check_spec", "preprocessing_spec"]

# ITU-R BT.601 luma weights: colour images fed to a grayscale model.
GRAYSCALE_WEIGHTS = (0.299, 0.587, 0.114)

_SPEC_VERSION = 1


def preprocessing_spec(name):
    """The evaluation preprocessing of ``name`` as a JSON-serialisable dict.

    It fully determines `preprocess_eval`, so a device can reproduce it (the pipelines
    decode JPEG files with libjpeg's accurate integer IDCT, ``"jpeg_idct": "islow"``,
    as PIL does):

    1. colour: an RGBA image drops alpha; a grayscale image is repeated to RGB for an
       ``"rgb"`` model; an RGB image becomes ``Σ grayscale_weights[c]·pixel[c]`` for a
       ``"grayscale"`` model. All arithmetic is in float32 on the 0–255 scale.
    2. resize (``"bilinear_half_pixel"``): the shorter side becomes
       ``resize_shorter_side`` and the longer ``floor(long·S/short + 1/2)``; output
       pixel (y, x) samples the input at ((y + ½)·h/h' − ½, (x + ½)·w/w' − ½), clamped
       to the image, bilinearly (TensorFlow's ``tf.image.resize``, no antialiasing).
    3. crop (``"center"``): top = (h' − H) // 2, left = (w' − W) // 2, size H×W.
    4. normalise: ``input[y, x, c] = (pixel / scale - mean[c]) / std[c]``.

    >>> spec = preprocessing_spec("cifar10")
    >>> spec["input_shape"], spec["resize_shorter_side"], spec["crop"]
    ([32, 32, 3], 32, 'center')
    """
    entry = registry.lookup(name)
    height, width, channels = entry.input_shape
    return {
        "version": _SPEC_VERSION,
        "dataset": os.fspath(name),
        "input_shape": [height, width, channels],
        "layout": "NHWC",
        "dtype": "float32",
        "color": "rgb" if channels == 3 else "grayscale",
        "grayscale_weights": list(GRAYSCALE_WEIGHTS),
        "jpeg_idct": "islow",
        "resize_shorter_side": entry.resize_shorter_side,
        "resize": "bilinear_half_pixel",
        "crop": "center",
        "scale": 255.0,
        "mean": list(entry.mean),
        "std": list(entry.std),
        "formula": "input[y, x, c] = (pixel[y, x, c] / scale - mean[c]) / std[c]",
    }


def check_spec(spec):
    """Raises ValueError unless ``spec`` is a `preprocessing_spec` this version applies."""
    if not isinstance(spec, dict) or spec.get("version") != _SPEC_VERSION:
        version = spec.get("version") if isinstance(spec, dict) else type(spec).__name__
        raise ValueError(
            f"spec must be a preprocessing_spec() dict of version {_SPEC_VERSION}. "
            f"Received: version={version!r}"
        )
    for key, expected in (("resize", "bilinear_half_pixel"), ("crop", "center"),
                          ("layout", "NHWC"), ("dtype", "float32")):
        if spec.get(key) != expected:
            raise ValueError(
                f"spec[{key!r}] must be {expected!r}. Received: {key}={spec.get(key)!r}"
            )
    channels = spec["input_shape"][2]
    if spec["color"] != ("rgb" if channels == 3 else "grayscale") or not (
            len(spec["mean"]) == len(spec["std"]) == channels):
        raise ValueError(
            f"spec's color, mean and std do not match its {channels} input channels. "
            f"Received: color={spec['color']!r}, mean={spec['mean']}, std={spec['std']}"
        )

