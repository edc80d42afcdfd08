"""deploy.inputs: image decoding, preprocessing from the stored spec, .npy inputs, folders."""

import os

import numpy as np
import pytest
from PIL import Image

from deploy.errors import DeployError
from deploy.inputs import dataset_inputs, image_files, load_inputs, random_inputs, read_image
from deploy.tflite_model import TFLiteModel

from tests.conftest import needs_fashion
from tests.test_deploy_predict import _reference_inputs

SHAPE = (28, 28, 1)


@pytest.fixture(scope="module")
def spec(xnor_tflite):
    return TFLiteModel.load(xnor_tflite[0]).json_metadata("xnor_keras")["preprocessing"]


def test_fashion_pngs_preprocess_as_the_numpy_recipe(fashion_pngs, spec):
    _, paths, images, _ = fashion_pngs
    x = load_inputs(paths, spec, SHAPE)
    assert x.dtype == np.float32 and x.shape == (len(paths), *SHAPE)
    np.testing.assert_allclose(x, _reference_inputs(images), rtol=0, atol=1e-6)


@needs_fashion
def test_dataset_inputs_are_the_first_test_images(fashion_pngs):
    _, _, images, _ = fashion_pngs
    x = dataset_inputs("fashion_mnist", 5, SHAPE)
    np.testing.assert_allclose(x, _reference_inputs(images[:5]), rtol=0, atol=1e-6)
    with pytest.raises(DeployError, match="expects"):
        dataset_inputs("fashion_mnist", 5, (32, 32, 3))
    with pytest.raises(DeployError, match="unknown data set 'nope'"):
        dataset_inputs("nope", 5, SHAPE)


def test_read_image_modes(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 7), np.uint8)
    rgb = rng.integers(0, 256, (5, 7, 3), np.uint8)
    rgba = rng.integers(0, 256, (5, 7, 4), np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(rgba).save(tmp_path / "a.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.gif")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), gray[:, :, None])
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgba)
    palette = read_image(tmp_path / "p.gif")
    expected = np.asarray(Image.open(tmp_path / "p.gif").convert("RGB"))
    assert palette.shape == (5, 7, 3) and palette.dtype == np.uint8
    np.testing.assert_array_equal(palette, expected)
    (tmp_path / "t.jpg").write_text("not an image")
    with pytest.raises(DeployError, match="not a readable image"):
        read_image(tmp_path / "t.jpg")
    with pytest.raises(DeployError, match="no such file"):
        read_image(tmp_path / "missing.png")


def test_npy_inputs(tmp_path, spec):
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float64)
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "batched.npy", x[None])
    np.save(tmp_path / "wrong.npy", x[:, :27])
    np.save(tmp_path / "bool.npy", x > 0)
    out = load_inputs([tmp_path / "a.npy", tmp_path / "batched.npy"], None, SHAPE)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.stack([x, x]).astype(np.float32))
    with pytest.raises(DeployError, match=r"wrong.npy: input of shape \(28, 27, 1\)"):
        load_inputs([tmp_path / "wrong.npy"], spec, SHAPE)
    with pytest.raises(DeployError, match="not numeric"):
        load_inputs([tmp_path / "bool.npy"], spec, SHAPE)
    with pytest.raises(DeployError, match="no such file"):
        load_inputs([tmp_path / "missing.npy"], spec, SHAPE)


def test_images_need_a_matching_spec(tmp_path, spec):
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(tmp_path / "z.png")
    with pytest.raises(DeployError, match="no preprocessing spec"):
        load_inputs([tmp_path / "z.png"], None, SHAPE)
    with pytest.raises(DeployError, match=r"produces \(28, 28, 1\) inputs but the model "
                                          r"expects \(32, 32, 1\)"):
        load_inputs([tmp_path / "z.png"], spec, (32, 32, 1))


def test_image_files_recursive_sorted_images_only(tmp_path):
    for name in ("b/2.png", "b/1.JPG", "a.bmp", ".hidden.png", "notes.txt", "c/d/e.gif"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [os.path.relpath(path, tmp_path) for path in image_files(tmp_path)]
    assert found == ["a.bmp", "b/1.JPG", "b/2.png", "c/d/e.gif"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DeployError, match="holds no images"):
        image_files(tmp_path / "empty")
    with pytest.raises(DeployError, match="not a directory"):
        image_files(tmp_path / "a.bmp")


def test_random_inputs_are_seeded_standard_normal():
    a = random_inputs(200, SHAPE, seed=3)
    assert a.shape == (200, *SHAPE) and a.dtype == np.float32
    np.testing.assert_array_equal(a, random_inputs(200, SHAPE, seed=3))
    assert not np.array_equal(a, random_inputs(200, SHAPE, seed=4))
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1) < 0.01  # 156,800 samples: σ/√n ≈ 0.003
