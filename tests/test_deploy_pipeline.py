"""The main job end to end on real Fashion-MNIST, shortened: train on 4,096 images for one
epoch, convert, verify, measure the .tflite on the whole test set, bench, report."""

import json

import numpy as np

from deploy.runtime import default_runtime
from xnor_keras.main_job import format_report, run_main_job

from tests.conftest import needs_fashion


@needs_fashion
def test_main_job_trains_converts_verifies_and_reports(tmp_path):
    report = run_main_job(output_dir=str(tmp_path), epochs=1, train_limit=4096, verify_n=50,
                          bench_runs=3)
    for name in ("model.keras", "model.tflite", "report.md", "report.json", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert report["binary_layers"] == 4 and report["binary_layers_in_float"] == 0
    # Both accuracies are measured on all 10,000 test images, by Keras and by LCE; after
    # 32 training steps the model is far from chance but not yet good.
    assert 0.3 < report["keras_test_top1"] < 0.95
    assert abs(report["tflite_test_top1"] - report["keras_test_top1"]) <= 0.01
    assert report["verify"]["n"] == 50 and report["verify"]["top1_agreement"] >= 0.98
    sizes = report["sizes"]
    assert sizes["float_twin_weight_bytes"] > 10 * sizes["tflite_bytes"]
    base = f"binary ({default_runtime()})"
    assert list(report["latency_ms"]) == [base, "float32 twin (TFLite+XNNPACK)",
                                          "int8 twin (TFLite+XNNPACK)"]
    assert all(np.isfinite(ms) and ms > 0 for ms in report["latency_ms"].values())
    assert "4 LceBconv2d" in report["kernels"] or default_runtime() != "native"
    table = (tmp_path / "report.md").read_text()
    assert table == format_report(report, base)
    assert "| binary layers in binary ops | 4 of 4 |" in table
    assert f"| kernels of {base} | {report['kernels']} |" in table
