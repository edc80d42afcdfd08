"""The IDX-files source: MNIST and Fashion-MNIST as ``{train,t10k}-*-ubyte[.gz]``."""

import os

import numpy as np
import tensorflow as tf

from xnor_keras.data import registry
from xnor_keras.data.errors import DataUnavailableError
from xnor_keras.data.idx import read_idx, read_idx_header
from xnor_keras.data.source import Source

__all__ = ["IdxFiles"]


class IdxFiles(Source):
    """MNIST-style IDX files: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]."""

    splits = ("train", "test")
    _PREFIX = {"train": "train", "test": "t10k"}

    def __init__(self, directory, name):
        self.images = {split: self._find(directory, f"{self._PREFIX[split]}-images-idx3-ubyte")
                       for split in self.splits}
        self.labels = {split: self._find(directory, f"{self._PREFIX[split]}-labels-idx1-ubyte")
                       for split in self.splits}
        self.shape = registry.DATASETS[name].input_shape
        self.classes = len(registry.DATASETS[name].class_names)
        self.description = f"IDX files in {directory}"

    @staticmethod
    def _find(directory, stem):
        for candidate in (stem + ".gz", stem):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                return path
        raise FileNotFoundError(os.path.join(directory, stem + ".gz"))

    @classmethod
    def find(cls, directory, name):
        try:
            return cls(directory, name)
        except FileNotFoundError:
            return None

    def num_examples(self, split):
        images = read_idx_header(self.images[split])[1]
        labels = read_idx_header(self.labels[split])[1]
        self._check_shapes(split, images, labels)
        return images[0]

    def _check_shapes(self, split, images, labels):
        height, width, _ = self.shape
        if len(images) != 3 or images[1:] != (height, width):
            raise DataUnavailableError(
                f"{self.images[split]} holds images of shape {images[1:]}, not ({height}, {width})."
            )
        if len(labels) != 1 or labels[0] != images[0]:
            raise DataUnavailableError(
                f"{self.labels[split]} holds {labels} labels for {images[0]} images in "
                f"{self.images[split]}."
            )

    def dataset(self, split, *, limit, shuffle, seed):
        images, labels = read_idx(self.images[split]), read_idx(self.labels[split])
        self._check_shapes(split, images.shape, labels.shape)
        if images.dtype != np.uint8 or labels.size and labels.max() >= self.classes:
            raise DataUnavailableError(
                f"{self.images[split]} / {self.labels[split]}: expected uint8 images and labels "
                f"below {self.classes}; got {images.dtype} images and labels up to {labels.max()}."
            )
        images, labels = images[:limit, :, :, np.newaxis], labels[:limit].astype(np.int32)
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
        if shuffle:
            ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
        return ds

