"""Tests of android_demo/: the pure-Java .tflite interpreter (on the host JVM) and the APK.

The Java interpreter is compared with larq-compute-engine's own interpreter on converted
models that together use every operator the converter emits for the project (the zoo's
default architecture in all five precisions, through `xnor-deploy` when it is importable,
plus small larq models for the remaining LCE/builtin variants), and on 1,000 real
Fashion-MNIST test images with the model bundled in the APK, preprocessed by the Java code
the app uses. The APK is built by `android_demo/build.sh` exactly as a user would.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import xnor_keras  # noqa: F401  (legacy Keras before TensorFlow)
import larq as lq
import larq_compute_engine as lce
import tensorflow as tf
from larq_compute_engine.tflite.python.interpreter import Interpreter as LceInterpreter

from xnor_keras import data, models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "android_demo")
BUILD = os.path.join(DEMO, "build")
APK = os.path.join(BUILD, "xnor-demo.apk")
FASHION_DIR = data.FASHION_MNIST_DEBIAN_DIR
RTOL = 1e-4  # max |Δ| as a fraction of the reference's largest |output|
L = tf.keras.layers


def load_demo_script(name):
    """android_demo/NAME.py (a script beside the app, not a package module)."""
    spec = importlib.util.spec_from_file_location(f"android_demo_{name}",
                                                  os.path.join(DEMO, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prepare_model = load_demo_script("prepare_model")


# ----------------------------------------------------------------------------- helpers


def lce_outputs(flatbuffer, inputs, *, reference_kernel=False):
    """Outputs of LCE's interpreter (its optimized binary convolution, or its reference
    kernel), one example at a time."""
    interpreter = LceInterpreter(flatbuffer, num_threads=1, use_reference_bconv=reference_kernel,
                                 use_indirect_bgemm=not reference_kernel, use_xnnpack=False)
    return np.stack([interpreter.predict(x[None])[0] for x in inputs])


def per_example_error(out, ref):
    """max |Δ| of each example as a fraction of that example's largest |reference|."""
    axes = tuple(range(1, ref.ndim))
    return np.abs(out - ref).max(axes) / np.maximum(np.abs(ref).max(axes), 1e-12)


TIE_HARNESS = """
package xnor.tflite;

import java.io.*;
import java.lang.reflect.Field;
import java.util.*;

/** Runs one input with the binarization of near-zero values (|x| <= eps * max|x| at an
 *  LceQuantize input) flipped, for every subset of them (at most 2^8); prints each output. */
public class TieHarness {
    public static void main(String[] a) throws Exception {
        Interpreter it = new Interpreter(Model.readAll(new FileInputStream(a[0])));
        Npy x = Npy.read(Model.readAll(new FileInputStream(a[1])), a[1]);
        float eps = Float.parseFloat(a[2]);
        Field kf = Interpreter.class.getDeclaredField("kernels"), vf = Interpreter.class.getDeclaredField("values");
        kf.setAccessible(true);
        vf.setAccessible(true);
        @SuppressWarnings("unchecked")
        List<Kernel> kernels = (List<Kernel>) kf.get(it);
        Object[] values = (Object[]) vf.get(it);
        int in = it.model().inputs[0], outT = it.model().outputs[0];
        List<int[]> ties = null;
        for (int mask = 0; ties == null || mask < (1 << Math.min(ties.size(), 8)); mask++) {
            System.arraycopy(x.floats, 0, (float[]) values[in], 0, x.floats.length);
            List<int[]> found = new ArrayList<int[]>();
            for (Kernel k : kernels) {
                if ("LceQuantize".equals(k.op.customCode)) {
                    float[] v = (float[]) values[k.op.inputs[0]];
                    float max = 0;
                    for (float f : v) max = Math.max(max, Math.abs(f));
                    for (int i = 0; i < v.length; i++) {
                        if (Math.abs(v[i]) <= eps * max) {
                            if ((mask >> found.size() & 1) == 1) v[i] = v[i] < 0 ? 0f : -Float.MIN_VALUE;
                            found.add(new int[] {k.op.index, i});
                        }
                    }
                }
                k.run(values);
            }
            ties = found;
            StringBuilder b = new StringBuilder(ties.size() + ":");
            for (float f : (float[]) values[outT]) b.append(' ').append(f);
            System.out.println(b);
        }
    }
}
"""


