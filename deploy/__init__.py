"""Deployment of xnor_keras models with larq-compute-engine: the ``xnor-deploy`` tools.

| module         | what                                                              |
|----------------|-------------------------------------------------------------------|
| `lowering`     | Keras model → graph LCE maps onto binary ops (exact rewrites)      |
| `convert`      | LCE conversion, no-float-fallback check, metadata, atomic write    |
| `report`       | per-layer conversion report                                        |
| `tflite_model` | .tflite parsing / editing (op census, LCE options, metadata)       |
| `runtime`      | `make_interpreter(flatbuffer, runtime=...)`: LCE, TFLite, native   |
| `verify`       | Keras vs .tflite outputs                                           |
| `inspection`   | what a .tflite computes and stores                                 |
| `bench`        | binary model vs float32 / int8 twins, interleaved                  |
| `predict`      | top-k labels for images, with the recorded preprocessing           |
| `efficiency`   | the paper's Fig. 4: memory and binary-conv speedup                 |
| `cli`          | the ``xnor-deploy`` command                                        |

Importing ``deploy`` does not import TensorFlow; it only makes sure that, when
TensorFlow is imported later, ``tf.keras`` is legacy Keras 2 (larq needs it).
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
