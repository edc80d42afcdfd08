"""Loading a saved Keras model for the deploy tools (`convert`, `verify`, `bench`).

Its own module so that `deploy.verify` and `deploy.bench` can load a model without
importing the converter (`deploy.convert` and, through it, the lowering).

Example:

>>> model = load_keras_model("runs/main/model.keras")          # doctest: +SKIP
"""

from __future__ import annotations

import os

from deploy.errors import DeployError, first_line

__all__ = ["MODEL_SUFFIXES", "load_keras_model"]

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_keras_model(path):
    """Loads a Keras model saved as ``.keras``, ``.h5`` or a SavedModel directory.

    xnor_keras's and larq's layers are registered on import, so no custom object
    scope is needed. Raises `DeployError` with one line for anything that is not a
    loadable Keras model.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DeployError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise DeployError(f"{path} is a directory but not a SavedModel (no saved_model.pb)")
    elif not path.lower().endswith(MODEL_SUFFIXES):
        raise DeployError(f"{path}: not a Keras model file (expected .keras, .h5 or a "
                          "SavedModel directory)")
    import xnor_keras  # noqa: F401  (registers xnor_keras's layers: custom objects)
    import larq  # noqa: F401  (registers larq's layers and quantizers)
    import tensorflow as tf

    try:
        model = tf.keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for bad files
        raise DeployError(f"{path}: cannot load it as a Keras model "
                          f"({type(error).__name__}: {first_line(error)})") from None
    if not isinstance(model, tf.keras.Model) or not hasattr(model, "_nodes_by_depth"):
        raise DeployError(f"{path}: not a functional or Sequential Keras model (subclassed "
                          "models cannot be converted; rebuild with the functional API)")
    return model
