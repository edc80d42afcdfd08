"""The TFDS source: a data set TFDS prepared on disk (read, never downloaded here)."""

import os
import re

import tensorflow as tf

from xnor_keras.data import registry
from xnor_keras.data.source import SHUFFLE_BUFFER, Source, decoder

__all__ = ["TfdsPrepared"]


class TfdsPrepared(Source):
    """A data set prepared by TFDS on disk (``<data_dir>/<name>/[<config>/]<version>``)."""

    def __init__(self, directory, name):
        import tensorflow_datasets as tfds

        self.tfds = tfds
        self.builder = tfds.builder_from_directory(directory)
        self.held_out = registry.DATASETS[name].held_out
        # ImageNet may be prepared from the training tar alone, or without it.
        self.splits = tuple(split for split in ("train", "test")
                            if self._split(split) in self.builder.info.splits)
        self.channels = registry.DATASETS[name].input_shape[2]
        self.description = f"TFDS data in {directory}"

    @staticmethod
    def find(directory, name):
        """The newest prepared version of ``name`` under ``directory``, or None."""
        found = []
        root = os.path.join(directory, name)
        for path, dirs, files in os.walk(root):
            depth = os.path.relpath(path, root).count(os.sep)
            if "dataset_info.json" in files and re.fullmatch(r"\d+\.\d+\.\d+",
                                                               os.path.basename(path)):
                found.append((tuple(int(p) for p in os.path.basename(path).split(".")), path))
            if depth >= 1:
                dirs[:] = []  # versions sit at most one config directory deep
        return max(found)[1] if found else None

    def _split(self, split):
        return self.held_out if split == "test" else split

    def num_examples(self, split):
        return self.builder.info.splits[self._split(split)].num_examples

    def dataset(self, split, *, limit, shuffle, seed):
        tfds = self.tfds
        name = self._split(split) + (f"[:{limit}]" if limit else "")
        ds = self.builder.as_dataset(
            split=name, as_supervised=True, shuffle_files=shuffle,
            decoders={"image": tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(shuffle_seed=seed),
        )
        if shuffle:
            ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
        return ds.map(decoder(self.channels), num_parallel_calls=tf.data.AUTOTUNE)

