"""``xnor-deploy predict``: classify images with a converted model.

Images are decoded and preprocessed exactly as in training, from the preprocessing
spec stored in the .tflite at convert time (`deploy.inputs`); scores are the softmax
of the model's logits; labels come from the metadata (class indices if none).

Example:

>>> for p in predict_files("model.tflite", ["cat.jpg"]):        # doctest: +SKIP
...     print(p.path, p.top[0])
cat.jpg ('tabby', 0.61)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from deploy.artifacts import load_tflite, read_metadata
from deploy.errors import DeployError

__all__ = ["Prediction", "predict_files", "softmax"]


@dataclasses.dataclass
class Prediction:
    path: str
    top: list  # [(label, score)], best first

    def format(self) -> str:
        lines = [f"{self.path}:"]
        lines += [f"  {rank}. {label}  {score:.4f}" for rank, (label, score)
                  in enumerate(self.top, start=1)]
        return "\n".join(lines)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def predict_files(tflite_path, paths, *, top=5, runtime="auto", threads=1,
                  on_runner=None) -> list:
    """Top-``top`` (label, softmax score) for each image in ``paths``.

    ``runtime`` as in `deploy.runtime.make_interpreter` (``auto``: native kernels on
    x86-64); ``on_runner(runner)`` is called once the model is loaded (the CLI prints
    ``runner.describe()``).
    """
    if not paths:
        raise DeployError("no images given")
    from xnor_keras.validation import positive_int

    positive_int("--top", top, error=DeployError)
    tflite, flatbuffer = load_tflite(tflite_path)
    metadata = read_metadata(tflite, tflite_path) or {}
    input_shape = tuple(tflite.inputs[0].shape[1:])
    from deploy.inputs import load_inputs

    x = load_inputs(paths, metadata.get("preprocessing"), input_shape)
    from deploy.runtime import make_interpreter

    runner = make_interpreter(flatbuffer, runtime, num_threads=threads)
    if on_runner is not None:
        on_runner(runner)
    labels = metadata.get("labels")
    predictions = []
    for path, image in zip(paths, x):
        scores = softmax(runner.run(image[None]).reshape(-1))
        order = np.argsort(-scores, kind="stable")[:top]
        names = [labels[i] if labels and i < len(labels) else str(i) for i in order]
        predictions.append(Prediction(path=str(path), top=[(n, float(scores[i]))
                                                           for n, i in zip(names, order)]))
    return predictions
