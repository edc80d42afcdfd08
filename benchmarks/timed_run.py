"""One resumable, timed `xnor_keras.training.train` run in a directory, and reading it back.

Shared by `reproduce.py` and `tune_xnor.py`: ``train_timed(config)`` trains into
``config.output_dir`` (resuming an interrupted run) and writes ``minutes.json`` beside
``metrics.json``; ``finished(directory)`` says whether ``metrics.json`` exists (such a
run is never retrained); ``read_run(directory)`` returns its `RunRecord`.

    >>> finished("/nonexistent")
    False
"""

import dataclasses
import json
import os
import time

from xnor_keras.io import atomic_write
from xnor_keras.training import train


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """What a finished run directory says: test top-1 (a fraction), minutes, epochs,
    the optimizer it used (from ``model.json``) and the path of its ``history.csv``."""

    top1: float
    minutes: float  # NaN when minutes.json is missing (a run trained by xnor-train)
    epochs: int
    optimizer: str
    history: str


def finished(directory):
    return os.path.exists(os.path.join(directory, "metrics.json"))


def train_timed(config):
    """Trains ``config`` (resuming) and records the wall-clock minutes of this call."""
    start = time.time()
    train(config)
    atomic_write(os.path.join(config.output_dir, "minutes.json"),
                 json.dumps({"minutes": (time.time() - start) / 60}))


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def read_run(directory):
    """The `RunRecord` of a finished run directory."""
    metrics = _read_json(os.path.join(directory, "metrics.json"))
    timing = os.path.join(directory, "minutes.json")
    return RunRecord(
        top1=metrics["test"]["top1"],
        minutes=_read_json(timing)["minutes"] if os.path.exists(timing) else float("nan"),
        epochs=metrics["epochs"],
        optimizer=_read_json(os.path.join(directory, "model.json"))["config"]["optimizer"],
        history=os.path.join(directory, "history.csv"),
    )
