"""``xnor-deploy bench``: latency of the binary model vs its float32 and int8 twins.

The twins are the same architecture with every binary layer replaced by its float
counterpart (``Conv2D`` / ``Dense``; sign activations become ReLU), rebuilt from the
Keras architecture stored in the .tflite metadata (random weights: latency does not
depend on them) or taken from ``--model``. They are converted with stock TensorFlow
Lite (float32; and full-integer int8 calibrated on random inputs) and run on stock
TFLite with XNNPACK, its fastest x86 path. The binary model runs on the selected
runtime: by default ``auto`` (`deploy.runtime.default_runtime`: this project's native
kernels on x86-64, LCE's elsewhere); the report says which kernels ran.

All runtimes are timed interleaved — one inference of each per round, in rotating
order — so machine noise hits them alike; the report gives medians and ratios
against the binary model measured in the same run.

Example:

>>> result = bench_file("model.tflite", runs=30)     # doctest: +SKIP
>>> print(result.format())                           # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import inspect as py_inspect
import time

import numpy as np

from deploy.artifacts import load_tflite, read_metadata
from deploy.errors import DeployError

__all__ = ["BenchResult", "float_twin", "twin_flatbuffers", "time_interleaved", "bench_file"]



@dataclasses.dataclass
class BenchResult:
    labels: list
    times: dict  # label → list of seconds
    threads: int
    runs: int
    kernels: dict = dataclasses.field(default_factory=dict)  # label → Runner.describe()

    def median_ms(self, label) -> float:
        return 1e3 * float(np.median(self.times[label]))

    def format(self) -> str:
        base = self.labels[0]
        width = max(len(label) for label in self.labels)
        lines = [f"bench: {self.runs} interleaved runs, {self.threads} thread(s); "
                 f"ratio = median time / median time of {base!r}"]
        lines.append(f"{'runtime'.ljust(width)}  {'median':>10}  {'p10':>9}  {'p90':>9}  ratio")
        for label in self.labels:
            t = 1e3 * np.asarray(self.times[label])
            ratio = self.median_ms(label) / self.median_ms(base)
            lines.append(f"{label.ljust(width)}  {np.median(t):8.3f}ms  {np.percentile(t, 10):7.3f}ms"
                         f"  {np.percentile(t, 90):7.3f}ms  {ratio:5.2f}x")
        lines += [f"  {label}: {self.kernels[label]}" for label in self.labels
                  if label in self.kernels]
        for label in self.labels[1:]:
            speedup = self.median_ms(label) / self.median_ms(base)
            lines.append(f"{base} is {speedup:.2f}x faster than {label}" if speedup >= 1 else
                         f"{base} is {1 / speedup:.2f}x slower than {label}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"threads": self.threads, "runs": self.runs,
                "median_ms": {label: self.median_ms(label) for label in self.labels},
                "kernels": dict(self.kernels)}


def _float_layer(layer):
    import tensorflow as tf
    from larq.quantizers import Quantizer

    if isinstance(layer, Quantizer):  # a sign activation used as a layer
        return tf.keras.layers.ReLU(name=layer.name)
    if not hasattr(layer, "kernel_quantizer"):
        return layer.__class__.from_config(layer.get_config())
    import larq as lq

    from xnor_keras.layers import float_twin_config

    bases = [(lq.layers.QuantConv2D, tf.keras.layers.Conv2D),
             (lq.layers.QuantDense, tf.keras.layers.Dense),
             (lq.layers.QuantDepthwiseConv2D, tf.keras.layers.DepthwiseConv2D),
             (lq.layers.QuantSeparableConv2D, tf.keras.layers.SeparableConv2D)]
    for quant, base in bases:
        if isinstance(layer, quant):
            break
    else:
        raise DeployError(f"no float counterpart for layer {layer.name!r} "
                          f"({type(layer).__name__})")
    accepted = set(py_inspect.signature(base.__init__).parameters) | {"name", "trainable",
                                                                      "dtype"}
    config = {k: v for k, v in float_twin_config(layer.get_config()).items() if k in accepted}
    return base.from_config(config)


def float_twin(model):
    """``model`` with binary layers replaced by float ones (fresh random weights)."""
    import tensorflow as tf

    return tf.keras.models.clone_model(model, clone_function=_float_layer)


def twin_flatbuffers(model, *, int8=True, calibration_samples=8, seed=0) -> dict:
    """{"float32": bytes, "int8": bytes} TFLite models of ``float_twin(model)``."""
    import tensorflow as tf

    twin = float_twin(model)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    function = tf.function(lambda x: twin(x, training=False)).get_concrete_function(
        tf.TensorSpec((1, *shape), tf.float32))
    result = {}
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], twin)
    result["float32"] = converter.convert()
    if int8:
        rng = np.random.default_rng(seed)

        def representative():
            for _ in range(calibration_samples):
                yield [rng.standard_normal((1, *shape)).astype(np.float32)]

        converter = tf.lite.TFLiteConverter.from_concrete_functions([function], twin)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        result["int8"] = converter.convert()
    return result


def time_interleaved(runners, x, *, runs=20, warmup=3, progress=True) -> dict:
    """{label: [seconds per run]} for ``runners`` = [(label, Runner)], interleaved.

    Each round runs every runner once on ``x``; the order rotates between rounds.
    """
    from tqdm import tqdm

    for _ in range(warmup):
        for _, runner in runners:
            runner.run(x)
    times = {label: [] for label, _ in runners}
    for round_index in tqdm(range(runs), desc="bench", unit="round", disable=not progress,
                            leave=False):
        shift = round_index % len(runners)
        for label, runner in runners[shift:] + runners[:shift]:
            start = time.perf_counter()
            runner.run(x)
            times[label].append(time.perf_counter() - start)
    return times


def _keras_model(metadata, model_path, path):
    from deploy.keras_model import load_keras_model

    if model_path is not None:
        return load_keras_model(model_path)
    config = (metadata or {}).get("keras_config")
    if not config:
        raise DeployError(f"{path} has no Keras architecture in its metadata (not written by "
                          "xnor-deploy convert): pass --model to build the float twins")
    import xnor_keras  # noqa: F401  (registers xnor_keras's layers for the architecture)
    import larq  # noqa: F401
    import tensorflow as tf

    try:
        return tf.keras.models.model_from_json(config)
    except Exception as error:
        raise DeployError(f"{path}: cannot rebuild the Keras architecture from its metadata "
                          f"({type(error).__name__})") from None


def bench_file(tflite_path, *, threads=1, runs=20, warmup=3, runtime="auto", model_path=None,
               int8=True, progress=True, seed=0) -> BenchResult:
    """Benchmarks ``tflite_path`` against its float32 (and int8) twins; see the module doc."""
    from xnor_keras.validation import integer_at_least

    for name, value, minimum in (("--runs", runs, 1), ("--warmup", warmup, 0),
                                 ("--threads", threads, 1)):
        integer_at_least(name, value, minimum, error=DeployError)
    tflite, flatbuffer = load_tflite(tflite_path)
    metadata = read_metadata(tflite, tflite_path)
    from deploy.runtime import make_interpreter

    binary = make_interpreter(flatbuffer, runtime, num_threads=threads)
    model = _keras_model(metadata, model_path, tflite_path)
    twins = twin_flatbuffers(model, int8=int8, seed=seed)
    runners = [(f"binary ({binary.name})", binary),
               ("float32 twin (TFLite+XNNPACK)", make_interpreter(twins["float32"], "tflite",
                                                                  num_threads=threads))]
    if int8:
        runners.append(("int8 twin (TFLite+XNNPACK)", make_interpreter(twins["int8"], "tflite",
                                                                      num_threads=threads)))
    x = np.random.default_rng(seed).standard_normal(binary.input_shape).astype(np.float32)
    times = time_interleaved(runners, x, runs=runs, warmup=warmup, progress=progress)
    return BenchResult(labels=[label for label, _ in runners], times=times, threads=threads,
                       runs=runs, kernels={label: runner.describe() for label, runner in runners})
