"""Fused against unfused glue, and K against no K, interleaved in one run (issue 13).

For each zoo network (XNOR, with and without the input scaling K of eq. 11) the same
converted .tflite runs on the native runtime twice — the delegate fusing the float glue
(`fuse=True`, the default) and leaving it to TFLite (`fuse=False`, the unfused oracle) —
and all four interpreters of a network are timed round-robin in the same rounds, so the
ratios below compare like with like on a noisy machine:

    python benchmarks/bench_fusion.py                     # 1 thread, 30 rounds
    python benchmarks/bench_fusion.py --threads=2 --models=resnet18 --rounds=50

It prints, per network, the median ms of {K on, K off} x {fused, unfused}, the
fused/unfused speedup and the K-on/K-off cost, and writes them to
``OUTPUT_DIR/results.md``.
"""

import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import xnor_keras  # noqa: E402,F401  (legacy Keras before TensorFlow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from deploy.bench import (CpuTimes, cpu_name as _cpu_name, time_interleaved,  # noqa: E402
                          write_results)
from deploy.convert import convert_model  # noqa: E402
from deploy.native import make_interpreter  # noqa: E402
from xnor_keras import models  # noqa: E402

NETWORKS = {"resnet18": "XNOR ResNet-18 (224)", "alexnet": "XNOR AlexNet (224)",
            "fashion_net": "fashion_net (28x28)"}

FLAGS = flags.FLAGS
flags.DEFINE_list("models", list(NETWORKS), f"Which, of: {', '.join(NETWORKS)}.")
flags.DEFINE_integer("rounds", 30, "Interleaved rounds (one inference of each variant).",
                     lower_bound=1)
flags.DEFINE_integer("threads", 1, "Interpreter threads.", lower_bound=1)
flags.DEFINE_string("isa", None, "Native kernel path (default: auto).")
flags.DEFINE_string("output_dir", "out/bench_fusion", "results.md goes here.")


def bench_network(name, *, rounds, threads, isa):
    """{(k, fused): median ms} of one network, the four variants in the same rounds."""
    runners, shape = [], None
    for k in (True, False):
        tf.keras.backend.clear_session()
        tf.keras.utils.set_random_seed(0)
        model = models.build(name, "xnor", input_scaling=k)
        shape = (1, *model.input_shape[1:])
        flatbuffer = convert_model(model).flatbuffer
        for fused in (True, False):
            runners.append(((k, fused), make_interpreter(flatbuffer, num_threads=threads,
                                                         isa=isa, fuse=fused)))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    times = time_interleaved(runners, x, runs=rounds, warmup=3)
    return {label: 1e3 * float(np.median(t)) for label, t in times.items()}


def main(argv):
    del argv
    unknown = [m for m in FLAGS.models if m not in NETWORKS]
    if unknown:
        sys.exit(f"error: unknown model(s) {', '.join(unknown)}; known: {', '.join(NETWORKS)}")
    header = (f"CPU: {_cpu_name()} ({os.cpu_count()} cores), {FLAGS.threads} thread(s), "
              f"medians of {FLAGS.rounds} interleaved rounds, load average before "
              f"{os.getloadavg()[0]:.2f}")
    print(header, flush=True)
    cpu_times = CpuTimes.read()
    lines = [header, "",
             "| network | K on, fused ms | K on, unfused ms | fused speedup (K on) | "
             "K off, fused ms | K off, unfused ms | K on / K off (fused) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name in FLAGS.models:
        ms = bench_network(name, rounds=FLAGS.rounds, threads=FLAGS.threads, isa=FLAGS.isa)
        row = (f"| {NETWORKS[name]} | {ms[True, True]:.3f} | {ms[True, False]:.3f} | "
               f"{ms[True, False] / ms[True, True]:.2f}× | {ms[False, True]:.3f} | "
               f"{ms[False, False]:.3f} | {ms[True, True] / ms[False, True]:.2f}× |")
        print(row, flush=True)
        lines.append(row)
    write_results(lines, FLAGS.output_dir, cpu_times_before=cpu_times)


if __name__ == "__main__":
    app.run(main)
