"""Training speed (issue 14): steps/s and images/s of the zoo's training step, and of the
image-folder input pipeline, on this machine.

What it times, interleaved in one run (every round times every case once, in rotating
order, so machine noise hits all cases alike; the first call of each case — tracing and,
with XLA, compilation — is a warm-up and not timed; medians over the rounds):

- networks: ``fashion_net`` (28x28x1), ``cifar_net`` (32x32x3) and ``resnet18`` at a
  reduced 64x64x3 input (224x224 is ~12x the work and too slow for 2 cores), 10 classes;
- precisions: ``fp`` (the float twin), ``bwn``, ``xnor``, ``xnor_noK`` (xnor with
  ``input_scaling=False``) and ``larq``: the same B-A-C-P network built from larq's own
  ``QuantConv2D`` / ``QuantDense`` (``ste_sign`` inputs, ``magnitude_aware_sign`` kernels,
  no K), the closest peer — a `Policy` subclass below (the zoo's Policy has no such
  precision, and should not: it is not the paper's layer);
- each with and without XLA (``model.compile(jit_compile=...)``).

A step is Keras' own train function (``model.make_train_function()``, as ``model.fit``
runs it) on a fixed synthetic batch held in memory (speed does not depend on the
values), optimizer Adam. Ratios are against the FP twin of the same network and XLA
setting; "K's cost" is xnor − xnor_noK.

The input pipeline: `xnor_keras.data.load` on a temporary image folder of JPEGs
(500x375 and 375x500, like ImageNet's typical photo) with the ResNet-18 recipe (decode,
random shorter side in [256, 480], random 224x224 crop, flip, normalize; and the eval
path: resize 256, centre crop), images/s over whole passes, against the training step's
images/s. It is timed alone, before the models (it is a separate measure, not a round).

    python benchmarks/bench_training.py                         # everything
    python benchmarks/bench_training.py --networks=fashion_net --rounds=3

Writes ``--output_dir``/results.md and results.json (atomically).
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import xnor_keras  # noqa: E402  (legacy Keras, quiet TensorFlow start-up)
import larq as lq  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from xnor_keras import data, models  # noqa: E402
from xnor_keras.io import atomic_write  # noqa: E402
from xnor_keras.models.policy import Policy  # noqa: E402

FLAGS = flags.FLAGS
NETWORKS = {"fashion_net": (28, 28, 1), "cifar_net": (32, 32, 3), "resnet18": (64, 64, 3)}
PRECISIONS = ("fp", "bwn", "xnor", "xnor_noK", "larq")
flags.DEFINE_list("networks", list(NETWORKS), "Networks to time.")
flags.DEFINE_list("precisions", list(PRECISIONS), "Precisions to time.")
flags.DEFINE_list("xla", ["off", "on"], "XLA settings to time (off, on).")
flags.DEFINE_integer("batch_size", 32, "Batch size of every step.")
flags.DEFINE_integer("rounds", 5, "Interleaved rounds (after the warm-up).")
flags.DEFINE_float("seconds_per_measure", 1.0, "Steps per case and round fill about this long "
                   "(at least 2 steps).")
flags.DEFINE_integer("pipeline_images", 128, "JPEGs in the temporary image folder (0: skip).")
flags.DEFINE_string("output_dir", os.path.join(ROOT, "out", "bench_training"), "Where results go.")


class LarqPolicy(Policy):
    """The xnor network's blocks with larq's stock layers: ste_sign inputs,
    magnitude_aware_sign kernels (α·sign(W), α = mean|W| per filter), no K."""

    def __init__(self):
        super().__init__("xnor", input_scaling=False)
        self.precision = "larq"

    _ARGS = dict(input_quantizer="ste_sign", kernel_quantizer="magnitude_aware_sign",
                 use_bias=False)

    def conv(self, filters, kernel_size, *, strides=1, padding="same", name=None):
        return lq.layers.QuantConv2D(filters, kernel_size, strides=strides, padding=padding,
                                     pad_values=0.0, name=name, **self._ARGS)

    def dense(self, units, *, name=None):
        return lq.layers.QuantDense(units, name=name, **self._ARGS)


def build(network, precision):
    """``network`` (a zoo name) in ``precision`` (a key of PRECISIONS), 10 classes."""
    shape = NETWORKS[network]
    if precision == "larq":
        return models.ARCHITECTURES[network].builder(LarqPolicy(), input_shape=shape,
                                                     num_classes=10)
    options = {"input_scaling": False} if precision == "xnor_noK" else {}
    base = "xnor" if precision == "xnor_noK" else precision
    return models.build(network, base, input_shape=shape, num_classes=10, **options)


class Case:
    """One (network, precision, xla) training step, ready to call."""

    def __init__(self, network, precision, xla, batch_size):
        self.key = (network, precision, xla)
        tf.keras.utils.set_random_seed(0)
        self.model = build(network, precision)
        self.model.compile(tf.keras.optimizers.Adam(1e-3),
                           tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           jit_compile=xla)
        if self.model.jit_compile is not xla:
            raise RuntimeError(f"{self.key}: tf.keras changed jit_compile to {self.model.jit_compile}")
        rng = np.random.default_rng(0)
        images = rng.standard_normal((batch_size, *NETWORKS[network])).astype(np.float32)
        labels = rng.integers(0, 10, batch_size).astype(np.int32)
        batch = tf.data.Dataset.from_tensors((images, labels)).repeat()
        self.iterator = iter(batch)
        self.batch_size = batch_size
        self.function = self.model.make_train_function()
        started = time.perf_counter()
        self.step(1)  # warm-up: tracing (and XLA compilation)
        self.warmup_s = time.perf_counter() - started
        started = time.perf_counter()
        self.step(1)
        self.steps = max(2, round(FLAGS.seconds_per_measure / (time.perf_counter() - started)))
        self.times = []
        self.cpu_times = []  # process CPU seconds per step: steadier than wall time when
        # other jobs share the cores (it does not count time spent waiting for a core)

    def step(self, n):
        for _ in range(n):
            logs = self.function(self.iterator)
        float(logs["loss"])  # waits for the last step

    def measure(self):
        started, cpu_started = time.perf_counter(), time.process_time()
        self.step(self.steps)
        self.times.append((time.perf_counter() - started) / self.steps)
        self.cpu_times.append((time.process_time() - cpu_started) / self.steps)


def _make_folder(root, n):
    """n JPEGs, crops of matplotlib's grace_hopper.jpg with colour jitter, 4 classes."""
    import matplotlib.cbook as cbook
    from PIL import Image

    source = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    rng = np.random.default_rng(0)
    for i in range(n):
        directory = os.path.join(root, "train", f"class{i % 4}")
        os.makedirs(directory, exist_ok=True)
        x0, y0 = (int(v) for v in rng.integers(0, 100, 2))
        size = (500, 375) if i % 2 else (375, 500)
        image = np.asarray(source.crop((x0, y0, x0 + 400, y0 + 480)).resize(size), np.float32)
        image = np.clip(image * rng.uniform(0.7, 1.2, 3), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(os.path.join(directory, f"{i}.jpg"), quality=90)


def time_pipeline(n, batch_size, passes=3):
    """images/s of the image-folder path (train augmentation and eval) on n JPEGs."""
    results = {}
    with tempfile.TemporaryDirectory() as root:
        _make_folder(root, n)
        for name, augment in (("train (resnet18 augmentation)", True), ("eval (resize + crop)", False)):
            ds = data.load(root, "train", batch_size=batch_size, recipe="resnet18",
                           augment=augment, seed=0)
            for _ in ds.take(1):  # warm-up
                pass
            started = time.perf_counter()
            images = sum(int(x.shape[0]) for _ in range(passes) for x, _ in ds)
            results[name] = images / (time.perf_counter() - started)
    return results


def _cpu():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor()
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", "?").strip()
    flags_ = fields.get("Flags", "").split()
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vpopcntdq") if f in flags_]
    return (f"{name} (family {fields.get('CPU family', '?').strip()}, model "
            f"{fields.get('Model', '?').strip()}), {os.cpu_count()} cores, {' '.join(isa)}")


def _table(rows, batch_size):
    lines = ["| network | precision | XLA | ms/step | images/s | × FP twin | × no-XLA "
             "| CPU ms/step | CPU × FP twin |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        no_xla = f"{r['vs_no_xla']:.2f}" if r["vs_no_xla"] is not None else "–"
        lines.append(f"| {r['network']} | {r['precision']} | {r['xla']} | {r['ms']:.1f} | "
                     f"{r['images_per_s']:.1f} | {r['vs_fp']:.2f} | {no_xla} | "
                     f"{r['cpu_ms']:.1f} | {r['cpu_vs_fp']:.2f} |")
    return "\n".join(lines)


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")  # retracing notes (one function per case) and
    import logging  # larq's "starved weights" note for its stock layers
    logging.getLogger("larq.layers_base").setLevel(logging.ERROR)
    for name, values, allowed in (("networks", FLAGS.networks, NETWORKS),
                                  ("precisions", FLAGS.precisions, PRECISIONS),
                                  ("xla", FLAGS.xla, ("off", "on"))):
        bad = [v for v in values if v not in allowed]
        if bad:
            raise app.UsageError(f"--{name} must be among {tuple(allowed)}. Received: {bad}")
    cpu = _cpu()
    print(f"CPU: {cpu}; load average {os.getloadavg()[0]:.2f}", flush=True)
    pipeline = {}
    if FLAGS.pipeline_images:
        pipeline = time_pipeline(FLAGS.pipeline_images, FLAGS.batch_size)
        for name, rate in pipeline.items():
            print(f"input pipeline, image folder, {name}: {rate:.1f} images/s", flush=True)

    cases = []
    for network in FLAGS.networks:
        for xla in FLAGS.xla:
            for precision in FLAGS.precisions:
                case = Case(network, precision, xla == "on", FLAGS.batch_size)
                print(f"built {network} {precision} xla={xla}: warm-up {case.warmup_s:.1f} s, "
                      f"{case.steps} steps per measure", flush=True)
                cases.append(case)
    load_before = os.getloadavg()[0]
    for round_ in range(FLAGS.rounds):
        shift = round_ % len(cases)
        for case in cases[shift:] + cases[:shift]:
            case.measure()
        print(f"round {round_ + 1}/{FLAGS.rounds} done", flush=True)
    load_after = os.getloadavg()[0]

    median = {c.key: statistics.median(c.times) for c in cases}
    cpu_median = {c.key: statistics.median(c.cpu_times) for c in cases}
    rows = []
    for c in cases:
        network, precision, xla = c.key
        fp = median.get((network, "fp", xla))
        cpu_fp = cpu_median.get((network, "fp", xla))
        plain = median.get((network, precision, False))
        rows.append({
            "network": network, "precision": precision, "xla": "on" if xla else "off",
            "ms": 1000 * median[c.key], "images_per_s": c.batch_size / median[c.key],
            "vs_fp": median[c.key] / fp if fp else float("nan"),
            "vs_no_xla": median[c.key] / plain if xla and plain else None,
            "cpu_ms": 1000 * cpu_median[c.key],
            "cpu_vs_fp": cpu_median[c.key] / cpu_fp if cpu_fp else float("nan"),
            "times_s": c.times, "cpu_times_s": c.cpu_times, "warmup_s": c.warmup_s, "steps_per_measure": c.steps,
        })
    summary = []
    for network in FLAGS.networks:
        for xla in (False, True):
            get = lambda p: median.get((network, p, xla))  # noqa: E731
            if None in (get("xnor"), get("xnor_noK"), get("larq"), get("fp")):
                continue
            k_cost = get("xnor") - get("xnor_noK")
            summary.append(
                f"- {network}, XLA {'on' if xla else 'off'}: xnor {get('xnor') / get('fp'):.2f}× FP; "
                f"K costs {1000 * k_cost:.1f} ms/step ({k_cost / get('fp'):.2f}× FP); "
                f"xnor_noK / larq twin {get('xnor_noK') / get('larq'):.2f}; "
                f"xnor vs larq + K: {get('xnor') / (get('larq') + k_cost):.2f}")
    step_rate = max((r["images_per_s"] for r in rows if r["network"] == "resnet18"), default=None)
    text = [f"# Training step speed ({FLAGS.batch_size} images per step, Adam, synthetic data)", "",
            f"CPU: {cpu}. TensorFlow {tf.__version__}, larq {lq.__version__}. "
            f"Load average {load_before:.2f} before timing, {load_after:.2f} after. "
            f"Medians of {FLAGS.rounds} interleaved rounds; resnet18 at 64x64 input. "
            "CPU ms/step is the process's CPU time (all threads) per step: on a shared "
            "machine it is steadier than wall time, which includes waiting for a core.", "",
            _table(rows, FLAGS.batch_size), "", *summary, ""]
    if pipeline:
        text += ["Input pipeline (image folder of 500x375 JPEGs, 224x224 output, "
                 f"batch {FLAGS.batch_size}):", ""]
        text += [f"- {name}: {rate:.1f} images/s" for name, rate in pipeline.items()]
        if step_rate:
            text += [f"- fastest resnet18 step (at 64x64, so a 224x224 step is slower still): "
                     f"{step_rate:.1f} images/s; pipeline / step = "
                     f"{min(pipeline.values()) / step_rate:.1f}×"]
        text.append("")
    report = "\n".join(text)
    print(report)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    atomic_write(os.path.join(FLAGS.output_dir, "results.md"), report)
    atomic_write(os.path.join(FLAGS.output_dir, "results.json"), json.dumps({
        "cpu": cpu, "tensorflow": tf.__version__, "larq": lq.__version__,
        "batch_size": FLAGS.batch_size, "rounds": FLAGS.rounds,
        "load_average": [load_before, load_after], "rows": rows,
        "pipeline_images_per_s": pipeline, "summary": summary}, indent=2))


if __name__ == "__main__":
    app.run(main)
