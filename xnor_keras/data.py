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

Example (Fashion-MNIST from the Debian package):

>>> from xnor_keras import data
>>> images, labels = next(iter(data.load("fashion_mnist", "test", batch_size=8)))
>>> images.shape, images.dtype, labels.dtype
(TensorShape([8, 28, 28, 1]), tf.float32, tf.int32)
"""

import dataclasses
import gzip
import importlib.util
import os
import re

import numpy as np
import tensorflow as tf

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


class DataUnavailableError(RuntimeError):
    """The data set is not on this machine, or its files are corrupt.

    The message says where it looked and how to get the data.
    """


# Per-channel statistics of the training images, on the [0, 1] scale.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)

# ITU-R BT.601 luma weights: colour images fed to a grayscale model.
GRAYSCALE_WEIGHTS = (0.299, 0.587, 0.114)

FASHION_MNIST_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"

# Encoded images (or file names) held by the shuffle buffer of file-backed sources.
SHUFFLE_BUFFER = 5000

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

_SPEC_VERSION = 1

_IDX_NAMES = ", ".join(f"{split}-{kind}-ubyte.gz" for split in ("train", "t10k")
                       for kind in ("images-idx3", "labels-idx1"))


@dataclasses.dataclass(frozen=True)
class _Dataset:
    input_shape: tuple
    resize_shorter_side: int
    mean: tuple
    std: tuple
    held_out: str  # the TFDS split behind "test"
    recipe: str  # default training augmentation
    class_names: tuple | None  # None: read from TFDS's own label file
    how_to_get: str


DATASETS = {
    "imagenet2012": _Dataset(
        (224, 224, 3), 256, IMAGENET_MEAN, IMAGENET_STD, "validation", "alexnet", None,
        "ImageNet cannot be downloaded automatically. Put ILSVRC2012_img_train.tar and "
        "ILSVRC2012_img_val.tar in {data_dir}/downloads/manual/ and run "
        "xnor_keras.data.load('imagenet2012', 'train', batch_size=..., data_dir='{data_dir}', "
        "download=True) once (or `tfds build imagenet2012 --data_dir={data_dir}`): TFDS reads the "
        "tars (nothing is downloaded) and writes {data_dir}/imagenet2012/5.1.0.",
    ),
    "cifar10": _Dataset(
        (32, 32, 3), 32, CIFAR10_MEAN, CIFAR10_STD, "test", "cifar_net",
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
         "truck"),
        "Prepare it where the internet is reachable (`tfds build cifar10 "
        "--data_dir=DIR`, or load(..., download=True)) and copy DIR/cifar10 to "
        "{data_dir}/cifar10.",
    ),
    "mnist": _Dataset(
        (28, 28, 1), 28, MNIST_MEAN, MNIST_STD, "test", "fashion_net",
        tuple(str(digit) for digit in range(10)),
        f"Put the IDX files {_IDX_NAMES} in a directory and pass it as data_dir, or prepare TFDS data where the internet is reachable (`tfds build mnist "
        "--data_dir=DIR`) and copy DIR/mnist to {data_dir}/mnist.",
    ),
    "fashion_mnist": _Dataset(
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
_FOLDER = dataclasses.replace(DATASETS["imagenet2012"], held_out="test", class_names=(),
                              how_to_get="")


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """A training augmentation recipe.

    The decoded image is first brought to the model's input the way evaluation does
    (`preprocess_eval`'s resize and centre crop) unless ``shorter_side`` is set, in
    which case its shorter side is resized to an integer drawn uniformly from
    ``shorter_side`` (inclusive) and a random ``input_size``² crop is taken. Then it
    is zero-padded by ``padding`` pixels and randomly cropped back, and flipped
    left-right with probability 1/2 if ``flip``.
    """

    input_size: int
    shorter_side: tuple | None = None
    padding: int = 0
    flip: bool = True
    source: str = ""


AUGMENTATIONS = {
    "alexnet": Augmentation(224, (256, 256),
                            source="§4.2 AlexNet: shorter side 256, random 224 crop; + flip"),
    "resnet18": Augmentation(224, (256, 480),
                             source="§4.2 ResNet-18: shorter side in [256, 480], random 224 "
                                    "crop; + flip"),
    "googlenet": Augmentation(224, (256, 320),
                              source="§4.2 GoogLeNet variant: shorter side in [256, 320], "
                                     "random 224 crop; + flip"),
    "cifar_net": Augmentation(32, padding=4,
                              source="BinaryConnect/BinaryNet CIFAR-10 net: 4 px pad, "
                                     "random 32 crop, flip"),
    "fashion_net": Augmentation(28, flip=False, source="no augmentation"),
}


# --------------------------------------------------------------------------- metadata


def _dataset(name):
    """The `_Dataset` entry of a name or an image-folder directory."""
    if name in DATASETS:
        return DATASETS[name]
    if isinstance(name, (str, os.PathLike)) and os.path.isdir(name):
        return _FOLDER
    raise ValueError(
        f"name must be one of {tuple(DATASETS)} or an image-folder directory. "
        f"Received: name={name!r}"
    )


def input_shape(name):
    """The model input (height, width, channels) of data set ``name``.

    >>> input_shape("cifar10")
    (32, 32, 3)
    """
    return _dataset(name).input_shape


def class_names(name):
    """The class names of ``name``, in label order.

    ImageNet's are the WordNet ids of TFDS's label file; an image folder's are its
    sorted class directory names.

    >>> class_names("fashion_mnist")[:3]
    ('T-shirt/top', 'Trouser', 'Pullover')
    """
    entry = _dataset(name)
    if entry is _FOLDER:
        return _ImageFolder(name).class_names
    if entry.class_names is None:
        return _tfds_label_file(os.path.join("datasets", name, "labels.txt"))
    return entry.class_names


def num_classes(name):
    """The number of classes of ``name``.

    >>> num_classes("imagenet2012")
    1000
    """
    return len(class_names(name))


def _tfds_label_file(relative):
    # Read from the installed package without importing it (that takes seconds).
    spec = importlib.util.find_spec("tensorflow_datasets")
    path = os.path.join(list(spec.submodule_search_locations)[0], relative)
    with open(path) as f:
        return tuple(line.strip() for line in f if line.strip())


def info(name, *, data_dir=None):
    """Locates the data of ``name`` and describes it.

    Returns a dict with ``name``, ``input_shape``, ``num_classes``, ``class_names``,
    ``splits`` (split name → number of examples) and ``source`` (where the data was
    found). Raises `DataUnavailableError` when the data is not on this machine.

    >>> info("fashion_mnist")["splits"]
    {'train': 60000, 'test': 10000}
    """
    source = _locate(name, data_dir=data_dir, download=False)
    return {
        "name": str(name),
        "input_shape": input_shape(name),
        "num_classes": num_classes(name),
        "class_names": list(class_names(name)),
        "splits": {split: source.num_examples(split) for split in source.splits},
        "source": source.description,
    }


# ---------------------------------------------------------------------- preprocessing


def preprocessing_spec(name):
    """The evaluation preprocessing of ``name`` as a JSON-serialisable dict.

    It fully determines `preprocess_eval`, so a device can reproduce it (the pipelines
    decode JPEG files with libjpeg's accurate integer IDCT, ``"jpeg_idct": "islow"``,
    as PIL does):

    1. colour: an RGBA image drops alpha; a grayscale image is repeated to RGB for an
       ``"rgb"`` model; an RGB image becomes ``Σ grayscale_weights[c]·pixel[c]`` for a
       ``"grayscale"`` model. All arithmetic is in float32 on the 0–255 scale.
    2. resize (``"bilinear_half_pixel"``): the shorter side becomes
       ``resize_shorter_side`` and the longer ``floor(long·S/short + 1/2)``; output
       pixel (y, x) samples the input at ((y + ½)·h/h' − ½, (x + ½)·w/w' − ½), clamped
       to the image, bilinearly (TensorFlow's ``tf.image.resize``, no antialiasing).
    3. crop (``"center"``): top = (h' − H) // 2, left = (w' − W) // 2, size H×W.
    4. normalise: ``input[y, x, c] = (pixel / scale - mean[c]) / std[c]``.

    >>> spec = preprocessing_spec("cifar10")
    >>> spec["input_shape"], spec["resize_shorter_side"], spec["crop"]
    ([32, 32, 3], 32, 'center')
    """
    entry = _dataset(name)
    height, width, channels = entry.input_shape
    return {
        "version": _SPEC_VERSION,
        "dataset": os.fspath(name),
        "input_shape": [height, width, channels],
        "layout": "NHWC",
        "dtype": "float32",
        "color": "rgb" if channels == 3 else "grayscale",
        "grayscale_weights": list(GRAYSCALE_WEIGHTS),
        "jpeg_idct": "islow",
        "resize_shorter_side": entry.resize_shorter_side,
        "resize": "bilinear_half_pixel",
        "crop": "center",
        "scale": 255.0,
        "mean": list(entry.mean),
        "std": list(entry.std),
        "formula": "input[y, x, c] = (pixel[y, x, c] / scale - mean[c]) / std[c]",
    }


def _check_spec(spec):
    if not isinstance(spec, dict) or spec.get("version") != _SPEC_VERSION:
        version = spec.get("version") if isinstance(spec, dict) else type(spec).__name__
        raise ValueError(
            f"spec must be a preprocessing_spec() dict of version {_SPEC_VERSION}. "
            f"Received: version={version!r}"
        )
    for key, expected in (("resize", "bilinear_half_pixel"), ("crop", "center"),
                          ("layout", "NHWC"), ("dtype", "float32")):
        if spec.get(key) != expected:
            raise ValueError(
                f"spec[{key!r}] must be {expected!r}. Received: {key}={spec.get(key)!r}"
            )
    channels = spec["input_shape"][2]
    if spec["color"] != ("rgb" if channels == 3 else "grayscale") or not (
            len(spec["mean"]) == len(spec["std"]) == channels):
        raise ValueError(
            f"spec's color, mean and std do not match its {channels} input channels. "
            f"Received: color={spec['color']!r}, mean={spec['mean']}, std={spec['std']}"
        )


def _as_image(image):
    """A uint8 [H, W, C] tensor (C in 1, 3, 4) from an array or tensor."""
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise ValueError(f"image must be uint8 (raw pixels). Received: dtype={image.dtype.name}")
    if image.shape.rank == 2:
        image = image[:, :, tf.newaxis]
    if image.shape.rank != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"image must be [height, width] or [height, width, 1|3|4]. Received: shape={image.shape}"
        )
    return image


def _to_color(image, spec):
    """Step 1 of `preprocessing_spec`: float32 0–255 with the model's channels."""
    image = tf.cast(image, tf.float32)
    if image.shape[-1] == 4:
        image = image[:, :, :3]
    if spec["color"] == "rgb":
        return tf.tile(image, [1, 1, 3]) if image.shape[-1] == 1 else image
    if image.shape[-1] == 3:
        weights = tf.constant(spec["grayscale_weights"], tf.float32)
        return tf.reduce_sum(image * weights, axis=-1, keepdims=True)
    return image


def _resize_shorter_side(image, size):
    """Step 2 of `preprocessing_spec`: bilinear resize, shorter side to ``size``."""
    shape = tf.shape(image, out_type=tf.int64)
    height, width = shape[0], shape[1]
    short = tf.minimum(height, width)
    size = tf.cast(size, tf.int64)
    # floor(side * size / short + 1/2), exactly, in integers.
    new_height = (2 * height * size + short) // (2 * short)
    new_width = (2 * width * size + short) // (2 * short)
    new_size = tf.cast(tf.stack([new_height, new_width]), tf.int32)
    return tf.image.resize(image, new_size, method="bilinear", antialias=False)


def _center_crop(image, height, width):
    """Step 3 of `preprocessing_spec`."""
    shape = tf.shape(image)
    top = (shape[0] - height) // 2
    left = (shape[1] - width) // 2
    return image[top:top + height, left:left + width, :]


def _normalize(image, spec):
    """Step 4 of `preprocessing_spec`."""
    mean = tf.constant(spec["mean"], tf.float32)
    std = tf.constant(spec["std"], tf.float32)
    return (image / spec["scale"] - mean) / std


def preprocess_eval(image, spec):
    """Maps one raw uint8 image to the model input described by ``spec``.

    ``image``: uint8 [H, W] or [H, W, 1|3|4] (array or tensor); ``spec``: a
    `preprocessing_spec` dict (for instance read back from JSON). Returns float32
    [height, width, channels] of ``spec["input_shape"]``.

    >>> import numpy as np
    >>> x = preprocess_eval(np.zeros((300, 400, 3), np.uint8), preprocessing_spec("imagenet2012"))
    >>> x.shape, round(float(x[0, 0, 0]), 4)
    (TensorShape([224, 224, 3]), -2.1179)
    """
    _check_spec(spec)
    height, width, channels = spec["input_shape"]
    image = _to_color(_as_image(image), spec)
    image = _resize_shorter_side(image, spec["resize_shorter_side"])
    image = _normalize(_center_crop(image, height, width), spec)
    image.set_shape([height, width, channels])
    return image


def _augmentation(recipe, spec):
    """The `Augmentation` of ``recipe``, checked against the spec's input size."""
    if isinstance(recipe, Augmentation):
        augmentation = recipe
    elif recipe in AUGMENTATIONS:
        augmentation = AUGMENTATIONS[recipe]
    else:
        raise ValueError(
            f"recipe must be one of {tuple(AUGMENTATIONS)} or an Augmentation. "
            f"Received: recipe={recipe!r}"
        )
    height, width, _ = spec["input_shape"]
    size = augmentation.input_size
    if (size, size) != (height, width):
        raise ValueError(
            f"recipe {recipe!r} makes {size}×{size} inputs but {spec['dataset']} needs "
            f"{height}×{width}. Received: recipe={recipe!r}"
        )
    return augmentation


def preprocess_train(image, spec, recipe, *, seed):
    """Maps one raw uint8 image to a randomly augmented training input.

    ``recipe``: a key of ``AUGMENTATIONS`` (or an `Augmentation`) whose
    ``input_size`` matches ``spec``; ``seed``: int32/int64 shape [2], for TensorFlow's
    stateless random ops (the same seed gives the same augmentation). Colour and
    normalisation are `preprocess_eval`'s.

    >>> import numpy as np
    >>> spec = preprocessing_spec("imagenet2012")
    >>> preprocess_train(np.zeros((256, 300, 3), np.uint8), spec, "resnet18", seed=[1, 2]).shape
    TensorShape([224, 224, 3])
    """
    _check_spec(spec)
    augmentation = _augmentation(recipe, spec)
    height, width, channels = spec["input_shape"]
    scale_seed, crop_seed, pad_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4))
    image = _to_color(_as_image(image), spec)
    if augmentation.shorter_side is None:
        image = _resize_shorter_side(image, spec["resize_shorter_side"])
        image = _center_crop(image, height, width)
    else:
        low, high = augmentation.shorter_side
        size = tf.random.stateless_uniform([], scale_seed, minval=low, maxval=high + 1,
                                           dtype=tf.int32)
        image = _resize_shorter_side(image, size)
        image = tf.image.stateless_random_crop(image, [height, width, channels], crop_seed)
    if augmentation.padding:
        pad = augmentation.padding
        image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        image = tf.image.stateless_random_crop(image, [height, width, channels], pad_seed)
    if augmentation.flip:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    image = _normalize(image, spec)
    image.set_shape([height, width, channels])
    return image


