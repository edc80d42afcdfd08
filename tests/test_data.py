"""Tests of xnor_keras.data on real Fashion-MNIST and on small generated data sets.

CIFAR-10 and ImageNet are not available offline, so their pipelines run on tiny data
written in TFDS's real on-disk format (a TFDS builder, and TFDS's own imagenet2012
builder fed with generated ILSVRC tars) and on image folders of generated PNG/JPEG
files. Expected values come from NumPy/PIL computations written here, independently
of xnor_keras.data. The IDX reader and the IDX-files source are tested in
tests/test_data_idx.py.
"""

import io
import json
import os
import tarfile
import time

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

import xnor_keras  # noqa: F401  (legacy Keras before TensorFlow)
import tensorflow as tf

from xnor_keras import data

from tests.conftest import FASHION, needs_fashion, read_gz_idx as _read_gz_idx
from tests.data_helpers import batches, denormalize, noise

# Published per-channel statistics (torchvision / fb.resnet.torch for ImageNet; the
# 50k CIFAR-10 training images), on the [0, 1] scale.
IMAGENET_MEAN, IMAGENET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
CIFAR_MEAN, CIFAR_STD = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2470, 0.2435, 0.2616])


# ------------------------------------------------------------------ NumPy references


def np_resize_bilinear(image, height, width):
    """Bilinear resize with half-pixel centres and edge clamping, no antialiasing."""
    image = image.astype(np.float64)
    in_h, in_w = image.shape[:2]

    def axis(out_size, in_size):
        pos = np.clip((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0, in_size - 1)
        low = np.floor(pos).astype(int)
        return low, np.minimum(low + 1, in_size - 1), pos - low

    y0, y1, fy = axis(height, in_h)
    x0, x1, fx = axis(width, in_w)
    fy, fx = fy[:, None, None], fx[None, :, None]
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def np_eval_reference(image, shorter=256, crop=224):
    """Shorter side to ``shorter`` (long side rounded), centre ``crop``², 0–255 scale."""
    h, w = image.shape[:2]
    scale = shorter / min(h, w)
    nh, nw = int(np.floor(h * scale + 0.5)), int(np.floor(w * scale + 0.5))
    resized = np_resize_bilinear(image, nh, nw)
    top, left = (nh - crop) // 2, (nw - crop) // 2
    return resized[top:top + crop, left:left + crop]


def save(array, path, **options):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, **options)


# ------------------------------------------------------------------------ Fashion-MNIST


@pytest.fixture(scope="module")
def fashion_raw():
    return {split: (_read_gz_idx(f"{FASHION}/{prefix}-images-idx3-ubyte.gz"),
                    _read_gz_idx(f"{FASHION}/{prefix}-labels-idx1-ubyte.gz"))
            for split, prefix in (("train", "train"), ("test", "t10k"))}


@needs_fashion
def test_fashion_mnist_counts_and_names_from_the_debian_files(fashion_raw):
    described = data.info("fashion_mnist")
    assert described["splits"] == {"train": len(fashion_raw["train"][1]),
                                   "test": len(fashion_raw["test"][1])} == {"train": 60000,
                                                                           "test": 10000}
    assert described["source"] == f"IDX files in {FASHION}"
    assert described["input_shape"] == (28, 28, 1) and described["num_classes"] == 10
    assert described["class_names"] == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@needs_fashion
def test_fashion_mnist_spec_holds_the_training_set_statistics(fashion_raw):
    pixels = fashion_raw["train"][0] / 255.0
    spec = data.preprocessing_spec("fashion_mnist")
    assert spec["mean"] == pytest.approx([pixels.mean()], abs=1e-4)
    assert spec["std"] == pytest.approx([pixels.std()], abs=1e-4)


