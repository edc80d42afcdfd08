"""`load`: a data set's batched, preprocessed ``tf.data.Dataset``."""

import tensorflow as tf

from xnor_keras.data import registry
from xnor_keras.data.augmentation import resolve
from xnor_keras.data.locate import locate
from xnor_keras.data.preprocessing import preprocess_eval, preprocess_train
from xnor_keras.data.spec import preprocessing_spec
from xnor_keras.validation import positive_int

__all__ = ["load"]


def load(name, split, *, batch_size, data_dir=None, recipe=None, augment=None, shuffle=None,
         seed=None, limit=None, download=False):
    """A batched ``tf.data.Dataset`` of (float32 [B, H, W, C] images, int32 [B] labels).

    Args:
      name: a key of ``DATASETS`` or an image-folder directory.
      split: ``"train"`` or ``"test"`` (the labelled held-out split; ``"validation"``
        is a synonym); ``"all"`` for a one-level image folder.
      batch_size: examples per batch (the last batch may be smaller).
      data_dir: where to look for prepared TFDS data (default ``$TFDS_DATA_DIR`` or
        ``~/tensorflow_datasets``) and, for MNIST and Fashion-MNIST, IDX files.
      recipe: the training augmentation, a key of ``AUGMENTATIONS`` (an architecture
        name) or an `Augmentation`; None takes the data set's default. Used only when
        augmenting, but always checked against the data set's input size.
      augment: apply ``recipe`` (`preprocess_train`) rather than `preprocess_eval`;
        default: ``split == "train"``.
      shuffle: shuffle (again every epoch); default: ``split == "train"``.
      seed: makes shuffling and augmentation repeatable.
      limit: use only the first ``limit`` examples of the split, in the stored order
        (for an image folder, a fixed class-mixing permutation of its files).
      download: let TFDS download and prepare missing data (needs the internet, or
        ImageNet's tars in ``<data_dir>/downloads/manual``). Off by default.

    >>> ds = load("fashion_mnist", "train", batch_size=32, recipe="fashion_net", limit=64)
    >>> [tuple(x.shape) for x, _ in ds]
    [(32, 28, 28, 1), (32, 28, 28, 1)]
    """
    entry = registry.lookup(name)
    split = "test" if split == "validation" else split
    positive_int("batch_size", batch_size)
    positive_int("limit", limit, optional=True)
    recipe = entry.recipe if recipe is None else recipe
    spec = preprocessing_spec(name)
    resolve(recipe, spec)  # checked even when evaluating
    if augment is None:
        augment = split == "train"
    if shuffle is None:
        shuffle = split == "train"
    source = locate(name, data_dir=data_dir, download=download)
    if split not in source.splits:
        raise ValueError(
            f"split must be one of {source.splits} for {name}. Received: split={split!r}"
        )
    ds = source.dataset(split, limit=limit, shuffle=shuffle, seed=seed)
    if augment:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda example, pair: (preprocess_train(example[0], spec, recipe, seed=pair),
                                   example[1]),
            num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda image, label: (preprocess_eval(image, spec), label),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
