"""deploy.bench: the float twins, one-op models, interleaved timing, bench_file."""

import numpy as np
import pytest
import tensorflow as tf

from deploy.bench import (CpuTimes, bench_file, float_twin, one_op_model, op_class,
                          pad_conv_pairs, steal_share, sub_model, twin_flatbuffers)
from deploy.errors import DeployError
from deploy.tflite_model import TFLiteModel
from xnor_keras.layers import XnorConv2D, XnorDense

from tests.test_deploy_inspection import keras_macs


@pytest.fixture(scope="module")
def model(xnor_tflite):
    return tf.keras.models.load_model(xnor_tflite[1])


def test_float_twin_has_the_same_shapes_and_no_binary_layer(model):
    twin = float_twin(model)
    assert not any(isinstance(layer, (XnorConv2D, XnorDense)) for layer in twin.layers)
    assert [layer.name for layer in twin.layers] == [layer.name for layer in model.layers]
    for ours, theirs in zip(model.layers, twin.layers):
        assert ours.output_shape == theirs.output_shape
        if hasattr(ours, "kernel"):
            assert ours.kernel.shape == theirs.kernel.shape
            assert type(theirs) in (tf.keras.layers.Conv2D, tf.keras.layers.Dense)
    assert keras_macs(twin) == keras_macs(model)


def test_twin_flatbuffers_are_stock_tflite(model):
    twins = twin_flatbuffers(model)
    float32, int8 = TFLiteModel(twins["float32"]), TFLiteModel(twins["int8"])
    assert not any(name.startswith("Lce") for name in float32.op_census())
    assert float32.op_census()["CONV_2D"] == 4 and float32.op_census()["FULLY_CONNECTED"] == 2
    assert int8.op_census()["CONV_2D"] == 4
    assert "INT8" in {t.dtype for t in int8.tensors} and "INT8" not in \
        {t.dtype for t in float32.tensors}


