"""The interface every data source implements, and what sources share.

A source is data of one data set found on this machine: `locate` picks it, `load`
and `info` use only this interface.
"""

import abc

import tensorflow as tf

__all__ = ["SHUFFLE_BUFFER", "Source", "decoder"]

# Encoded images (or file names) held by the shuffle buffer of file-backed sources.
SHUFFLE_BUFFER = 5000


class Source(abc.ABC):
    """Data of one data set on disk.

    Attributes:
      splits: the split names it holds (a subset of ``"train"``, ``"test"``, or
        ``("all",)`` for a one-level image folder).
      description: where the data was found, for messages and `info`.
    """

    splits: tuple
    description: str

    @abc.abstractmethod
    def num_examples(self, split):
        """The number of examples of ``split``."""

    @abc.abstractmethod
    def dataset(self, split, *, limit, shuffle, seed):
        """Unbatched (uint8 [H, W, C] image, int32 label) pairs of ``split``.

        ``limit``: only the first ``limit`` examples (None: all); ``shuffle``:
        reshuffled every iteration, repeatably for a given ``seed``.
        """


def decoder(channels):
    """Decodes (encoded image, label); JPEG with libjpeg's accurate integer IDCT."""

    def decode(encoded, label):
        # TensorFlow's default JPEG IDCT is the fast, less exact one; the accurate one
        # gives PIL's pixels, so training and deployment decode alike.
        image = tf.cond(
            tf.io.is_jpeg(encoded),
            lambda: tf.io.decode_jpeg(encoded, channels=channels, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(encoded, channels=channels, expand_animations=False),
        )
        return image, tf.cast(label, tf.int32)

    return decode

