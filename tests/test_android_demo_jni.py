"""Tests of android_demo's JNI library libxnor_kernels.so (native/'s kernels, no NDK).

The arm64-v8a library is taken out of the APK that `android_demo/build.sh` builds (the
shipped bytes are the tested bytes): its ELF facts are checked with readelf, and under
qemu-aarch64 a glibc harness with a fake JNIEnv (android_demo/jni/harness.c) replays every
LceQuantize, LceBMaxPool2d and LceBconv2d of the test models, the zoo (ImageNet architectures at reduced
input size) and the bundled model on 1,000 Fashion-MNIST test images, with inputs and
expected outputs read out of LCE's interpreter (the model's outputs re-pointed at the op's
tensors): results must be identical. The x86-64 build of the same shim is loaded by the
host JVM: the Java↔native path, buffer layouts and thread split against LCE and against the
Java kernels, and the fallback (library missing or corrupt → Java kernels, reason shown).
"""

import json
import os
import re
import shutil
import struct
import subprocess
import zipfile

import numpy as np
import pytest

from tests.test_android_demo import (  # noqa: F401  (fixtures)
    BUILD, DEMO, MODEL_NAMES, SMALL_MODELS, _convert_zoo, apk, assert_matches_lce, bundled,
    comparisons, fashion_test_images, host_classpath, load_demo_script, preprocess,
    prepare_model, randomize_batch_norm)

import larq_compute_engine as lce
import tensorflow as tf
from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter
from tensorflow.lite.tools import flatbuffer_utils

from xnor_keras import data, models

LIB = "lib/arm64-v8a/libxnor_kernels.so"
HOST_LIB = os.path.join(BUILD, "host-lib", "libxnor_kernels.so")
JDK_INCLUDE = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(
    shutil.which("javac") or "/usr/bin/javac"))), "include")
QUANTIZE, BMAXPOOL, BCONV = 1, 2, 3
KINDS = {b"LceQuantize": QUANTIZE, b"LceBMaxPool2d": BMAXPOOL, b"LceBconv2d": BCONV}


verify_zoo = load_demo_script("verify_zoo")  # its reduced ImageNet sizes and conversion


# --------------------------------------------------------------- LCE's op tensors


def _constant(model, index, dtype):
    """The values of constant tensor `index` (None for an absent optional input)."""
    if index < 0:
        return None
    tensor = model.subgraphs[0].tensors[index]
    data = model.buffers[tensor.buffer].data
    assert data is not None, f"tensor {index} is not a constant"
    return np.frombuffer(bytes(bytearray(data)), dtype=dtype).reshape(tensor.shape)


def _bconv_header(model, op, options, x, y):
    """NativeKernels.bconvPlanBytes's 18 spec ints plus the output's byte count, and the
    constant operands (filter, multiplier, bias, thresholds) as the harness reads them."""
    filter_ = _constant(model, op.inputs[1], "<i4")
    cout, fh, fw, group_words = filter_.shape
    n, h, w, words = x.shape
    cin = options["channels_in"]
    groups = 1 if group_words == words else words // group_words
    tensor = model.subgraphs[0].tensors[op.outputs[0]]
    output_type = {np.float32: 0, np.int8: 1, np.int32: 2}[y.dtype.type]
    scale, zero_point = 1.0, 0
    if output_type == 1:
        scale = float(tensor.quantization.scale[0])
        zero_point = int(tensor.quantization.zeroPoint[0])
    absent = np.zeros(cout)
    optional = [_constant(model, op.inputs[i], dt) if len(op.inputs) > i else None
                for i, dt in ((2, "<f4"), (3, "<f4"), (4, "<i4"))]
    mul, bias, thr = [absent if v is None else v for v in optional]
    spec = [n, h, w, cin, groups, cout, fh, fw, options["stride_height"],
            options["stride_width"], options.get("dilation_height_factor", 1),
            options.get("dilation_width_factor", 1), 1 if options["padding"] == 0 else 0,
            options.get("pad_values", 0), options.get("fused_activation_function", 0),
            output_type, struct.unpack("<i", struct.pack("<f", scale))[0], zero_point]
    operands = [filter_.astype("<i4"), mul.astype("<f4"), bias.astype("<f4"), thr.astype("<i4")]
    return spec + [y.nbytes], operands