@needs_fashion
def test_fashion_mnist_test_split_is_the_normalized_idx_data(fashion_raw):
    images, labels = batches(data.load("fashion_mnist", "test", batch_size=4096))
    raw_images, raw_labels = fashion_raw["test"]
    assert images.shape == (10000, 28, 28, 1) and images.dtype == np.float32
    assert labels.dtype == np.int32 and labels.min() == 0 and labels.max() == 9
    np.testing.assert_array_equal(labels, raw_labels)  # stored order when not shuffling
    spec = data.preprocessing_spec("fashion_mnist")
    np.testing.assert_allclose(denormalize(images[..., 0], spec["mean"][0], spec["std"][0]),
                               raw_images / 255.0, atol=1e-6)
    assert np.bincount(labels).tolist() == [1000] * 10
    # A statistic of one image, straight from the file: the first test image's mean.
    first = (images[0, ..., 0] * spec["std"][0] + spec["mean"][0]) * 255
    assert first.mean() == pytest.approx(raw_images[0].mean(), abs=1e-3)


@needs_fashion
def test_fashion_mnist_pad_flip_augmentation_takes_windows_of_the_padded_image(fashion_raw):
    ds = data.load("fashion_mnist", "train", batch_size=16, recipe="fashion_net_pad_flip",
                   shuffle=False, seed=3, limit=16)
    spec = data.preprocessing_spec("fashion_mnist")
    padded = np.pad(fashion_raw["train"][0][:16], [(0, 0), (2, 2), (2, 2)])
    offsets, flips = set(), set()
    for _ in range(3):
        images, _ = batches(ds)
        pixels = np.round(denormalize(images[..., 0], spec["mean"][0], spec["std"][0]) * 255)
        for i, image in enumerate(pixels.astype(np.int64)):
            found = [(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (False, True)
                     if np.array_equal(padded[i, dy:dy + 28, dx:dx + 28][:, ::-1 if flip else 1],
                                       image)]
            assert found, "an augmented image is not a 28×28 window of the 2-px padded original"
            offsets.add(found[0][:2])
            flips.add(found[0][2])
    assert len(offsets) > 10 and flips == {False, True}


@needs_fashion
def test_fashion_mnist_train_subset_is_shuffled_repeatably(fashion_raw):
    def first_epoch(seed):
        return batches(data.load("fashion_mnist", "train", batch_size=100, seed=seed,
                                 limit=300))[1]

    a, b, c = first_epoch(7), first_epoch(7), first_epoch(8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    expected = fashion_raw["train"][1][:300]
    assert not np.array_equal(a, expected)
    assert sorted(a.tolist()) == sorted(expected.tolist())  # the first 300, reordered
    ds = data.load("fashion_mnist", "train", batch_size=300, seed=7, limit=300)
    epoch1, epoch2 = [batches(ds)[1] for _ in range(2)]
    assert not np.array_equal(epoch1, epoch2)  # reshuffled every epoch


# ------------------------------------------------------------------------ missing data


@pytest.mark.parametrize("name, hints", [
    ("cifar10", ["tfds build cifar10", "cifar10"]),
    ("imagenet2012", ["ILSVRC2012_img_train.tar", "downloads/manual", "download=True"]),
    ("mnist", ["train-images-idx3-ubyte", "data_dir"]),
])
def test_missing_data_raises_a_helpful_error_quickly(tmp_path, name, hints):
    start = time.monotonic()
    with pytest.raises(data.DataUnavailableError) as error:
        data.load(name, "train", batch_size=4, data_dir=tmp_path)
    assert time.monotonic() - start < 10  # no network attempt
    message = str(error.value)
    assert str(tmp_path) in message
    for hint in hints:
        assert hint in message


def test_default_tfds_dir_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    with pytest.raises(data.DataUnavailableError, match=str(tmp_path / "tfds" / "cifar10")):
        data.info("cifar10")


def test_bad_arguments_are_refused_before_looking_for_data(tmp_path):
    with pytest.raises(ValueError, match="224×224 inputs but cifar10 needs 32×32"):
        data.load("cifar10", "train", batch_size=8, recipe="alexnet", data_dir=tmp_path)
    with pytest.raises(ValueError, match="Received: recipe='vgg'"):
        data.load("cifar10", "train", batch_size=8, recipe="vgg", data_dir=tmp_path)
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        data.load("cifar10", "train", batch_size=0, data_dir=tmp_path)
    with pytest.raises(ValueError, match="Received: limit=-1"):
        data.load("cifar10", "train", batch_size=8, limit=-1, data_dir=tmp_path)
    with pytest.raises(ValueError, match="Received: name='svhn'"):
        data.load("svhn", "train", batch_size=8)


# --------------------------------------------------------------- CIFAR-10 in TFDS format

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    """A 12 + 6 image cifar10 written by a TFDS builder with cifar10's features."""
    import tensorflow_datasets as tfds

    images = {"train": noise((12, 32, 32, 3), 10), "test": noise((6, 32, 32, 3), 11)}

    class Cifar10(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        name = "cifar10"
        VERSION = tfds.core.Version("3.0.2")
        # No checksums file to find: spares TFDS's lookup, which needs the undeclared
        # importlib_resources for builders defined in a package.
        code_path = None

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict({
                    "id": tfds.features.Text(),
                    "image": tfds.features.Image(shape=(32, 32, 3)),
                    "label": tfds.features.ClassLabel(names=CIFAR_NAMES),
                }),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in images}

        def _generate_examples(self, split):
            for i, image in enumerate(images[split]):
                yield f"{split}_{i}", {"id": f"{split}_{i}", "image": image, "label": i % 10}

    directory = tmp_path_factory.mktemp("tfds")
    Cifar10(data_dir=str(directory)).download_and_prepare()
    return directory, images


def _match(images, candidates):
    """Index of each image among the candidates (exact uint8 match)."""
    keys = {c.tobytes(): i for i, c in enumerate(candidates)}
    return [keys[image.tobytes()] for image in images]


def test_cifar10_tfds_data_eval(cifar_dir):
    directory, stored = cifar_dir
    described = data.info("cifar10", data_dir=directory)
    assert described["splits"] == {"train": 12, "test": 6}
    assert described["source"].startswith("TFDS data in ")
    assert described["class_names"] == CIFAR_NAMES
    images, labels = batches(data.load("cifar10", "test", batch_size=4, data_dir=directory))
    assert images.shape == (6, 32, 32, 3) and labels.dtype == np.int32
    pixels = denormalize(images, CIFAR_MEAN, CIFAR_STD) * 255
    np.testing.assert_allclose(pixels, np.round(pixels), atol=2e-3)
    order = _match(np.round(pixels).astype(np.uint8), stored["test"])
    assert sorted(order) == list(range(6))
    assert labels.tolist() == [i % 10 for i in order]


def test_cifar10_tfds_data_train_pads_crops_and_flips(cifar_dir):
    directory, stored = cifar_dir
    ds = data.load("cifar10", "train", batch_size=12, data_dir=directory, recipe="cifar_net",
                   seed=5)
    assert ds.element_spec[0].shape.as_list() == [None, 32, 32, 3]
    padded = np.pad(stored["train"], [(0, 0), (4, 4), (4, 4), (0, 0)])
    offsets, flips = set(), set()
    for _ in range(3):
        images, labels = batches(ds)
        pixels = np.round(denormalize(images, CIFAR_MEAN, CIFAR_STD) * 255).astype(np.int64)
        for image, label in zip(pixels, labels):
            found = [(i, dy, dx, flip)
                     for i in range(label, 12, 10) for dy in range(9) for dx in range(9)
                     for flip in (False, True)
                     if np.array_equal(padded[i, dy:dy + 32, dx:dx + 32][:, ::-1 if flip else 1],
                                       image)]
            assert found, "an augmented image is not a 32×32 window of the padded original"
            offsets.add(found[0][1:3])
            flips.add(found[0][3])
    assert len(offsets) > 10 and flips == {False, True}


# ---------------------------------------------------------- ImageNet-style image folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """root/train/{landscape,portrait,window}/*.png and root/test/{...}/*.{png,jpg}."""
    root = tmp_path_factory.mktemp("folder")
    ramp = np.arange(256, dtype=np.uint8)
    landscape = np.zeros((256, 320, 3), np.uint8)
    landscape[..., 0] = ramp[:, None]  # red grows down the shorter (vertical) side
    portrait = np.zeros((320, 256, 3), np.uint8)
    portrait[..., 1] = ramp[None, :]  # green grows along the shorter (horizontal) side
    window = noise((256, 320, 3), 20)
    for i in range(6):
        save(landscape, f"{root}/train/landscape/{i}.png")
        save(portrait, f"{root}/train/portrait/{i}.png")
    save(window, f"{root}/train/window/0.png")
    images = {"centre": noise((256, 300, 3), 21), "resize": noise((300, 410, 3), 22),
              "photo": noise((333, 250, 3), 23)}
    save(images["centre"], f"{root}/test/landscape/centre.png")
    save(images["resize"], f"{root}/test/portrait/resize.png")
    save(images["photo"], f"{root}/test/window/photo.jpg", quality=95)
    return root, {"window": window, **images}


def _by_name(root, split):
    """Evaluation outputs of a folder split keyed by file stem."""
    ds = data.load(root, split, batch_size=2)
    images, _ = batches(ds)
    paths, _ = data.ImageFolder(root).files(split)  # the order load() reads them in
    return {os.path.splitext(os.path.basename(p))[0]: x for p, x in zip(paths, images)}


def test_folder_metadata(folder):
    root, _ = folder
    described = data.info(root)
    assert described["class_names"] == ["landscape", "portrait", "window"]
    assert described["splits"] == {"train": 13, "test": 3}
    assert data.input_shape(root) == (224, 224, 3)
    assert data.preprocessing_spec(root)["mean"] == pytest.approx(IMAGENET_MEAN.tolist())


def test_eval_crop_is_the_exact_centre(folder):
    root, images = folder
    out = denormalize(_by_name(root, "test")["centre"], IMAGENET_MEAN, IMAGENET_STD) * 255
    # Shorter side already 256: no resize, only the centre 224×224 of 256×300.
    np.testing.assert_allclose(out, images["centre"][16:240, 38:262], atol=1e-3)


def test_eval_resize_matches_numpy_bilinear(folder):
    root, images = folder
    outputs = _by_name(root, "test")
    out = denormalize(outputs["resize"], IMAGENET_MEAN, IMAGENET_STD) * 255
    # float32 (TensorFlow) against float64 (NumPy): far below one grey level.
    np.testing.assert_allclose(out, np_eval_reference(images["resize"]), atol=1e-2)
    # JPEG: decoded as PIL decodes it (libjpeg's accurate integer IDCT).
    decoded = np.asarray(Image.open(f"{root}/test/window/photo.jpg").convert("RGB"))
    photo = denormalize(outputs["photo"], IMAGENET_MEAN, IMAGENET_STD) * 255
    np.testing.assert_allclose(photo, np_eval_reference(decoded), atol=1e-2)


def _train_samples(root, recipe, epochs, seed=0):
    ds = data.load(root, "train", batch_size=13, recipe=recipe, seed=seed)
    assert ds.element_spec[0].shape.as_list() == [None, 224, 224, 3]
    names = data.class_names(root)
    for _ in range(epochs):
        images, labels = batches(ds)
        for image, label in zip(images, labels):
            yield names[label], denormalize(image, IMAGENET_MEAN, IMAGENET_STD) * 255


def _shorter_side(name, image):
    """The shorter side a ramp image was resized to, from the slope of its ramp."""
    ramp = image[:, :, 0] if name == "landscape" else image[:, :, 1].T
    slope = abs(np.median(np.diff(ramp, axis=0)))  # a flip reverses the portrait's ramp
    return 256 / slope


@pytest.mark.parametrize("recipe, low, high", [("resnet18", 256, 480), ("googlenet", 256, 320)])
def test_train_shorter_side_is_drawn_from_the_recipe_range(folder, recipe, low, high):
    sides = [_shorter_side(name, image)
             for name, image in _train_samples(folder[0], recipe, epochs=3)
             if name != "window"]
    assert len(sides) == 36
    assert all(low - 0.5 <= s <= high + 0.5 for s in sides), sides
    spread = (high - low) / 4
    assert min(sides) < low + spread and max(sides) > high - spread, sides


def test_alexnet_train_crop_is_a_window_of_the_256_image(folder):
    root, images = folder
    window = images["window"].astype(np.float64)
    flips, offsets = set(), set()
    for name, image in _train_samples(root, "alexnet", epochs=6):
        if name != "window":
            assert abs(_shorter_side(name, image) - 256) < 0.5
            continue
        found = []
        for flip in (False, True):
            source = window[:, ::-1] if flip else window
            for dy in range(256 - 224 + 1):
                # Every 224-wide window of row dy, against the crop's first row.
                rows = sliding_window_view(source[dy], 224, axis=0)  # (97, 3, 224)
                diff = np.abs(rows - image[0].T[None]).max(axis=(1, 2))
                found += [(flip, dy, dx) for dx in np.flatnonzero(diff < 1e-3)]
        assert found, "an AlexNet crop is not a window of the 256-pixel image"
        flip, dy, dx = found[0]
        source = window[:, ::-1] if flip else window
        np.testing.assert_allclose(image, source[dy:dy + 224, dx:dx + 224], atol=1e-3)
        flips.add(flip)
        offsets.add((dy, dx))
    assert flips == {False, True} and len(offsets) >= 5


def test_one_level_folder_is_the_all_split(tmp_path):
    save(noise((40, 50, 3), 30), f"{tmp_path}/cats/a.png")
    save(noise((60, 30), 31), f"{tmp_path}/dogs/b.png")  # grayscale file
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    assert data.info(tmp_path)["splits"] == {"all": 2}
    images, labels = batches(data.load(tmp_path, "all", batch_size=2))
    assert images.shape == (2, 224, 224, 3) and sorted(labels.tolist()) == [0, 1]
    with pytest.raises(ValueError, match=r"Received: split='train'"):
        data.load(tmp_path, "train", batch_size=2)


# ------------------------------------------------------------------ preprocess_eval API


def test_spec_survives_json_and_drives_preprocess_eval():
    spec = json.loads(json.dumps(data.preprocessing_spec("imagenet2012")))
    assert spec["input_shape"] == [224, 224, 3] and spec["resize_shorter_side"] == 256
    image = noise((230, 262, 3), 40)  # long side 291.6 rounds up to 292
    out = data.preprocess_eval(image, spec).numpy()
    np.testing.assert_allclose(denormalize(out, IMAGENET_MEAN, IMAGENET_STD) * 255,
                               np_eval_reference(image), atol=1e-2)
    constant = np.empty((300, 400, 3), np.uint8)
    constant[:] = (200, 30, 90)
    out = data.preprocess_eval(constant, spec).numpy()
    np.testing.assert_allclose(out[100, 100], (constant[0, 0] / 255 - IMAGENET_MEAN) / IMAGENET_STD,
                               rtol=1e-5, atol=1e-6)


def test_preprocess_eval_colour_conversions():
    gray_spec = data.preprocessing_spec("fashion_mnist")
    rgb = noise((28, 28, 3), 41)
    out = data.preprocess_eval(rgb, gray_spec).numpy()
    luma = rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R BT.601
    np.testing.assert_allclose(out[..., 0] * 0.3530 + 0.2860, luma / 255, atol=1e-5)
    rgba = np.concatenate([rgb, noise((28, 28, 1), 42)], axis=-1)
    np.testing.assert_allclose(data.preprocess_eval(rgba, gray_spec), out, atol=1e-6)
    cifar = data.preprocessing_spec("cifar10")
    gray = noise((32, 32), 43)
    out = denormalize(data.preprocess_eval(gray, cifar).numpy(), CIFAR_MEAN, CIFAR_STD) * 255
    np.testing.assert_allclose(out, np.repeat(gray[..., None], 3, axis=-1), atol=1e-3)


def test_preprocess_eval_refuses_bad_input():
    spec = data.preprocessing_spec("cifar10")
    with pytest.raises(ValueError, match="Received: dtype=float32"):
        data.preprocess_eval(np.zeros((32, 32, 3), np.float32), spec)
    with pytest.raises(ValueError, match=r"Received: shape=\(32, 32, 2\)"):
        data.preprocess_eval(np.zeros((32, 32, 2), np.uint8), spec)
    with pytest.raises(ValueError, match="Received: version=2"):
        data.preprocess_eval(np.zeros((32, 32, 3), np.uint8), {**spec, "version": 2})
    with pytest.raises(ValueError, match="Received: crop='random'"):
        data.preprocess_eval(np.zeros((32, 32, 3), np.uint8), {**spec, "crop": "random"})


def test_preprocess_train_is_repeatable_per_seed():
    spec = data.preprocessing_spec("imagenet2012")
    image = noise((260, 300, 3), 44)
    a = data.preprocess_train(image, spec, "resnet18", seed=[3, 4]).numpy()
    b = data.preprocess_train(image, spec, "resnet18", seed=[3, 4]).numpy()
    c = data.preprocess_train(image, spec, "resnet18", seed=[3, 5]).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# ---------------------------------------------- ImageNet through TFDS's own builder


def _tar_member(tar, name, payload):
    member = tarfile.TarInfo(name)
    member.size = len(payload)
    tar.addfile(member, io.BytesIO(payload))


def _jpeg(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_imagenet2012_prepared_from_manual_tars(tmp_path):
    # TFDS's builders import importlib_resources (not declared by tensorflow-datasets).
    pytest.importorskip("importlib_resources")
    manual = tmp_path / "downloads" / "manual"
    manual.mkdir(parents=True)
    train = {"n01440764": [noise((300, 400, 3), 50), noise((280, 260, 3), 51)],
             "n01443537": [noise((256, 256, 3), 52)]}
    with tarfile.open(manual / "ILSVRC2012_img_train.tar", "w") as outer:
        for wnid, arrays in train.items():
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as tar:
                for i, array in enumerate(arrays):
                    _tar_member(tar, f"{wnid}_{i}.JPEG", _jpeg(array))
            _tar_member(outer, f"{wnid}.tar", inner.getvalue())
    val = [noise((300, 350, 3), 53), noise((320, 240, 3), 54)]
    with tarfile.open(manual / "ILSVRC2012_img_val.tar", "w") as tar:
        for i, array in enumerate(val):
            _tar_member(tar, f"ILSVRC2012_val_{i + 1:08d}.JPEG", _jpeg(array))

    with pytest.raises(data.DataUnavailableError):
        data.info("imagenet2012", data_dir=tmp_path)  # not prepared, no download asked
    train_ds = data.load("imagenet2012", "train", batch_size=2, data_dir=tmp_path,
                         recipe="googlenet", download=True)
    images, labels = batches(train_ds)
    assert images.shape == (3, 224, 224, 3) and sorted(labels.tolist()) == [0, 0, 1]
    assert data.info("imagenet2012", data_dir=tmp_path)["splits"] == {"train": 3, "test": 2}

    # "test" is ImageNet's validation split; its labels come from TFDS's label files.
    images, labels = batches(data.load("imagenet2012", "validation", batch_size=2,
                                       data_dir=tmp_path))
    wnids = data.class_names("imagenet2012")
    assert len(wnids) == 1000 and wnids[:2] == ("n01440764", "n01443537")
    expected_wnids = ("n01751748", "n09193705")  # of ILSVRC2012 val images 1 and 2
    found = []
    for image, label in zip(images, labels):
        out = denormalize(image, IMAGENET_MEAN, IMAGENET_STD) * 255
        errors = [np.abs(out - np_eval_reference(np.asarray(Image.open(io.BytesIO(_jpeg(v))))))
                  .max() for v in val]
        assert min(errors) < 1e-2
        found.append(int(np.argmin(errors)))
        assert wnids[label] == expected_wnids[found[-1]]
    assert sorted(found) == [0, 1]
