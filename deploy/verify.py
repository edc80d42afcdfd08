"""``xnor-deploy verify``: does the .tflite compute what the Keras model computes?

Two parts, on the same inputs — test images of a data set, an image folder
(preprocessed with the spec recorded in the .tflite), or standard-normal noise:

1. **The verdict: layer-wise certification** (`deploy.certify`). Every piece of the
   converted file between two tensors that stand for Keras tensors runs on Keras's own
   values at its inputs, and must match the Keras layers' float64 value within a
   float32 rounding bound derived per op; a sign may differ from Keras's only where the
   pre-activation is within that bound of 0. PASS exactly when every element of every
   piece does; otherwise FAIL naming the first offending layer, the position and the
   values (exit status 1). Pieces holding int8 ops (``convert --int8_float_layers``) are
   approximate by design: they are not run, and the verdict reads "PASS (certified
   segments only) … NOT CERTIFIED, int8 quantized" naming them.
2. **End-to-end statistics**, reported, not deciding: max |Δ| of any output, the
   logit range, top-1 agreement, the share of inputs within ``tolerance`` × range, and
   the noise floor (Keras against itself under a one-rounding input change). A binary
   network amplifies a pre-activation within rounding of 0 into a different sign and
   onwards, so no end-to-end tolerance tells a correct conversion from a broken one.

Example:

>>> result = verify_files("model.keras", "model.tflite", n=100)   # doctest: +SKIP
>>> result.passed, result.certificate.format_verdict()[:4]      # doctest: +SKIP
(True, 'PASS')
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from deploy.artifacts import load_tflite, read_metadata
from deploy.errors import DeployError
from xnor_keras.validation import positive_int

__all__ = ["VerifyResult", "compare", "verify_files"]

DEFAULT_TOLERANCE = 1e-3


@dataclasses.dataclass
class VerifyResult:
    n: int
    source: str
    runtime: str
    max_abs_diff: float
    logit_range: float
    top1_agreement: float
    tolerance: float
    within_tolerance: float = 1.0  # fraction of inputs whose own max |Δ| ≤ tolerance × range
    noise_floor: "VerifyResult | None" = None
    certificate: object = None  # deploy.certify.Certificate: decides `passed`

    @property
    def relative_diff(self) -> float:
        return self.max_abs_diff / self.logit_range if self.logit_range > 0 else float("inf")

    @property
    def close_end_to_end(self) -> bool:
        """Top-1 agreement 100% and max |Δ| ≤ tolerance × range (a statistic only)."""
        return self.top1_agreement == 1.0 and self.max_abs_diff <= self.tolerance * self.logit_range

    @property
    def passed(self) -> bool:
        """The layer-wise certificate's verdict (`deploy.certify`)."""
        if self.certificate is None:
            raise DeployError("no layer-wise certificate: only deploy.certify decides a verdict")
        return self.certificate.passed

    def format(self) -> str:
        agree = round(self.top1_agreement * self.n)
        text = (f"end to end: {self.n} inputs ({self.source}), Keras vs {self.runtime}: "
                f"max |Δ| = {self.max_abs_diff:.3g}, logit range = {self.logit_range:.4g}, "
                f"max |Δ| / range = {self.relative_diff:.3g}, "
                f"top-1 agreement = {100 * self.top1_agreement:.2f}% ({agree}/{self.n}), "
                f"inputs within {self.tolerance:g} × range = {100 * self.within_tolerance:.2f}%")
        floor = self.noise_floor
        if floor is not None:
            text += (f"\nnoise floor (Keras vs Keras with inputs × (1 + 2⁻²³)): max |Δ| / range = "
                     f"{floor.relative_diff:.3g}, top-1 agreement = "
                     f"{100 * floor.top1_agreement:.2f}%, inputs within tolerance = "
                     f"{100 * floor.within_tolerance:.2f}%")
        if self.certificate is not None:
            text += f"\nverdict: {self.certificate.format_verdict()}"
        return text

    def as_dict(self) -> dict:
        d = {k: v for k, v in dataclasses.asdict(self).items()
             if k not in ("noise_floor", "certificate")}
        d.update(relative_diff=self.relative_diff, close_end_to_end=self.close_end_to_end)
        if self.noise_floor is not None:
            d["noise_floor"] = self.noise_floor.as_dict()
        if self.certificate is not None:
            d.update(passed=self.passed, certificate=self.certificate.as_dict())
        return d


def compare(reference: np.ndarray, outputs: np.ndarray, *, source="", runtime="",
            tolerance=DEFAULT_TOLERANCE) -> VerifyResult:
    """Compares two [N, classes] output arrays (see the module docstring)."""
    reference = np.asarray(reference, np.float64).reshape(len(reference), -1)
    outputs = np.asarray(outputs, np.float64).reshape(len(outputs), -1)
    if reference.shape != outputs.shape:
        raise DeployError(f"output shapes differ: Keras {reference.shape} vs .tflite "
                          f"{outputs.shape}")
    if not reference.size:
        raise DeployError("nothing to compare: no inputs")
    per_input = np.max(np.abs(reference - outputs), axis=-1)
    logit_range = float(reference.max() - reference.min())
    return VerifyResult(
        n=len(reference), source=source, runtime=runtime,
        max_abs_diff=float(per_input.max()), logit_range=logit_range,
        top1_agreement=float(np.mean(reference.argmax(-1) == outputs.argmax(-1))),
        tolerance=tolerance,
        within_tolerance=float(np.mean(per_input <= tolerance * logit_range)))


