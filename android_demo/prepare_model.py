"""Puts the demo's model into the APK's assets: ``model.tflite``, ``model_spec.json``, ``labels.txt``.

Which model (first match):

1. ``--model PATH`` (or ``XNOR_DEMO_MODEL``): a converted ``.tflite`` (its ``xnor_keras``
   metadata, or a ``model_spec.json`` beside it, gives the preprocessing and labels) or a
   Keras model (``.keras``/``.h5``), which is converted;
2. the main job's trained default model: ``runs/main/model.tflite``, else
   ``runs/main/model.keras`` (``python -m deploy.pipeline``);
3. else a freshly built, UNTRAINED ``fashion_net`` XNOR model (random weights), clearly
   labelled as such in the build output and in the app.

Keras models are converted with ``xnor-deploy convert --target arm64`` (`deploy.convert`);
when the ``deploy`` package is not importable, with ``larq_compute_engine`` directly, and the
output says so. The preprocessing spec is `xnor_keras.data.preprocessing_spec`'s.

    python android_demo/prepare_model.py --out_dir android_demo/build/assets [--model M]
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# This checkout's xnor_keras and deploy, even if another one is installed in the venv.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

FLAGS = flags.FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINED_DEFAULTS = ("runs/main/model.tflite", "runs/main/model.keras")
METADATA_NAME = "xnor_keras"
SPEC_FORMAT = "xnor_keras.android_demo/1"


class PrepareError(Exception):
    """Bad input: reported as one line, exit status 2."""


def tflite_metadata(flatbuffer):
    """The ``xnor_keras`` JSON metadata of a .tflite flatbuffer, or None."""
    from tensorflow.lite.tools import flatbuffer_utils

    try:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    except Exception as error:  # the flatbuffer library raises assorted errors
        raise PrepareError(f"not a readable .tflite file ({error})") from None
    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            data = bytes(model.buffers[entry.buffer].data)
            return json.loads(data.decode("utf-8"))
    return None


def _convert(model, source_path=None):
    """(flatbuffer, converter description) for a Keras model."""
    try:
        from deploy import convert as deploy_convert
    except ImportError as error:
        deploy_convert = None
        reason = str(error)
    if deploy_convert is not None:
        result = deploy_convert.convert_model(model, target="arm64", dataset="fashion_mnist"
                                              if source_path is None else None,
                                              source=source_path)
        return result.flatbuffer, "xnor-deploy convert --target arm64 (deploy.convert)"
    import larq_compute_engine as lce

    return (lce.convert_keras_model(model, target="arm"),
            f"larq_compute_engine.convert_keras_model(target='arm') directly: the deploy "
            f"package is not importable ({reason}), so the model has no xnor_keras metadata")


def _untrained_default():
    import tensorflow as tf

    from xnor_keras import models

    tf.keras.utils.set_random_seed(0)
    return models.build("fashion_net", "xnor")


def choose_source(model_path):
    """(path or None, why): the model to bundle."""
    if model_path:
        if not os.path.isfile(model_path):
            raise PrepareError(f"{model_path}: no such file")
        return model_path, "given"
    for relative in TRAINED_DEFAULTS:
        path = os.path.join(ROOT, relative)
        if os.path.isfile(path):
            return path, "trained default"
    return None, "untrained default"


def prepare(out_dir, model_path=None):
    """Writes the assets; returns a dict describing what was bundled."""
    from xnor_keras import data
    from xnor_keras.io import atomic_write

    if not os.path.isdir(out_dir):
        raise PrepareError(f"{out_dir}: not a directory")
    path, why = choose_source(model_path)
    sidecar = None
    if path is None:
        flatbuffer, converter = _convert(_untrained_default())
        description = "UNTRAINED fashion_net XNOR model (random weights): predictions are meaningless"
        trained = False
    elif path.endswith(".tflite"):
        with open(path, "rb") as f:
            flatbuffer = f.read()
        converter = f"copied from {path}"
        beside = os.path.join(os.path.dirname(path), "model_spec.json")
        if os.path.isfile(beside):
            with open(beside) as f:
                sidecar = json.load(f)
        trained = why == "trained default" or None
        description = f"{'trained default model' if trained else 'model'} {os.path.relpath(path, ROOT)}"
    elif path.endswith((".keras", ".h5", ".hdf5")):
        import tensorflow as tf

        import xnor_keras  # noqa: F401  (registers the custom layers)

        try:
            model = tf.keras.models.load_model(path)
        except (OSError, ValueError) as error:
            raise PrepareError(f"{path}: cannot load the Keras model ({error})") from None
        flatbuffer, converter = _convert(model, source_path=path)
        trained = why == "trained default" or None
        description = f"{'trained default model' if trained else 'model'} {os.path.relpath(path, ROOT)}"
    else:
        raise PrepareError(f"{path}: expected a .tflite, .keras or .h5 file")

    metadata = tflite_metadata(flatbuffer)
    if metadata is not None:
        if metadata.get("target") == "xcore":
            raise PrepareError(f"{path}: converted for xcore; the app needs --target arm64")
        spec, labels = metadata.get("preprocessing"), metadata.get("labels")
    elif sidecar is not None:
        spec, labels = sidecar.get("preprocessing"), sidecar.get("labels")
    elif path is None or not path.endswith(".tflite"):
        spec = data.preprocessing_spec("fashion_mnist")
        labels = list(data.class_names("fashion_mnist"))
    else:
        spec = labels = None
    if spec is None:
        raise PrepareError(f"{path}: no preprocessing spec (no '{METADATA_NAME}' metadata and no "
                           "model_spec.json beside it); convert it with xnor-deploy convert")
    model_spec = {
        "format": SPEC_FORMAT,
        "description": description,
        "trained": trained,
        "converter": converter,
        "preprocessing": spec,
        "labels": labels or [],
    }
    atomic_write(os.path.join(out_dir, "model.tflite"), flatbuffer)
    atomic_write(os.path.join(out_dir, "model_spec.json"), json.dumps(model_spec, indent=1))
    atomic_write(os.path.join(out_dir, "labels.txt"),
                 "".join(f"{label}\n" for label in labels or []))
    return model_spec


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    if not FLAGS.out_dir:
        print("prepare_model: error: --out_dir is required", file=sys.stderr)
        return 2
    try:
        spec = prepare(FLAGS.out_dir, FLAGS.model or os.environ.get("XNOR_DEMO_MODEL") or None)
    except PrepareError as error:
        print(f"prepare_model: error: {error}", file=sys.stderr)
        return 2
    print(f"prepare_model: model: {spec['description']}")
    print(f"prepare_model: converter: {spec['converter']}")
    return 0


def _define_flags():
    """Command-line flags, defined only when run as a script: importing this module (the
    tests do) must not clash with other absl programs' flags of the same names."""
    flags.DEFINE_string("out_dir", None, "Directory for model.tflite, model_spec.json, labels.txt.")
    flags.DEFINE_string("model", None, "A .tflite or Keras model (default: $XNOR_DEMO_MODEL, "
                        "the main job's trained model, or an untrained default model).")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
