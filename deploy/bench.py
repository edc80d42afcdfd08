"""``xnor-deploy bench``: latency of the binary model vs its float32 and int8 twins.

The twins are the same architecture with every binary layer replaced by its float
counterpart (``Conv2D`` / ``Dense``; sign activations become ReLU), rebuilt from the
Keras architecture stored in the .tflite metadata (random weights: latency does not
depend on them) or taken from ``--model``. They are converted with stock TensorFlow
Lite (float32; and full-integer int8 calibrated on random inputs) and run on stock
TFLite with XNNPACK, its fastest x86 path. The binary model runs on the selected
runtime: by default ``auto`` (`deploy.runtime.default_runtime`: this project's native
kernels on x86-64, LCE's elsewhere); the report says which kernels ran.

``against``: other converted files (e.g. the same model converted with
``--int8_float_layers``) timed on the same runtime in the same rounds.

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
import os
import time

import numpy as np

from deploy.artifacts import load_tflite, read_metadata
from deploy.errors import DeployError

__all__ = ["cpu_name", "CpuTimes", "steal_share", "BenchResult", "float_twin", "twin_flatbuffers",
           "time_interleaved", "bench_file", "ProfileResult", "profile_flatbuffer", "profile_file",
           "one_op_model", "sub_model", "pad_conv_pairs", "is_box_filter", "op_class",
           "write_results"]


@dataclasses.dataclass(frozen=True)
class CpuTimes:
    """The machine's CPU time counters, summed over its CPUs (the ``cpu`` line of
    ``/proc/stat``, in clock ticks): ``total`` of all states, ``steal`` the time a hypervisor
    ran other guests while this one's virtual CPUs wanted to run."""

    total: int
    steal: int

    @classmethod
    def read(cls, path: str = "/proc/stat") -> "CpuTimes | None":
        """The counters now, or None where ``path`` is missing or has no ``cpu`` line."""
        try:
            with open(path) as f:
                for line in f:
                    fields = line.split()
                    if fields and fields[0] == "cpu":
                        # user nice system idle iowait irq softirq steal [guest guest_nice]:
                        # guest time is already counted in user/nice.
                        values = [int(v) for v in fields[1:9]]
                        return cls(total=sum(values), steal=values[7] if len(values) > 7 else 0)
        except (OSError, ValueError):
            pass
        return None


