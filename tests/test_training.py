import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from xnor_keras import training
from xnor_keras.training import TrainConfig

from tests.conftest import needs_fashion



def _xnor_train(*args, **popen):
    command = [sys.executable, "-m", "xnor_keras.train", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **popen)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@needs_fashion
@pytest.mark.parametrize("precision", ["xnor", "bnn"])
def test_xnor_train_runs_real_steps_and_writes_everything(tmp_path, precision):
    out = tmp_path / "run"
    proc = _xnor_train("--model=fashion_net", f"--precision={precision}", "--epochs=2",
                       "--train_limit=1024", "--eval_limit=512", "--batch_size=128",
                       f"--output_dir={out}")
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    for name in ("model.keras", "model.json", "metrics.json", "history.csv", "curves.png"):
        assert (out / name).exists(), name
    assert any((out / "tensorboard").rglob("events.out.tfevents.*"))
    rows = _rows(out / "history.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    metrics = json.loads((out / "metrics.json").read_text())["test"]
    # 10 classes: a trained model is far above 10% top-1 even after 2 short epochs.
    assert 0.3 < metrics["top1"] <= 1.0 and metrics["top5"] >= metrics["top1"]
    info = json.loads((out / "model.json").read_text())
    assert info["dataset"] == "fashion_mnist" and len(info["class_names"]) == 10
    assert "test top-1" in log


@needs_fashion
def test_resume_after_kill_loses_no_completed_epoch(tmp_path):
    out = tmp_path / "run"
    args = ("--model=fashion_net", "--precision=bwn", "--epochs=4", "--train_limit=1024",
            "--eval_limit=256", "--batch_size=64", f"--output_dir={out}")
    proc = _xnor_train(*args, start_new_session=True)
    history = out / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if history.exists() and len(_rows(history)) >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "training ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    completed = len(_rows(history))
    assert 1 <= completed < 4

    resumed = _xnor_train(*args)
    log, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, log
    assert f"resuming after epoch {completed}" in log
    assert [int(r["epoch"]) for r in _rows(history)] == [1, 2, 3, 4]


def test_learning_rate_schedules():
    step = training._resolve(TrainConfig(model="resnet18", precision="bwn"))
    assert step.optimizer == "sgd" and step.learning_rate == 0.1
    assert training.learning_rate(step, 29) == pytest.approx(0.1)
    assert training.learning_rate(step, 30) == pytest.approx(0.1 * 0.01)
    assert training.learning_rate(step, 40) == pytest.approx(0.1 * 0.01**2)
    poly = training._resolve(TrainConfig(model="googlenet", precision="xnor"))
    assert poly.optimizer == "adam" and poly.schedule == "poly"
    assert training.learning_rate(poly, 40) == pytest.approx(poly.learning_rate * 0.5**4)
    short = training._resolve(TrainConfig(model="alexnet", precision="fp", epochs=8))
    assert training.learning_rate(short, 2) == pytest.approx(0.1 * 0.01)  # milestones scale
    cosine = training._resolve(TrainConfig(model="fashion_net", schedule="cosine", epochs=8,
                                           learning_rate=4e-3))
    assert [training.learning_rate(cosine, e) for e in (0, 4, 6)] == pytest.approx(
        [4e-3, 2e-3, 4e-3 * (1 - 0.5 ** 0.5) / 2])


@pytest.mark.parametrize("model, precision, optimizer", [
    ("alexnet", "bwn", "sgd"), ("alexnet", "bc", "sgd"), ("alexnet", "fp", "sgd"),
    ("alexnet", "xnor", "adam"), ("alexnet", "bnn", "adam"),
    ("fashion_net", "bwn", "adam"), ("fashion_net", "fp", "sgd"), ("fashion_net", "bc", "sgd"),
])
def test_default_optimizer_follows_the_recipe(model, precision, optimizer):
    resolved = training._resolve(TrainConfig(model=model, precision=precision))
    assert resolved.optimizer == optimizer
    recipe = training.recipe_for(model, precision)
    assert resolved.learning_rate == (recipe.adam_lr if optimizer == "adam" else recipe.sgd_lr)
    assert training._resolve(TrainConfig(model=model, precision=precision,
                                         optimizer="sgd")).optimizer == "sgd"


def test_precision_settings_of_a_recipe_apply_to_that_precision_only():
    xnor = training._resolve(TrainConfig(model="fashion_net", precision="xnor"))
    bwn = training._resolve(TrainConfig(model="fashion_net", precision="bwn"))
    assert (xnor.batch_size, xnor.schedule, xnor.learning_rate) == (256, "cosine", 4e-3)
    assert (bwn.batch_size, bwn.schedule, bwn.learning_rate) == (128, "step", 2e-3)
    # An explicit setting still wins over the precision's.
    assert training._resolve(TrainConfig(model="fashion_net", precision="xnor",
                                         batch_size=64, schedule="step")).batch_size == 64
    assert training.learning_rate(xnor, 4) == pytest.approx(2e-3)  # cosine, half-way


def test_augmentation_defaults_to_the_models_own_and_can_be_chosen():
    assert training._resolve(TrainConfig(model="fashion_net")).augmentation == "fashion_net"
    assert training._resolve(TrainConfig(model="cifar_net")).augmentation == "cifar_net"
    chosen = TrainConfig(model="fashion_net", augmentation="fashion_net_pad_flip")
    assert training._resolve(chosen).augmentation == "fashion_net_pad_flip"
    with pytest.raises(ValueError, match="Received: augmentation='flip'"):
        training._resolve(TrainConfig(model="fashion_net", augmentation="flip"))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_optimizer_settings_reach_the_optimizer(optimizer):
    config = training._resolve(TrainConfig(optimizer=optimizer, learning_rate=0.5,
                                           weight_decay=0.1, adam_beta_2=0.99,
                                           adam_epsilon=1e-4))
    opt = training.make_optimizer(config)
    if optimizer == "adam":
        assert (opt.get_config()["beta_2"], opt.get_config()["epsilon"]) == (0.99, 1e-4)
    else:
        assert opt.get_config()["momentum"] == 0.9
    # Decoupled decay with a zero gradient: v ← v·(1 − lr·weight_decay).
    v = tf.Variable([2.0, -4.0])
    opt.apply_gradients([(tf.zeros(2), v)])
    np.testing.assert_allclose(v.numpy(), [2.0 * 0.95, -4.0 * 0.95], rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "vgg"}, "Received: model='vgg'"),
    ({"precision": "int4"}, "Received: precision='int4'"),
    ({"optimizer": "rmsprop"}, "Received: optimizer='rmsprop'"),
    ({"epochs": 0}, "Received: epochs=0"),
    ({"schedule": "linear"}, "Received: schedule='linear'"),
    ({"weight_decay": -1e-4}, "Received: weight_decay=-0.0001"),
    ({"adam_beta_2": 1.0}, "Received: adam_beta_2=1.0"),
    ({"adam_epsilon": 0.0}, "Received: adam_epsilon=0.0"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        training._resolve(TrainConfig(**kwargs))


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    proc = _xnor_train("--model=fashion_net", "--epochs=0", f"--output_dir={tmp_path}")
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in log
    assert "xnor-train: error: epochs must be a positive integer. Received: epochs=0" in log
