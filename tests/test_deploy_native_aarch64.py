"""The delegate on aarch64 Linux (a Raspberry Pi stand-in): cross-built by
``deploy.native`` (``--target aarch64``), loaded by ``deploy/board.py`` into an aarch64
Python 3.11 + tflite-runtime 2.14 under qemu-aarch64 (``scripts/arm64_python.sh``, cached
in the project's cache directory: about 20 s the first time, then about 1 s).

Oracle: LCE's own x86 interpreter on the same converted model and the same real
Fashion-MNIST test images (``XNOR_AARCH64_IMAGES``, default 200). Emulated timings mean
nothing; only outputs are compared.
"""

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from deploy import native
from deploy.cache import cache_dir
from deploy.errors import DeployError
from deploy.tflite_model import LCE_OPS, TFLiteModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD = os.path.join(ROOT, "deploy", "board.py")
N_IMAGES = int(os.environ.get("XNOR_AARCH64_IMAGES", 200))
EM_AARCH64 = 183  # ELF e_machine
# Logits may differ by float rounding only: the binary ops are exact integer arithmetic
# (then LCE's output transform, same operations in the same order); the float ops run on
# aarch64 TFLite 2.14 (XNNPACK) instead of LCE's x86 builtins.
RELATIVE_TOLERANCE = 1e-5


def _require(tool):
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is missing: run scripts/install.sh native (scripts/deps.d/native.sh)")


@pytest.fixture(scope="module")
def arm64_python():
    """``DIR/py``: an aarch64 python3.11 with tflite-runtime 2.14 and NumPy, under qemu."""
    for tool in ("qemu-aarch64-static", "mmdebstrap"):
        _require(tool)
    directory = cache_dir("aarch64-python", "XNOR_KERAS_AARCH64_PYTHON")
    result = subprocess.run(["bash", os.path.join(ROOT, "scripts", "arm64_python.sh"),
                             str(directory)], env={**os.environ, "PYTHON": sys.executable},
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split()[0] == "aarch64", result.stdout
    return directory / "py"


@pytest.fixture(scope="module")
def arm64_delegate():
    _require("aarch64-linux-gnu-g++")
    return native.build_library(target="aarch64")


@pytest.fixture(scope="module")
def board_model(xnor_tflite, tmp_path_factory):
    """The shared fashion_net XNOR model, converted for the arm64 target."""
    from deploy.convert import convert_file

    path = tmp_path_factory.mktemp("aarch64") / "model.tflite"
    convert_file(xnor_tflite[1], path, target="arm64")
    return path


def _board(arm64_python, *args, cwd):
    return subprocess.run([str(arm64_python), BOARD, *map(str, args)], capture_output=True,
                          text=True, timeout=1200, cwd=cwd)


def test_cross_built_library_is_an_aarch64_delegate(arm64_delegate):
    header = arm64_delegate.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and header[4] == 2  # 64-bit
    assert int.from_bytes(header[18:20], "little") == EM_AARCH64
    dynamic = subprocess.run(["aarch64-linux-gnu-readelf", "-d", "-W", "--dyn-syms",
                              str(arm64_delegate)], capture_output=True, text=True).stdout
    for symbol in ("tflite_plugin_create_delegate", "tflite_plugin_destroy_delegate",
                   "xnor_keras_delegate_info"):
        assert f" {symbol}\n" in dynamic
    # What a board needs: glibc's and GCC's C++ runtime only (README: which OS releases).
    needed = {line.split("[")[1].rstrip("]") for line in dynamic.splitlines()
              if "(NEEDED)" in line}
    assert needed <= {"libstdc++.so.6", "libgcc_s.so.1", "libc.so.6", "libm.so.6"}, needed


def test_board_run_matches_lce_x86_on_fashion_mnist(arm64_python, arm64_delegate, board_model,
                                                    tmp_path, capsys):
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    from deploy.inputs import dataset_inputs

    x = dataset_inputs("fashion_mnist", N_IMAGES, (28, 28, 1))
    assert x.shape == (N_IMAGES, 28, 28, 1) and x.std() > 0.1  # real images, not zeros
    flatbuffer = board_model.read_bytes()
    expected = Interpreter(flatbuffer, num_threads=1, use_xnnpack=False).predict(x)
    np.save(tmp_path / "x.npy", x)
    start = time.monotonic()
    result = _board(arm64_python, "--model", board_model, "--delegate", arm64_delegate,
                    "--inputs", "x.npy", "--output", "y.npy", "--threads", 2, cwd=tmp_path)
    seconds = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-3000:]
    line = result.stdout.strip().splitlines()[-1]
    census = TFLiteModel(flatbuffer).op_census()
    assert "tflite_runtime 2.14.0 + xnor_keras delegate (neon, 2 thread(s))" in line, line
    for op in LCE_OPS:  # every LCE node ran on the delegate's NEON kernels
        if census.get(op):
            assert f"{census[op]} {op}" in line, line
    actual = np.load(tmp_path / "y.npy")
    assert actual.shape == expected.shape
    delta = np.abs(actual - expected)
    tolerance = RELATIVE_TOLERANCE * float(np.abs(expected).max())
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * tolerance  # top-1 not within rounding of a tie
    with capsys.disabled():
        print(f"\naarch64 board (qemu): {N_IMAGES} Fashion-MNIST images in {seconds:.1f} s, "
              f"max |Δ| {delta.max():.2e} of max |logit| {np.abs(expected).max():.1f}, "
              f"top-1 equal on {(actual.argmax(1) == expected.argmax(1)).sum()}/{N_IMAGES} "
              f"({(~clear).sum()} near-ties)")
    assert delta.max() <= tolerance
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(actual.argmax(1)[clear], expected.argmax(1)[clear])


