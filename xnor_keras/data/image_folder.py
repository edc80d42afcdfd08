"""The image-folder source: ``root/{train,test}/<class>/<image>`` or ``root/<class>/<image>``."""

import os

import numpy as np
import tensorflow as tf

from xnor_keras.data.errors import DataUnavailableError
from xnor_keras.data.source import Source, decoder

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


class ImageFolder(Source):
    """``root/<split>/<class>/<image>`` (splits train, test or validation) or
    ``root/<class>/<image>`` (one split, ``"all"``)."""

    _SPLIT_DIRS = ("train", "test", "validation")

    def __init__(self, root):
        self.root = os.path.abspath(os.fspath(root))
        self.description = f"image folder {self.root}"
        split_dirs = {d: os.path.join(self.root, d) for d in self._SPLIT_DIRS
                      if self._subdirs(os.path.join(self.root, d))}
        if split_dirs:
            test = split_dirs.get("test", split_dirs.get("validation"))
            self.split_dirs = {"train": split_dirs.get("train"), "test": test}
            self.split_dirs = {k: v for k, v in self.split_dirs.items() if v}
        else:
            self.split_dirs = {"all": self.root}
        self.splits = tuple(self.split_dirs)
        self.class_names = tuple(sorted(set().union(
            *(self._subdirs(d) for d in self.split_dirs.values()))))
        if not self.class_names:
            raise DataUnavailableError(
                f"{self.root} holds no class directories: expected "
                f"root/<class>/<image> or root/{{train,test}}/<class>/<image>."
            )

    @staticmethod
    def _subdirs(path):
        if not os.path.isdir(path):
            return []
        return [d for d in os.listdir(path)
                if not d.startswith(".") and os.path.isdir(os.path.join(path, d))]

    def files(self, split):
        if split not in self.split_dirs:
            raise ValueError(
                f"split must be one of {self.splits} for {self.description}. "
                f"Received: split={split!r}"
            )
        directory = self.split_dirs[split]
        paths, labels = [], []
        for label, name in enumerate(self.class_names):
            class_dir = os.path.join(directory, name)
            if not os.path.isdir(class_dir):
                continue
            for file in sorted(os.listdir(class_dir)):
                if file.lower().endswith(IMAGE_EXTENSIONS) and not file.startswith("."):
                    paths.append(os.path.join(class_dir, file))
                    labels.append(label)
        if not paths:
            raise DataUnavailableError(
                f"{directory} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in its class "
                "directories."
            )
        # A fixed permutation, so that `limit` picks a class-mixed subset.
        order = np.random.default_rng(0).permutation(len(paths))
        return [paths[i] for i in order], np.asarray(labels, np.int32)[order]

    def num_examples(self, split):
        return len(self.files(split)[0])

    def dataset(self, split, *, limit, shuffle, seed):
        paths, labels = self.files(split)
        paths, labels = paths[:limit], labels[:limit]
        ds = tf.data.Dataset.from_tensor_slices((paths, labels))
        if shuffle:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        decode = decoder(3)
        return ds.map(lambda path, label: decode(tf.io.read_file(path), label),
                      num_parallel_calls=tf.data.AUTOTUNE)

