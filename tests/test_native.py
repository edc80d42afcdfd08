"""Tests for the native binary kernels (native/, deploy/native.py).

Oracles: LCE's own interpreter (reference and optimized indirect-BGEMM kernels) on
models converted by LCE's converter, and, for the C++ unit tests, a convolution written
from the definition in native/tests/kernel_tests.cc. Every LCE op of each converted model
is also cut out into a one-op model and run on the same input by both runtimes, so each
kernel is compared exactly (bitpacked/int8 outputs bit for bit, float outputs bit for bit
with LCE's optimized kernels and to 1e-5 of the tensor's scale with its reference kernel).
"""

import os
import shutil
import subprocess

import flatbuffers
import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from deploy import native
from deploy.artifacts import METADATA_NAME
from deploy.errors import DeployError
from deploy.tflite_model import LCE_OPS, TFLiteModel, schema

# TFLite versions whose C structs were checked against native/tflite_abi.h.
VERIFIED_TENSORFLOW = ("2.21.0",)
KERNEL_SOURCES = [native.NATIVE_DIR / name for name in native.LIBRARY_SOURCES
                  if name != "delegate.cc"]
KERNEL_TEST = native.NATIVE_DIR / "tests" / "kernel_tests.cc"


def _cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


# What the library's CPUID check must find on this machine (x86-64 only).
HOST_HAS_AVX2 = os.uname().machine == "x86_64" and {"avx2", "popcnt", "bmi2"} <= _cpu_flags()
HOST_HAS_AVX512 = HOST_HAS_AVX2 and {"avx512f", "avx512bw", "avx512vl",
                                     "avx512_vpopcntdq"} <= _cpu_flags()


def _lce_interpreter(flatbuffer, *, reference):
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    return Interpreter(flatbuffer, num_threads=1, use_reference_bconv=reference,
                       use_indirect_bgemm=not reference, use_xnnpack=False)


def _lce_run(flatbuffer, x, *, reference):
    """LCE's output, or None when LCE's kernel refuses the op (e.g. zero padding with
    integer output in the optimized kernels)."""
    try:
        return _lce_interpreter(flatbuffer, reference=reference).predict(x[None])
    except RuntimeError:
        return None


def _native_run(flatbuffer, x, *, isa=None, num_threads=1, use_xnnpack=False):
    interpreter = native.tflite_interpreter(flatbuffer, isa=isa, num_threads=num_threads,
                                            use_xnnpack=use_xnnpack)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[None])
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return out, native.delegate_report(interpreter.xnor_keras_delegate)


def _assert_close(actual, expected):
    """Float outputs within 1e-5 of the tensor's largest magnitude."""
    scale = max(float(np.max(np.abs(expected))), 1e-30)
    np.testing.assert_array_less(np.abs(actual - expected), 1e-5 * scale + 1e-30)


# ------------------------------------------------------------ one-op models ---