# ------------------------------------------------------------------------------ IDX

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32,
               0x0D: np.float32, 0x0E: np.float64}


def _open_maybe_gzip(path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _idx_header(stream, path):
    magic = stream.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES or magic[3] == 0:
        raise DataUnavailableError(
            f"{path} is not an IDX file: bad magic number 0x{magic.hex() or 'empty'} "
            "(expected 0x0000TTNN: type TT, NN dimensions). Delete it and get the data again."
        )
    dims = stream.read(4 * magic[3])
    if len(dims) < 4 * magic[3]:
        raise DataUnavailableError(f"{path} is truncated: its IDX header ends early.")
    dtype = np.dtype(_IDX_DTYPES[magic[2]]).newbyteorder(">")
    return dtype, tuple(int(d) for d in np.frombuffer(dims, ">u4"))


def _read_idx_header(path):
    with _open_maybe_gzip(path) as stream:
        try:
            return _idx_header(stream, path)
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            raise DataUnavailableError(f"{path} is corrupt: {error}") from error


def read_idx(path):
    """Reads an IDX file (gzipped or not) into a NumPy array in native byte order.

    The header is validated: magic number 0x0000TTNN (TT the element type, NN the
    number of dimensions), NN big-endian uint32 sizes, then exactly prod(sizes)
    elements. A bad header, a short or long payload, or a broken gzip stream raises
    `DataUnavailableError` naming the file.

    >>> read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").shape
    (10000,)
    """
    with _open_maybe_gzip(path) as stream:
        try:
            dtype, shape = _idx_header(stream, path)
            payload = stream.read()
        except (OSError, EOFError, gzip.BadGzipFile) as error:
            raise DataUnavailableError(f"{path} is corrupt: {error}") from error
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(payload) != expected:
        raise DataUnavailableError(
            f"{path} is corrupt: its header announces shape {shape} ({expected} bytes of data) "
            f"but it holds {len(payload)} bytes."
        )
    return np.frombuffer(payload, dtype).reshape(shape).astype(dtype.newbyteorder("="))


# --------------------------------------------------------------------------- sources


class _IdxFiles:
    """MNIST-style IDX files: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]."""

    splits = ("train", "test")
    _PREFIX = {"train": "train", "test": "t10k"}

    def __init__(self, directory, name):
        self.images = {split: self._find(directory, f"{self._PREFIX[split]}-images-idx3-ubyte")
                       for split in self.splits}
        self.labels = {split: self._find(directory, f"{self._PREFIX[split]}-labels-idx1-ubyte")
                       for split in self.splits}
        self.shape = DATASETS[name].input_shape
        self.classes = len(DATASETS[name].class_names)
        self.description = f"IDX files in {directory}"

    @staticmethod
    def _find(directory, stem):
        for candidate in (stem + ".gz", stem):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                return path
        raise FileNotFoundError(os.path.join(directory, stem + ".gz"))

    @classmethod
    def find(cls, directory, name):
        try:
            return cls(directory, name)
        except FileNotFoundError:
            return None

    def num_examples(self, split):
        images = _read_idx_header(self.images[split])[1]
        labels = _read_idx_header(self.labels[split])[1]
        self._check_shapes(split, images, labels)
        return images[0]

    def _check_shapes(self, split, images, labels):
        height, width, _ = self.shape
        if len(images) != 3 or images[1:] != (height, width):
            raise DataUnavailableError(
                f"{self.images[split]} holds images of shape {images[1:]}, not ({height}, {width})."
            )
        if len(labels) != 1 or labels[0] != images[0]:
            raise DataUnavailableError(
                f"{self.labels[split]} holds {labels} labels for {images[0]} images in "
                f"{self.images[split]}."
            )

    def dataset(self, split, *, limit, shuffle, seed):
        images, labels = read_idx(self.images[split]), read_idx(self.labels[split])
        self._check_shapes(split, images.shape, labels.shape)
        if images.dtype != np.uint8 or labels.size and labels.max() >= self.classes:
            raise DataUnavailableError(
                f"{self.images[split]} / {self.labels[split]}: expected uint8 images and labels "
                f"below {self.classes}; got {images.dtype} images and labels up to {labels.max()}."
            )
        images, labels = images[:limit, :, :, np.newaxis], labels[:limit].astype(np.int32)
        ds = tf.data.Dataset.from_tensor_slices((images, labels))
        if shuffle:
            ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
        return ds


def _decode(channels):
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


class _TfdsPrepared:
    """A data set prepared by TFDS on disk (``<data_dir>/<name>/[<config>/]<version>``)."""

    def __init__(self, directory, name):
        import tensorflow_datasets as tfds

        self.tfds = tfds
        self.builder = tfds.builder_from_directory(directory)
        self.held_out = DATASETS[name].held_out
        # ImageNet may be prepared from the training tar alone, or without it.
        self.splits = tuple(split for split in ("train", "test")
                            if self._split(split) in self.builder.info.splits)
        self.channels = DATASETS[name].input_shape[2]
        self.description = f"TFDS data in {directory}"

    @staticmethod
    def find(directory, name):
        """The newest prepared version of ``name`` under ``directory``, or None."""
        found = []
        root = os.path.join(directory, name)
        for path, dirs, files in os.walk(root):
            depth = os.path.relpath(path, root).count(os.sep)
            if "dataset_info.json" in files and re.fullmatch(r"\d+\.\d+\.\d+",
                                                               os.path.basename(path)):
                found.append((tuple(int(p) for p in os.path.basename(path).split(".")), path))
            if depth >= 1:
                dirs[:] = []  # versions sit at most one config directory deep
        return max(found)[1] if found else None

    def _split(self, split):
        return self.held_out if split == "test" else split

    def num_examples(self, split):
        return self.builder.info.splits[self._split(split)].num_examples

    def dataset(self, split, *, limit, shuffle, seed):
        tfds = self.tfds
        name = self._split(split) + (f"[:{limit}]" if limit else "")
        ds = self.builder.as_dataset(
            split=name, as_supervised=True, shuffle_files=shuffle,
            decoders={"image": tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(shuffle_seed=seed),
        )
        if shuffle:
            ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
        return ds.map(_decode(self.channels), num_parallel_calls=tf.data.AUTOTUNE)


class _ImageFolder:
    """``root/<split>/<class>/<image>`` (splits train, test or validation) or
    ``root/<class>/<image>`` (one split, ``"all"``)."""

    _SPLIT_DIRS = ("train", "test", "validation")

    def __init__(self, root):
        self.root = os.path.abspath(os.fspath(root))
        self.description = f"image folder {self.root}"
        split_dirs = {d: os.path.join(self.root, d) for d in self._SPLIT_DIRS
                      if self._subdirs(os.path.join(self.root, d))}
        if split_dirs:
            test = split_dirs.get("test", split_dirs.get("validation"))
            self.split_dirs = {"train": split_dirs.get("train"), "test": test}
            self.split_dirs = {k: v for k, v in self.split_dirs.items() if v}
        else:
            self.split_dirs = {"all": self.root}
        self.splits = tuple(self.split_dirs)
        self.class_names = tuple(sorted(set().union(
            *(self._subdirs(d) for d in self.split_dirs.values()))))
        if not self.class_names:
            raise DataUnavailableError(
                f"{self.root} holds no class directories: expected "
                f"root/<class>/<image> or root/{{train,test}}/<class>/<image>."
            )

    @staticmethod
    def _subdirs(path):
        if not os.path.isdir(path):
            return []
        return [d for d in os.listdir(path)
                if not d.startswith(".") and os.path.isdir(os.path.join(path, d))]

    def files(self, split):
        if split not in self.split_dirs:
            raise ValueError(
                f"split must be one of {self.splits} for {self.description}. "
                f"Received: split={split!r}"
            )
        directory = self.split_dirs[split]
        paths, labels = [], []
        for label, name in enumerate(self.class_names):
            class_dir = os.path.join(directory, name)
            if not os.path.isdir(class_dir):
                continue
            for file in sorted(os.listdir(class_dir)):
                if file.lower().endswith(IMAGE_EXTENSIONS) and not file.startswith("."):
                    paths.append(os.path.join(class_dir, file))
                    labels.append(label)
        if not paths:
            raise DataUnavailableError(
                f"{directory} holds no images ({', '.join(IMAGE_EXTENSIONS)}) in its class "
                "directories."
            )
        # A fixed permutation, so that `limit` picks a class-mixed subset.
        order = np.random.default_rng(0).permutation(len(paths))
        return [paths[i] for i in order], np.asarray(labels, np.int32)[order]

    def num_examples(self, split):
        return len(self.files(split)[0])

    def dataset(self, split, *, limit, shuffle, seed):
        paths, labels = self.files(split)
        paths, labels = paths[:limit], labels[:limit]
        ds = tf.data.Dataset.from_tensor_slices((paths, labels))
        if shuffle:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        decode = _decode(3)
        return ds.map(lambda path, label: decode(tf.io.read_file(path), label),
                      num_parallel_calls=tf.data.AUTOTUNE)


def _tfds_dirs(data_dir):
    if data_dir is not None:
        return [os.path.expanduser(os.fspath(data_dir))]
    default = os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
    return [os.path.expanduser(default)]


def _locate(name, *, data_dir, download):
    """The source of ``name``'s data on this machine, or `DataUnavailableError`."""
    entry = _dataset(name)
    if entry is _FOLDER:
        return _ImageFolder(name)
    looked = []
    for directory in _tfds_dirs(data_dir):
        path = _TfdsPrepared.find(directory, name)
        if path:
            return _TfdsPrepared(path, name)
        looked.append(f"TFDS data in {os.path.join(directory, name)}")
    if name in ("mnist", "fashion_mnist"):
        directories = []
        if data_dir is not None:
            directories += [os.fspath(data_dir), os.path.join(os.fspath(data_dir), name)]
        if name == "fashion_mnist":
            directories.append(FASHION_MNIST_DEBIAN_DIR)
        for directory in directories:
            source = _IdxFiles.find(os.path.expanduser(directory), name)
            if source:
                return source
            looked.append(f"IDX files in {directory}")
    if download:
        return _download(name, _tfds_dirs(data_dir)[0])
    raise DataUnavailableError(
        f"{name} is not on this machine (looked for {'; '.join(looked)}). "
        + entry.how_to_get.format(data_dir=_tfds_dirs(data_dir)[0])
    )


def _download(name, data_dir):
    import tensorflow_datasets as tfds

    try:
        tfds.builder(name, data_dir=data_dir).download_and_prepare()
    except Exception as error:  # TFDS raises many kinds; all mean "no data".
        raise DataUnavailableError(
            f"preparing {name} in {data_dir} failed: {error}. "
            + DATASETS[name].how_to_get.format(data_dir=data_dir)
        ) from error
    return _TfdsPrepared(_TfdsPrepared.find(data_dir, name), name)


# ------------------------------------------------------------------------------ load


def _positive(name, value, optional=False):
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")


def load(name, split, *, batch_size, data_dir=None, recipe=None, augment=None, shuffle=None,
         seed=None, limit=None, download=False):
    """A batched ``tf.data.Dataset`` of (float32 [B, H, W, C] images, int32 [B] labels).

    Args:
      name: a key of ``DATASETS`` or an image-folder directory.
      split: ``"train"`` or ``"test"`` (the labelled held-out split; ``"validation"``
        is a synonym); ``"all"`` for a one-level image folder.
      batch_size: examples per batch (the last batch may be smaller).
      data_dir: where to look for prepared TFDS data (default ``$TFDS_DATA_DIR`` or
        ``~/tensorflow_datasets``) and, for MNIST and Fashion-MNIST, IDX files.
      recipe: the training augmentation, a key of ``AUGMENTATIONS`` (an architecture
        name) or an `Augmentation`; None takes the data set's default. Used only when
        augmenting, but always checked against the data set's input size.
      augment: apply ``recipe`` (`preprocess_train`) rather than `preprocess_eval`;
        default: ``split == "train"``.
      shuffle: shuffle (again every epoch); default: ``split == "train"``.
      seed: makes shuffling and augmentation repeatable.
      limit: use only the first ``limit`` examples of the split, in the stored order
        (for an image folder, a fixed class-mixing permutation of its files).
      download: let TFDS download and prepare missing data (needs the internet, or
        ImageNet's tars in ``<data_dir>/downloads/manual``). Off by default.

    >>> ds = load("fashion_mnist", "train", batch_size=32, recipe="fashion_net", limit=64)
    >>> [tuple(x.shape) for x, _ in ds]
    [(32, 28, 28, 1), (32, 28, 28, 1)]
    """
    entry = _dataset(name)
    split = "test" if split == "validation" else split
    _positive("batch_size", batch_size)
    _positive("limit", limit, optional=True)
    recipe = entry.recipe if recipe is None else recipe
    spec = preprocessing_spec(name)
    _augmentation(recipe, spec)  # checked even when evaluating
    if augment is None:
        augment = split == "train"
    if shuffle is None:
        shuffle = split == "train"
    source = _locate(name, data_dir=data_dir, download=download)
    if split not in source.splits:
        raise ValueError(
            f"split must be one of {source.splits} for {name}. Received: split={split!r}"
        )
    ds = source.dataset(split, limit=limit, shuffle=shuffle, seed=seed)
    if augment:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda example, pair: (preprocess_train(example[0], spec, recipe, seed=pair),
                                   example[1]),
            num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda image, label: (preprocess_eval(image, spec), label),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
