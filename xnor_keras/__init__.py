"""xnor_keras: XNOR-Net (Rastegari et al., 2016) binary networks in Keras, on larq.

Importing this package makes sure legacy Keras 2 (``tf_keras``) backs ``tf.keras``,
which larq and larq-compute-engine need: it sets ``TF_USE_LEGACY_KERAS=1`` before
TensorFlow resolves ``tf.keras``, and refuses to load if Keras 3 is already active.

Example:

>>> import xnor_keras
>>> import tensorflow as tf
>>> layer = xnor_keras.layers.XnorConv2D(8, 3, padding="same")
>>> layer(tf.zeros((1, 6, 6, 4))).shape
TensorShape([1, 6, 6, 8])
"""

import os
import sys

_LEGACY_KERAS_HINT = (
    "xnor_keras needs legacy Keras 2 (tf-keras), as larq and larq-compute-engine do: "
    "import xnor_keras before tensorflow, or export TF_USE_LEGACY_KERAS=1 before "
    "starting Python."
)


def _ensure_legacy_keras():
    value = os.environ.get("TF_USE_LEGACY_KERAS")
    if value is not None and value.strip().lower() not in ("1", "true"):
        raise ImportError(
            f"{_LEGACY_KERAS_HINT} Received: TF_USE_LEGACY_KERAS={value!r}"
        )
    if value is None:
        # TensorFlow picks the Keras behind `tensorflow.keras` when it is first
        # imported; after that, setting the variable no longer helps larq.
        early = [name for name in ("tensorflow", "keras") if name in sys.modules]
        if early:
            raise ImportError(
                f"Keras 3 is active: {' and '.join(early)} was imported before xnor_keras "
                f"without TF_USE_LEGACY_KERAS=1. {_LEGACY_KERAS_HINT}"
            )
        os.environ["TF_USE_LEGACY_KERAS"] = "1"

_ensure_legacy_keras()

from xnor_keras import blocks, layers, options, quantizers, scaling  # noqa: E402

__version__ = "0.1.0"
__all__ = ["blocks", "layers", "options", "quantizers", "scaling"]
