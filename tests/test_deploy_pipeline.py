"""The main job (`deploy.pipeline`) end to end on real Fashion-MNIST, shortened: train on
4,096 images for one epoch, convert, verify, measure the .tflite on the whole test set,
bench, report. The report's accuracies are checked against ones recomputed here from
the saved files, by Keras and by LCE's own interpreter, on the raw IDX test images."""

import gzip
import json
import os

import numpy as np

from deploy.artifacts import METADATA_NAME
from deploy.pipeline import run_main_job
from deploy.runtime import default_runtime
from deploy.tflite_model import TFLiteModel

from tests.conftest import needs_fashion

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _idx(name):
    """An IDX file read directly (header: 0, 0, dtype 0x08, ndim; big-endian dims)."""
    with gzip.open(os.path.join(FASHION_DIR, name)) as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _preprocess(images, spec):
    """The .tflite's recorded preprocessing (28×28 gray: no resize or crop):
    (pixel / scale − mean) / std, float32 NHWC."""
    assert spec["input_shape"] == [28, 28, 1] and spec["scale"] == 255.0
    x = images.astype(np.float32)[..., None] / np.float32(spec["scale"])
    return (x - np.float32(spec["mean"][0])) / np.float32(spec["std"][0])


@needs_fashion
def test_main_job_report_matches_accuracies_recomputed_from_its_files(tmp_path):
    import tensorflow as tf
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    import xnor_keras  # noqa: F401  (registers the custom layers for loading)

    report = run_main_job(output_dir=str(tmp_path), epochs=1, train_limit=4096, verify_n=50,
                          bench_runs=3)
    for name in ("model.keras", "model.tflite", "report.md", "report.json", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]

    images, labels = _idx("t10k-images-idx3-ubyte.gz"), _idx("t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28)
    keras_model = tf.keras.models.load_model(str(tmp_path / "model.keras"), compile=False)
    flatbuffer = (tmp_path / "model.tflite").read_bytes()
    spec = TFLiteModel(flatbuffer).json_metadata(METADATA_NAME)["preprocessing"]
    x = _preprocess(images, spec)
    keras_top1 = float(np.mean(np.argmax(keras_model.predict(x, batch_size=500, verbose=0),
                                         axis=1) == labels))
    lce = Interpreter(flatbuffer, num_threads=1)
    lce_pred = np.concatenate([np.argmax(lce.predict(x[i:i + 1]), axis=1)
                               for i in range(len(x))])
    tflite_top1 = float(np.mean(lce_pred == labels))

    # After 32 training steps the model is far from chance but not yet good.
    assert 0.3 < keras_top1 < 0.95
    assert abs(report["keras_test_top1"] - keras_top1) <= 1e-4
    assert abs(report["tflite_test_top1"] - tflite_top1) <= 1e-4
    assert abs(tflite_top1 - keras_top1) <= 0.01
    assert report["binary_layers"] == 4 and report["binary_layers_in_float"] == 0
    assert report["verify"]["n"] == 50 and report["verify"]["top1_agreement"] >= 0.98
    # A trained model's conversion is certified layer by layer (deploy.certify).
    assert report["verify"]["passed"], report["verify"]["verdict"]
    assert report["verify"]["verdict"].startswith("PASS (lce): ")
    assert "verify (layer-wise) | PASS (lce): " in (tmp_path / "report.md").read_text()
    sizes = report["sizes"]
    assert sizes["tflite_bytes"] == len(flatbuffer)
    assert sizes["float_twin_weight_bytes"] > 10 * sizes["tflite_bytes"]
    base = f"binary ({default_runtime()})"
    assert list(report["latency_ms"]) == [base, "float32 twin (TFLite+XNNPACK)",
                                          "int8 twin (TFLite+XNNPACK)"]
    assert all(np.isfinite(ms) and ms > 0 for ms in report["latency_ms"].values())
    assert "4 LceBconv2d" in report["kernels"] or default_runtime() != "native"

    table = (tmp_path / "report.md").read_text()
    assert f"| test top-1, Keras | {100 * keras_top1:.2f}% |" in table
    assert f"| test top-1, .tflite (LCE) | {100 * tflite_top1:.2f}% |" in table
    assert "| binary layers in binary ops | 4 of 4 |" in table
    assert f"| kernels of {base} | {report['kernels']} |" in table
    assert json.loads((tmp_path / "report.json").read_text())["tflite_test_top1"] == \
        report["tflite_test_top1"]
