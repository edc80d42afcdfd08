"""xnor_keras: XNOR-Net (Rastegari et al., 2016) binary networks in Keras, on larq.

Importing this package makes sure legacy Keras 2 (``tf_keras``) backs ``tf.keras``,
which larq and larq-compute-engine need: it sets ``TF_USE_LEGACY_KERAS=1`` before
TensorFlow resolves ``tf.keras``, and refuses to load if Keras 3 is already active.

It also keeps TensorFlow's C++ start-up noise (the CUDA stub and cuInit messages on a
machine without a GPU, cpu_feature_guard, oneDNN, MLIR info lines) out of every command
line built on it (``xnor-train``, ``xnor-deploy``, ``python -m deploy.pipeline``):
unless ``TF_CPP_MIN_LOG_LEVEL`` is already set, it sets it to 2 (C++ errors only) and
imports TensorFlow with those known start-up lines filtered from stderr — many are
written before TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL``, so the variable alone does not
hide them. Any other stderr output of the import is passed through. Set
``TF_CPP_MIN_LOG_LEVEL=0`` to see everything.

Example:

>>> import xnor_keras
>>> import tensorflow as tf
>>> layer = xnor_keras.layers.XnorConv2D(8, 3, padding="same")
>>> layer(tf.zeros((1, 6, 6, 4))).shape
TensorShape([1, 6, 6, 8])
"""

import os
import re
import sys
import tempfile

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


# TensorFlow's start-up lines that carry no information for a user of this package.
# Only lines matching these are dropped, and only while TensorFlow is first imported.
_STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|^[IW]\d{4} "  # absl INFO / WARNING lines (TF_CPP_MIN_LOG_LEVEL=2 hides the later ones)
    r"|^E\d{4} .*\b(cuda_platform|cuda_dnn|cuda_blas|cuda_fft|cuda_executor)\.cc:"
    r"|^To enable the following instructions: .* rebuild TensorFlow"
)


def _import_tensorflow_quietly():
    """Imports TensorFlow (and initializes its platforms) with start-up noise filtered.

    A no-op when the user set ``TF_CPP_MIN_LOG_LEVEL`` or TensorFlow is already loaded.
    stderr (file descriptor 2, which C++ writes to) goes to a temporary file for the
    import; afterwards every line not matching ``_STARTUP_NOISE`` is written back.
    """
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to filter
        return
    captured = tempfile.TemporaryFile()
    os.dup2(captured.fileno(), 2)
    try:
        import tensorflow as tf

        # Loads the GPU platform now (cuInit's error on a machine without one) without
        # creating devices: logical CPU devices can still be configured afterwards.
        tf.config.list_physical_devices()
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        captured.seek(0)
        kept = [line for line in captured.read().decode(errors="replace").splitlines(True)
                if not _STARTUP_NOISE.search(line)]
        captured.close()
        if kept:
            os.write(2, "".join(kept).encode())


_ensure_legacy_keras()
_import_tensorflow_quietly()

from xnor_keras import blocks, layers, options, quantizers, scaling  # noqa: E402

__version__ = "0.1.0"
__all__ = ["blocks", "layers", "options", "quantizers", "scaling"]
