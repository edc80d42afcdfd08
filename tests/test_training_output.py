"""What a person sees from the command lines: no TensorFlow start-up noise unless asked
for (``TF_CPP_MIN_LOG_LEVEL``), a progress bar on a terminal, one line per epoch in a log."""

import os
import pty
import re
import select
import subprocess
import sys

import pytest

from xnor_keras import training
from xnor_keras.training import TrainConfig

from tests.conftest import needs_fashion

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# TensorFlow's C++ start-up lines on this kind of machine (no GPU): the CUDA stub and
# cuInit, cpu_feature_guard, oneDNN, and absl's note about logging before its start.
NOISE = ("cudart_stub.cc", "cuda_platform.cc", "cpu_feature_guard.cc", "port.cc",
         "absl::InitializeLog")


def _env(log_level):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = ROOT
    if log_level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = log_level
    return env


# Each command imports TensorFlow, then stops at a bad flag value with a one-line error.
COMMANDS = {
    "xnor-train": (["-m", "xnor_keras.train", "--epochs=0"],
                   "xnor-train: error: epochs must be a positive integer"),
    "deploy.pipeline": (["-m", "deploy.pipeline", "--epochs=0"],
                        "main job: error: epochs must be a positive integer"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_startup_noise_is_hidden_unless_the_user_sets_the_log_level(command, tmp_path):
    args, error_line = COMMANDS[command]
    outputs = {}
    for level in (None, "0"):
        proc = subprocess.run([sys.executable, *args, f"--output_dir={tmp_path}"],
                              capture_output=True, text=True, env=_env(level), timeout=300,
                              cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert error_line in proc.stderr, proc.stderr
        outputs[level] = proc.stdout + proc.stderr
    quiet = [n for n in NOISE if n in outputs[None]]
    assert quiet == [], outputs[None]
    # The same command with TF_CPP_MIN_LOG_LEVEL=0 does print them (so the check above
    # is about the filter, not about a TensorFlow build that happens to be quiet).
    assert [n for n in NOISE if n in outputs["0"]], outputs["0"]
    assert outputs[None].count("\n") < outputs["0"].count("\n")


def test_verbosity_follows_whether_stdout_is_a_terminal(monkeypatch):
    for tty, verbose in ((True, 1), (False, 2)):
        monkeypatch.setattr(sys.stdout, "isatty", lambda tty=tty: tty)
        assert training._resolve(TrainConfig()).verbose == verbose
    assert training._resolve(TrainConfig(verbose=0)).verbose == 0  # an explicit choice wins


_RUN = ("-m", "xnor_keras.train", "--model=fashion_net", "--precision=xnor", "--epochs=2",
        "--train_limit=256", "--eval_limit=64", "--batch_size=32")


def _on_a_terminal(args, env, timeout=600):
    """Runs ``python args`` with stdout on a pseudo-terminal; returns (status, stdout)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, *args], stdout=follower,
                            stderr=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], timeout)
            if not ready:
                break
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return proc.returncode, b"".join(chunks).decode(errors="replace")


@needs_fashion
def test_progress_bar_on_a_terminal_one_line_per_epoch_in_a_log(tmp_path):
    status, terminal = _on_a_terminal([*_RUN, f"--output_dir={tmp_path / 'tty'}"],
                                      _env(None))
    assert status == 0, terminal
    # Keras' progress bar redraws its line ("\r" or backspaces) step by step: 8 steps.
    assert "\r" in terminal or "\b" in terminal
    assert "1/8" in terminal and "8/8" in terminal, terminal

    log = subprocess.run([sys.executable, *_RUN, f"--output_dir={tmp_path / 'log'}"],
                         capture_output=True, text=True, env=_env(None), timeout=600)
    assert log.returncode == 0, log.stdout + log.stderr
    assert "\r" not in log.stdout and "\b" not in log.stdout
    epoch_lines = [l for l in log.stdout.splitlines() if re.match(r"8/8 - .*loss: ", l)]
    assert len(epoch_lines) == 2, log.stdout  # one per epoch
    assert "1/8" not in log.stdout  # no per-step lines
