"""The xnor-deploy command line: every verb end to end, and bad input on every verb
(one-line error, exit code 2, no traceback, no partial output)."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from deploy.runtime import default_runtime
from xnor_keras import models

from tests.conftest import FASHION_LABELS, trained_like

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("XNOR_DEPLOY_VERBOSE", None)
    return subprocess.run([sys.executable, "-m", "deploy.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT, env=env, timeout=600)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A trained-like 28×28 XNOR model, converted by the CLI, and some bad files."""
    d = tmp_path_factory.mktemp("cli")
    tf.keras.utils.set_random_seed(11)
    model = trained_like(models.build("fashion_net", "xnor"), np.random.default_rng(11))
    model.save(d / "model.keras")
    x = tf.keras.Input((32, 32, 3))
    tf.keras.Model(x, tf.keras.layers.Dense(10)(tf.keras.layers.Flatten()(x))).save(
        d / "other.keras")
    result = cli("convert", d / "model.keras", "-o", d / "model.tflite", "--target", "x86_64")
    assert result.returncode == 0, result.stderr
    good = (d / "model.tflite").read_bytes()
    (d / "truncated.tflite").write_bytes(good[: len(good) // 2])
    (d / "random.tflite").write_bytes(np.random.default_rng(0).bytes(4096))
    (d / "notes.txt").write_text("not a model\n")
    (d / "fake.keras").write_text("not a zip archive")
    (d / "text.jpg").write_text("not an image")
    np.save(d / "wrong.npy", np.zeros((32, 32, 3), np.float32))
    np.save(d / "right.npy", np.zeros((28, 28, 1), np.float32))
    from PIL import Image

    pixels = (np.arange(50 * 40 * 3) % 253).astype(np.uint8).reshape(50, 40, 3)
    Image.fromarray(pixels).save(d / "photo.jpg")
    (d / "empty_dir").mkdir()
    return d, result


def test_convert_prints_the_report(files):
    d, result = files
    assert "LceBconv2d" in result.stdout and "binary layers: 4 — 4 in LCE binary ops" in result.stdout
    assert f"wrote {d / 'model.tflite'}" in result.stdout
    assert not [f for f in os.listdir(d) if f.endswith(".tmp")]


def test_verify_inspect_predict_bench(files):
    d, _ = files
    result = cli("verify", d / "model.keras", d / "model.tflite", "-n", "40")
    assert result.returncode == 0, result.stderr
    assert "\nverdict: PASS (lce): " in result.stdout
    assert "top-1 agreement = 100.00% (40/40)" in result.stdout
    result = cli("inspect", d / "model.tflite", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["op_census"]["LceBconv2d"] == 4
    assert info["metadata"]["target"] == "x86_64" and info["inputs"][0]["shape"] == [1, 28, 28, 1]
    result = cli("predict", d / "model.tflite", d / "photo.jpg", d / "right.npy", "--top", "2")
    assert result.returncode == 0, result.stderr
    kernels, *lines = result.stdout.splitlines()
    assert kernels.startswith(f"runtime {default_runtime()}: ")
    assert lines[0] == f"{d / 'photo.jpg'}:" and len(lines) == 6
    assert re.fullmatch(r"  1\. (.+)  0\.\d{4}", lines[1])[1] in FASHION_LABELS
    # right.npy (all zeros, taken as preprocessed): the printed classes and scores are
    # Keras's argmax and softmax (binary kernels round differently: scores within 1e-3).
    logits = tf.keras.models.load_model(d / "model.keras")(np.zeros((1, 28, 28, 1))).numpy()[0]
    scores = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert lines[3] == f"{d / 'right.npy'}:"
    for rank, line in zip((1, 2), lines[4:6]):
        label, score = re.fullmatch(rf"  {rank}\. (.+)  (0\.\d{{4}})", line).groups()
        i = int(np.argsort(-scores)[rank - 1])
        assert label == FASHION_LABELS[i] and abs(float(score) - scores[i]) < 1e-3, line
    result = cli("bench", d / "model.tflite", "--runs", "5", "--warmup", "1")
    assert result.returncode == 0, result.stderr
    assert "float32 twin (TFLite+XNNPACK)" in result.stdout and "int8 twin" in result.stdout
    assert f"binary ({default_runtime()}) is" in result.stdout
    if default_runtime() == "native":  # x86-64: the AVX2 kernels ran every binary conv
        from deploy.native import library_info

        isa = library_info()["isa"]
        assert isa != "portable" or "avx2" not in open("/proc/cpuinfo").read()
        assert f"xnor_keras C++ kernels ({isa}, 1 thread(s)) for 4 LceBconv2d, 4 LceQuantize; float ops" in result.stdout
    result = cli("bench", d / "model.tflite", "--runs", "2", "--warmup", "0", "--noint8",
                 "--runtime", "lce", "--threads", "2")
    assert result.returncode == 0, result.stderr
    assert "binary (lce) is" in result.stdout
    assert "larq-compute-engine interpreter, optimized indirect-BGEMM binary kernels, float ops "\
        "on XNNPACK, 2 thread(s)" in result.stdout


def test_verify_of_a_broken_conversion_exits_1_naming_the_layer(files, tmp_path):
    from deploy.lowering import lower
    from deploy.tflite_model import TFLiteModel
    from tests.test_deploy_certify import _flip_filter_bit

    d, _ = files
    model = tf.keras.models.load_model(d / "model.keras")
    scopes = {name: scope for scope, name in lower(model).scopes.items()}
    tflite = TFLiteModel((d / "model.tflite").read_bytes())
    _flip_filter_bit(tflite, scopes, "conv3")
    (tmp_path / "broken.tflite").write_bytes(tflite.to_bytes())
    result = cli("verify", d / "model.keras", tmp_path / "broken.tflite", "-n", "20")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "\nverdict: FAIL (lce): layer 'conv3' [conv3; ops " in result.stdout
    assert "Traceback" not in result.stderr


def test_fig4_quick(tmp_path):
    result = cli("fig4", "--quick", "--runs", "3", "--out_dir", tmp_path / "fig4")
    assert result.returncode == 0, result.stderr
    for name in ("fig4b_channels.png", "fig4c_filter_size.png", "fig4.md", "fig4.json"):
        assert (tmp_path / "fig4" / name).stat().st_size > 0
    table = json.loads((tmp_path / "fig4" / "fig4.json").read_text())
    (point,) = [p for p in table["channels"] if p["c"] == 256]
    assert abs(point["theoretical"] - 62.27) < 0.01 and point["measured"] > 0


BAD = [
    # (arguments, words the one-line error must contain)
    (["convert", "{d}/missing.keras", "-o", "{d}/out.tflite"], "no such file"),
    (["convert", "{d}/notes.txt", "-o", "{d}/out.tflite"], "not a Keras model"),
    (["convert", "{d}/fake.keras", "-o", "{d}/out.tflite"], "cannot load"),
    (["convert", "{d}/model.keras", "-o", "{d}/out.tflite", "--target", "riscv"], "unknown target"),
    (["convert", "{d}/model.keras", "-o", "{d}/nodir/out.tflite"], "does not exist"),
    (["convert", "{d}/model.keras"], "-o OUT.tflite"),
    (["verify", "{d}/model.keras", "{d}/truncated.tflite"], "truncated"),
    (["verify", "{d}/other.keras", "{d}/model.tflite"], "input size mismatch"),
    (["verify", "{d}/model.keras", "{d}/model.tflite", "--images", "{d}/empty_dir"], "no images"),
    (["inspect", "{d}/missing.tflite"], "no such file"),
    (["inspect", "{d}/random.tflite"], "TFL3"),
    (["inspect", "{d}/notes.txt"], "TFL3"),
    (["inspect", "{d}/empty_dir"], "directory"),
    (["bench", "{d}/truncated.tflite"], "truncated"),
    (["bench", "{d}/model.tflite", "--runs", "0"],
     "--runs must be a positive integer. Received: --runs=0"),
    (["bench", "{d}/model.tflite", "--warmup", "-1"],
     "--warmup must be an integer >= 0. Received: --warmup=-1"),
    (["bench", "{d}/model.tflite", "--runtime", "gpu"], "unknown runtime"),
    (["predict", "{d}/model.tflite", "{d}/text.jpg"], "not a readable image"),
    (["predict", "{d}/model.tflite", "{d}/missing.png"], "no such file"),
    (["predict", "{d}/model.tflite", "{d}/wrong.npy"], "expects (28, 28, 1)"),
    (["predict", "{d}/random.tflite", "{d}/photo.jpg"], "TFL3"),
    (["predict", "{d}/model.tflite"], "IMAGE"),
    (["predict", "{d}/model.tflite", "{d}/photo.jpg", "--top", "0"],
     "--top must be a positive integer. Received: --top=0"),
    (["fig4", "--runs", "0"], "--runs must be a positive integer. Received: --runs=0"),
    (["deploy"], "unknown or missing command"),
    (["inspect", "{d}/model.tflite", "--no-such-flag"], "no-such-flag"),
    (["verify", "{d}/model.keras", "{d}/model.tflite", "-n", "many"], "-n"),
]


@pytest.mark.parametrize("args,words", BAD, ids=[" ".join(a[:1] + [w]) for a, w in BAD])
def test_bad_input_is_one_line_exit_2(files, args, words):
    d, _ = files
    before = sorted(os.listdir(d))
    result = cli(*[a.format(d=d) for a in args])
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert words in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert sorted(os.listdir(d)) == before  # no partial output


def test_console_script_is_installed():
    script = shutil.which("xnor-deploy", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("xnor-deploy is not installed in this environment (pip install -e .)")
    result = subprocess.run([script, "inspect"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "usage: xnor-deploy inspect" in result.stderr
