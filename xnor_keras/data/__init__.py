"""Input pipelines (§4.2): ImageNet, CIFAR-10, MNIST, Fashion-MNIST and image folders.

``load(name, split, batch_size=...)`` returns a ``tf.data.Dataset`` of
``(images float32 [B, H, W, C], labels int32 [B])``.

| dataset          | input       | where the data comes from (first found)                        |
|------------------|-------------|----------------------------------------------------------------|
| ``imagenet2012`` | 224×224×3   | prepared TFDS data (manual download of the ILSVRC2012 tars)    |
| ``cifar10``      | 32×32×3     | prepared TFDS data                                             |
| ``mnist``        | 28×28×1     | prepared TFDS data, else IDX files in ``data_dir``             |
| ``fashion_mnist``| 28×28×1     | prepared TFDS data, else IDX files in ``data_dir``, else the   |
|                  |             | Debian package ``dataset-fashion-mnist``                       |
| a directory      | 224×224×3   | image folder ``root/{train,test}/<class>/*.jpg`` (or           |
|                  |             | ``root/<class>/*.jpg``: one split, ``"all"``)                  |

Prepared TFDS data is looked up on disk (``data_dir``, else ``$TFDS_DATA_DIR``, else
``~/tensorflow_datasets``); nothing is downloaded unless ``download=True`` is passed.
Missing or corrupt data raises `DataUnavailableError` saying how to get it.

Splits are ``"train"`` and ``"test"``: the labelled held-out split (ImageNet's
``validation``; ``"validation"`` is accepted as a synonym).

Training augmentation, keyed by architecture (``AUGMENTATIONS``, the ``recipe`` argument):

| recipe        | training input                                                           |
|---------------|--------------------------------------------------------------------------|
| ``alexnet``   | shorter side 256, random 224×224 crop, random horizontal flip            |
| ``resnet18``  | shorter side uniform in [256, 480], random 224×224 crop, random flip     |
| ``googlenet`` | shorter side uniform in [256, 320], random 224×224 crop, random flip     |
| ``cifar_net`` | zero-pad 4 px, random 32×32 crop, random flip                            |
| ``fashion_net``| none (28×28 as stored)                                                  |

§4.2 gives the resize and crop; the horizontal flip is the customary addition of the
AlexNet and fb.resnet.torch recipes the paper builds on. BinaryConnect and BinaryNet
whitened CIFAR-10 (global contrast normalisation + ZCA); we use per-channel mean/std,
which a device reproduces with one formula, and the pad-and-crop + flip augmentation.

Evaluation (and deployment) preprocessing is one rule per dataset, described by the
JSON-serialisable `preprocessing_spec` and applied by `preprocess_eval`: resize the
shorter side (bilinear), centre crop, then ``(pixel / 255 - mean[c]) / std[c]``. The
``predict`` command and the Android app reproduce exactly this from the spec.

The package, one job per module: `registry` (the data sets), `spec` (the
preprocessing spec), `augmentation` (training recipes), `preprocessing` (applying
them), `idx` (the IDX reader), `source` (the `Source` interface) and its
implementations `idx_files`, `tfds_prepared`, `image_folder`, `locate` (which
source holds a data set), `metadata` and `loading` (`load`).

Example (Fashion-MNIST from the Debian package):

>>> from xnor_keras import data
>>> images, labels = next(iter(data.load("fashion_mnist", "test", batch_size=8)))
>>> images.shape, images.dtype, labels.dtype
(TensorShape([8, 28, 28, 1]), tf.float32, tf.int32)
"""

from xnor_keras.data.augmentation import AUGMENTATIONS, Augmentation
from xnor_keras.data.errors import DataUnavailableError
from xnor_keras.data.idx import read_idx
from xnor_keras.data.image_folder import IMAGE_EXTENSIONS, ImageFolder
from xnor_keras.data.loading import load
from xnor_keras.data.metadata import class_names, info, input_shape, num_classes
from xnor_keras.data.preprocessing import preprocess_eval, preprocess_train
from xnor_keras.data.registry import (
    CIFAR10_MEAN, CIFAR10_STD, DATASETS, FASHION_MNIST_DEBIAN_DIR, FASHION_MNIST_MEAN,
    FASHION_MNIST_STD, IMAGENET_MEAN, IMAGENET_STD, MNIST_MEAN, MNIST_STD)
from xnor_keras.data.source import SHUFFLE_BUFFER, Source
from xnor_keras.data.spec import GRAYSCALE_WEIGHTS, preprocessing_spec

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "Augmentation",
    "DataUnavailableError",
    "class_names",
    "info",
    "input_shape",
    "load",
    "num_classes",
    "preprocess_eval",
    "preprocess_train",
    "preprocessing_spec",
    "read_idx",
]