def _run_whole(flatbuffer, x):
    """The whole model invoked on ``x`` on stock TFLite (no XNNPACK), every tensor kept:
    the reference the cut-out models are checked against."""
    whole = tf.lite.Interpreter(
        model_content=flatbuffer, experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.
        BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    whole.allocate_tensors()
    whole.set_tensor(whole.get_input_details()[0]["index"], x.astype(np.float32))
    whole.invoke()
    return whole


def test_one_op_model_computes_the_op_as_in_the_whole_model(model):
    # Reference: the whole float twin on stock TFLite, every intermediate tensor kept.
    flatbuffer = twin_flatbuffers(model, int8=False)["float32"]
    whole = _run_whole(flatbuffer, np.random.default_rng(0).standard_normal((1, 28, 28, 1)))
    tflite = TFLiteModel(flatbuffer)
    for op in tflite.ops:
        one = tf.lite.Interpreter(model_content=one_op_model(flatbuffer, op.index))
        one.allocate_tensors()
        inputs = [i for i in op.inputs if i >= 0 and not tflite.tensors[i].constant]
        assert len(one.get_input_details()) == len(inputs), op.name
        for detail, index in zip(one.get_input_details(), inputs):
            one.set_tensor(detail["index"], whole.get_tensor(index))
        one.invoke()
        np.testing.assert_allclose(one.get_tensor(one.get_output_details()[0]["index"]),
                                   whole.get_tensor(op.outputs[0]), rtol=1e-5, atol=1e-5,
                                   err_msg=op.name)


def test_pad_and_its_convolution_are_cut_out_as_a_pair():
    """A ZeroPadding2D + strided Conv2D stem (AlexNet's) lowers to PAD -> CONV_2D; the pair,
    cut out as one model, computes what the two ops compute in the whole model (stock TFLite
    reference)."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((24, 24, 3))  # not SAME-foldable, as at 224
    x = tf.keras.layers.ZeroPadding2D(2)(inputs)
    x = tf.keras.layers.Conv2D(8, 5, strides=2, use_bias=False)(x)
    outputs = tf.keras.layers.ReLU()(tf.keras.layers.MaxPooling2D()(x))
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(
        tf.keras.Model(inputs, outputs)).convert()
    tflite = TFLiteModel(flatbuffer)
    pairs = pad_conv_pairs(tflite)
    assert len(pairs) == 1
    pad, conv = next(iter(pairs.items()))
    assert (tflite.ops[pad].name, tflite.ops[conv].name) == ("PAD", "CONV_2D")
    whole = _run_whole(flatbuffer, np.random.default_rng(1).standard_normal((1, 24, 24, 3)))
    cut = tf.lite.Interpreter(model_content=sub_model(flatbuffer, [pad, conv]))
    cut.allocate_tensors()
    (inp,), (out,) = cut.get_input_details(), cut.get_output_details()
    cut.set_tensor(inp["index"], whole.get_tensor(tflite.ops[pad].inputs[0]))
    cut.invoke()
    np.testing.assert_allclose(cut.get_tensor(out["index"]),
                               whole.get_tensor(tflite.ops[conv].outputs[0]), rtol=1e-5, atol=1e-5)
    from deploy.bench import profile_flatbuffer

    rows = profile_flatbuffer(flatbuffer, runs=1, warmup=0, progress=False).rows
    assert rows[pad]["ms"] == 0 and rows[pad]["method"] == f"fused into node {conv} (timed with it)"
    assert rows[conv]["method"] == f"two-op model with PAD node {pad}"
    assert rows[conv]["class"] == "float conv/FC" and rows[pad]["class"] == "glue"


def test_op_class():
    assert op_class("LceBconv2d") == op_class("LceQuantize") == "binary"
    assert op_class("CONV_2D") == op_class("FULLY_CONNECTED") == "float conv/FC"
    assert op_class("ADD") == op_class("MAX_POOL_2D") == "glue"


def test_bench_file_times_every_runner_every_run(xnor_tflite):
    result = bench_file(xnor_tflite[0], runs=4, warmup=1, runtime="lce", int8=False,
                        progress=False)
    assert result.labels == ["binary (lce)", "float32 twin (TFLite+XNNPACK)"]
    assert all(len(result.times[label]) == 4 and min(result.times[label]) > 0
               for label in result.labels)
    base, twin = (1e3 * np.median(result.times[label]) for label in result.labels)
    assert result.median_ms(result.labels[1]) == pytest.approx(twin)
    lines = result.format().splitlines()
    assert lines[2].endswith(" 1.00x")
    speedup = twin / base
    assert lines[-1] == (f"binary (lce) is {speedup:.2f}x faster than float32 twin "
                         f"(TFLite+XNNPACK)" if speedup >= 1 else
                         f"binary (lce) is {1 / speedup:.2f}x slower than float32 twin "
                         f"(TFLite+XNNPACK)")
    with pytest.raises(DeployError, match="--runs must be a positive integer"):
        bench_file(xnor_tflite[0], runs=0)


def test_bench_against_times_another_file_in_the_same_rounds(xnor_tflite, tmp_path):
    from deploy.convert import convert_model

    copy = tmp_path / "copy.tflite"
    copy.write_bytes(xnor_tflite[0].read_bytes())
    result = bench_file(xnor_tflite[0], runs=3, warmup=0, runtime="lce", int8=False,
                        progress=False, against=[copy])
    assert result.labels == ["model.tflite (lce)", "copy.tflite (lce)",
                             "float32 twin (TFLite+XNNPACK)"]
    assert all(len(result.times[label]) == 3 for label in result.labels)
    x = tf.keras.Input((8, 8, 3))
    other = convert_model(tf.keras.Model(x, tf.keras.layers.Dense(2)(
        tf.keras.layers.Flatten()(x)))).flatbuffer
    (tmp_path / "other.tflite").write_bytes(other)
    with pytest.raises(DeployError, match="--against .*other.tflite: input"):
        bench_file(xnor_tflite[0], runs=1, runtime="lce", int8=False, progress=False,
                   against=[tmp_path / "other.tflite"])


def test_cpu_times_read_the_cpu_line_of_proc_stat(tmp_path):
    # /proc/stat's aggregate line: user nice system idle iowait irq softirq steal guest
    # guest_nice (proc(5)); guest time is part of user, so it is not added again.
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 30 800 10 1 2 52 40 0\ncpu0 50 2 15 400 5 0 1 26 20 0\n")
    assert CpuTimes.read(str(stat)) == CpuTimes(total=100 + 5 + 30 + 800 + 10 + 1 + 2 + 52,
                                                steal=52)
    later = CpuTimes(total=1000 + 400, steal=52 + 20)
    assert steal_share(CpuTimes.read(str(stat)), later) == pytest.approx(20 / 400)


def test_cpu_times_without_proc_stat_give_no_steal_share(tmp_path):
    assert CpuTimes.read(str(tmp_path / "missing")) is None
    (tmp_path / "odd").write_text("intr 1 2 3\n")
    assert CpuTimes.read(str(tmp_path / "odd")) is None
    assert steal_share(None, CpuTimes(total=10, steal=1)) is None
    assert steal_share(CpuTimes(total=10, steal=1), CpuTimes(total=10, steal=1)) is None
