"""XLA (``xnor-train --jit_compile``): the binary layers compile and train like without it.

What compiles on CPU (measured here, tf 2.21 / larq 0.14): every precision and binary
option of fashion_net (larq's ste_sign, our quantizers' custom gradients — the paper's
weight gradient, the binary gradient's max — K and β). What does not: a multi-replica
step on CPU devices (`xnor_keras.training.check_jit_compile`), which is refused with an
error naming the strategy.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from xnor_keras import data, models, training
from xnor_keras.training import TrainConfig

from tests.conftest import needs_fashion

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}

# XLA fuses and orders float sums differently from TensorFlow's oneDNN kernels, and the
# model turns float differences into discrete ones: sign() flips of values near 0, the
# clipped straight-through mask 1{|x| <= 1} at its edges, |x|'s gradient in K, and
# max-pool ties (Fashion-MNIST's flat background). Measured here after one SGD step on
# the same 64 real images: the float net's conv kernels' updates differ by 0.6-1% (norm of
# the difference / norm of the update), XNOR's by 2-12% (more for layers further from the
# loss), its dense layers' by < 1e-5; losses of the next steps by up to 8%. Even the
# first forward pass (same weights, same images, BatchNorm on batch statistics) differs:
# by 0 (with K) to 0.2% (without K, where a flipped sign is not damped by K). A missing or
# wrong custom gradient (sign's true gradient is 0) would make an update differ by ~100%.
FIRST_LOSS_RTOL = 0.01  # the first forward pass
UPDATE_RTOL = 0.25  # ‖Δ_xla − Δ‖ / ‖Δ‖ of every kernel after one step
LOSS_RTOL = 0.15  # each of the next steps' loss


def _real_batches(n=256):
    images, labels = next(iter(data.load("fashion_mnist", "train", batch_size=n,
                                         shuffle=False, limit=n)))
    return images.numpy(), labels.numpy()


def _train(images, labels, *, jit_compile, steps, options, batch=64):
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    model = models.build("fashion_net", "xnor", **options)
    model.compile(tf.keras.optimizers.SGD(0.05, momentum=0.9),
                  tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile)
    assert model.jit_compile is jit_compile  # tf.keras did not fall back
    start = {w.name: w.numpy() for w in model.trainable_weights}
    losses, first_update = [], None
    for step in range(steps):
        part = slice(step * batch, (step + 1) * batch)
        losses.append(float(model.train_on_batch(images[part], labels[part])))
        if step == 0:
            first_update = {w.name: w.numpy() - start[w.name]
                            for w in model.trainable_weights if "kernel" in w.name}
    return losses, first_update


@needs_fashion
@pytest.mark.parametrize("options", [{}, {"binary_gradient": True}, {"input_scaling": False}],
                         ids=["xnor", "binary_gradient", "no_K"])
def test_xla_steps_match_steps_without_xla(options):
    images, labels = _real_batches()
    plain = _train(images, labels, jit_compile=False, steps=4, options=options)
    xla = _train(images, labels, jit_compile=True, steps=4, options=options)
    assert xla[0][0] == pytest.approx(plain[0][0], rel=FIRST_LOSS_RTOL)
    for name, update in plain[1].items():
        assert np.linalg.norm(update) > 0, name  # the layer does learn
        difference = np.linalg.norm(xla[1][name] - update) / np.linalg.norm(update)
        assert difference <= UPDATE_RTOL, (name, difference)
    for step, (a, b) in enumerate(zip(plain[0][1:], xla[0][1:]), start=2):
        assert b == pytest.approx(a, rel=LOSS_RTOL), (step, plain[0], xla[0])


def test_jit_compile_is_validated():
    with pytest.raises(ValueError, match="Received: jit_compile='yes'"):
        training._resolve(TrainConfig(jit_compile="yes"))


def test_jit_compile_refuses_several_replicas_on_cpu_devices():
    one = tf.distribute.get_strategy()
    training.check_jit_compile(one)  # one device: fine

    class _TwoCpuReplicas:  # what MirroredStrategy over two logical CPUs reports
        num_replicas_in_sync = 2

        class extended:
            worker_devices = ("/job:localhost/replica:0/task:0/device:CPU:0",
                              "/job:localhost/replica:0/task:0/device:CPU:1")

    with pytest.raises(ValueError, match=r"strategy='mirrored' on CPU devices .*another "
                                         r"logical CPU device.*Received: jit_compile=True"):
        training.check_jit_compile(_TwoCpuReplicas())


def test_cli_jit_compile_with_mirrored_on_cpu_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "xnor_keras.train", "--model=fashion_net", "--jit_compile",
         "--strategy=mirrored", "--cpu_devices=2", f"--output_dir={tmp_path}"],
        capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert ("xnor-train: error: jit_compile=True does not work with strategy='mirrored' on "
            "CPU devices (2 replicas") in proc.stderr


@needs_fashion
def test_cli_jit_compile_trains_with_xla(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "xnor_keras.train", "--model=fashion_net", "--precision=xnor",
         "--jit_compile", "--epochs=1", "--train_limit=256", "--eval_limit=128",
         "--batch_size=64", f"--output_dir={out}"],
        capture_output=True, text=True, timeout=600,
        env={**ENV, "TF_CPP_MIN_LOG_LEVEL": "0"})  # to see TensorFlow's XLA log line
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "Compiled cluster using XLA" in proc.stderr
    assert json.loads((out / "model.json").read_text())["config"]["jit_compile"] is True
