"""Layer-wise certification on the Android demo's pure-Java interpreter (runtime "java").

`deploy.certify.java` runs every piece of a converted file in one long-lived JVM
(`xnor.tflite.SegmentServer`). These tests certify trained-like fashion_net XNOR files
(with and without the input scaling K) on it, show that a one-bit mutation of a binary
filter fails at the mutated layer, compare the server with LCE's interpreter piece by
piece (bitpacked and float inputs and outputs), and check its one-line errors: an
unsupported operator, wrong input shapes, a hung request, a missing JDK.
"""

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import xnor_keras  # noqa: F401  (legacy Keras before TensorFlow)
import larq_compute_engine as lce
import tensorflow as tf

from deploy.certify import certify
from deploy.certify import java
from deploy.certify.executor import SegmentExecutor
from deploy.certify.segments import _SUB, find_segments, name_keys
from deploy.convert import convert_model
from deploy.errors import DeployError
from deploy.inputs import random_inputs
from deploy.lowering import lower
from deploy.tflite_model import TFLiteModel, bitpack
from tests.test_deploy_lowering import trained_like
from xnor_keras import models

pytestmark = pytest.mark.skipif(
    shutil.which("java") is None or shutil.which("javac") is None,
    reason="the java runtime needs a JDK (java and javac on PATH), e.g. openjdk-17-jdk-headless")

L = tf.keras.layers
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = 16


@pytest.fixture(scope="module", params=["K", "no_K"])
def fashion(request):
    """A trained-like fashion_net XNOR (input scaling K on or off), its .tflite (arm64:
    the file the Android app runs) and its lowering's plans."""
    options = {} if request.param == "K" else {"input_scaling": False}
    tf.keras.utils.set_random_seed(5)
    model = trained_like(models.build("fashion_net", "xnor", **options), np.random.default_rng(5))
    flatbuffer = convert_model(model, target="arm64").flatbuffer
    return request.param, model, flatbuffer, lower(model, allow_float_fallback=True).plans


def _bconv_of(tflite, plans, layer):
    """The LceBconv2d op computing Keras layer ``layer``: its output tensor's name has the
    layer's own scope ``Lk`` (not ``Lk/in``: that of the op computing the layer's
    binarized input), perhaps fused with later scopes (the next layer's sign)."""
    position = next(i for i, plan in enumerate(plans) if plan.name == layer)
    found = [op for op in tflite.ops if op.name == "LceBconv2d" and (position, _SUB[None]) in
             name_keys(tflite.tensors[op.outputs[0]].name, positions=len(plans))]
    assert len(found) == 1, f"{len(found)} LceBconv2d ops of layer {layer!r}"
    return found[0]


def _flip_filter_bit(flatbuffer, op_index):
    """The file with bit 0 of the first filter word of LceBconv2d ``op_index`` flipped."""
    tflite = TFLiteModel(flatbuffer)
    op = tflite.ops[op_index]
    assert op.name == "LceBconv2d"
    buffer = tflite._model.buffers[tflite.tensors[op.inputs[1]].buffer]
    data = np.array(buffer.data, np.uint8)
    data[0] ^= 1
    buffer.data = data
    return tflite.to_bytes()


# ------------------------------------------------------------------ certificates


def test_unmutated_file_certifies_pass_on_java_in_one_jvm(fashion):
    name, model, flatbuffer, plans = fashion
    x = random_inputs(IMAGES, (28, 28, 1), seed=0)
    pid = java.shared_server()._process.pid
    start = time.perf_counter()
    cert = certify(model, flatbuffer, x, runtime="java", plans=plans)
    seconds = time.perf_counter() - start
    print(f"{name}: {cert.format_verdict()} ({seconds:.2f} s)")
    assert cert.passed, cert.format_verdict()
    assert cert.runtime == "java" and cert.images == IMAGES
    assert cert.sign_decisions > 0 and len(cert.checks) >= 12
    assert cert.format_verdict().startswith("PASS (java): ")
    server = java.shared_server()
    assert server._process.pid == pid and server.alive  # every piece ran in the same JVM


def test_one_flipped_filter_bit_fails_at_the_mutated_layer(fashion):
    name, model, flatbuffer, plans = fashion
    op = _bconv_of(TFLiteModel(flatbuffer), plans, "conv3")
    mutated = _flip_filter_bit(flatbuffer, op.index)
    assert mutated != flatbuffer
    cert = certify(model, mutated, random_inputs(4, (28, 28, 1), seed=0), runtime="java",
                   plans=plans)
    verdict = cert.format_verdict()
    print(f"{name}: {verdict}")
    assert not cert.passed and verdict.startswith("FAIL (java): ")
    failure = cert.first_failure
    assert "conv3" in failure.segment, failure.segment
    assert "LceBconv2d" in failure.ops
    assert failure.outside > 0 and failure.offence is not None
    assert [c.passed for c in cert.checks].count(False) == 1  # propagation is cut off


# ------------------------------------------------------- the server against LCE


def _segment_inputs(tflite, segment, rng):
    values = []
    for cut in segment.inputs:
        if cut.bitpacked:
            signs = rng.choice([-1.0, 1.0], size=(*cut.shape[:-1], 32 * cut.shape[-1]))
            values.append(bitpack(signs).astype(np.int32))
        else:
            values.append(rng.standard_normal(cut.shape).astype(np.float32))
    return values


