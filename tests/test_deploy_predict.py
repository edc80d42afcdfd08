"""deploy.predict: top-k of real images equals the runner's and Keras's argmax."""

import numpy as np
import pytest
import tensorflow as tf

from deploy.errors import DeployError
from deploy.predict import predict_files
from deploy.runtime import make_interpreter
from deploy.tflite_model import TFLiteModel

from tests.conftest import FASHION_LABELS

# Fashion-MNIST's published normalisation (mean, std of the training pixels / 255).
MEAN, STD = 0.2860, 0.3530


def _reference_inputs(images):
    """The model inputs, from the paper's recipe in NumPy: x / 255, then (x − μ) / σ."""
    return ((images.astype(np.float64) / 255.0 - MEAN) / STD).astype(np.float32)[..., None]


def test_top1_equals_runner_and_keras_argmax_on_fashion_images(xnor_tflite, fashion_pngs):
    tflite_path, keras_path = xnor_tflite
    _, paths, images, _ = fashion_pngs
    x = _reference_inputs(images)
    keras_logits = tf.keras.models.load_model(keras_path).predict(x, verbose=0)
    runner = make_interpreter(tflite_path.read_bytes(), "lce")
    runner_logits = np.concatenate([runner.run(x[i:i + 1]) for i in range(len(x))])
    predictions = predict_files(tflite_path, paths, top=10, runtime="lce")
    assert [p.path for p in predictions] == [str(p) for p in paths]
    for prediction, logits, keras in zip(predictions, runner_logits, keras_logits):
        labels = [label for label, _ in prediction.top]
        assert labels[0] == FASHION_LABELS[int(np.argmax(logits))]
        assert labels[0] == FASHION_LABELS[int(np.argmax(keras))]
        assert sorted(labels) == sorted(FASHION_LABELS)  # top=10: every class once
        e = np.exp(logits.astype(np.float64) - logits.max())
        expected = dict(zip(FASHION_LABELS, e / e.sum()))
        np.testing.assert_allclose([s for _, s in prediction.top],
                                   [expected[label] for label in labels], rtol=1e-6, atol=1e-9)
        assert all(a[1] >= b[1] for a, b in zip(prediction.top, prediction.top[1:]))
    # The default runtime (native kernels on x86-64) predicts the same classes.
    default = predict_files(tflite_path, paths, top=1)
    assert [p.top[0][0] for p in default] == [p.top[0][0] for p in predictions]


def test_top_k_is_a_prefix_and_format_lists_it(xnor_tflite, fashion_pngs):
    tflite_path, _ = xnor_tflite
    _, paths, _, _ = fashion_pngs
    (full,) = predict_files(tflite_path, paths[:1], top=10, runtime="lce")
    (three,) = predict_files(tflite_path, paths[:1], top=3, runtime="lce")
    assert three.top == full.top[:3] and len(three.top) == 3
    lines = three.format().splitlines()
    assert lines[0] == f"{paths[0]}:" and len(lines) == 4
    assert lines[1] == f"  1. {full.top[0][0]}  {full.top[0][1]:.4f}"


def test_a_colour_photo_of_another_size(xnor_tflite, tmp_path):
    # Converted to grey, resized and cropped to 28×28 by the stored spec: the scores are
    # the softmax of the runner's logits on that input, best first, labels from metadata.
    from PIL import Image

    from deploy.inputs import load_inputs

    tflite_path, _ = xnor_tflite
    image = (np.arange(40 * 30 * 3) % 251).astype(np.uint8).reshape(40, 30, 3)
    Image.fromarray(image).save(tmp_path / "shirt.png")
    (prediction,) = predict_files(tflite_path, [tmp_path / "shirt.png"], top=3, runtime="lce")
    spec = TFLiteModel.load(tflite_path).json_metadata("xnor_keras")["preprocessing"]
    x = load_inputs([tmp_path / "shirt.png"], spec, (28, 28, 1))
    assert x.shape == (1, 28, 28, 1)
    logits = make_interpreter(tflite_path.read_bytes(), "lce").run(x).reshape(-1)
    order = np.argsort(-logits)[:3]
    assert [label for label, _ in prediction.top] == [FASHION_LABELS[i] for i in order]
    e = np.exp(logits - logits.max())
    np.testing.assert_allclose([s for _, s in prediction.top], (e / e.sum())[order], rtol=1e-6)


def test_labels_come_from_the_metadata(xnor_tflite):
    assert TFLiteModel.load(xnor_tflite[0]).json_metadata("xnor_keras")["labels"] == \
        list(FASHION_LABELS)


def test_bad_inputs_raise_deploy_errors(xnor_tflite, tmp_path):
    tflite_path, _ = xnor_tflite
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DeployError, match="not a readable image"):
        predict_files(tflite_path, [tmp_path / "notes.txt"])
    with pytest.raises(DeployError, match="no images given"):
        predict_files(tflite_path, [])
    with pytest.raises(DeployError, match="--top must be a positive integer"):
        predict_files(tflite_path, [tmp_path / "notes.txt"], top=0)
