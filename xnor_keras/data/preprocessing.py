"""Raw uint8 image → model input: `preprocess_eval` (the spec's rule) and
`preprocess_train` (an augmentation recipe). Steps 1–4 are `preprocessing_spec`'s.

>>> import numpy as np
>>> from xnor_keras.data.spec import preprocessing_spec
>>> preprocess_eval(np.zeros((40, 30), np.uint8), preprocessing_spec("fashion_mnist")).shape
TensorShape([28, 28, 1])
"""

import tensorflow as tf

from xnor_keras.data.augmentation import resolve
from xnor_keras.data.spec import check_spec

__all__ = ["preprocess_eval", "preprocess_train"]


def _as_image(image):
    """A uint8 [H, W, C] tensor (C in 1, 3, 4) from an array or tensor."""
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise ValueError(f"image must be uint8 (raw pixels). Received: dtype={image.dtype.name}")
    if image.shape.rank == 2:
        image = image[:, :, tf.newaxis]
    if image.shape.rank != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"image must be [height, width] or [height, width, 1|3|4]. Received: shape={image.shape}"
        )
    return image


def _to_color(image, spec):
    """Step 1 of `preprocessing_spec`: float32 0–255 with the model's channels."""
    image = tf.cast(image, tf.float32)
    if image.shape[-1] == 4:
        image = image[:, :, :3]
    if spec["color"] == "rgb":
        return tf.tile(image, [1, 1, 3]) if image.shape[-1] == 1 else image
    if image.shape[-1] == 3:
        weights = tf.constant(spec["grayscale_weights"], tf.float32)
        return tf.reduce_sum(image * weights, axis=-1, keepdims=True)
    return image


def _resize_shorter_side(image, size):
    """Step 2 of `preprocessing_spec`: bilinear resize, shorter side to ``size``."""
    shape = tf.shape(image, out_type=tf.int64)
    height, width = shape[0], shape[1]
    short = tf.minimum(height, width)
    size = tf.cast(size, tf.int64)
    # floor(side * size / short + 1/2), exactly, in integers.
    new_height = (2 * height * size + short) // (2 * short)
    new_width = (2 * width * size + short) // (2 * short)
    new_size = tf.cast(tf.stack([new_height, new_width]), tf.int32)
    return tf.image.resize(image, new_size, method="bilinear", antialias=False)


def _center_crop(image, height, width):
    """Step 3 of `preprocessing_spec`."""
    shape = tf.shape(image)
    top = (shape[0] - height) // 2
    left = (shape[1] - width) // 2
    return image[top:top + height, left:left + width, :]


def _normalize(image, spec):
    """Step 4 of `preprocessing_spec`."""
    mean = tf.constant(spec["mean"], tf.float32)
    std = tf.constant(spec["std"], tf.float32)
    return (image / spec["scale"] - mean) / std


def preprocess_eval(image, spec):
    """Maps one raw uint8 image to the model input described by ``spec``.

    ``image``: uint8 [H, W] or [H, W, 1|3|4] (array or tensor); ``spec``: a
    `preprocessing_spec` dict (for instance read back from JSON). Returns float32
    [height, width, channels] of ``spec["input_shape"]``.

    >>> import numpy as np
    >>> x = preprocess_eval(np.zeros((300, 400, 3), np.uint8), preprocessing_spec("imagenet2012"))
    >>> x.shape, round(float(x[0, 0, 0]), 4)
    (TensorShape([224, 224, 3]), -2.1179)
    """
    check_spec(spec)
    height, width, channels = spec["input_shape"]
    image = _to_color(_as_image(image), spec)
    image = _resize_shorter_side(image, spec["resize_shorter_side"])
    image = _normalize(_center_crop(image, height, width), spec)
    image.set_shape([height, width, channels])
    return image


def preprocess_train(image, spec, recipe, *, seed):
    """Maps one raw uint8 image to a randomly augmented training input.

    ``recipe``: a key of ``AUGMENTATIONS`` (or an `Augmentation`) whose
    ``input_size`` matches ``spec``; ``seed``: int32/int64 shape [2], for TensorFlow's
    stateless random ops (the same seed gives the same augmentation). Colour and
    normalisation are `preprocess_eval`'s.

    >>> import numpy as np
    >>> spec = preprocessing_spec("imagenet2012")
    >>> preprocess_train(np.zeros((256, 300, 3), np.uint8), spec, "resnet18", seed=[1, 2]).shape
    TensorShape([224, 224, 3])
    """
    check_spec(spec)
    augmentation = resolve(recipe, spec)
    height, width, channels = spec["input_shape"]
    scale_seed, crop_seed, pad_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4))
    image = _to_color(_as_image(image), spec)
    if augmentation.shorter_side is None:
        image = _resize_shorter_side(image, spec["resize_shorter_side"])
        image = _center_crop(image, height, width)
    else:
        low, high = augmentation.shorter_side
        size = tf.random.stateless_uniform([], scale_seed, minval=low, maxval=high + 1,
                                           dtype=tf.int32)
        image = _resize_shorter_side(image, size)
        image = tf.image.stateless_random_crop(image, [height, width, channels], crop_seed)
    if augmentation.padding:
        pad = augmentation.padding
        image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        image = tf.image.stateless_random_crop(image, [height, width, channels], pad_seed)
    if augmentation.flip:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    image = _normalize(image, spec)
    image.set_shape([height, width, channels])
    return image