def test_server_matches_lce_on_every_piece(fashion):
    """Each piece of the file on the same inputs: bitpacked outputs equal, float outputs
    within 1e-5 (of the largest |output|). Pieces with an INT32 input, with several
    inputs, and with an INT32 output are all among them."""
    name, _, flatbuffer, plans = fashion
    tflite = TFLiteModel(flatbuffer)
    rng = np.random.default_rng(11)
    server = java.JavaServer()
    kinds = set()
    try:
        for segment in find_segments(tflite, plans):
            part = tflite.submodel(list(segment.ops), [c.tensor for c in segment.inputs],
                                   [segment.output.tensor])
            reference = SegmentExecutor(part, "lce")
            handle, inputs, outputs = server.load(part)
            assert [shape for _, shape in inputs] == [c.shape for c in segment.inputs]
            for _ in range(2):
                x = _segment_inputs(tflite, segment, rng)
                expected = reference(x)
                (got,) = server.run(handle, x)
                assert got.dtype == expected.dtype and got.shape == expected.shape
                what = f"{name}: {segment.output.describe()}"
                if segment.output.bitpacked:
                    np.testing.assert_array_equal(got, expected, err_msg=what)
                else:
                    scale = max(float(np.abs(expected).max()), 1e-30)
                    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * scale,
                                               err_msg=what)
            kinds.add(("int32 in" if any(c.bitpacked for c in segment.inputs) else "float in",
                       "int32 out" if segment.output.bitpacked else "float out",
                       len(segment.inputs) > 1))
            server.free(handle)
    finally:
        server.close()
    assert not server.alive
    assert ("int32 in", "float out", name == "K") in kinds
    assert any(k[0] == "float in" and k[1] == "int32 out" for k in kinds)
    if name == "no_K":
        assert ("int32 in", "int32 out", False) in kinds


# ------------------------------------------------------------------------ errors


def test_unsupported_operator_is_a_one_line_error_naming_it(tmp_path):
    x = inputs = tf.keras.Input((4, 4, 2))
    flatbuffer = lce.convert_keras_model(tf.keras.Model(inputs, L.UpSampling2D(2)(x)),
                                         target="arm")
    with pytest.raises(DeployError) as error:
        java.JavaSegment(flatbuffer)
    message = str(error.value)
    assert "cannot load a piece" in message and "RESIZE_NEAREST_NEIGHBOR" in message, message
    assert "\n" not in message
    assert java.shared_server().alive  # the server answers the next request


def test_wrong_inputs_are_one_line_errors_and_the_server_goes_on(fashion):
    _, _, flatbuffer, plans = fashion
    tflite = TFLiteModel(flatbuffer)
    segment = next(s for s in find_segments(tflite, plans)
                   if any(c.bitpacked for c in s.inputs))
    part = tflite.submodel(list(segment.ops), [c.tensor for c in segment.inputs],
                           [segment.output.tensor])
    server = java.shared_server()
    handle, inputs, _ = server.load(part)
    good = _segment_inputs(tflite, segment, np.random.default_rng(0))
    i = next(i for i, c in enumerate(segment.inputs) if c.bitpacked)
    wrong_type = list(good)
    wrong_type[i] = good[i].astype(np.float32)
    with pytest.raises(DeployError, match=rf"java failed on a piece of this model: input {i} is "
                                          r"tensor \d+ '.*' INT32\[.*\]; the request sent FLOAT32"):
        server.run(handle, wrong_type)
    wrong_shape = list(good)
    wrong_shape[i] = good[i][..., :1, :]
    with pytest.raises(DeployError, match=rf"input {i} is tensor .*; the request sent INT32"):
        server.run(handle, wrong_shape)
    with pytest.raises(DeployError, match=f"has {len(inputs)} inputs; the request sent"):
        server.run(handle, good + good)
    with pytest.raises(DeployError, match=f"input {i} of this piece is int32"):
        java.JavaSegment(part, server)(wrong_type)
    expected = server.run(handle, good)[0]
    assert expected.shape == segment.output.shape
    server.free(handle)
    with pytest.raises(DeployError, match=f"no model with handle {handle}"):
        server.run(handle, good)
    again, _, _ = server.load(part)  # every error reply left the stream in step
    np.testing.assert_array_equal(server.run(again, good)[0], expected)
    server.free(again)


def test_a_request_past_its_timeout_stops_the_jvm():
    """A 256-channel 3×3 convolution on 96×96 (about 1 G multiply-adds, seconds in Java)
    against a 50 ms timeout: a DeployError, the JVM is gone, later requests say so."""
    x = inputs = tf.keras.Input((96, 96, 256))
    flatbuffer = lce.convert_keras_model(
        tf.keras.Model(inputs, L.Conv2D(256, 3, padding="same")(x)), target="arm")
    server = java.JavaServer(timeout=60)
    handle, _, _ = server.load(flatbuffer)
    server.timeout = 0.05
    start = time.perf_counter()
    with pytest.raises(DeployError, match=r"did not answer within 0.05 s while running a piece "
                                          r"of the model; its JVM was stopped"):
        server.run(handle, [np.ones((1, 96, 96, 256), np.float32)])
    assert time.perf_counter() - start < 5
    assert not server.alive
    with pytest.raises(DeployError, match="the Java interpreter has stopped"):
        server.run(handle, [np.ones((1, 96, 96, 256), np.float32)])
    server.close()


def test_missing_jdk_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeployError, match=r"^the java runtime needs a JDK \('javac' not found "
                                          r"on PATH\)"):
        java.JavaServer()


def test_the_jvm_stops_when_python_exits():
    """The shared JVM does not outlive its Python process (`JavaServer.close` at exit;
    the server also ends at the end of its stdin)."""
    script = ("from deploy.certify.java import shared_server\n"
              "server = shared_server()\n"
              "print(server._process.pid, server.alive)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr
    pid, alive = result.stdout.split()
    assert alive == "True"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"JVM {pid} still running after its Python process exited")