def java_with_ties_flipped(flatbuffer, example, classpath, tmp, eps=1e-6):
    """Java outputs of one example with each subset of its near-zero binarizations flipped."""
    harness = tmp / "harness"
    if not (harness / "xnor" / "tflite" / "TieHarness.class").exists():
        (tmp / "TieHarness.java").write_text(TIE_HARNESS)
        subprocess.run(["javac", "-nowarn", "-cp", classpath, "-d", str(harness),
                        str(tmp / "TieHarness.java")], check=True, timeout=120)
    (tmp / "tie.tflite").write_bytes(flatbuffer)
    np.save(tmp / "tie.npy", example[None])
    result = subprocess.run(["java", "-cp", f"{classpath}:{harness}", "xnor.tflite.TieHarness",
                             str(tmp / "tie.tflite"), str(tmp / "tie.npy"), str(eps)],
                            capture_output=True, text=True, timeout=300, check=True)
    lines = result.stdout.split("\n")[:-1]
    return int(lines[0].split(":")[0]), np.array(
        [[float(v) for v in line.split(":")[1].split()] for line in lines], np.float32)


def assert_matches_lce(flatbuffer, inputs, out, ref, what, *, classpath=None, tmp=None):
    """Every example matches LCE (≤ RTOL, same top-1), except where a value that rounds to ±0
    is binarized: its sign bit then depends on float evaluation order. Such an example must
    match LCE's reference kernel where LCE's optimized and reference binary convolutions
    disagree with each other, or else match LCE once some of its near-zero (|x| ≤ 1e-6 of the
    tensor's range) binarizations are flipped in the Java run. Returns the count of these."""
    error = per_example_error(out, ref)
    bad = (error > RTOL) | (out.argmax(-1) != ref.argmax(-1))
    print(f"{what}: worst max |Δ|/max |ref| {error.max():.2e} on {len(out)} examples")
    if not bad.any():
        return 0
    ref2 = lce_outputs(flatbuffer, inputs[bad], reference_kernel=True)
    lce_split = per_example_error(ref[bad], ref2) > RTOL
    for j, i in enumerate(np.flatnonzero(bad)):
        if lce_split[j]:
            java_error = per_example_error(out[i:i + 1], ref2[j:j + 1])[0]
            print(f"{what}: example {i}: LCE's kernels disagree; Java vs its reference kernel "
                  f"{java_error:.2e}")
            assert java_error <= RTOL
            assert out[i].argmax() == ref2[j].argmax()
            continue
        assert classpath is not None, f"{what}: example {i} differs from LCE by {error[i]:.2e}"
        ties, variants = java_with_ties_flipped(flatbuffer, inputs[i], classpath, tmp)
        matches = per_example_error(variants.reshape(len(variants), *ref.shape[1:]),
                                    np.repeat(ref[i:i + 1], len(variants), 0))
        print(f"{what}: example {i}: {ties} near-zero binarization(s); best Java variant vs "
              f"LCE {matches.min():.2e}")
        assert per_example_error(variants[:1], out[i:i + 1])[0] <= RTOL  # the unflipped run
        assert 0 < ties <= 8 and matches.min() <= RTOL, \
            f"{what}: example {i} differs from LCE by {error[i]:.2e}, not explained by a tie"
    return int(bad.sum())


