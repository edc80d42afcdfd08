"""Calibrating the int8 float layers: activation ranges on real images.

For each int8 chain (`deploy.lowering.quantize.int8_chains`: a float conv/dense layer
with its folded BatchNorm and ReLU) the Keras model is run on calibration images and
the **min and max** of the chain's input and output tensors over all of them become
the int8 ranges (no percentile clipping: TFLite's own post-training calibration uses
min/max too, and an outlier then saturates nothing).

Calibration images come from, in this order: ``calibration_data`` (a data set name —
its *train* split, so the test split stays unseen — or a directory of images,
preprocessed with the model's preprocessing spec), else the model's data set (from
``model.json``, the model name or its input shape; `deploy.convert`). Nothing found is
a `DeployError` saying how to provide them.

Example:

>>> images = calibration_images("fashion_mnist", n=256, input_shape=(28, 28, 1),
...                             spec=None)                           # doctest: +SKIP
>>> calibration = calibrate(model, images)                           # doctest: +SKIP
>>> calibration.ranges["conv1"].input                                # doctest: +SKIP
ActivationRange(lo=-0.81, hi=2.02)
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from deploy.errors import DeployError, first_line
from deploy.lowering.quantize import ActivationRange, ChainRanges, int8_chains

__all__ = ["DEFAULT_IMAGES", "METHOD", "Calibration", "calibrate", "calibration_images"]

DEFAULT_IMAGES = 256
METHOD = "min/max"
_BATCH = 32


@dataclasses.dataclass
class Calibration:
    """Calibrated ranges: {float layer name: `ChainRanges`}, and where they came from."""

    ranges: dict
    images: int
    source: str
    method: str = METHOD

    def as_dict(self) -> dict:
        """JSON-able (stored in the .tflite metadata)."""
        return {"images": self.images, "source": self.source, "method": self.method,
                "ranges": {name: {"input": [r.input.lo, r.input.hi],
                                  "output": [r.output.lo, r.output.hi]}
                           for name, r in self.ranges.items()}}


def _no_data_error(why):
    return DeployError(f"--int8_float_layers needs calibration images: {why}; pass "
                       "--calibration_data DATASET_OR_IMAGE_DIR (or --dataset NAME)")


def calibration_images(source, *, n, input_shape, spec) -> tuple[np.ndarray, str]:
    """(the first ``n`` preprocessed images of ``source``, a description of them).

    ``source``: a data set name (its train split) or a directory of image files
    (preprocessed with ``spec``, the model's preprocessing spec); None is an error.
    """
    from xnor_keras.validation import positive_int

    positive_int("--calibration_n", n, error=DeployError)
    if source is None:
        raise _no_data_error("the model's data set is unknown")
    input_shape = tuple(int(d) for d in input_shape)
    source = os.fspath(source)
    if os.path.isdir(source) and not _is_dataset_folder(source):
        from deploy.inputs import image_files, load_inputs

        if spec is None:
            raise _no_data_error(f"{source} holds image files but the model has no "
                                 "preprocessing spec (pass --dataset NAME to record one)")
        try:
            files = image_files(source)[:n]
        except DeployError as error:
            raise _no_data_error(str(error)) from None
        return load_inputs(files, spec, input_shape), f"{len(files)} images from {source}"
    from xnor_keras import data

    try:
        shape = tuple(data.input_shape(source))
        if shape != input_shape:
            raise DeployError(f"--calibration_data {source!r} has {shape} inputs but the "
                              f"model expects {input_shape}")
        dataset = data.load(source, "train", batch_size=_BATCH, limit=n, shuffle=False,
                            augment=False)
        images = np.concatenate([np.asarray(x) for x, _ in dataset])[:n]
    except DeployError:
        raise
    except (data.DataUnavailableError, ValueError, OSError) as error:
        raise _no_data_error(f"data set {source!r}: {first_line(error)}") from None
    return images.astype(np.float32), f"{len(images)} {source} train images"


def _is_dataset_folder(path):
    """An image-folder data set (class subfolders under train/): loaded as a data set."""
    return os.path.isdir(os.path.join(path, "train"))


def calibrate(model, images: np.ndarray, *, progress: bool = True,
              source: str = "") -> Calibration:
    """Min/max ranges of every int8 chain's input and output over ``images``."""
    import tensorflow as tf
    from tqdm import tqdm

    chains, _ = int8_chains(model)
    if not chains:
        return Calibration(ranges={}, images=len(images), source=source)
    tensors = [t for chain in chains for t in (chain.input, chain.output)]
    probe = tf.keras.Model(model.inputs, tensors)
    lo = np.full(len(tensors), np.inf)
    hi = np.full(len(tensors), -np.inf)
    with tqdm(total=len(images), desc="int8 calibration", unit="image", leave=False,
              disable=not progress or len(images) < 64) as bar:
        for start in range(0, len(images), _BATCH):
            outputs = probe(images[start:start + _BATCH], training=False)
            for i, value in enumerate(outputs):
                value = np.asarray(value)
                lo[i] = min(lo[i], float(value.min()))
                hi[i] = max(hi[i], float(value.max()))
            bar.update(len(images[start:start + _BATCH]))
    ranges = {chain.name: ChainRanges(ActivationRange(lo[2 * i], hi[2 * i]),
                                      ActivationRange(lo[2 * i + 1], hi[2 * i + 1]))
              for i, chain in enumerate(chains)}
    return Calibration(ranges=ranges, images=len(images), source=source)