def _single_op_model(flatbuffer, op_index, *, int8_output=None, int8_input=None):
    """The op `op_index` alone: its activation input and output become the model's.

    ``int8_output=(scale, zero_point)`` / ``int8_input`` retype that tensor to int8
    (LCE's int8 paths, which its converter only emits for quantization-aware models).
    """
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    graph = model.subgraphs[0]
    op = graph.operators[op_index]
    graph.operators = [op]
    graph.inputs = np.array([op.inputs[0]], np.int32)
    graph.outputs = np.array([op.outputs[0]], np.int32)
    model.signatureDefs = []
    # The deploy metadata describes the whole converted model (its input and output shapes),
    # which this one-op model no longer is: deploy.validation would rightly reject it.
    model.metadata = [m for m in model.metadata or []
                      if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    for index, quant in ((op.outputs[0], int8_output), (op.inputs[0], int8_input)):
        if quant is not None:
            tensor = graph.tensors[index]
            tensor.type = schema.TensorType.INT8
            tensor.quantization = schema.QuantizationParametersT()
            tensor.quantization.scale = [float(quant[0])]
            tensor.quantization.zeroPoint = [int(quant[1])]
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _random_input(flatbuffer, rng):
    """A random input for a one-op model; bitpacked words keep unused bits zero."""
    model = TFLiteModel(flatbuffer)
    tensor = model.inputs[0]
    shape = tensor.shape[1:]
    if tensor.dtype == "FLOAT32":
        x = rng.normal(size=shape).astype(np.float32)
        x.reshape(-1)[::7] = 0.0
        x.reshape(-1)[3::11] = -0.0
        return x
    if tensor.dtype == "INT8":
        return rng.integers(-128, 128, size=shape, dtype=np.int8)
    words = rng.integers(-2**31, 2**31, size=shape, dtype=np.int64).astype(np.int32)
    op = model.ops[0]
    if op.name == "LceBconv2d" and op.options["channels_in"] % 32:
        words[..., -1] &= np.int32((1 << (op.options["channels_in"] % 32)) - 1)
    return words


def _lce_optimized_is_wrong(model):
    """LCE's optimized kernels skip the zero-padding correction where the window sticks
    out of the input on two opposite sides (inputs smaller than the filter, e.g. 2x2 or
    1x1 maps under a 3x3 filter); its reference kernel (and ours) handle it."""
    op = model.ops[0]
    if op.name != "LceBconv2d" or op.options["padding"] != 0 or op.options["pad_values"] != 0:
        return False
    _, height, width, _ = model.tensors[op.inputs[0]].shape
    _, kh, kw, _ = model.tensors[op.inputs[1]].shape
    return ((kh - 1) * op.options["dilation_height_factor"] + 1 > height or
            (kw - 1) * op.options["dilation_width_factor"] + 1 > width)


def _check_op(flatbuffer, rng, *, isa=None):
    """Runs a one-op model on LCE (optimized and reference) and natively; compares."""
    x = _random_input(flatbuffer, rng)
    ours, report = _native_run(flatbuffer, x, isa=isa)
    model = TFLiteModel(flatbuffer)
    name = model.ops[0].name
    assert report["nodes"][name] == 1, report
    optimized = _lce_run(flatbuffer, x, reference=False)
    if _lce_optimized_is_wrong(model):
        optimized = None
    reference = _lce_run(flatbuffer, x, reference=True)
    assert optimized is not None or reference is not None, "LCE cannot run this op"
    for expected, exact in ((optimized, True), (reference, ours.dtype != np.float32)):
        if expected is None:
            continue
        assert ours.shape == expected.shape and ours.dtype == expected.dtype
        if exact:
            np.testing.assert_array_equal(ours, expected)
        else:
            _assert_close(ours, expected)
    return ours


# --------------------------------------------------------- test model sources ---

def _qconv(filters, kernel, **kwargs):
    kwargs.setdefault("kernel_quantizer", "ste_sign")
    return lq.layers.QuantConv2D(filters, kernel, input_quantizer="ste_sign",
                                 kernel_constraint="weight_clip", use_bias=False, **kwargs)


def _bn():
    return tf.keras.layers.BatchNormalization(beta_initializer="random_normal",
                                              gamma_initializer="random_normal",
                                              moving_mean_initializer="random_normal",
                                              moving_variance_initializer="ones")


def _layer_zoo():
    """One Keras model whose branches cover LceBconv2d's options and output types."""
    tf.keras.utils.set_random_seed(7)
    inp = tf.keras.Input((11, 10, 64))
    c96 = tf.keras.layers.Conv2D(96, 1)(inp)
    c5 = tf.keras.layers.Conv2D(5, 1)(inp)
    outputs = [
        # float output, SAME with +1 padding, fused BatchNorm multiplier/bias
        _bn()(_qconv(64, 3, padding="same", pad_values=1)(inp)),
        # SAME zero padding (LCE's correction), stride 2, per-channel scales
        _qconv(48, 3, padding="same", pad_values=0, strides=2,
               kernel_quantizer="magnitude_aware_sign")(inp),
        # VALID, dilation 2, fused ReLU, 96 channels
        _qconv(40, 3, padding="valid", dilation_rate=2, activation="relu")(c96),
        # asymmetric kernel and strides, 5 input channels (a partial word)
        _qconv(33, (3, 1), padding="same", pad_values=1, strides=(1, 2))(c5),
        # grouped convolution
        _qconv(64, 3, padding="same", pad_values=1, groups=2)(inp),
        # bitpacked output (BatchNorm + sign fused into thresholds), 17 channels
        lq.quantizers.SteSign()(_bn()(_qconv(17, 3, padding="same", pad_values=1)(inp))),
        # bitpacked output, binary max-pool (sign commutes with max), binary conv
        _qconv(16, 3, padding="same", pad_values=1)(tf.keras.layers.MaxPool2D(3, 2, padding="same")(
            _bn()(_qconv(64, 3, padding="valid")(inp)))),
        # two chained bitpacked convolutions, the second one strided
        _qconv(32, 3, padding="same", pad_values=1, strides=2)(
            _bn()(_qconv(96, 3, padding="same", pad_values=1)(c96))),
    ]
    return tf.keras.Model(inp, outputs)


@pytest.fixture(scope="module")
def layer_zoo_flatbuffer():
    import larq_compute_engine as lce

    return lce.convert_keras_model(_layer_zoo())


@pytest.fixture(scope="module")
def fashion_flatbuffer():
    from deploy.convert import convert_model
    from xnor_keras import models

    tf.keras.utils.set_random_seed(3)
    return convert_model(models.build("fashion_net", "xnor")).flatbuffer


@pytest.fixture(scope="module")
def resnet_flatbuffer():
    from deploy.convert import convert_model
    from xnor_keras import models

    tf.keras.utils.set_random_seed(4)
    model = models.build("resnet18", "xnor", input_shape=(32, 32, 3), num_classes=10)
    return convert_model(model, dataset="cifar10").flatbuffer


# ------------------------------------------------------------------ C++ tests ---

def _compile(compiler, output):
    command = [compiler, "-std=c++17", "-O2", "-ffp-contract=off", "-pthread",
               *map(str, KERNEL_SOURCES), str(KERNEL_TEST), "-o", str(output)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def _require(tool):
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is missing: run scripts/install.sh (scripts/deps.d/native.sh)")


def test_cpp_kernels_neon_under_qemu(tmp_path):
    """The NEON path, cross-compiled for ARM64 and run in user-mode qemu."""
    _require("aarch64-linux-gnu-g++")
    _require("qemu-aarch64-static")
    binary = tmp_path / "kernel_tests_arm64"
    _compile("aarch64-linux-gnu-g++", binary)
    result = subprocess.run(["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu", str(binary),
                             "--cases", "80"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS neon" in result.stdout and "PASS portable" in result.stdout


def test_cpp_kernels_every_host_isa_built_with_bazel():
    """The C++ unit tests on this CPU (portable and, on x86-64, AVX2 against the definition
    and each other), built by the top-level WORKSPACE offline with Debian's Bazel 4 as
    `bazel test //native/...`, together with the delegate library."""
    _require("bazel")
    result = subprocess.run(["bazel", "--batch", "test", "--test_output=all", "//native/..."],
                            cwd=native.NATIVE_DIR.parent, capture_output=True, text=True, timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "1 test passes" in log and "PASS portable" in log
    if HOST_HAS_AVX2:
        assert "PASS avx2" in log
    if HOST_HAS_AVX512:
        assert "PASS avx512" in log


# ---------------------------------------------------------- ops against LCE ---

@pytest.mark.parametrize("isa", [None, "portable", "avx2"])
def test_every_op_of_the_layer_zoo_matches_lce(layer_zoo_flatbuffer, isa):
    """Each ISA against LCE (None: the default, AVX-512 VPOPCNTDQ where the CPU has it)."""
    if isa == "avx2" and not HOST_HAS_AVX2:
        pytest.skip("this CPU has no AVX2")
    rng = np.random.default_rng(0)
    model = TFLiteModel(layer_zoo_flatbuffer)
    census = model.op_census()
    assert census["LceBconv2d"] == 10 and census["LceBMaxPool2d"] == 1
    assert census["LceDequantize"] >= 1 and census["LceQuantize"] >= 3
    outputs = {"float32": 0, "int32": 0}
    for op in model.ops:
        if op.name in LCE_OPS:
            ours = _check_op(_single_op_model(layer_zoo_flatbuffer, op.index), rng, isa=isa)
            if op.name == "LceBconv2d":
                outputs[str(ours.dtype)] += 1
    assert outputs["float32"] >= 5 and outputs["int32"] >= 3  # both output kinds covered


def test_int8_paths_match_lce(layer_zoo_flatbuffer):
    """int8 output of LceBconv2d / LceDequantize and int8 input of LceQuantize."""
    rng = np.random.default_rng(1)
    model = TFLiteModel(layer_zoo_flatbuffer)
    ops = {name: [op for op in model.ops if op.name == name] for name in LCE_OPS}
    float_bconvs = [op for op in ops["LceBconv2d"]
                    if model.tensors[op.outputs[0]].dtype == "FLOAT32"]
    for op in float_bconvs[:3]:
        _check_op(_single_op_model(layer_zoo_flatbuffer, op.index, int8_output=(0.37, -3)), rng)
    _check_op(_single_op_model(layer_zoo_flatbuffer, ops["LceQuantize"][0].index,
                               int8_input=(0.1, 4)), rng)
    _check_op(_single_op_model(layer_zoo_flatbuffer, ops["LceDequantize"][0].index,
                               int8_output=(0.3, 5)), rng)


def test_whole_models_match_lce(layer_zoo_flatbuffer, fashion_flatbuffer):
    """End to end, float ops on TFLite's reference kernels in both runtimes (their two
    TFLite builds round float ops differently, hence a tolerance)."""
    rng = np.random.default_rng(2)
    for flatbuffer in (layer_zoo_flatbuffer, fashion_flatbuffer):
        interpreter = native.tflite_interpreter(flatbuffer, use_xnnpack=False)
        x = rng.normal(size=interpreter.get_input_details()[0]["shape"]).astype(np.float32)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        ours = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
        theirs = _lce_interpreter(flatbuffer, reference=False).predict(x)
        theirs = theirs if isinstance(theirs, list) else [theirs]
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _assert_close(a, b)
        report = native.delegate_report(interpreter.xnor_keras_delegate)
        census = TFLiteModel(flatbuffer).op_census()
        assert all(report["nodes"][name] == census[name] for name in LCE_OPS), report


@pytest.mark.parametrize("name", ["fashion", "resnet"])
def test_every_op_of_zoo_models_matches_lce(name, fashion_flatbuffer, resnet_flatbuffer):
    flatbuffer = {"fashion": fashion_flatbuffer, "resnet": resnet_flatbuffer}[name]
    rng = np.random.default_rng(3)
    model = TFLiteModel(flatbuffer)
    assert model.op_census()["LceBconv2d"] >= 4
    for op in model.ops:
        if op.name in LCE_OPS:
            _check_op(_single_op_model(flatbuffer, op.index), rng)


# --------------------------------------------------- runtime and integration ---

def test_threads_are_honoured_and_deterministic(layer_zoo_flatbuffer, resnet_flatbuffer):
    """Binary ops split their work over the interpreter's threads, with identical results."""
    rng = np.random.default_rng(4)
    for flatbuffer in (layer_zoo_flatbuffer, resnet_flatbuffer):
        model = TFLiteModel(flatbuffer)
        for op in model.ops:
            if op.name not in ("LceBconv2d", "LceBMaxPool2d"):
                continue
            one_op = _single_op_model(flatbuffer, op.index)
            x = _random_input(one_op, rng)
            one, report_one = _native_run(one_op, x, num_threads=1)
            two, report_two = _native_run(one_op, x, num_threads=2)
            assert report_one["threads"] == 1 and report_two["threads"] == 2
            np.testing.assert_array_equal(one, two)


def test_float_ops_stay_on_xnnpack(fashion_flatbuffer):
    """TFLite still applies its default XNNPACK delegate to the float ops."""
    def delegate_nodes(use_xnnpack):
        interpreter = native.tflite_interpreter(fashion_flatbuffer, use_xnnpack=use_xnnpack)
        ops = [op["op_name"] for op in interpreter._get_ops_details()]
        return ops.count("DELEGATE"), native.delegate_report(interpreter.xnor_keras_delegate)

    ours_only, report = delegate_nodes(False)
    with_xnnpack, _ = delegate_nodes(True)
    assert ours_only == report["partitions"] >= 1
    assert with_xnnpack > ours_only


def test_batch_resize(fashion_flatbuffer):
    """Inputs resized after loading (here to a batch of 3) re-plan the binary ops."""
    x = np.random.default_rng(5).normal(size=(3, 28, 28, 1)).astype(np.float32)
    batched, singles = batch_and_singles(native.tflite_interpreter(fashion_flatbuffer), x)
    np.testing.assert_array_equal(batched, np.concatenate(singles))


def batch_and_singles(interpreter, x):
    """``interpreter``'s outputs for each sample of ``x`` alone, then (input resized)
    for the whole batch: ``(batched output, [single outputs])``."""
    index = interpreter.get_input_details()[0]["index"]
    output = interpreter.get_output_details()[0]["index"]
    singles = []
    for sample in x:
        interpreter.set_tensor(index, sample[None])
        interpreter.invoke()
        singles.append(interpreter.get_tensor(output))
    interpreter.resize_tensor_input(index, x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return interpreter.get_tensor(output), singles


def test_forced_fallback_is_reported(fashion_flatbuffer):
    x = np.zeros((28, 28, 1), np.float32)
    _, report = _native_run(fashion_flatbuffer, x, isa="portable")
    assert report["isa"] == "portable"
    _, report = _native_run(fashion_flatbuffer, x)
    assert report["isa"] == native.library_info()["isa"]
    if HOST_HAS_AVX512:
        assert report["isa"] == "avx512"
    elif HOST_HAS_AVX2:
        assert report["isa"] == "avx2"


def test_isa_choice_is_forcible_and_unavailable_isas_are_errors(fashion_flatbuffer, monkeypatch):
    """Every ISA the CPU has can be forced (option and $XNOR_KERAS_NATIVE_ISA); one it has
    not (NEON on x86-64, AVX-512 where CPUID/XGETBV say no) is a one-line error naming
    why, never a silent fallback."""
    x = np.zeros((28, 28, 1), np.float32)
    available = ["portable"] + (["avx2"] if HOST_HAS_AVX2 else []) + \
        (["avx512"] if HOST_HAS_AVX512 else [])
    outputs = []
    for isa in available:
        out, report = _native_run(fashion_flatbuffer, x, isa=isa)
        assert report["isa"] == isa
        outputs.append(out)
        monkeypatch.setenv("XNOR_KERAS_NATIVE_ISA", isa)
        assert native.library_info()["isa"] == isa
        assert _native_run(fashion_flatbuffer, x)[1]["isa"] == isa
        monkeypatch.delenv("XNOR_KERAS_NATIVE_ISA")
    for out in outputs[1:]:
        np.testing.assert_array_equal(out, outputs[0])
    missing = [isa for isa in ("avx2", "avx512", "neon") if isa not in available]
    missing = [isa for isa in missing if not (isa == "neon" and os.uname().machine == "aarch64")]
    assert missing  # on x86-64 at least NEON
    for isa in missing:
        with pytest.raises(DeployError, match=f"isa {isa} is not available: "):
            native.make_interpreter(fashion_flatbuffer, isa=isa)
        monkeypatch.setenv("XNOR_KERAS_NATIVE_ISA", isa)
        with pytest.raises(DeployError, match=f"XNOR_KERAS_NATIVE_ISA: isa {isa} is not available"):
            native.library_info()
        monkeypatch.delenv("XNOR_KERAS_NATIVE_ISA")


def test_abi_is_verified_for_this_tensorflow(fashion_flatbuffer):
    """Fails on a TensorFlow upgrade until native/tflite_abi.h is re-checked against the
    new TFLite common.h (then add the version above). The delegate itself also checks
    the struct layout when applied (delegate.cc CheckAbi)."""
    assert tf.__version__ in VERIFIED_TENSORFLOW, (
        f"TensorFlow {tf.__version__}: re-verify native/tflite_abi.h against "
        "tensorflow/lite/core/c/common.h of this version")
    assert callable(tf.lite.experimental.load_delegate)
    interpreter = native.tflite_interpreter(fashion_flatbuffer)
    report = native.delegate_report(interpreter.xnor_keras_delegate)
    assert sum(report["nodes"].values()) == sum(
        n for op, n in TFLiteModel(fashion_flatbuffer).op_census().items() if op in LCE_OPS)


def test_bad_requests_are_clear_errors(fashion_flatbuffer):
    with pytest.raises(DeployError, match="isa must be one of"):
        native.make_interpreter(fashion_flatbuffer, isa="sse9")
    with pytest.raises(DeployError, match="^num_threads must be a positive integer. Received: num_threads=0$"):
        native.make_interpreter(fashion_flatbuffer, num_threads=0)
    with pytest.raises(DeployError, match="input shape"):
        native.make_interpreter(fashion_flatbuffer).run(np.zeros((1, 5, 5, 1), np.float32))
    with pytest.raises(DeployError):
        native.make_interpreter(b"not a model")
    # A model with a custom op the library does not implement.
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(fashion_flatbuffer, 0))
    for code in model.operatorCodes:
        if code.customCode == b"LceQuantize":
            code.customCode = b"SomethingElse"
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(DeployError, match="SomethingElse"):
        native.make_interpreter(bytes(builder.Output()))


def test_profile_counts_every_node(fashion_flatbuffer):
    """The delegate's per-node counters see every node it runs (the LCE nodes, and with
    fusion the builtin nodes of the fused patterns) once per invoke and reset on demand;
    `profile_flatbuffer` gives one row per op with its class."""
    from deploy.bench import profile_flatbuffer

    model = TFLiteModel(fashion_flatbuffer)
    lce_nodes = {op.index: op.name for op in model.ops if op.name in LCE_OPS}
    for fuse in (False, True):
        interpreter = native.tflite_interpreter(fashion_flatbuffer, fuse=fuse)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                               np.zeros((1, 28, 28, 1), np.float32))
        for _ in range(3):
            interpreter.invoke()
        fused = native.delegate_report(interpreter.xnor_keras_delegate)["fused"]
        assert bool(fused) == fuse
        expected = dict(lce_nodes)
        expected.update({n: model.ops[n].name for f in fused for n in f["nodes"]})
        profile = native.delegate_profile(interpreter.xnor_keras_delegate, reset=True)
        assert {entry["node"]: entry["op"] for entry in profile} == expected
        assert all(entry["runs"] == 3 for entry in profile)
        assert all(entry["seconds"] > 0 for entry in profile if entry["op"] in LCE_OPS)
    assert all(entry["runs"] == 0 for entry in native.delegate_profile(
        interpreter.xnor_keras_delegate))
    result = profile_flatbuffer(fashion_flatbuffer, runs=2, warmup=0, progress=False)
    assert [row["node"] for row in result.rows] == [op.index for op in model.ops]
    fused_nodes = {n for f in fused for n in f["nodes"]}
    for row, op in zip(result.rows, model.ops):
        # The box CONV_2D of a fused K is glue (eq. 11's scale), the stem CONV_2D float.
        box = op.name == "CONV_2D" and model.tensors[op.inputs[1]].shape[0] == 1  # 1 filter
        expected_class = ("binary" if op.name in LCE_OPS else
                          "glue" if op.index in fused_nodes or box or op.name == "MAX_POOL_2D" else
                          "float conv/FC" if op.name in ("CONV_2D", "FULLY_CONNECTED") else
                          "glue")
        assert row["class"] == expected_class, (op.index, op.name)
    assert result.rows[0]["op"] == "CONV_2D" and result.rows[0]["class"] == "float conv/FC"
    assert any(model.ops[n].name == "CONV_2D" for n in fused_nodes)
    unfused = profile_flatbuffer(fashion_flatbuffer, runs=1, warmup=0, progress=False, fuse=False)
    boxes = [row for row, op in zip(unfused.rows, model.ops)
             if op.name == "CONV_2D" and model.tensors[op.inputs[1]].shape[0] == 1]
    assert len(boxes) == 3 and all(row["class"] == "glue" for row in boxes)
    assert abs(sum(result.class_ms().values()) - result.total_ms()) < 1e-9