def steal_share(before: "CpuTimes | None", after: "CpuTimes | None") -> "float | None":
    """Share of the machine's CPU time stolen by the hypervisor between two readings
    (Δsteal / Δtotal), None without both readings or without elapsed ticks. On a shared
    virtual machine a few percent already move 2-thread timings more than 1-thread ones.

    >>> steal_share(CpuTimes(total=1000, steal=10), CpuTimes(total=1200, steal=30))
    0.1
    """
    if before is None or after is None or after.total <= before.total:
        return None
    return (after.steal - before.steal) / (after.total - before.total)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), for the figures benchmarks print."""
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_results(lines, output_dir, *, cpu_times_before: "CpuTimes | None" = None) -> str:
    """Ends a benchmark's report: appends (and prints) the load average after timing — and,
    given the `CpuTimes` read before timing, the hypervisor's steal share since then — and
    writes ``lines`` to ``output_dir/results.md`` atomically; returns that path.

    >>> import tempfile
    >>> path = write_results(["| a |"], tempfile.mkdtemp())  # doctest: +ELLIPSIS
    load average after: ...
    >>> open(path).read().splitlines()[0]
    '| a |'
    """
    from xnor_keras.io import atomic_write

    after = f"\nload average after: {os.getloadavg()[0]:.2f}"
    stolen = steal_share(cpu_times_before, CpuTimes.read())
    if stolen is not None:
        after += f"; CPU time stolen by the hypervisor during the run: {100 * stolen:.1f}%"
    lines.append(after)
    print(lines[-1].strip())
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "results.md")
    atomic_write(path, "\n".join(lines) + "\n")
    return path


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
               int8=True, progress=True, seed=0, against=()) -> BenchResult:
    """Benchmarks ``tflite_path`` against its float32 (and int8) twins; see the module doc."""
    from xnor_keras.validation import integer_at_least

    for name, value, minimum in (("--runs", runs, 1), ("--warmup", warmup, 0),
                                 ("--threads", threads, 1)):
        integer_at_least(name, value, minimum, error=DeployError)
    tflite, flatbuffer = load_tflite(tflite_path)
    metadata = read_metadata(tflite, tflite_path)
    from deploy.runtime import make_interpreter

    binary = make_interpreter(flatbuffer, runtime, num_threads=threads)
    others = []
    for path in against:
        other = make_interpreter(load_tflite(path)[1], runtime, num_threads=threads)
        if other.input_shape != binary.input_shape:
            raise DeployError(f"--against {path}: input {other.input_shape}, but "
                              f"{tflite_path} takes {binary.input_shape}")
        others.append((f"{os.path.basename(os.fspath(path))} ({other.name})", other))
    model = _keras_model(metadata, model_path, tflite_path)
    twins = twin_flatbuffers(model, int8=int8, seed=seed)
    base = f"{os.path.basename(os.fspath(tflite_path))} ({binary.name})" if others else \
        f"binary ({binary.name})"
    runners = [(base, binary), *others,
               ("float32 twin (TFLite+XNNPACK)", make_interpreter(twins["float32"], "tflite",
                                                                  num_threads=threads))]
    if int8:
        runners.append(("int8 twin (TFLite+XNNPACK)", make_interpreter(twins["int8"], "tflite",
                                                                      num_threads=threads)))
    x = np.random.default_rng(seed).standard_normal(binary.input_shape).astype(np.float32)
    times = time_interleaved(runners, x, runs=runs, warmup=warmup, progress=progress)
    return BenchResult(labels=[label for label, _ in runners], times=times, threads=threads,
                       runs=runs, kernels={label: runner.describe() for label, runner in runners})


# ------------------------------------------------------------------ --profile ---
#
# Per-op time of a converted model on the native runtime. The Python tf.lite
# interpreter exposes no per-op profiler, so the two kinds of nodes are timed apart:
# - LCE nodes (run by this project's delegate): the delegate times every node's kernel
#   itself (deploy.native.delegate_profile), read and reset after every whole-model run;
# - every other (builtin) node: cut out as a one-op model (its non-constant inputs become
#   the model's inputs, `one_op_model`) and timed alone on stock tf.lite with XNNPACK, as
#   the native runtime runs it, with the cost of invoking an interpreter from Python
#   (the median time of a 1-element ADD model, timed in the same rounds) taken off.
# - builtin nodes the delegate fused with a binary convolution (deploy.native, fuse=True):
#   timed inside the fused kernel, which splits its time over the pattern's LceQuantize
#   (affine, bitpacking and sums of |x| in one pass), its K node (the box filter) and its
#   LceBconv2d (the convolution with K in the output transform); its other nodes show 0 ms
#   and "fused into node N".
# - a PAD whose output only a CONV_2D / DEPTHWISE_CONV_2D reads: cut out and timed with
#   that convolution as a two-op model, the pair's time on the convolution's row (XNNPACK
#   folds an explicit zero PAD into its convolution: AlexNet's 224x224x3 stem PAD costs
#   0.8 ms alone and nothing beside its 11x11 CONV_2D), the PAD "fused into node N".
# Classes: LCE ops are "binary"; float CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED
# "float conv/FC"; everything else, and every builtin the delegate fused (the box
# CONV_2D of K included; `is_box_filter`, fused or not), "glue". A fused LceQuantize's time includes the affine and the
# sums of |x| done in its pass, so it is counted as binary.
# Limits: a one-op model runs with its inputs hot in cache and without XNNPACK's fusion
# of neighbouring ops into one subgraph, so float and glue ops are approximations; the
# "whole model" line (median of the same interleaved rounds) against the sum of the parts
# shows how far off they are.

BINARY_CLASS, FLOAT_CLASS, GLUE_CLASS = "binary", "float conv/FC", "glue"
_FLOAT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def op_class(name: str) -> str:
    """``binary`` (LCE ops, run by the native delegate), ``float conv/FC`` or ``glue``."""
    from deploy.tflite_model import LCE_OPS

    if name in LCE_OPS:
        return BINARY_CLASS
    return FLOAT_CLASS if name in _FLOAT_OPS else GLUE_CLASS


def one_op_model(flatbuffer: bytes, op_index: int) -> bytes:
    """Operator ``op_index`` alone: its non-constant inputs and its outputs become the
    model's inputs and outputs (constants, i.e. weights, stay); metadata dropped."""
    return sub_model(flatbuffer, [op_index])


