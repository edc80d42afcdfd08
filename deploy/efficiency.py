"""Efficiency analysis (§4.1, Fig. 4): weight memory, and binary vs float speedup.

(a) Weight memory of AlexNet, ResNet-18 and VGG-19 in double precision (8 bytes per
    weight), float32 (4 bytes) and binary (1 bit per conv/dense weight plus a float32
    α per filter; BatchNorm and biases stay float32), as in Fig. 4a, plus "binary,
    first/last float": this project's deployed form, where the first and last layers
    keep float32 weights (§4.1).
(b, c) Speedup of one binary convolution over a float convolution as the number of
    input channels c and the filter size N_W vary, the others fixed at c = 256,
    N_I = 14², N_W = 3² (256 output filters). The theoretical speedup is
    `theoretical_speedup` (S = 64·c·N_W / (c·N_W + 64)); the measured one is the
    median latency of the float32 convolution on stock TFLite with XNNPACK (this
    machine's fastest float path) divided by that of the same convolution binarized
    (``sign`` → ``LceQuantize`` + ``LceBconv2d``) on LCE's fastest x86 path, timed
    interleaved on one thread.

`run` writes ``fig4a_memory.png``, ``fig4b_channels.png``, ``fig4c_filter_size.png``,
``fig4.md`` (tables) and ``fig4.json`` into a directory.

Example:

>>> round(theoretical_speedup(256, 9), 2)     # the paper's 62.27×
62.27
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

__all__ = ["theoretical_speedup", "weight_memory", "measure_conv_speedup", "run",
           "CHANNELS", "FILTER_SIZES"]

CHANNELS = (1, 3, 8, 16, 32, 64, 128, 256, 512, 1024)
FILTER_SIZES = (1, 2, 3, 4, 5, 7, 9, 11)
FIXED_CHANNELS = 256
FIXED_FILTER = 3
INPUT_SIZE = 14
OUTPUT_FILTERS = 256


def theoretical_speedup(c: int, n_w: int) -> float:
    r"""The paper's speedup of a binary convolution (§4.1).

    A float convolution takes c·N_W·N_I operations; the binary one c·N_W·N_I binary
    operations, 64 per clock, plus N_I non-binary ones:

    \\[ S = \frac{c N_W N_I}{\frac{1}{64} c N_W N_I + N_I} = \frac{64 c N_W}{c N_W + 64} \\]
    """
    return 64.0 * c * n_w / (c * n_w + 64.0)


def _binarizable(layer) -> bool:
    import tensorflow as tf

    return isinstance(layer, (tf.keras.layers.Conv2D, tf.keras.layers.Dense))


def weight_memory(model, *, first_last_float=False) -> dict:
    """Bytes of ``model``'s weights: {"double", "float32", "binary"}.

    Binary: 1 bit per conv/dense kernel weight + 4 bytes per output filter (α); other
    parameters float32. With ``first_last_float``, the first and last conv/dense
    layers count as float32.
    """
    layers = [layer for layer in _all_layers(model) if layer.weights]
    binarizable = [layer for layer in layers if _binarizable(layer)]
    float_layers = set()
    if first_last_float and binarizable:
        float_layers = {id(binarizable[0]), id(binarizable[-1])}
    params = binary = 0.0
    for layer in layers:
        count = sum(int(np.prod(w.shape)) for w in layer.weights
                    if "moving" not in w.name)
        params += count
        if _binarizable(layer) and id(layer) not in float_layers:
            kernel = int(np.prod(layer.kernel.shape))
            binary += kernel / 8 + 4 * layer.kernel.shape[-1] + 4 * (count - kernel)
        else:
            binary += 4 * count
    return {"params": int(params), "double": 8 * params, "float32": 4 * params,
            "binary": binary}


def _all_layers(model):
    import tensorflow as tf

    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def _conv_flatbuffers(c, k, *, seed=0):
    """(binary LCE flatbuffer, float TFLite flatbuffer) of one 14×14 conv layer."""
    import larq_compute_engine as lce
    import tensorflow as tf
    from larq import math as lq_math

    rng = np.random.default_rng(seed)
    signs = np.where(rng.standard_normal((k, k, c, OUTPUT_FILTERS)) < 0, -1.0, 1.0)
    kernel = tf.constant((signs * 0.05).astype(np.float32))
    spec = tf.TensorSpec((1, INPUT_SIZE, INPUT_SIZE, c), tf.float32)

    class Binary(tf.Module):
        @tf.function(input_signature=[spec], autograph=False)
        def serve(self, x):
            return {"y": tf.nn.conv2d(lq_math.sign(x), kernel, 1, "SAME")}

    class Float(tf.Module):
        @tf.function(input_signature=[spec], autograph=False)
        def serve(self, x):
            return {"y": tf.nn.conv2d(x, kernel, 1, "SAME")}

    import tempfile

    binary = Binary()
    with tempfile.TemporaryDirectory() as directory:
        tf.saved_model.save(binary, directory, signatures={"serving_default": binary.serve})
        binary_fb = lce.convert_saved_model(directory)
    floating = Float()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [floating.serve.get_concrete_function()], floating)
    return binary_fb, converter.convert()


@dataclasses.dataclass
class SpeedupPoint:
    c: int
    k: int
    theoretical: float
    measured: float
    binary_ms: float
    float_ms: float


def measure_conv_speedup(c, k, *, runs=30, warmup=3, runtime="lce") -> SpeedupPoint:
    """Measured binary vs float speedup of one conv (see the module docstring)."""
    from deploy.bench import time_interleaved
    from deploy.runtime import make_interpreter

    binary_fb, float_fb = _conv_flatbuffers(c, k)
    runners = [("binary", make_interpreter(binary_fb, runtime)),
               ("float", make_interpreter(float_fb, "tflite"))]
    x = np.random.default_rng(1).standard_normal((1, INPUT_SIZE, INPUT_SIZE, c)).astype(np.float32)
    times = time_interleaved(runners, x, runs=runs, warmup=warmup, progress=False)
    binary_ms = 1e3 * float(np.median(times["binary"]))
    float_ms = 1e3 * float(np.median(times["float"]))
    return SpeedupPoint(c=c, k=k, theoretical=theoretical_speedup(c, k * k),
                        measured=float_ms / binary_ms, binary_ms=binary_ms, float_ms=float_ms)


def _memory_table():
    import tensorflow as tf

    from xnor_keras import models

    architectures = {
        "AlexNet": lambda: models.build("alexnet", "fp"),
        "ResNet-18": lambda: models.build("resnet18", "fp"),
        "VGG-19": lambda: tf.keras.applications.VGG19(weights=None),
    }
    table = {}
    for name, build in architectures.items():
        model = build()
        memory = weight_memory(model)
        memory["binary_first_last_float"] = weight_memory(model, first_last_float=True)["binary"]
        table[name] = memory
        del model
        tf.keras.backend.clear_session()
    return table


def _plot_memory(table, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table)
    kinds = [("double", "double (64-bit)"), ("float32", "float32"),
             ("binary_first_last_float", "binary, first/last float"), ("binary", "binary")]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.2
    for i, (key, label) in enumerate(kinds):
        values = [table[n][key] / 2**20 for n in names]
        bars = ax.bar(np.arange(len(names)) + (i - 1.5) * width, values, width, label=label)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(np.arange(len(names)), names)
    ax.set_ylabel("weight memory (MiB)")
    ax.set_yscale("log")
    ax.set_title("Fig. 4a: memory of the weights")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _plot_speedup(points, key, xlabel, title, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [getattr(p, key) if key == "c" else p.k * p.k for p in points]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(xs, [p.theoretical for p in points], "o-", label="theoretical S = 64cN_W/(cN_W+64)")
    ax.plot(xs, [p.measured for p in points], "s-",
            label="measured: LCE binary vs TFLite/XNNPACK float32")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("speedup (×)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path):
    import matplotlib.pyplot as plt

    from xnor_keras.io import atomic_savefig

    try:
        atomic_savefig(fig, path, dpi=120)
    finally:
        plt.close(fig)


def _markdown(memory, channels, filters):
    lines = ["# Fig. 4 (XNOR-Net §4.1) reproduced", "",
             "## (a) Weight memory (MiB)", "",
             "| network | parameters | double | float32 | binary, first/last float | binary |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, m in memory.items():
        lines.append(f"| {name} | {m['params'] / 1e6:.1f} M | {m['double'] / 2**20:.1f} | "
                     f"{m['float32'] / 2**20:.1f} | {m['binary_first_last_float'] / 2**20:.1f} | "
                     f"{m['binary'] / 2**20:.1f} |")
    for title, points, key in (("(b) Speedup vs channels (N_W = 3², N_I = 14²)", channels, "c"),
                               ("(c) Speedup vs filter size (c = 256, N_I = 14²)", filters, "k")):
        lines += ["", f"## {title}", "",
                  "| c | filter | theoretical S | measured (float/binary) | binary ms | float ms |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for p in points:
            lines.append(f"| {p.c} | {p.k}×{p.k} | {p.theoretical:.2f} | {p.measured:.2f} | "
                         f"{p.binary_ms:.3f} | {p.float_ms:.3f} |")
    lines += ["", "Measured: median of interleaved single-thread runs; binary = LCE "
              "LceQuantize + LceBconv2d (indirect BGEMM), float = TFLite CONV_2D on XNNPACK; "
              f"{OUTPUT_FILTERS} output filters, 14×14 input, 'same' padding."]
    return "\n".join(lines) + "\n"


def run(out_dir, *, channels=CHANNELS, filter_sizes=FILTER_SIZES, runs=30, memory=True,
        progress=True) -> dict:
    """Computes and measures Fig. 4 and writes its plots and tables to ``out_dir``."""
    from tqdm import tqdm

    os.makedirs(out_dir, exist_ok=True)
    configs = [("c", c, FIXED_FILTER) for c in channels] + \
              [("k", FIXED_CHANNELS, k) for k in filter_sizes]
    measured = {"c": [], "k": []}
    for sweep, c, k in tqdm(configs, desc="fig4 convs", disable=not progress):
        measured[sweep].append(measure_conv_speedup(c, k, runs=runs))
    memory_table = _memory_table() if memory else {}
    if memory_table:
        _plot_memory(memory_table, os.path.join(out_dir, "fig4a_memory.png"))
    _plot_speedup(measured["c"], "c", "number of input channels c (N_W = 3×3, N_I = 14×14)",
                  "Fig. 4b: speedup vs channels", os.path.join(out_dir, "fig4b_channels.png"))
    _plot_speedup(measured["k"], "k", "filter size N_W (c = 256, N_I = 14×14)",
                  "Fig. 4c: speedup vs filter size",
                  os.path.join(out_dir, "fig4c_filter_size.png"))
    result = {"memory_bytes": memory_table,
              "channels": [dataclasses.asdict(p) for p in measured["c"]],
              "filter_sizes": [dataclasses.asdict(p) for p in measured["k"]]}
    from xnor_keras.io import atomic_write

    atomic_write(os.path.join(out_dir, "fig4.json"), json.dumps(result, indent=2))
    atomic_write(os.path.join(out_dir, "fig4.md"),
                 _markdown(memory_table, measured["c"], measured["k"]))
    return result
