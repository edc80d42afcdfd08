"""Values of the lowered graph, and the record of how each was computed (its origin).

A fold needs to look back from a binarization to the binary convolution that
produced its input: each `Value` carries an origin, one frozen dataclass per kind
of op, whose ``parent`` is the value the op read.

Example: ``sign(BN(relu(bconv(x))))`` is recorded as
``Value(origin=AffineOrigin(m, b, parent=Value(origin=ReluOrigin(parent=Value(
origin=BconvOrigin(alpha)))))``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True, eq=False)
class BconvOrigin:
    """A binary convolution's accumulator α·z (z an integer, ``alpha`` per channel)."""

    alpha: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class AffineOrigin:
    """``m·parent + b`` (BatchNorm, learned scale, bias); per channel or, after a
    deferred Flatten, per position (``m``, ``b`` shaped like one sample)."""

    m: np.ndarray
    b: np.ndarray
    parent: "Value"


@dataclasses.dataclass(frozen=True, eq=False)
class ReluOrigin:
    """``max(parent, 0)``."""

    parent: "Value"


@dataclasses.dataclass(frozen=True, eq=False)
class MaxPoolOrigin:
    """``pool(parent)`` for the Keras max-pool layer ``pool``."""

    pool: object
    parent: "Value"


@dataclasses.dataclass(frozen=True, eq=False)
class SignOrigin:
    """``sign(pre_sign)``: the value is already ±1 (max-pooling keeps it so)."""

    pre_sign: tf.Tensor


Origin = BconvOrigin | AffineOrigin | ReluOrigin | MaxPoolOrigin | SignOrigin


@dataclasses.dataclass
class Value:
    """A tensor of the lowered graph standing for one Keras tensor.

    ``flat``: Keras sees ``reshape(tensor, [N, -1])`` (a Flatten not yet applied, so
    a binary dense layer can read the spatial tensor). ``origin``: how the value was
    computed, where a fold may need it. ``producer``: the plan of the binary layer
    whose accumulator this value is (or whose output, for its activation).
    """

    tensor: tf.Tensor
    flat: bool = False
    origin: Origin | None = None
    producer: object = None

    def keras(self):
        """The tensor as Keras sees it (flattened if a Flatten was deferred)."""
        if not self.flat:
            return self.tensor
        return tf.reshape(self.tensor, [-1, int(np.prod(self.tensor.shape[1:]))])