def sub_model(flatbuffer: bytes, op_indices) -> bytes:
    """Operators ``op_indices`` (in execution order) alone: the non-constant tensors they
    read but do not write become the model's inputs, those they write but do not read
    its outputs (constants, i.e. weights, stay); metadata dropped."""
    import flatbuffers

    from deploy.tflite_model import schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
    graph = model.subgraphs[0]
    ops = [graph.operators[i] for i in op_indices]

    def constant(index):
        buffer = model.buffers[graph.tensors[index].buffer]
        return buffer.data is not None and len(buffer.data) > 0 or \
            (getattr(buffer, "size", 0) or 0) > 0

    written = [int(t) for op in ops for t in op.outputs]
    read = [int(t) for op in ops for t in op.inputs if t >= 0]
    graph.operators = ops
    graph.inputs = np.array(list(dict.fromkeys(
        t for t in read if t not in written and not constant(t))), np.int32)
    graph.outputs = np.array([t for t in written if t not in read], np.int32)
    model.signatureDefs = []
    model.metadata = []
    builder = flatbuffers.Builder(1 << 20)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


_PAD_OPS = ("PAD", "PADV2")
_PADDED_CONVS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def is_box_filter(model, op) -> bool:
    """Whether ``op`` is the box filter of K (eq. 11) as the lowering emits it: a CONV_2D of
    one input and one output channel whose constant filter values are all equal."""
    if op.name != "CONV_2D" or len(op.inputs) < 2:
        return False
    weights = model.tensor_data(op.inputs[1])
    return (weights is not None and weights.ndim == 4 and weights.shape[0] == 1 and
            weights.shape[3] == 1 and weights.size > 0 and bool(np.all(weights == weights.flat[0])))


def pad_conv_pairs(model) -> dict:
    """{PAD node: convolution node} for each PAD whose output only one convolution reads
    (as its input), the pairs `profile_flatbuffer` times together (see the notes above)."""
    consumers = model.consumers()
    pairs = {}
    for op in model.ops:
        if op.name not in _PAD_OPS or len(op.outputs) != 1:
            continue
        readers = consumers.get(op.outputs[0], [])
        if len(readers) == 1 and model.ops[readers[0]].name in _PADDED_CONVS and \
                model.ops[readers[0]].inputs[0] == op.outputs[0]:
            pairs[op.index] = readers[0]
    return pairs


