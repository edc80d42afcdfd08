"""Deployment of xnor_keras models with larq-compute-engine: the ``xnor-deploy`` tools.

| module         | what                                                              |
|----------------|-------------------------------------------------------------------|
| `lowering`     | Keras model → graph LCE maps onto binary ops (exact rewrites)      |
| `keras_model`  | `load_keras_model`: a saved .keras / .h5 / SavedModel, checked     |
| `convert`      | LCE conversion, no-float-fallback check, metadata, atomic write    |
| `report`       | per-layer conversion report                                        |
| `tflite_model` | .tflite parsing / editing (op census, LCE options, metadata)       |
| `runtime`      | `make_interpreter(flatbuffer, runtime=...)`: LCE, TFLite, native   |
| `tflite_runner`| stock TFLite interpreter (optional delegates) behind ``run(x)``    |
| `int8`         | affine int8/uint8 quantize / dequantize of TFLite tensors          |
| `native`       | the project's C++ kernels as a TFLite delegate                     |
| `verify`       | Keras vs .tflite outputs                                           |
| `inspection`   | what a .tflite computes and stores                                 |
| `bench`        | binary model vs float32 / int8 twins, interleaved                  |
| `predict`      | top-k labels for images, with the recorded preprocessing           |
| `efficiency`   | the paper's Fig. 4: memory and binary-conv speedup                 |
| `cli`          | the ``xnor-deploy`` command                                        |
| `pipeline`     | the main job: train → convert → verify → bench → report           |

Importing ``deploy`` does not import TensorFlow; it only makes sure that, when
TensorFlow is imported later, ``tf.keras`` is legacy Keras 2 (larq needs it).
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
