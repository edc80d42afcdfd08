"""The registry of known data sets: shapes, statistics, class names, how to get them.

``DATASETS`` maps a name to its `Entry`; `lookup` also accepts an image-folder
directory, which takes ImageNet's preprocessing (``FOLDER``).

>>> lookup("cifar10").input_shape
(32, 32, 3)
"""

import dataclasses
import os

__all__ = ["DATASETS", "FASHION_MNIST_DEBIAN_DIR", "FOLDER", "Entry", "lookup"]

# Per-channel statistics of the training images, on the [0, 1] scale.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)

FASHION_MNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

_IDX_NAMES = ", ".join(f"{split}-{kind}-ubyte.gz" for split in ("train", "t10k")
                       for kind in ("images-idx3", "labels-idx1"))


@dataclasses.dataclass(frozen=True)
class Entry:
    """What the pipelines know of one data set.

    ``input_shape`` (H, W, C) and ``resize_shorter_side`` S define evaluation
    preprocessing (resize the shorter side to S, centre-crop H×W); ``mean``/``std``
    are per-channel statistics of the training images on the [0, 1] scale.
    """

    input_shape: tuple
    resize_shorter_side: int
    mean: tuple
    std: tuple
    held_out: str  # the TFDS split behind "test"
    recipe: str  # default training augmentation
    class_names: tuple | None  # None: read from TFDS's own label file
    how_to_get: str


DATASETS = {
    "imagenet2012": Entry(
        (224, 224, 3), 256, IMAGENET_MEAN, IMAGENET_STD, "validation", "alexnet", None,
        "ImageNet cannot be downloaded automatically. Put ILSVRC2012_img_train.tar and "
        "ILSVRC2012_img_val.tar in {data_dir}/downloads/manual/ and run "
        "xnor_keras.data.load('imagenet2012', 'train', batch_size=..., data_dir='{data_dir}', "
        "download=True) once (or `tfds build imagenet2012 --data_dir={data_dir}`): TFDS reads the "
        "tars (nothing is downloaded) and writes {data_dir}/imagenet2012/5.1.0.",
    ),
    "cifar10": Entry(
        (32, 32, 3), 32, CIFAR10_MEAN, CIFAR10_STD, "test", "cifar_net",
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
         "truck"),
        "Prepare it where the internet is reachable (`tfds build cifar10 "
        "--data_dir=DIR`, or load(..., download=True)) and copy DIR/cifar10 to "
        "{data_dir}/cifar10.",
    ),
    "mnist": Entry(
        (28, 28, 1), 28, MNIST_MEAN, MNIST_STD, "test", "fashion_net",
        tuple(str(digit) for digit in range(10)),
        f"Put the IDX files {_IDX_NAMES} in a directory and pass it as data_dir, or prepare TFDS data where the internet is reachable (`tfds build mnist "
        "--data_dir=DIR`) and copy DIR/mnist to {data_dir}/mnist.",
    ),
    "fashion_mnist": Entry(
        (28, 28, 1), 28, FASHION_MNIST_MEAN, FASHION_MNIST_STD, "test", "fashion_net",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
         "Sneaker", "Bag", "Ankle boot"),
        "Install the Debian package: `apt-get install dataset-fashion-mnist` (as root; "
        "scripts/deps.d/fashion_mnist.sh does it), which puts the IDX files in "
        f"{FASHION_MNIST_DEBIAN_DIR}; or put {_IDX_NAMES} in a directory and pass it as "
        "data_dir.",
    ),
}

# Image folders are natural photos: they take ImageNet's preprocessing.
FOLDER = dataclasses.replace(DATASETS["imagenet2012"], held_out="test", class_names=(),
                             how_to_get="")


def lookup(name):
    """The `Entry` of a name or an image-folder directory (``FOLDER``)."""
    if name in DATASETS:
        return DATASETS[name]
    if isinstance(name, (str, os.PathLike)) and os.path.isdir(name):
        return FOLDER
    raise ValueError(
        f"name must be one of {tuple(DATASETS)} or an image-folder directory. "
        f"Received: name={name!r}"
    )