def test_board_errors_are_one_line(arm64_python, arm64_delegate, board_model, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((2, 5, 5, 1), np.float32))
    cases = [
        (("--model", "missing.tflite", "--delegate", arm64_delegate, "--inputs", "bad.npy",
          "--output", "y.npy"), "error: model missing.tflite: no such file"),
        (("--model", board_model, "--delegate", arm64_delegate, "--inputs", "bad.npy",
          "--output", "y.npy"), "error: inputs of shape (2, 5, 5, 1), but the model takes"),
        (("--model", board_model, "--delegate", arm64_delegate, "--inputs", "bad.npy",
          "--output", "y.npy", "--runtime", "ai_edge_litert"), "error: no TFLite runtime"),
        (("--model", board_model, "--delegate", arm64_delegate, "--inputs", "bad.npy",
          "--output", "y.npy", "--threads", "0"), "error: threads must be a positive"),
        (("--model", board_model, "--delegate", board_model, "--inputs", "bad.npy",
          "--output", "y.npy"), f"error: delegate {board_model}: "),
    ]
    for args, message in cases:
        result = _board(arm64_python, *args, cwd=tmp_path)
        # TFLite's own "INFO: Created TensorFlow Lite XNNPACK delegate" log line aside
        lines = [line for line in result.stderr.splitlines() if not line.startswith("INFO: ")]
        assert result.returncode == 2, (args, result.stderr)
        assert len(lines) == 1 and lines[0].startswith(message), (args, result.stderr)
        assert not (tmp_path / "y.npy").exists()


def test_missing_cross_compiler_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(native.CROSS_COMPILERS, "aarch64", "no-such-aarch64-g++")
    monkeypatch.setenv("XNOR_KERAS_NATIVE_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_built", {})
    if os.uname().machine == "aarch64":
        pytest.skip("aarch64 is this machine: --target aarch64 is the host build")
    with pytest.raises(DeployError, match="^cross-building the native kernels for aarch64 "
                                          "needs no-such-aarch64-g\\+\\+ \\(not found\\); run "
                                          "scripts/install.sh native"):
        native.build_library(target="aarch64")
    with pytest.raises(DeployError, match="^target must be one of host, aarch64. "
                                          "Received: target='arm'$"):
        native.build_library(target="arm")


def test_cli_cross_build_and_bad_flags(arm64_delegate, tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    run = lambda *args: subprocess.run([sys.executable, "-m", "deploy.native", *args],  # noqa: E731
                                       capture_output=True, text=True, env=env)
    result = run("--target", "aarch64", "--output", str(tmp_path / "lib.so"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "lib.so").read_bytes() == arm64_delegate.read_bytes()
    assert result.stdout.strip() == f"{arm64_delegate} (aarch64) -> {tmp_path / 'lib.so'}"
    for args, message in ((("--target", "arm"), "error: flag --target=arm: value should be "
                                                "one of <host|aarch64>"),
                          (("--output", str(tmp_path / "no" / "lib.so")),
                           "error: --output: directory"),
                          (("stray",), "error: unexpected arguments: stray")):
        result = run(*args)
        assert result.returncode == 2 and result.stderr.startswith(message), result.stderr
        assert result.stderr.count("\n") == 1 and not result.stdout
