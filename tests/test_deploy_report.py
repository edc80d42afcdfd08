"""deploy.report: per-layer attribution of a real conversion, against Keras's own counts;
totals and formatting of hand-written rows."""

import pytest
import tensorflow as tf

from deploy import report
from deploy.inspection import inspect_file

from tests.test_deploy_inspection import BINARY, keras_macs


def test_human_units():
    assert report.human_bytes(100) == "100 B"
    assert report.human_bytes(1536) == "1.5 KiB"
    assert report.human_bytes(3 * 1024 ** 2) == "3.0 MiB"
    assert report.human_bytes(5 * 1024 ** 4) == "5120.0 GiB"
    assert report.human_count(999) == "999"
    assert report.human_count(1234567) == "1.23 M"
    assert report.human_count(14_745_600) == "14.75 M" and report.human_count(2.5e9) == "2.50 G"


@pytest.fixture(scope="module")
def rows(xnor_tflite):
    tflite_path, keras_path = xnor_tflite
    built = inspect_file(tflite_path).report
    return {row.name: row for row in built.rows}, tf.keras.models.load_model(keras_path), built


def test_each_binary_layer_owns_its_bconv_and_its_macs(rows):
    by_name, model, _ = rows
    macs = keras_macs(model)
    for name in BINARY:
        row = by_name[name]
        assert row.kind == "binary" and row.ops.get("LceBconv2d") == 1, (name, row.ops)
        assert row.binary_macs == macs[name] == row.float_twin_macs
        # The paper's K = A ∗ k (eq. 10–11): for a conv, a one-channel k_h×k_w averaging
        # conv over A = mean_c |I|, one MAC per tap and output position; for a dense layer
        # K is the scalar mean |x| (no conv). The only float MACs of a binary layer.
        layer = model.get_layer(name)
        if isinstance(layer, tf.keras.layers.Conv2D):
            _, h, w, _ = layer.output_shape
            assert row.float_macs == h * w * layer.kernel_size[0] * layer.kernel_size[1]
        else:
            assert row.float_macs == 0 and row.ops.get("MEAN") == 1, (name, row.ops)
    for name in ("conv1", "logits"):
        assert by_name[name].kind == "float" and by_name[name].binary_macs == 0
        assert by_name[name].float_macs >= macs[name] == by_name[name].float_twin_macs


def test_totals_match_keras(rows):
    _, model, built = rows
    s = built.summary()
    macs = keras_macs(model)
    assert s["float_twin_macs"] == sum(macs.values())
    assert s["binary_macs"] == sum(macs[name] for name in BINARY)
    assert (s["binary_layers"], s["binary_layers_in_binary_ops"], s["binary_layers_in_float"]) == \
        (4, 4, 0)
    # Float twin: 4 bytes per weight of every conv / dense layer at least (kernels alone).
    kernels = sum(int(layer.kernel.shape.num_elements()) for layer in model.layers
                  if hasattr(layer, "kernel"))
    assert s["float_twin_bytes"] >= 4 * kernels
    assert sum(row.bytes for row in built.rows) <= built.weight_bytes


def _row(name, kind, **values):
    fields = dict(class_name="X", lowering="", ops={}, bytes=0, binary_macs=0, float_macs=0,
                  float_twin_bytes=0, float_twin_macs=0, notes=[])
    fields.update(values)
    return report.LayerRow(name=name, kind=kind, **fields)


def test_summary_and_format_of_hand_written_rows():
    rows = [_row("a", "binary", binary_macs=100, float_twin_bytes=40, float_twin_macs=100,
                 ops={"LceBconv2d": 1}),
            _row("b", "binary-weight", float_macs=50, float_twin_bytes=8, float_twin_macs=50,
                 ops={"LceDequantize": 1, "CONV_2D": 1}),
            _row("c", "float-binary", float_macs=7, ops={"CONV_2D": 2}),
            _row("d", "fallback", float_macs=3, notes=["k-bit"], ops={"CONV_2D": 1}),
            _row("e", "other")]
    r = report.Report(rows=rows, file_bytes=12, weight_bytes=10, problems=["careful"])
    assert r.summary() == {
        "binary_layers": 4, "binary_layers_in_binary_ops": 1, "binary_weight_layers": 1,
        "binary_layers_in_float": 2, "weight_bytes": 10, "float_twin_bytes": 48,
        "binary_macs": 100, "float_macs": 60, "float_twin_macs": 150,
        "float_fallback_layers": ["c", "d"], "int8_layers": [], "int8_macs": 0}
    lines = r.format().splitlines()
    assert [line.split()[0] for line in lines[2:6]] == ["a", "b", "c", "d"]  # "e" is empty
    assert "FLOAT (binary layer!)" in lines[4] and "CONV_2D×2" in lines[4]
    assert "float (fallback)" in lines[5]
    assert "48 B of float32 weights: 4.0x smaller" in r.format()
    assert lines[-2:] == ["  d: k-bit", "WARNING: careful"]


def test_int8_rows_are_counted_and_named():
    rows = [_row("stem", "int8", float_macs=900, ops={"QUANTIZE": 1, "CONV_2D": 1}),
            _row("body", "binary", binary_macs=5000, ops={"LceBconv2d": 1}),
            _row("head", "float", float_macs=40, ops={"FULLY_CONNECTED": 1})]
    r = report.Report(rows=rows, file_bytes=10)
    s = r.summary()
    assert s["int8_layers"] == ["stem"] and s["int8_macs"] == 900 and s["float_macs"] == 940
    text = r.format()
    assert "int8 (calibrated)" in text.splitlines()[2]
    assert "int8 float layers: stem (900 of the float MACs run in int8;" in text