ULP = 2.0 ** -23  # one float32 rounding step, relative


def noise_floor(model, x, reference=None, *, batch_size=32,
                tolerance=DEFAULT_TOLERANCE) -> VerifyResult:
    """Keras vs Keras on inputs scaled by (1 + 2⁻²³): one float32 rounding step.

    A binary network flips sign(v) for any activation v within rounding error of its
    threshold, and a flip can change every later layer. This measures how much the
    Keras model itself moves under the smallest possible float change of its input:
    differences between two correct float32 implementations (Keras and LCE round
    differently) are of this size, so a failure no larger than the noise floor is
    float-rounding sensitivity, not a conversion error.
    """
    if reference is None:
        reference = model.predict(x, batch_size=batch_size, verbose=0)
    nudged = model.predict(x * np.float32(1.0 + ULP), batch_size=batch_size, verbose=0)
    return compare(reference, nudged, source="inputs × (1 + 2⁻²³)", runtime="Keras",
                   tolerance=tolerance)


class _JavaRunner:
    """The whole file on the Android demo's Java interpreter (host JVM), as a runner."""

    name = "java"

    def __init__(self, flatbuffer):
        from deploy.certify.executor import SegmentExecutor

        self._run = SegmentExecutor(flatbuffer, "java")

    def run(self, x):
        return np.asarray(self._run([np.asarray(x, np.float32)]), np.float32)


def _bar(total, desc):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="input", leave=False, disable=total < 20)


def _progress(iterable, total, desc):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="input", leave=False,
                disable=total < 20)


def verify_files(model_path, tflite_path, *, data=None, images=None, n=None, seed=0,
                 runtime="lce", threads=1, tolerance=DEFAULT_TOLERANCE,
                 with_noise_floor=True, certify_n=None) -> VerifyResult:
    """Verifies ``tflite_path`` against the Keras model at ``model_path``.

    ``data``: a data set name (its test split) or image-folder directory; ``images``: a
    directory of image files; neither: ``n`` standard-normal inputs (default 100).
    ``certify_n``: certify layer by layer on the first that many inputs (default: all).
    """
    positive_int("--certify_n", certify_n, optional=True, error=DeployError)
    if data is not None and images is not None:
        raise DeployError("pass either --data or --images, not both")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise DeployError(f"-n must be a positive integer. Received: {n!r}")
    if not tolerance > 0:
        raise DeployError(f"--tolerance must be positive. Received: {tolerance!r}")
    tflite, flatbuffer = load_tflite(tflite_path)
    if images is not None:  # fail on a bad directory before loading anything heavy
        from deploy.inputs import image_files

        files = image_files(images)
    from deploy.keras_model import load_keras_model
    from deploy.inputs import dataset_inputs, load_inputs, random_inputs
    from deploy.runtime import make_interpreter

    model = load_keras_model(model_path)
    input_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    lite_shape = tuple(tflite.inputs[0].shape[1:])
    if input_shape != lite_shape:
        raise DeployError(f"input size mismatch: {model_path} takes {input_shape} but "
                          f"{tflite_path} takes {lite_shape}")
    metadata = read_metadata(tflite, tflite_path)
    if images is not None:
        files = files[:n] if n else files
        x = load_inputs(files, (metadata or {}).get("preprocessing"), input_shape)
        source = f"{len(files)} images from {images}"
    elif data is not None:
        x = dataset_inputs(data, n or 1000, input_shape)
        source = f"{data} test images"
    else:
        x = random_inputs(n or 100, input_shape, seed=seed)
        source = "standard-normal inputs"
    runner = (_JavaRunner(flatbuffer) if runtime == "java"
              else make_interpreter(flatbuffer, runtime, num_threads=threads))
    reference = model.predict(x, batch_size=32, verbose=0)
    outputs = np.concatenate([runner.run(x[i:i + 1])
                              for i in _progress(range(len(x)), len(x), runtime)])
    result = compare(reference, outputs, source=source, runtime=runner.name, tolerance=tolerance)
    if with_noise_floor:
        result.noise_floor = noise_floor(model, x, reference, tolerance=tolerance)
    from deploy.certify import certify
    from deploy.runtime import default_runtime

    layerwise = x[:certify_n] if certify_n else x
    with _bar(len(layerwise), f"layer-wise ({runner.name})") as bar:
        result.certificate = certify(model, flatbuffer, layerwise,
                                     runtime=default_runtime() if runtime == "auto" else runtime,
                                     num_threads=threads, progress=bar.update)
    return result