@dataclasses.dataclass
class ProfileResult:
    rows: list  # [{"node", "op", "class", "ms", "method"}] in node order
    whole_ms: float  # median whole-model latency (same rounds)
    overhead_ms: float  # invoke overhead taken off each one-op timing
    runs: int
    threads: int
    isa: str

    def total_ms(self) -> float:
        return sum(row["ms"] for row in self.rows)

    def class_ms(self) -> dict:
        totals = {BINARY_CLASS: 0.0, FLOAT_CLASS: 0.0, GLUE_CLASS: 0.0}
        for row in self.rows:
            totals[row["class"]] += row["ms"]
        return totals

    def format(self) -> str:
        total = self.total_ms() or 1e-12
        lines = [f"profile: {self.runs} interleaved runs, {self.threads} thread(s), native "
                 f"kernels {self.isa}; ms = median per run; share of the sum of all ops",
                 f"{'op':<18} {'node':>5} {'ms':>9} {'share':>7}  class / method"]
        for row in self.rows:
            lines.append(f"{row['op']:<18} {row['node']:>5} {row['ms']:9.4f} "
                         f"{100 * row['ms'] / total:6.1f}%  {row['class']} / {row['method']}")
        lines.append(f"{'sum of ops':<24} {self.total_ms():9.4f} {100.0:6.1f}%")
        for name, ms in self.class_ms().items():
            lines.append(f"  {name:<22} {ms:9.4f} {100 * ms / total:6.1f}%")
        lines.append(f"{'whole model':<24} {self.whole_ms:9.4f}  (median of the same rounds; "
                     f"one-op timings less {1e3 * self.overhead_ms:.1f} us invoke overhead each, "
                     f"floored at 0)")
        return "\n".join(lines)

    def markdown(self, title: str) -> str:
        total = self.total_ms() or 1e-12
        classes = self.class_ms()
        split = ", ".join(f"{name} {ms:.3f} ms ({100 * ms / total:.0f}%)"
                          for name, ms in classes.items())
        lines = [f"**{title}**: sum of ops {self.total_ms():.3f} ms, whole model "
                 f"{self.whole_ms:.3f} ms; {split}.", "",
                 "| op | node | ms | share | class |", "|---|---:|---:|---:|---|"]
        for row in self.rows:
            lines.append(f"| {row['op']} | {row['node']} | {row['ms']:.4f} | "
                         f"{100 * row['ms'] / total:.1f}% | {row['class']} |")
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict:
        return {"rows": self.rows, "whole_ms": self.whole_ms, "overhead_ms": self.overhead_ms,
                "runs": self.runs, "threads": self.threads, "isa": self.isa,
                "class_ms": self.class_ms(), "sum_ms": self.total_ms()}


def _random_feed(interpreter, rng):
    for detail in interpreter.get_input_details():
        shape, dtype = detail["shape"], detail["dtype"]
        if np.issubdtype(dtype, np.floating):
            value = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            value = rng.random(shape) < 0.5
        else:
            info = np.iinfo(dtype)
            value = rng.integers(max(info.min, -128), min(info.max, 127) + 1, size=shape,
                                 dtype=dtype)
        interpreter.set_tensor(detail["index"], value)


def _overhead_interpreter(threads):
    """A model whose one op (ADD of 1 float) costs next to nothing: its invoke time is
    the fixed cost of invoking a tf.lite interpreter from Python."""
    import tensorflow as tf

    function = tf.function(lambda x: x + 1.0).get_concrete_function(
        tf.TensorSpec((1,), tf.float32))
    flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions([function]).convert()
    interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def _timed_invoke(interpreter) -> float:
    start = time.perf_counter()
    interpreter.invoke()
    return time.perf_counter() - start


