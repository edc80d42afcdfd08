"""Speed of the native binary kernels against LCE, float32 XNNPACK and int8 (issue 6).

Measures median latency, interleaved in one run (every round times every case on every
runtime, in rotating order, so machine noise hits all alike), of

- single 3x3 binary convolutions, SAME padding (pad_values=1), C -> C channels:
  56x56x64, 28x28x128, 14x14x256, 7x7x512;
- whole models: XNOR ResNet-18 and XNOR AlexNet (224x224x3) and the default
  Fashion-MNIST network (fashion_net), converted with ``deploy.convert.convert_model``,
  each with and without the input scaling K (eq. 11; ``*_noK``);

on four runtimes:

- ``native``: this project's kernels (deploy.native) inside stock tf.lite; float ops on
  XNNPACK;
- ``lce``: larq-compute-engine's interpreter in its fastest x86 setting
  (use_indirect_bgemm=True, use_xnnpack=True);
- ``float32``: the float twin (same architecture in full precision) on stock tf.lite
  with XNNPACK;
- ``int8``: the float twin after post-training int8 quantization (representative data:
  standard-normal inputs) on stock tf.lite;
- ``openvino`` (single layers only, when the optional ``openvino`` package is installed:
  ``bash scripts/install.sh bench``): OpenVINO's CPU BinaryConvolution, the other x86
  binary-convolution engine (`openvino_peer`); without it the script says so and leaves
  the column out.

With single layers, the machine's binary peak (XNOR+popcount of 64-bit words from L1, the
"best" of `bench_popcount.py`'s roofline) is measured before and after the rounds
(``--noroofline`` skips it); each layer row then shows its time at that peak
(S·S·C·9·C/64 words ÷ the peak), the native kernel's share of it, and OpenVINO's time ÷
the time at the peak: the most any kernel could be faster than OpenVINO on this core.

Weights are random (speed does not depend on their values). Before timing, native and
LCE outputs are compared on the same input. Prints a Markdown table and writes it with
the raw numbers to ``--output_dir`` (results.md, results.json); a second table gives the
minimum latencies, which a busy machine (other processes on the same cores) distorts
less than the medians. The 1-minute load average before and after timing is printed.

    python benchmarks/bench_kernels.py                       # everything, one thread
    python benchmarks/bench_kernels.py --cases=layers --rounds=5
    python benchmarks/bench_kernels.py --threads=2       # adds native on 1 thread: scaling

With ``--threads`` N > 1 every runtime gets N threads and native also runs on one thread
in the same rounds, so the table shows how the binary ops scale with threads.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import xnor_keras  # noqa: E402,F401  (legacy Keras before TensorFlow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402
from tqdm import tqdm  # noqa: E402

import openvino_peer  # noqa: E402  (benchmarks/, beside this script)
from deploy import native  # noqa: E402
from deploy.bench import cpu_name as _cpu_name  # noqa: E402
from deploy.validation import validate_bytes  # noqa: E402
from xnor_keras.io import atomic_write  # noqa: E402

FLAGS = flags.FLAGS
LAYERS = {"56x56x64": (56, 64), "28x28x128": (28, 128), "14x14x256": (14, 256),
          "7x7x512": (7, 512)}
MODELS = {"resnet18": "XNOR ResNet-18 (224)", "alexnet": "XNOR AlexNet (224)",
          "fashion_net": "fashion_net (28x28)", "resnet18_noK": "XNOR ResNet-18 (224), no K",
          "alexnet_noK": "XNOR AlexNet (224), no K", "fashion_net_noK": "fashion_net, no K"}
RUNTIMES = ("native", "lce", "float32", "int8")
flags.DEFINE_list("cases", ["layers", "models"],
                  f"'layers', 'models', or names from: {', '.join([*LAYERS, *MODELS])}.")
flags.DEFINE_integer("threads", 1, "Threads for every runtime.")
flags.DEFINE_list("native_isas", [], "Also time the native runtime forced to these kernel "
                  "paths (e.g. avx2,avx512) in the same rounds, with a table of their ratios.")
flags.DEFINE_integer("rounds", 12, "Interleaved rounds; each times every case on every runtime.")
flags.DEFINE_float("seconds_per_measure", 0.15, "Invocations per round and pair fill this long.")
flags.DEFINE_string("output_dir", "out/bench_kernels", "Where results.md / results.json go.")
flags.DEFINE_bool("roofline", True, "With single layers: measure the machine's binary peak "
                  "(benchmarks/bench_popcount.py) before and after the rounds, and show each "
                  "layer's time at that peak and the most any kernel could gain on OpenVINO.")


def _layer_models(size, channels):
    import larq as lq

    inp = tf.keras.Input((size, size, channels))
    binary = tf.keras.Model(inp, lq.layers.QuantConv2D(
        channels, 3, padding="same", pad_values=1, input_quantizer="ste_sign",
        kernel_quantizer="ste_sign", kernel_constraint="weight_clip", use_bias=False)(inp))
    inp = tf.keras.Input((size, size, channels))
    floating = tf.keras.Model(inp, tf.keras.layers.Conv2D(channels, 3, padding="same",
                                                          use_bias=False)(inp))
    return binary, floating


def _convert_binary_layer(model):
    import larq_compute_engine as lce

    return lce.convert_keras_model(model)


def _convert_float(model, *, int8):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if int8:
        shape = tuple(model.inputs[0].shape[1:])
        rng = np.random.default_rng(0)

        def representative():
            for _ in range(8):
                yield [rng.normal(size=(1, *shape)).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def _flatbuffers(case):
    """({runtime: flatbuffer}, binary kernel or None) for one case (native and lce share
    the binary flatbuffer; the kernel of a single layer is what OpenVINO's model uses)."""
    from deploy.convert import convert_model
    from xnor_keras import models

    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    kernel = None
    if case in LAYERS:
        binary, floating = _layer_models(*LAYERS[case])
        binary_fb = _convert_binary_layer(binary)
        kernel = binary.layers[-1].kernel.numpy()
    else:
        network, no_k = case.removesuffix("_noK"), case.endswith("_noK")
        options = {"input_scaling": False} if no_k else {}
        binary_fb = convert_model(models.build(network, "xnor", **options)).flatbuffer
        floating = models.build(network, "fp")
    return {"native": binary_fb, "native_1t": binary_fb, "lce": binary_fb,
            **{f"native_{isa}": binary_fb for isa in FLAGS.native_isas},
            "float32": _convert_float(floating, int8=False),
            "int8": _convert_float(floating, int8=True)}, kernel


class _Timed:
    """One runtime on one model, input set once; ``__call__`` runs one inference."""

    def __init__(self, runtime, flatbuffer, x, threads):
        self.runtime = runtime
        validate_bytes(flatbuffer)
        if runtime == "lce":
            from larq_compute_engine.tflite.python.interpreter import Interpreter

            self._lce = Interpreter(flatbuffer, num_threads=threads, use_reference_bconv=False,
                                    use_indirect_bgemm=True, use_xnnpack=True).interpreter
            self._inputs = [x if self._lce.input_types[0] == np.float32 else
                            np.zeros(x.shape, self._lce.input_types[0])]
            return
        if runtime.startswith("native"):
            isa = None
            if runtime == "native_1t":
                threads = 1
            elif runtime.startswith("native_"):
                isa = runtime[len("native_"):]
            self._interpreter = native.tflite_interpreter(flatbuffer, num_threads=threads,
                                                          isa=isa)
        else:
            self._interpreter = tf.lite.Interpreter(model_content=flatbuffer,
                                                    num_threads=threads)
            self._interpreter.allocate_tensors()
        detail = self._interpreter.get_input_details()[0]
        self._interpreter.set_tensor(detail["index"], x.astype(detail["dtype"]))
        self._output = self._interpreter.get_output_details()[0]["index"]

    seconds = 0.0  # total time in __call__

    def __call__(self):
        start = time.perf_counter()
        if self.runtime == "lce":
            out = self._lce.predict(self._inputs)[0]
        else:
            self._interpreter.invoke()
            out = self._interpreter.get_tensor(self._output)
        self.seconds += time.perf_counter() - start
        return out

    def report(self):
        if self.runtime == "native":
            return native.delegate_report(self._interpreter.xnor_keras_delegate)
        return None


def _measure(fn, count):
    times = []
    for _ in range(count):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _cases():
    selected = []
    for item in FLAGS.cases:
        if item == "layers":
            selected += list(LAYERS)
        elif item == "models":
            selected += list(MODELS)
        elif item in LAYERS or item in MODELS:
            selected.append(item)
        else:
            raise app.UsageError(f"unknown case {item!r}")
    return list(dict.fromkeys(selected))


def layer_word_ops(case) -> float:
    """64-bit XNOR+popcount word operations of a single layer: S·S·C_out·(9·C_in)/64."""
    size, channels = LAYERS[case]
    return size * size * channels * 9.0 * channels / 64


def _table(cases, stats, checks, header, peak=None):
    scaling = "native_1t" in stats[cases[0]]
    peer = any("openvino" in stats[case] for case in cases)
    bound = peak is not None and any(case in LAYERS for case in cases)
    lines = [header, "",
             "| case | native ms | LCE ms | float32 ms | int8 ms | × vs float32 | × vs LCE | "
             "× vs int8 | max abs(native − LCE) |" + (" native 1-thread ms | × vs 1 thread |"
                                                       if scaling else "") +
             (" OpenVINO ms | × vs OpenVINO |" if peer else "") +
             (" at binary peak ms | native share of peak |" if bound else "") +
             (" × vs OpenVINO at peak |" if bound and peer else ""),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if scaling else "") +
             ("---:|---:|" if peer else "") + ("---:|---:|" if bound else "") +
             ("---:|" if bound and peer else "")]
    for case in cases:
        m = stats[case]
        label = f"{case} 3x3 binary" if case in LAYERS else MODELS[case]
        openvino = (f" {m['openvino']:.3f} | {m['openvino'] / m['native']:.2f} |"
                    if "openvino" in m else " – | – |")
        at_peak = 1000 * layer_word_ops(case) / peak if bound and case in LAYERS else None
        roof = ""
        if bound:
            roof = (f" {at_peak:.3f} | {100 * at_peak / m['native']:.0f}% |" if at_peak else
                    " – | – |")
            if peer:
                roof += (f" {m['openvino'] / at_peak:.2f} |" if at_peak and "openvino" in m
                         else " – |")
        lines.append(
            f"| {label} | {m['native']:.3f} | {m['lce']:.3f} | {m['float32']:.3f} | "
            f"{m['int8']:.3f} | {m['float32'] / m['native']:.2f} | {m['lce'] / m['native']:.2f} | "
            f"{m['int8'] / m['native']:.2f} | {checks[case]:.2g} |" +
            (f" {m['native_1t']:.3f} | {m['native_1t'] / m['native']:.2f} |" if scaling else "") +
            (openvino if peer else "") + roof)
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    cases = _cases()
    threads = FLAGS.threads
    runtimes = RUNTIMES + (("native_1t",) if threads > 1 else ()) + \
        tuple(f"native_{isa}" for isa in FLAGS.native_isas)
    info = native.library_info()
    have_openvino, openvino_info = openvino_peer.available()
    if not have_openvino:
        print(f"bench_kernels: no OpenVINO column: {openvino_info}", flush=True)
    timed, checks, openvino_checks = {}, {}, {}
    rng = np.random.default_rng(1)
    for case in tqdm(cases, desc="convert"):
        flatbuffers, kernel = _flatbuffers(case)
        shape = tf.lite.Interpreter(model_content=flatbuffers["float32"]).get_input_details()[0]
        x = rng.normal(size=shape["shape"]).astype(np.float32)
        timed[case] = {r: _Timed(r, flatbuffers[r], x, threads) for r in runtimes}
        ours, theirs = timed[case]["native"](), timed[case]["lce"]()
        checks[case] = float(np.max(np.abs(ours.astype(np.float64) - theirs)))
        if have_openvino and kernel is not None:
            peer = openvino_peer.OpenVinoBinaryConv(kernel, size=x.shape[1], threads=threads)
            layers = peer.executed_layer_types()
            if "BinaryConvolution" not in layers:
                raise RuntimeError(f"{case}: OpenVINO ran {layers}, not its BinaryConvolution")
            peer.set_input(x)
            openvino_checks[case] = float(np.max(np.abs(peer().astype(np.float64) - theirs)))
            if openvino_checks[case] != 0:  # both compute exact ±1 dot products
                raise RuntimeError(f"{case}: OpenVINO's output differs from LCE's by up to "
                                   f"{openvino_checks[case]}: the peer model is not the same layer")
            timed[case]["openvino"] = peer
    counts = {}
    for case in cases:
        for runtime, fn in timed[case].items():
            fn()  # warm up
            one = min(_measure(fn, 3))
            counts[(case, runtime)] = max(1, int(FLAGS.seconds_per_measure / max(one, 1e-6)))
    samples = {(case, r): [] for case in cases for r in timed[case]}
    peaks = []
    if FLAGS.roofline and any(case in LAYERS for case in cases):
        import bench_popcount  # benchmarks/, beside this script

        peaks.append(bench_popcount.measure_peak())
    load_before = os.getloadavg()[0]
    for round_index in tqdm(range(FLAGS.rounds), desc="rounds"):
        for case in cases:
            names = list(timed[case])
            shift = round_index % len(names)
            for runtime in names[shift:] + names[:shift]:
                samples[(case, runtime)] += _measure(timed[case][runtime],
                                                     counts[(case, runtime)])
    if peaks:
        peaks.append(bench_popcount.measure_peak())
    # The higher of the two peaks: the faster a kernel could be, the smaller the time at the
    # peak, so the "× vs OpenVINO at peak" bound errs towards what is possible.
    peak = max(peaks) if peaks else None
    medians = {case: {r: 1000 * float(np.median(samples[(case, r)])) for r in timed[case]}
               for case in cases}
    minima = {case: {r: 1000 * float(np.min(samples[(case, r)])) for r in timed[case]}
              for case in cases}
    report = timed[cases[0]]["native"].report()
    load = " / ".join(f"{x:.1f}" for x in (load_before, os.getloadavg()[0]))
    setup = (f"{threads} thread(s), {FLAGS.rounds} interleaved rounds; native kernels: "
             f"{report['isa']}; CPU: {_cpu_name()} ({os.cpu_count()} cores, 1-min load "
             f"average before / after: {load}); TensorFlow {tf.__version__}.")
    if openvino_checks:
        setup += (f" OpenVINO {openvino_info} (its CPU BinaryConvolution; max |OpenVINO − LCE| "
                  "on the same input: " + ", ".join(f"{c} {v:.2g}" for c, v in
                                                    openvino_checks.items()) + ").")
    if peak is not None:
        setup += (f" Binary peak (XNOR+popcount of 64-bit words, operands in L1, 1 thread, "
                  f"`bench_popcount.measure_peak`, before / after the rounds): "
                  f"{' / '.join(f'{p / 1e9:.2f}' for p in peaks)} G words/s; a layer at the "
                  f"peak takes S·S·C·9·C/64 words ÷ {peak / 1e9:.2f} G words/s, and "
                  "OpenVINO ms ÷ that time is the most any kernel could be faster than OpenVINO "
                  "on this core.")
    table = (_table(cases, medians, checks, f"**Median latency**, {setup}", peak) + "\n" +
             _table(cases, minima, checks, "**Best latency** (minimum over all runs; less "
                    "sensitive to other processes on a busy machine).", peak))
    if FLAGS.native_isas:
        table += _isa_table(cases, medians, FLAGS.native_isas)
    shares = {case: timed[case]["native"].report()["seconds"] / timed[case]["native"].seconds
              for case in cases}
    table += ("\nShare of native inference time spent in the binary kernels (the rest is "
              "TFLite: float ops, (de)quantization of I/O, interpreter overhead): " +
              ", ".join(f"{case} {100 * shares[case]:.0f}%" for case in cases) + ".\n")
    print(table)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    atomic_write(os.path.join(FLAGS.output_dir, "results.md"), table)
    atomic_write(os.path.join(FLAGS.output_dir, "results.json"), json.dumps(
        {"threads": threads, "rounds": FLAGS.rounds, "isa": report["isa"],
         "library": info["path"], "cpu": _cpu_name(), "medians_ms": medians,
         "minima_ms": minima, "max_abs_native_minus_lce": checks,
         "openvino": openvino_info if have_openvino else None,
         "max_abs_openvino_minus_lce": openvino_checks,
         "native_binary_kernel_share": shares,
         "binary_peak_words_per_s": peaks,
         "load_average": [load_before, os.getloadavg()[0]]}, indent=2))


def _isa_table(cases, medians, isas):
    """Native runtime per forced kernel path, median ms, and each against the first."""
    base = isas[0]
    lines = ["", f"**Native kernel paths** (median ms, same rounds; × = {base} / path):", "",
             "| case | " + " | ".join(f"{isa} ms" for isa in isas) + " | " +
             " | ".join(f"× {isa}" for isa in isas[1:]) + " |",
             "|---|" + "---:|" * (2 * len(isas) - 1)]
    for case in cases:
        m = medians[case]
        lines.append(f"| {case} | " + " | ".join(f"{m['native_' + isa]:.3f}" for isa in isas) +
                     " | " + " | ".join(f"{m['native_' + base] / m['native_' + isa]:.2f}"
                                        for isa in isas[1:]) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    app.run(main)
