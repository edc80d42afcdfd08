"""Tests of xnor_keras.data's IDX reader (`read_idx`) and its IDX-files source, on
generated files whose layout is written here from the format's definition."""

import gzip
import struct

import numpy as np
import pytest

from xnor_keras import data

from tests.data_helpers import batches, denormalize, noise


def idx_bytes(array, type_code=0x08):
    header = struct.pack(">HBB", 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def test_read_idx_of_generated_files(tmp_path):
    images = noise((5, 4, 3), 0)
    labels = np.arange(-3, 3, dtype=np.int16).reshape(2, 3) * 1000
    (tmp_path / "images.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "labels").write_bytes(idx_bytes(labels, 0x0B))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "images.gz"), images)
    read = data.read_idx(tmp_path / "labels")
    np.testing.assert_array_equal(read, labels)
    assert read.dtype == np.int16 and read.dtype.isnative


@pytest.mark.parametrize("corruption, message", [
    (lambda b: b"\x08\x03" + b[2:], "bad magic number 0x0803"),
    (lambda b: b[:2] + b"\x42" + b[3:], "bad magic number"),
    (lambda b: b[:10], "truncated"),
    (lambda b: b[:-7], "holds 53 bytes"),
    (lambda b: b + b"\0", "holds 61 bytes"),
    (lambda b: b"", "bad magic number 0xempty"),
])
def test_read_idx_rejects_corrupt_files(tmp_path, corruption, message):
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(corruption(idx_bytes(noise((3, 4, 5), 1))))
    with pytest.raises(data.DataUnavailableError, match=message) as error:
        data.read_idx(path)
    assert str(path) in str(error.value)


def test_read_idx_rejects_a_broken_gzip_stream(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_bytes(noise((20, 28, 28), 2)))[:-40])
    with pytest.raises(data.DataUnavailableError, match="corrupt"):
        data.read_idx(path)


def _write_mnist_idx(directory, counts, label_counts=None):
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = noise((counts[split], 28, 28), hash(split) % 1000)
        labels = (np.arange((label_counts or counts)[split]) % 10).astype(np.uint8)
        (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (directory / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
        arrays[split] = images, labels
    return arrays


def test_mnist_from_idx_files_in_data_dir(tmp_path):
    arrays = _write_mnist_idx(tmp_path / "mnist", {"train": 30, "test": 12})
    assert data.info("mnist", data_dir=tmp_path)["splits"] == {"train": 30, "test": 12}
    images, labels = batches(data.load("mnist", "test", batch_size=5, data_dir=tmp_path))
    assert images.shape == (12, 28, 28, 1)
    np.testing.assert_array_equal(labels, arrays["test"][1])
    # MNIST's published training statistics: mean 0.1307, std 0.3081.
    np.testing.assert_allclose(denormalize(images[..., 0], 0.1307, 0.3081),
                               arrays["test"][0] / 255.0, atol=1e-6)
    train = data.load("mnist", "train", batch_size=8, data_dir=tmp_path, recipe="fashion_net")
    assert batches(train)[0].shape == (30, 28, 28, 1)


def test_mnist_with_mismatched_label_file_is_refused(tmp_path):
    _write_mnist_idx(tmp_path, {"train": 30, "test": 12}, {"train": 29, "test": 12})
    with pytest.raises(data.DataUnavailableError, match=r"\(29,\) labels for 30 images"):
        data.info("mnist", data_dir=tmp_path)