def profile_flatbuffer(flatbuffer: bytes, *, threads=1, runs=20, warmup=3, isa=None,
                       seed=0, progress=True, fuse=True) -> ProfileResult:
    """Per-op median times of ``flatbuffer`` on the native runtime (see the notes above);
    ``fuse=False``: with the delegate's fusion off (every builtin node on TFLite)."""
    import tensorflow as tf
    from tqdm import tqdm

    from deploy import native
    from deploy.tflite_model import LCE_OPS, TFLiteFormatError, TFLiteModel

    try:
        model = TFLiteModel(flatbuffer)
    except TFLiteFormatError as error:
        raise DeployError(str(error)) from None
    rng = np.random.default_rng(seed)
    whole = native.tflite_interpreter(flatbuffer, num_threads=threads, isa=isa, fuse=fuse)
    _random_feed(whole, rng)
    delegate = whole.xnor_keras_delegate
    whole.invoke()
    delegated = {entry["node"]: entry for entry in native.delegate_profile(delegate, reset=True)}
    singles = {}
    pairs = pad_conv_pairs(model)
    paired_pads = {conv: pad for pad, conv in pairs.items()}
    for op in model.ops:
        if op.name in LCE_OPS or op.index in delegated or op.index in pairs:
            continue
        cut = [paired_pads[op.index], op.index] if op.index in paired_pads else [op.index]
        try:
            interpreter = tf.lite.Interpreter(model_content=sub_model(flatbuffer, cut),
                                              num_threads=threads)
            interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as error:
            raise DeployError(f"--profile: node {op.index} ({op.name}) cannot run as a one-op "
                              f"model: {str(error).splitlines()[0]}") from None
        _random_feed(interpreter, rng)
        singles[op.index] = interpreter
    singles["overhead"] = _overhead_interpreter(threads)
    for _ in range(warmup):
        whole.invoke()
        for interpreter in singles.values():
            interpreter.invoke()
    native.delegate_profile(delegate, reset=True)
    whole_t, lce_t = [], {}
    single_t = {index: [] for index in singles}
    for _ in tqdm(range(runs), desc="profile", unit="round", disable=not progress, leave=False):
        whole_t.append(_timed_invoke(whole))
        for entry in native.delegate_profile(delegate, reset=True):
            lce_t.setdefault(entry["node"], []).append(entry["seconds"] / max(entry["runs"], 1))
        for index, interpreter in singles.items():
            single_t[index].append(_timed_invoke(interpreter))
    medians = {index: float(np.median(t)) for index, t in single_t.items()}
    overhead = medians.pop("overhead")
    rows = []
    for op in model.ops:
        if op.name in LCE_OPS or op.index in delegated:
            ms = 1e3 * float(np.median(lce_t.get(op.index, [0.0])))
            into = delegated.get(op.index, {}).get("fused_into")
            method = ("delegate timer" if into is None else
                      "delegate timer, fused" if into == op.index or ms > 0 else
                      f"fused into node {into}")
        elif op.index in pairs:
            ms, method = 0.0, f"fused into node {pairs[op.index]} (timed with it)"
        else:
            ms = 1e3 * max(medians[op.index] - overhead, 0.0)
            method = (f"two-op model with PAD node {paired_pads[op.index]}"
                      if op.index in paired_pads else "one-op model")
        glue = (op.name not in LCE_OPS and op.index in delegated) or is_box_filter(model, op)
        rows.append({"node": op.index, "op": op.name,
                     "class": GLUE_CLASS if glue else op_class(op.name), "ms": ms,
                     "method": method})
    return ProfileResult(rows=rows, whole_ms=1e3 * float(np.median(whole_t)),
                         overhead_ms=1e3 * overhead, runs=runs, threads=threads,
                         isa=native.delegate_report(delegate)["isa"])


def profile_file(tflite_path, *, threads=1, runs=20, warmup=3, runtime="auto", seed=0,
                 progress=True) -> ProfileResult:
    """`profile_flatbuffer` for a .tflite file; only the native runtime can be profiled."""
    if runtime not in ("auto", "native"):
        raise DeployError(f"--profile times the native runtime's kernels per node; it cannot "
                          f"profile --runtime {runtime}")
    for name, value, minimum in (("--runs", runs, 1), ("--warmup", warmup, 0),
                                 ("--threads", threads, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise DeployError(f"{name} must be an integer >= {minimum}. Received: {value!r}")
    _, flatbuffer = load_tflite(tflite_path)
    return profile_flatbuffer(flatbuffer, threads=threads, runs=runs, warmup=warmup, seed=seed,
                              progress=progress)