def lce_op_tensors(flatbuffer, inputs):
    """[(kind, header ints, input array, output array, constant operands)] for every
    LceQuantize, LceBMaxPool2d and LceBconv2d of the model, over all `inputs` (stacked along
    the batch), as LCE's interpreter computes them: the model's outputs are re-pointed at
    each op's tensors."""
    from flatbuffers import flexbuffers

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex].customCode
        if code in KINDS:
            options = flexbuffers.Loads(bytes(op.customOptions)) if code != b"LceQuantize" else {}
            ops.append((KINDS[code], op, options))
    if not ops:
        return []
    graph.outputs = np.array([t for _, op, _ in ops for t in (op.inputs[0], op.outputs[0])],
                             dtype=np.int32)
    probe = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    interpreter = LceInterpreter(probe, num_threads=1, use_reference_bconv=False,
                                 use_indirect_bgemm=True, use_xnnpack=False)
    runs = [interpreter.predict(x[None]) for x in inputs]
    tensors = []
    for i, (kind, op, options) in enumerate(ops):
        x = np.concatenate([r[2 * i] for r in runs])
        y = np.concatenate([r[2 * i + 1] for r in runs])
        operands = []
        if kind == QUANTIZE:
            assert x.dtype == np.float32 and y.dtype == np.int32
            header = [x.size // x.shape[-1], x.shape[-1]]
        elif kind == BCONV:
            assert x.dtype == np.int32
            header, operands = _bconv_header(model, op, options, x, y)
        else:
            assert x.dtype == y.dtype == np.int32
            n, h, w, words = x.shape
            fh, fw = options["filter_height"], options["filter_width"]
            sh, sw = options["stride_height"], options["stride_width"]
            oh, ow = y.shape[1:3]
            same = options["padding"] == 0  # as the Java interpreter reads it: 0 = SAME
            pad_top = max(0, ((oh - 1) * sh + fh - h) // 2) if same else 0
            pad_left = max(0, ((ow - 1) * sw + fw - w) // 2) if same else 0
            header = [n, h, w, words, fh, fw, sh, sw, oh, ow, pad_top, pad_left]
        tensors.append((kind, header, x, y, operands))
    return tensors


def write_cases(path, tensors):
    """The harness's case file (see android_demo/jni/harness.c)."""
    with open(path, "wb") as f:
        for kind, header, x, y, operands in tensors:
            f.write(struct.pack(f"<{1 + len(header)}i", kind, *header))
            for a in operands:
                f.write(np.ascontiguousarray(a).tobytes())
            f.write(np.ascontiguousarray(x).astype("<f4" if kind == QUANTIZE else "<i4").tobytes())
            out = np.ascontiguousarray(y).tobytes()
            f.write(out + b"\0" * (-len(out) % 4))


def run_harness(harness, lib, cases):
    result = subprocess.run(["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu", harness,
                             lib, cases], capture_output=True, text=True, timeout=1200)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    counts = re.search(r"quantize cases: (\d+), bmaxpool cases: (\d+), bconv cases: (\d+), "
                       r"output words compared: (\d+), failures: 0, bad buffers rejected: 5/5",
                       result.stdout)
    assert counts, result.stdout
    assert "isa: neon" in result.stdout
    return [int(c) for c in counts.groups()]


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def shipped_lib(apk, tmp_path_factory):  # noqa: F811
    """The arm64-v8a library exactly as stored in the APK."""
    path = tmp_path_factory.mktemp("shipped") / "libxnor_kernels.so"
    with zipfile.ZipFile(apk) as z:
        path.write_bytes(z.read(LIB))
    return str(path)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """android_demo/jni/harness.c compiled for aarch64 glibc."""
    out = str(tmp_path_factory.mktemp("harness") / "harness")
    result = subprocess.run(["aarch64-linux-gnu-gcc", "-O1", "-Wall", "-Wextra", "-Werror",
                             "-I", JDK_INCLUDE, "-I", os.path.join(JDK_INCLUDE, "linux"), "-o",
                             out, os.path.join(DEMO, "jni", "harness.c")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def readelf(*args):
    result = subprocess.run(["readelf", "-W", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


# ------------------------------------------------------------------ the shipped file


def test_shipped_library_elf_facts(shipped_lib):
    header = readelf("-h", shipped_lib)
    assert re.search(r"Machine:\s+AArch64", header) and re.search(r"Type:\s+DYN", header)
    dynamic = readelf("-d", shipped_lib)
    assert "(NEEDED)" not in dynamic
    assert "TEXTREL" not in dynamic
    assert "Library soname: [libxnor_kernels.so]" in dynamic
    assert re.search(r"\(HASH\)", dynamic) and re.search(r"\(GNU_HASH\)", dynamic)
    symbols = readelf("--dyn-syms", shipped_lib)
    rows = [line.split() for line in symbols.splitlines() if re.match(r"\s*\d+:", line)]
    undefined = [r[7] for r in rows if len(r) >= 8 and r[6] == "UND"]
    assert undefined == [], undefined
    exported = sorted(r[7] for r in rows if len(r) >= 8 and r[6] != "UND")
    assert exported == ["JNI_OnLoad", "Java_xnor_tflite_NativeKernels_bconvPlanBytes",
                        "Java_xnor_tflite_NativeKernels_bconvPrepare",
                        "Java_xnor_tflite_NativeKernels_bconvQuery",
                        "Java_xnor_tflite_NativeKernels_bconvRun",
                        "Java_xnor_tflite_NativeKernels_bmaxpool",
                        "Java_xnor_tflite_NativeKernels_isa",
                        "Java_xnor_tflite_NativeKernels_quantize"]
    segments = readelf("-l", shipped_lib)
    loads = [line.split() for line in segments.splitlines() if line.split()[:1] == ["LOAD"]]
    assert loads and all(int(row[-1], 16) == 16384 for row in loads), segments
    assert all(int(row[1], 16) % 16384 == int(row[2], 16) % 16384 for row in loads)
    stack = [line.split() for line in segments.splitlines() if line.split()[:1] == ["GNU_STACK"]]
    assert stack and stack[0][6] == "RW", segments  # not executable


def test_shipped_library_uses_neon_and_leaves_x18_alone(shipped_lib):
    disassembly = subprocess.run(["llvm-objdump", "-d", shipped_lib], capture_output=True,
                                 text=True).stdout
    assert re.search(r"\bcnt\s+v\d+\.16b", disassembly)  # the NEON popcount
    assert not re.search(r"\b[xw]18\b", disassembly)   # Android's reserved platform register


def test_apk_stores_the_library_uncompressed_at_a_16k_offset(apk):  # noqa: F811
    with zipfile.ZipFile(apk) as z:
        info = z.getinfo(LIB)
        assert info.compress_type == zipfile.ZIP_STORED
        data_bytes = z.read(LIB)
    with open(apk, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
    assert local[:4] == b"PK\x03\x04"
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    offset = info.header_offset + 30 + name_length + extra_length
    assert offset % 16384 == 0, offset
    with open(apk, "rb") as f:
        f.seek(offset)
        assert f.read(len(data_bytes)) == data_bytes
    with open(os.path.join(BUILD, LIB), "rb") as f:
        assert f.read() == data_bytes
    result = subprocess.run(["apksigner", "verify", apk], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# -------------------------------------------------------------------- under qemu


def _zoo_models(rng):
    """(name, flatbuffer, inputs): the test models and the zoo in every precision, the
    ImageNet architectures at reduced input size with 10 classes."""
    images, _ = fashion_test_images(8)
    fashion = preprocess(images, data.preprocessing_spec("fashion_mnist"))
    for name, build in SMALL_MODELS.items():
        model = randomize_batch_norm(build(), rng)
        yield name, lce.convert_keras_model(model, target="arm"), rng.normal(
            size=(4, *model.input_shape[1:])).astype(np.float32)
    for arch in models.ARCHITECTURES:
        for precision in models.PRECISIONS:
            tf.keras.backend.clear_session()
            small = arch in verify_zoo.SMALL_SHAPES
            model = models.build(arch, precision, input_shape=verify_zoo.SMALL_SHAPES.get(arch),
                                 num_classes=10 if small else None)
            if small:
                model._name = f"{model.name}_small"
            model = randomize_batch_norm(model, rng)
            inputs = fashion if arch == "fashion_net" else rng.normal(
                size=(2, *model.input_shape[1:])).astype(np.float32)
            flatbuffer = (_convert_zoo(model) if arch == "fashion_net"
                          else verify_zoo._convert(model, "auto"))[0]
            yield f"{arch}_{precision}", flatbuffer, inputs


def test_qemu_shipped_library_matches_lce_on_every_zoo_op(shipped_lib, harness, tmp_path):
    rng = np.random.default_rng(16)
    tensors, names = [], []
    for name, flatbuffer, inputs in _zoo_models(rng):
        found = lce_op_tensors(flatbuffer, inputs)
        tensors += found
        names.append(f"{name}: {len(found)}")
    print("LCE ops per model:", ", ".join(names))
    write_cases(tmp_path / "zoo.bin", tensors)
    quantize, bmaxpool, bconv, words = run_harness(harness, shipped_lib, str(tmp_path / "zoo.bin"))
    assert quantize == sum(t[0] == QUANTIZE for t in tensors) > 0
    assert bmaxpool == sum(t[0] == BMAXPOOL for t in tensors) > 0
    assert bconv == sum(t[0] == BCONV for t in tensors) > 0
    # Every output type the zoo produces: float, and bitpacked (bconv -> BN -> sign).
    assert {t[1][15] for t in tensors if t[0] == BCONV} >= {0, 2}
    assert words == sum(t[3].size for t in tensors)


def test_qemu_shipped_library_on_1000_fashion_mnist_images(shipped_lib, harness, bundled,  # noqa: F811
                                                           tmp_path):
    flatbuffer = (bundled / "model.tflite").read_bytes()
    metadata = prepare_model.tflite_metadata(flatbuffer)
    spec = (metadata or json.loads((bundled / "model_spec.json").read_text()))["preprocessing"]
    images, _ = fashion_test_images(1000)
    tensors = lce_op_tensors(flatbuffer, preprocess(images, spec))
    assert sum(t[0] == BCONV for t in tensors) > 0, "the bundled model has no LceBconv2d"
    write_cases(tmp_path / "fashion.bin", tensors)
    quantize, _, bconv, words = run_harness(harness, shipped_lib, str(tmp_path / "fashion.bin"))
    assert quantize == sum(t[0] == QUANTIZE for t in tensors)
    assert bconv == sum(t[0] == BCONV for t in tensors)
    assert words == sum(t[3].size for t in tensors)
    assert all(t[2].shape[0] == 1000 for t in tensors)  # every image's tensors


# --------------------------------------------------------------------- host JVM


def java_with(classpath, properties, *args, timeout=600):
    flags = [f"-D{k}={v}" for k, v in properties.items()]
    return subprocess.run(["java", *flags, "-cp", classpath, "xnor.tflite.Main", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def _run_all(classpath, comparisons, properties, tmp):  # noqa: F811
    args = []
    for name in MODEL_NAMES:
        case = comparisons[name]
        np.save(tmp / f"{name}_in.npy", case["inputs"])
        args += [case["path"], tmp / f"{name}_in.npy", tmp / f"{name}_out.npy"]
    result = java_with(classpath, properties, "run", *args)
    assert result.returncode == 0, result.stderr
    return result.stderr, {name: np.load(tmp / f"{name}_out.npy") for name in MODEL_NAMES}


def test_host_jvm_native_kernels_match_lce_and_the_java_kernels(apk, host_classpath,  # noqa: F811
                                                                comparisons, tmp_path):
    stderr, outs = _run_all(host_classpath, comparisons,
                            {"xnor.native.library": HOST_LIB, "xnor.native.threads": 3}, tmp_path)
    assert ("kernels: LceQuantize, LceBMaxPool2d, LceBconv2d: native (portable, 3 threads)"
            in stderr), stderr
    for name in MODEL_NAMES:
        case = comparisons[name]
        # Bit for bit what the Java kernels give (independent code for the same ops) ...
        np.testing.assert_array_equal(outs[name], case["java"], err_msg=name)
        # ... and LCE's results.
        assert_matches_lce(case["flatbuffer"], case["inputs"], outs[name], case["reference"],
                           f"{name} (native kernels, host JVM)", classpath=host_classpath,
                           tmp=tmp_path)


@pytest.mark.parametrize("library", ["missing", "corrupt", "off"])
def test_host_jvm_falls_back_to_java_kernels_and_says_why(apk, host_classpath, comparisons,  # noqa: F811
                                                          tmp_path, library):
    if library == "missing":
        properties = {"xnor.native.library": tmp_path / "nowhere" / "libxnor_kernels.so"}
        reason = "Can't load library"
    elif library == "corrupt":
        with open(HOST_LIB, "rb") as f:
            blob = bytearray(f.read())
        blob[:64] = os.urandom(64)  # the ELF header
        (tmp_path / "libxnor_kernels.so").write_bytes(bytes(blob))
        properties = {"xnor.native.library": tmp_path / "libxnor_kernels.so"}
        reason = str(tmp_path / "libxnor_kernels.so")
    else:
        properties = {"xnor.native.library": HOST_LIB, "xnor.native": "off"}
        reason = "disabled by -Dxnor.native=off"
    stderr, outs = _run_all(host_classpath, comparisons, properties, tmp_path)
    line = [s for s in stderr.splitlines() if "kernels:" in s]
    assert line and "Java kernels (native not loaded: " in line[0] and reason in line[0], stderr
    for name in MODEL_NAMES:
        np.testing.assert_array_equal(outs[name], comparisons[name]["java"], err_msg=name)