def java(classpath, *args, timeout=300):
    return subprocess.run(["java", "-cp", classpath, "xnor.tflite.Main", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def op_names(flatbuffer):
    """Operator names and (for LceBconv2d) custom options, read with TFLite's own schema."""
    from flatbuffers import flexbuffers
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = (code.customCode.decode() if code.customCode
                else builtin[max(code.builtinCode, code.deprecatedBuiltinCode)])
        options = None
        if name == "LceBconv2d":
            options = flexbuffers.Loads(bytes(op.customOptions))
            options["bitpacked_output"] = graph.tensors[op.outputs[0]].type == schema.TensorType.INT32
            options["fused_multiplier"] = op.inputs[2] >= 0
        ops.append((name, options))
    return ops


def randomize_batch_norm(model, rng):
    """Non-trivial BatchNorm statistics, so binarized activations are mixed ±1."""
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            weights = layer.get_weights()
            shape = weights[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.3, shape),
                               rng.normal(0, 0.3, shape), rng.uniform(0.5, 2.0, shape)])
    return model


def fashion_test_images(n):
    images = data.read_idx(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"))[:n]
    labels = data.read_idx(os.path.join(FASHION_DIR, "t10k-labels-idx1-ubyte.gz"))[:n]
    return images, labels


def preprocess(images, spec):
    """`xnor_keras.data.preprocess_eval` over a batch of uint8 images."""
    dataset = tf.data.Dataset.from_tensor_slices(images).map(
        lambda image: data.preprocess_eval(image, spec))
    return np.stack([x.numpy() for x in dataset]).astype(np.float32)


def _binary_conv(filters, kernel_size, **kwargs):
    return lq.layers.QuantConv2D(filters, kernel_size, input_quantizer="ste_sign",
                                 kernel_quantizer="ste_sign", kernel_constraint="weight_clip",
                                 use_bias=False, **kwargs)


# ------------------------------------------------------- small models for op variants


def bitpacked_model():
    """Bitpacked bconv output (bconv → BN → sign), one- and zero-padding, stride 2."""
    x = inputs = tf.keras.Input((12, 12, 3))
    h = L.BatchNormalization()(L.Conv2D(40, 3, padding="same")(x))
    h = _binary_conv(70, 3, padding="same", pad_values=1.0)(h)
    h = L.BatchNormalization()(h)
    h = _binary_conv(64, 3, padding="same", pad_values=1.0)(h)
    h = L.BatchNormalization()(L.MaxPool2D(2)(h))
    h = _binary_conv(33, 3, padding="same", pad_values=0.0, strides=2)(h)
    h = L.GlobalAveragePooling2D()(h)
    return tf.keras.Model(inputs, L.Softmax()(L.Dense(10)(h)))


def bmaxpool_model():
    """LceBMaxPool2d (max-pooling of binarized values), dilation 2 with VALID padding and
    a fused ReLU, a 3×1 kernel with stride 2, odd channel counts, LceDequantize."""
    x = inputs = tf.keras.Input((16, 16, 8))
    h = L.BatchNormalization()(L.Conv2D(32, 3, padding="same")(x))
    h = _binary_conv(48, 3, padding="same", pad_values=1.0)(h)
    h = lq.quantizers.SteSign()(L.BatchNormalization()(h))
    h = L.MaxPool2D(2)(h)
    h = L.ReLU()(_binary_conv(40, 3, dilation_rate=2, padding="valid")(h))
    h = L.BatchNormalization()(h)
    h = _binary_conv(33, (3, 1), strides=2, padding="same", pad_values=1.0)(h)
    return tf.keras.Model(inputs, L.Dense(7)(L.Flatten()(h)))


def grouped_model():
    """A grouped binary convolution (2 groups of 32-bit words)."""
    x = inputs = tf.keras.Input((8, 8, 64))
    h = _binary_conv(64, 3, padding="same", pad_values=1.0, groups=2)(L.BatchNormalization()(x))
    return tf.keras.Model(inputs, L.Dense(5)(L.GlobalAveragePooling2D()(h)))


def float_ops_model():
    """The builtin operators around binary layers: pad, depthwise conv, average pooling,
    concatenation, element-wise ops with broadcasting, reductions, activations."""
    x = inputs = tf.keras.Input((10, 10, 3))
    h = L.ZeroPadding2D(1)(x)
    a = L.DepthwiseConv2D(3, depth_multiplier=2, activation="relu6")(h)
    b = L.Conv2D(6, 3, activation="relu")(h)
    c = L.AveragePooling2D(2, strides=1, padding="same")(a)
    h = L.Concatenate()([a, b, c])
    h2 = L.Conv2D(18, 1)(h)
    h = L.Multiply()([L.Add()([h, h2]), tf.math.abs(h2)])
    h = L.Maximum()([L.Subtract()([h, tf.math.sign(h2)]), h2])
    h = L.LeakyReLU(0.1)(h)
    s = tf.reduce_sum(h, axis=[1, 2])
    d = L.Dense(12, activation="tanh")(L.Reshape((10 * 10 * 18,))(h))
    e = L.Dense(12, activation="sigmoid")(s)
    return tf.keras.Model(inputs, L.Softmax()(L.Dense(5)(L.Concatenate()([d, e]))))


SMALL_MODELS = {"bitpacked": bitpacked_model, "bmaxpool": bmaxpool_model,
                "grouped": grouped_model, "float_ops": float_ops_model}
ZOO = [("fashion_net", precision) for precision in models.PRECISIONS]
MODEL_NAMES = list(SMALL_MODELS) + [f"{name}_{precision}" for name, precision in ZOO]
REQUIRED_OPS = {"LceQuantize", "LceBconv2d", "LceBMaxPool2d", "LceDequantize", "CONV_2D",
                "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D",
                "MEAN", "SUM", "MUL", "ADD", "SUB", "MAXIMUM", "ABS", "SIGN", "RESHAPE", "PAD",
                "CONCATENATION", "SOFTMAX", "TANH", "LOGISTIC", "LEAKY_RELU"}


def _convert_zoo(model):
    """(flatbuffer, converter): `xnor-deploy convert --target arm64` when importable."""
    try:
        from deploy.convert import convert_model
    except ImportError:
        return lce.convert_keras_model(model, target="arm"), "lce"
    return convert_model(model, target="arm64", dataset="fashion_mnist").flatbuffer, "deploy"


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def host_classpath(tmp_path_factory):
    """The interpreter compiled for the host JVM (Java 8 bytecode, like the app's)."""
    out = tmp_path_factory.mktemp("host-classes")
    sources = [os.path.join(d, f) for d, _, files in os.walk(os.path.join(DEMO, "interpreter"))
               for f in files if f.endswith(".java")]
    result = subprocess.run(["javac", "-nowarn", "--release", "8", "-d", str(out), *sources],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return str(out)


@pytest.fixture(scope="module")
def comparisons(host_classpath, tmp_path_factory):
    """Every test model converted, run by LCE and by the Java interpreter (one JVM)."""
    tmp = tmp_path_factory.mktemp("models")
    rng = np.random.default_rng(1234)
    tf.keras.utils.set_random_seed(1234)
    images, _ = fashion_test_images(40)
    fashion_inputs = preprocess(images, data.preprocessing_spec("fashion_mnist"))
    cases = {}
    for name in MODEL_NAMES:
        if name in SMALL_MODELS:
            model = randomize_batch_norm(SMALL_MODELS[name](), rng)
            flatbuffer, converter = lce.convert_keras_model(model, target="arm"), "lce"
            inputs = rng.normal(size=(20, *model.input_shape[1:])).astype(np.float32)
        else:
            arch, precision = name.rsplit("_", 1)
            model = randomize_batch_norm(models.build(arch, precision), rng)
            flatbuffer, converter = _convert_zoo(model)
            inputs = fashion_inputs
        path = tmp / f"{name}.tflite"
        path.write_bytes(flatbuffer)
        np.save(tmp / f"{name}_in.npy", inputs)
        cases[name] = {"flatbuffer": flatbuffer, "converter": converter, "path": path,
                       "inputs": inputs, "reference": lce_outputs(flatbuffer, inputs)}
    args = []
    for name in MODEL_NAMES:
        args += [cases[name]["path"], tmp / f"{name}_in.npy", tmp / f"{name}_out.npy"]
    result = java(host_classpath, "run", *args)
    assert result.returncode == 0, result.stderr
    for name in MODEL_NAMES:
        cases[name]["java"] = np.load(tmp / f"{name}_out.npy")
    return cases


@pytest.fixture(scope="module")
def apk():
    """`android_demo/build.sh` run as a user would (default model choice)."""
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("XNOR_DEMO_MODEL", None)
    result = subprocess.run(["bash", os.path.join(DEMO, "build.sh")], capture_output=True,
                            text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    model_line = [line for line in result.stdout.splitlines() if "prepare_model: model:" in line]
    assert model_line, result.stdout
    print(model_line[0])
    return APK


@pytest.fixture(scope="module")
def bundled(apk, tmp_path_factory):
    """The model and spec assets as stored in the APK."""
    tmp = tmp_path_factory.mktemp("bundled")
    with zipfile.ZipFile(apk) as z:
        for name in ("model.tflite", "model_spec.json", "labels.txt"):
            (tmp / name).write_bytes(z.read(f"assets/{name}"))
    return tmp


# ------------------------------------------------------------- interpreter vs LCE


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_java_interpreter_matches_lce(comparisons, name, host_classpath, tmp_path):
    case = comparisons[name]
    assert case["java"].shape == case["reference"].shape
    assert_matches_lce(case["flatbuffer"], case["inputs"], case["java"], case["reference"],
                       f"{name} ({case['converter']})", classpath=host_classpath, tmp=tmp_path)


@pytest.mark.parametrize("size", [1, 2, 3, 6])
def test_zero_padded_binary_conv_matches_keras_on_small_inputs(host_classpath, tmp_path, size):
    """'same' zero padding where the 3×3 kernel overhangs both sides of the input. Keras is
    the reference here: LCE's optimized kernels get 1×1 and 2×2 inputs wrong (its reference
    kernel agrees with Keras), so verify_zoo.py keeps feature maps >= 3×3."""
    rng = np.random.default_rng(size)
    x = inputs = tf.keras.Input((size, size, 64))
    conv = _binary_conv(32, 3, padding="same", pad_values=0.0)
    model = tf.keras.Model(inputs, conv(x))
    conv.set_weights([np.sign(rng.normal(size=conv.get_weights()[0].shape)).astype(np.float32)])
    (tmp_path / "m.tflite").write_bytes(lce.convert_keras_model(model, target="arm"))
    x = rng.normal(size=(3, size, size, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = java(host_classpath, "run", tmp_path / "m.tflite", tmp_path / "x.npy",
                  tmp_path / "y.npy")
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), model.predict(x, verbose=0))


def test_models_cover_every_operator_variant(comparisons):
    ops = [op for case in comparisons.values() for op in op_names(case["flatbuffer"])]
    assert REQUIRED_OPS <= {name for name, _ in ops}
    bconvs = [options for name, options in ops if name == "LceBconv2d"]
    assert any(o["bitpacked_output"] for o in bconvs)
    assert any(o["fused_multiplier"] for o in bconvs)
    assert {o["pad_values"] for o in bconvs if o["padding"] == 0} == {0, 1}
    assert any(o["padding"] == 1 for o in bconvs)
    assert any(o["stride_height"] == 2 for o in bconvs)
    assert any(o["dilation_height_factor"] == 2 for o in bconvs)
    assert any(o["fused_activation_function"] == 1 for o in bconvs)
    assert any(o["channels_in"] % 32 for o in bconvs)


# --------------------------------------------------------------- the bundled model


def test_bundled_model_on_1000_fashion_mnist_images(bundled, host_classpath, tmp_path):
    """The app's path (Java preprocessing + interpreter) against LCE on real images."""
    flatbuffer = (bundled / "model.tflite").read_bytes()
    sidecar = json.loads((bundled / "model_spec.json").read_text())
    metadata = prepare_model.tflite_metadata(flatbuffer)
    spec = (metadata or sidecar)["preprocessing"]
    assert spec == sidecar["preprocessing"]
    images, labels = fashion_test_images(1000)
    inputs = preprocess(images, spec)
    reference = lce_outputs(flatbuffer, inputs)
    np.save(tmp_path / "images.npy", images)
    spec_source = bundled / ("model.tflite" if metadata else "model_spec.json")
    result = java(host_classpath, "classify", bundled / "model.tflite", spec_source,
                  tmp_path / "images.npy", tmp_path / "out.npy")
    assert result.returncode == 0, result.stderr
    out = np.load(tmp_path / "out.npy")
    print(f"bundled model ({sidecar['description']}): top-1 agreement "
          f"{100 * (out.argmax(-1) == reference.argmax(-1)).mean():.1f}%, top-1 accuracy Java "
          f"{100 * (out.argmax(-1) == labels).mean():.1f}% / LCE "
          f"{100 * (reference.argmax(-1) == labels).mean():.1f}%")
    assert_matches_lce(flatbuffer, inputs, out, reference, "bundled model, 1000 images",
                       classpath=host_classpath, tmp=tmp_path)


def test_bundled_labels_and_spec(bundled):
    sidecar = json.loads((bundled / "model_spec.json").read_text())
    labels = (bundled / "labels.txt").read_text().splitlines()
    assert labels == sidecar["labels"] == list(data.class_names(sidecar["preprocessing"]["dataset"]))
    assert isinstance(sidecar["description"], str) and sidecar["description"]
    if sidecar["trained"] is not True:
        assert "UNTRAINED" in sidecar["description"]


# ------------------------------------------------------------------------- the APK


def test_apk_signature_verifies(apk):
    result = subprocess.run(["apksigner", "verify", "-v", apk], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Verified using v2 scheme (APK Signature Scheme v2): true" in result.stdout


def test_apk_badging(apk):
    result = subprocess.run(["aapt2", "dump", "badging", apk], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "package: name='xnor.keras.demo'" in out
    assert "sdkVersion:'21'" in out
    assert "targetSdkVersion:'23'" in out
    assert "uses-permission: name='android.permission.CAMERA'" in out
    assert "launchable-activity: name='xnor.demo.MainActivity'" in out


def test_apk_model_asset_is_stored_uncompressed_and_aligned(apk):
    with zipfile.ZipFile(apk) as z:
        info = z.getinfo("assets/model.tflite")
        assert info.compress_type == zipfile.ZIP_STORED
        model = z.read("assets/model.tflite")
    assert model[4:8] == b"TFL3"
    with open(apk, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
    name_length, extra_length = int.from_bytes(header[26:28], "little"), int.from_bytes(
        header[28:30], "little")
    assert (info.header_offset + 30 + name_length + extra_length) % 4 == 0  # zipalign -p 4


def test_apk_dex_contains_the_interpreter(apk, tmp_path):
    with zipfile.ZipFile(apk) as z:
        (tmp_path / "classes.dex").write_bytes(z.read("classes.dex"))
    result = subprocess.run(["dexdump", str(tmp_path / "classes.dex")], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    classes = set(re.findall(r"Class descriptor\s*:\s*'L([^;]+);'", result.stdout))
    for name in ("xnor/tflite/Interpreter", "xnor/tflite/LceKernels$BConv2d",
                 "xnor/tflite/LceKernels$BMaxPool2d", "xnor/tflite/FlatBuffer",
                 "xnor/tflite/FlexBuffer", "xnor/tflite/Preprocessor",
                 "xnor/demo/MainActivity"):
        assert name in classes


# --------------------------------------------------------------------- bad inputs


@pytest.fixture(scope="module")
def good_model(comparisons):
    return comparisons["bitpacked"]["flatbuffer"]


@pytest.mark.parametrize("corruption, message", [
    ("truncated", "malformed model file"),
    ("garbage", "not a TFLite model"),
    ("wrong_magic", "file identifier is 'TFL4', expected 'TFL3'"),
    ("empty", "not a TFLite model: the file is 0 bytes long"),
    ("unknown_custom_op", "unknown custom operator 'LceBconv3d'"),
])
def test_corrupt_model_is_rejected_with_a_clear_error(good_model, host_classpath, tmp_path,
                                                      corruption, message):
    rng = np.random.default_rng(7)
    blob = {
        "truncated": good_model[:len(good_model) // 2],
        "garbage": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "wrong_magic": good_model[:4] + b"TFL4" + good_model[8:],
        "empty": b"",
        "unknown_custom_op": good_model.replace(b"LceBconv2d", b"LceBconv3d"),
    }[corruption]
    (tmp_path / "bad.tflite").write_bytes(blob)
    np.save(tmp_path / "in.npy", np.zeros((1, 12, 12, 3), np.float32))
    result = java(host_classpath, "run", tmp_path / "bad.tflite", tmp_path / "in.npy",
                  tmp_path / "out.npy", timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no stack trace
    assert not (tmp_path / "out.npy").exists()


def test_unsupported_builtin_is_named(host_classpath, tmp_path):
    x = inputs = tf.keras.Input((4, 4, 2))
    model = tf.keras.Model(inputs, L.UpSampling2D(2)(x))
    (tmp_path / "m.tflite").write_bytes(lce.convert_keras_model(model, target="arm"))
    np.save(tmp_path / "in.npy", np.zeros((1, 4, 4, 2), np.float32))
    result = java(host_classpath, "run", tmp_path / "m.tflite", tmp_path / "in.npy",
                  tmp_path / "out.npy", timeout=60)
    assert result.returncode == 2
    assert "unsupported builtin operator 'RESIZE_NEAREST_NEIGHBOR' (code 97)" in result.stderr
    assert not (tmp_path / "out.npy").exists()


FUZZ_HARNESS = """
import java.io.*;
import java.util.*;
import xnor.tflite.*;

public class Fuzz {
    public static void main(String[] a) throws Exception {
        DataInputStream in = new DataInputStream(new FileInputStream(a[0]));
        byte[] base = new byte[(int) new File(a[0]).length()];
        in.readFully(base);
        Random r = new Random(Long.parseLong(a[2]));
        int ok = 0, rejected = 0, other = 0;
        for (int i = 0; i < Integer.parseInt(a[1]); i++) {
            byte[] b = base.clone();
            if (i % 3 == 0) {
                for (int k = 0; k < 4; k++) b[r.nextInt(b.length)] ^= (byte) (1 + r.nextInt(255));
            } else if (i % 3 == 1) {
                b = Arrays.copyOf(b, r.nextInt(b.length));
            } else {
                int p = r.nextInt(b.length - 4) & ~3, v = r.nextInt();
                for (int k = 0; k < 4; k++) b[p + k] = (byte) (v >> (8 * k));
            }
            try {
                Interpreter interpreter = new Interpreter(b);
                int size = 1;
                for (int d : interpreter.inputShape(0)) size *= d;
                interpreter.run(new float[size]);
                ok++;
            } catch (ModelException e) {
                rejected++;
            } catch (Throwable t) {
                other++;
                System.out.println("unexpected " + t);
            }
        }
        System.out.println(ok + " " + rejected + " " + other);
    }
}
"""


def test_randomly_corrupted_models_never_crash_or_hang(good_model, host_classpath, tmp_path):
    """Byte flips, truncations and overwritten words: each mutant either runs (corrupted
    weights are undetectable in TFLite files) or raises ModelException, nothing else."""
    (tmp_path / "Fuzz.java").write_text(FUZZ_HARNESS)
    subprocess.run(["javac", "-nowarn", "-cp", host_classpath, "-d", str(tmp_path),
                    str(tmp_path / "Fuzz.java")], check=True, timeout=120)
    (tmp_path / "m.tflite").write_bytes(good_model)
    result = subprocess.run(["java", "-cp", f"{host_classpath}:{tmp_path}", "Fuzz",
                             str(tmp_path / "m.tflite"), "1500", "42"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    ok, rejected, other = map(int, result.stdout.splitlines()[-1].split())
    assert other == 0, result.stdout
    assert rejected > 300


def test_prepare_model_rejects_a_bad_model_file(tmp_path):
    (tmp_path / "bad.tflite").write_bytes(b"\x00" * 64)
    with pytest.raises(prepare_model.PrepareError, match="not a readable .tflite|no preprocessing"):
        prepare_model.prepare(str(tmp_path), str(tmp_path / "bad.tflite"))
    with pytest.raises(prepare_model.PrepareError, match="no such file"):
        prepare_model.prepare(str(tmp_path), str(tmp_path / "missing.tflite"))
    assert not (tmp_path / "model.tflite").exists()


# ------------------------------------------------------------------ preprocessing


@pytest.mark.parametrize("dataset", ["fashion_mnist", "cifar10", "imagenet2012"])
def test_java_preprocessing_matches_preprocess_eval(host_classpath, tmp_path, dataset):
    """The app's preprocessing of a real photo equals the training pipeline's."""
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
        photo = np.asarray(image.convert("RGB"), np.uint8)
    spec = data.preprocessing_spec(dataset)
    (tmp_path / "spec.json").write_text(json.dumps({"preprocessing": spec}))
    for name, image in (("rgb", photo), ("gray", photo[:333, :250, 1])):
        np.save(tmp_path / "image.npy", image)
        result = java(host_classpath, "preprocess", tmp_path / "spec.json",
                      tmp_path / "image.npy", tmp_path / "out.npy")
        assert result.returncode == 0, result.stderr
        expected = data.preprocess_eval(image, spec).numpy()
        np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-4,
                                   err_msg=f"{dataset} {name}")


def test_camera_nv21_frames_decode_to_upright_rgb(host_classpath, tmp_path):
    """NV21 → RGB (BT.601 limited range, as Android's camera delivers) and rotation,
    against a NumPy implementation of the same equations."""
    rng = np.random.default_rng(3)
    height, width = 6, 8
    luma = rng.integers(16, 236, (height, width), dtype=np.uint8)
    chroma = rng.integers(16, 241, (height // 2, width // 2, 2), dtype=np.uint8)  # V, U
    frame = np.concatenate([luma.ravel(), chroma.ravel()])
    np.save(tmp_path / "frame.npy", frame)
    y = 1.164 * (luma.astype(np.float32) - 16)
    v = np.repeat(np.repeat(chroma[..., 0].astype(np.float32) - 128, 2, 0), 2, 1)
    u = np.repeat(np.repeat(chroma[..., 1].astype(np.float32) - 128, 2, 0), 2, 1)
    rgb = np.stack([y + 1.596 * v, y - 0.813 * v - 0.391 * u, y + 2.018 * u], -1)
    rgb = np.clip(np.round(rgb), 0, 255)
    for rotation, k in ((0, 0), (90, -1), (180, 2), (270, 1)):
        result = java(host_classpath, "nv21", tmp_path / "frame.npy", width, height, rotation,
                      tmp_path / "rgb.npy")
        assert result.returncode == 0, result.stderr
        np.testing.assert_allclose(np.load(tmp_path / "rgb.npy"), np.rot90(rgb, k), atol=1.0)
