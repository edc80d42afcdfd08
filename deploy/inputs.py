"""Model inputs for verify / predict: image files, image folders, data sets, random.

Images are decoded with Pillow (JPEG, PNG, BMP, GIF's first frame) and preprocessed
by `xnor_keras.data.preprocess_eval` with the preprocessing spec recorded in the
.tflite metadata at convert time, so inputs match what the model saw in training.
A ``.npy`` file is taken as an already preprocessed input of the model's input shape.
Every failure is a `DeployError` naming the file.
"""

from __future__ import annotations

import os

import numpy as np

from deploy.artifacts import require_file
from deploy.errors import DeployError

__all__ = ["IMAGE_EXTENSIONS", "read_image", "load_inputs", "image_files", "random_inputs",
           "dataset_inputs"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def read_image(path) -> np.ndarray:
    """Decodes an image file to uint8 [H, W, C] (C = 1, 3 or 4)."""
    from PIL import Image, UnidentifiedImageError

    path = require_file(path, "an image")
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("L", "RGB", "RGBA"):
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            array = np.asarray(image, dtype=np.uint8)
    except UnidentifiedImageError:
        raise DeployError(f"{path}: not a readable image (JPEG, PNG, BMP or GIF)") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise DeployError(f"{path}: cannot decode image ({error})") from None
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise DeployError(f"{path}: empty image")
    return array


def _preprocess(image, spec, path):
    from xnor_keras import data

    try:
        return np.asarray(data.preprocess_eval(image, spec), np.float32)
    except ValueError as error:
        raise DeployError(f"{path}: {error}") from None


def load_inputs(paths, spec, input_shape) -> np.ndarray:
    """Decodes and preprocesses ``paths`` (images or ``.npy``) to [N, H, W, C] float32.

    All files are read before anything runs, so a bad file fails early.
    """
    input_shape = tuple(int(d) for d in input_shape)
    images = []
    for path in paths:
        path = os.fspath(path)
        if path.lower().endswith(".npy"):
            images.append(_read_npy(path, input_shape))
        else:
            images.append(read_image(path))
    if any(not isinstance(image, tuple) for image in images) and spec is None:
        raise DeployError("the model has no preprocessing spec in its metadata: reconvert it "
                          "with --dataset, or pass preprocessed .npy inputs")
    if spec is not None and tuple(spec["input_shape"]) != input_shape:
        raise DeployError(f"the recorded preprocessing produces {tuple(spec['input_shape'])} "
                          f"inputs but the model expects {input_shape}")
    out = []
    for path, image in zip(paths, images):
        out.append(image[1] if isinstance(image, tuple) else _preprocess(image, spec, path))
    return np.stack(out).astype(np.float32)


def _read_npy(path, input_shape):
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DeployError(f"{path}: no such file or directory") from None
    except (OSError, ValueError) as error:
        raise DeployError(f"{path}: not a readable .npy array ({error})") from None
    if array.shape == (1, *input_shape):
        array = array[0]
    if array.shape != input_shape:
        raise DeployError(f"{path}: input of shape {array.shape}, but the model expects "
                          f"{input_shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise DeployError(f"{path}: input is not numeric ({array.dtype})")
    return ("npy", array.astype(np.float32))


def image_files(directory) -> list:
    """Image files under ``directory`` (recursively, sorted)."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise DeployError(f"{directory}: not a directory")
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files)
                  if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")]
    if not found:
        raise DeployError(f"{directory}: holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return found


def random_inputs(n, input_shape, *, seed=0) -> np.ndarray:
    """``n`` standard-normal inputs: the scale of normalized images."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *input_shape)).astype(np.float32)


def dataset_inputs(name, n, input_shape) -> np.ndarray:
    """The first ``n`` test images of data set ``name``, preprocessed for evaluation."""
    from xnor_keras import data

    try:
        shape = tuple(data.input_shape(name))
    except ValueError:
        raise DeployError(f"unknown data set {name!r}: expected one of "
                          f"{', '.join(data.DATASETS)} or an image-folder directory") from None
    if shape != tuple(input_shape):
        raise DeployError(f"data set {name!r} has {shape} inputs but the model expects "
                          f"{tuple(input_shape)}")
    split = "all" if os.path.isdir(os.fspath(name)) and not any(
        os.path.isdir(os.path.join(name, d)) for d in ("test", "validation")) else "test"
    try:
        dataset = data.load(name, split, batch_size=256, limit=n, shuffle=False)
        images = [np.asarray(x) for x, _ in dataset]
    except (data.DataUnavailableError, ValueError) as error:
        raise DeployError(f"data set {name!r}: {str(error).splitlines()[0]}") from None
    return np.concatenate(images)[:n].astype(np.float32)
