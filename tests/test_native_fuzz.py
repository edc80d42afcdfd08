"""The delegate against untrusted .tflite files, built with AddressSanitizer + UBSan
(``deploy.native.build_library(sanitize=True)``): mutated copies of seed models that
exercise its patterns go through it in long-lived worker processes (restarted after a
crash), each file with a timeout.

Asserts no crash, hang or sanitizer report, and that every file is either run or
rejected: with an exception from stock ``tf.lite`` (the delegate's own problems reach it
as one ``xnor_keras native kernels: ...`` line through ``ReportError``) when loaded
directly, with a one-line `DeployError` through ``deploy.native.make_interpreter``
(which validates the file first). The corpus is ``tests/test_deploy_fuzz.py``'s mutation
generator (bit flips, option bytes, truncated options, shapes, types, buffer sizes,
tensor indices, truncations) plus FlexBuffers option values replaced by out-of-range
integers. CI runs ``XNOR_NATIVE_FUZZ_FILES`` = 200 files; the full corpus:

    XNOR_NATIVE_FUZZ_FILES=2000 python -m pytest -q tests/test_native_fuzz.py

Run as ``python tests/test_native_fuzz.py --worker LIBRARY`` it is the worker (the
protocol of ``tests/test_deploy_fuzz.py``: one path per stdin line, ``S <step>`` before
each step and a JSON line when done). The sanitizer runtimes are preloaded into it
(``LD_PRELOAD``, `deploy.native.sanitizer_preload`), reports go to files, and both
sanitizers halt on the first error.
"""

import glob
import json
from pathlib import Path
import os
import sys
import threading
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_FILES = int(os.environ.get("XNOR_NATIVE_FUZZ_FILES", 200))
TIMEOUT = 180  # seconds for one file (the first one includes the worker's start)
WORKERS = 2
# Values a corrupted FlexBuffers option takes: zero, negative, off by one, huge.
OPTION_VALUES = (0, -1, 1, 2, 3, 5, 7, 33, 1 << 20, (1 << 31) - 1, -(1 << 31), (1 << 40))


# ---------------------------------------------------------------------- seeds
def _fashion_net(**options):
    def build():
        import tensorflow as tf

        from deploy.convert import convert_model
        from tests.conftest import trained_like
        from xnor_keras import models

        tf.keras.utils.set_random_seed(11)
        model = models.build("fashion_net", "xnor", **options)
        return convert_model(trained_like(model, np.random.default_rng(11))).flatbuffer
    return build


def _layer_zoo():
    import larq_compute_engine as lce

    from tests.test_native import _layer_zoo as zoo

    return lce.convert_keras_model(zoo())


# Seed models and the delegate patterns they carry; add a model here to fuzz a new pattern
# (e.g. the fused float glue of issue 13.2 once the delegate claims it).
SEEDS = {
    # LceQuantize, LceBconv2d with SAME zero padding, the K chain (ABS, MEAN, box CONV_2D, MUL)
    # with the float MAX_POOL_2D before it fused into its prologue
    "fashion_net": _fashion_net(),
    # LceBMaxPool2d on bitpacked data, no K
    "fashion_net_no_k": _fashion_net(input_scaling=False),
    # C-B-A-P block order: LceDequantize, SIGN, ADD around the binary convolutions
    "fashion_net_cbap": _fashion_net(block_order="cbap"),
    # +1 padding, strides, dilation, groups, partial words, bitpacked outputs, int8-free
    "layer_zoo": _layer_zoo,
}


# ---------------------------------------------------------------------- mutations
def _option_value_mutant(data, rng):
    """One FlexBuffers option of one custom op set to one of `OPTION_VALUES`."""
    from flatbuffers import flexbuffers

    from deploy.tflite_model import TFLiteModel

    model = TFLiteModel(data)
    ops = [op for op in model._model.subgraphs[0].operators
           if op.customOptions is not None and len(op.customOptions)]
    op = ops[int(rng.integers(len(ops)))]
    options = flexbuffers.Loads(bytes(np.asarray(op.customOptions, np.uint8)))
    key = sorted(options)[int(rng.integers(len(options)))]
    options[key] = int(rng.choice(OPTION_VALUES))
    op.customOptions = list(flexbuffers.Dumps(options))
    return model.to_bytes()


def corpus(seeds, n, seed=0):
    """``n`` (seed name, kind, bytes) mutants, spread evenly over ``seeds`` (name →
    flatbuffer): every fifth one an option value, the others `test_deploy_fuzz.mutants`."""
    from tests.test_deploy_fuzz import mutants

    rng = np.random.default_rng(seed)
    names = sorted(seeds)
    counts = [n // len(names) + (i < n % len(names)) for i in range(len(names))]
    out = []
    for i, (name, count) in enumerate(zip(names, counts)):
        generated = mutants(seeds[name], count - count // 5, seed=seed + i)
        for j in range(count):
            if j % 5 == 4:
                out.append((name, "option_value", _option_value_mutant(seeds[name], rng)))
            else:
                out.append((name, *next(generated)))
    return out


# ---------------------------------------------------------------------- the worker
def _inputs(details, rng):
    """Random inputs of each input's shape and type (None if the shape is absurd)."""
    arrays = []
    for detail in details:
        shape = [int(d) for d in detail["shape"]]
        if any(d < 0 for d in shape) or np.prod(shape, dtype=np.float64) > 1e7:
            return None
        dtype = np.dtype(detail["dtype"])
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.random(shape) < 0.5)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            arrays.append(rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape,
                                       dtype=dtype))
        else:
            return None
    return arrays


def _run_direct(tf, library, data, rng):
    """The file on stock tf.lite with the sanitized delegate, no validation first."""
    delegate = tf.lite.experimental.load_delegate(library)
    interpreter = tf.lite.Interpreter(
        model_content=data, experimental_delegates=[delegate],
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType
        .BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    inputs = _inputs(interpreter.get_input_details(), rng)
    if inputs is None:
        raise ValueError("input tensor shape or type cannot be fed")
    for detail, array in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], array)
    interpreter.invoke()
    for detail in interpreter.get_output_details():
        interpreter.get_tensor(detail["index"])


def _run_deploy(native, data, rng):
    """The file through the project's native runtime (validation, then the delegate)."""
    runner = native.make_interpreter(data)
    runner.run(rng.standard_normal(runner.input_shape).astype(np.float32))


def _worker(library):
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # library prints cannot corrupt the protocol
    import warnings

    warnings.simplefilter("ignore")
    import xnor_keras  # noqa: F401
    import tensorflow as tf

    from deploy import native
    from deploy.errors import DeployError

    # deploy.native's runtime loads this (sanitized) build instead of the plain one.
    native._built[native.BuildSpec()] = Path(library)
    rng = np.random.default_rng(0)
    steps = (("direct", lambda data: _run_direct(tf, library, data, rng), (ValueError,
                                                                           RuntimeError)),
             ("deploy", lambda data: _run_deploy(native, data, rng), (DeployError,)))
    for line in sys.stdin:
        path, _, only = line.strip().partition("\t")  # "PATH\tdeploy": that step only
        with open(path, "rb") as f:
            data = f.read()
        results, messages, problems = {}, {}, []
        for name, step, rejections in steps:
            if only and name != only:
                continue
            protocol.write(f"S {name}\n")
            protocol.flush()
            try:
                step(data)
                results[name] = "ran"
            except rejections as error:
                results[name] = "rejected"
                text = str(error).strip()
                messages[name] = text.splitlines()[0] if text else ""
                if not text or (name == "deploy" and "\n" in text):
                    problems.append(f"{name}: error is not one line: {text!r}")
            except BaseException as error:  # a traceback: a failure this test looks for
                import traceback

                results[name] = "traceback"
                problems.append(f"{name}: {type(error).__name__}: {error} "
                                f"{traceback.format_exc()[-600:]!r}")
        protocol.write(json.dumps({"path": path, "results": results, "messages": messages,
                                   "problems": problems}) + "\n")
        protocol.flush()


# ---------------------------------------------------------------------- the parent
@pytest.fixture(scope="module")
def sanitized_library():
    from deploy import native

    return native.build_library(sanitize=True), native.sanitizer_preload()


def _worker_class():
    from tests.test_deploy_fuzz import _Worker

    class SanitizedWorker(_Worker):
        """`_Worker` (one long-lived process, restarted after a crash) with the sanitizer
        runtimes preloaded; each process's stderr (where UBSan reports, even with
        log_path) and ASan's log files go to ``log_dir``."""

        def __init__(self, library, preload, log_dir, name):
            self.args = [sys.executable, os.path.abspath(__file__), "--worker", str(library)]
            self.process = None
            self.log_dir, self.name, self.starts = log_dir, name, 0
            log = os.path.join(log_dir, "report")
            self.env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3",
                        "LD_PRELOAD": preload,
                        "ASAN_OPTIONS": f"detect_leaks=0:halt_on_error=1:log_path={log}",
                        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}

        def _start(self):
            import subprocess

            self.starts += 1
            self.stderr_path = os.path.join(self.log_dir, f"stderr.{self.name}.{self.starts}")
            with open(self.stderr_path, "wb") as stderr:
                self.process = subprocess.Popen(self.args, stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE, stderr=stderr,
                                                env=self.env, bufsize=0)
            self.pending = b""

    return SanitizedWorker


def _sanitizer_lines(text):
    """The sanitizer report in a log (from its first ``ERROR:``/``runtime error:`` line)."""
    for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer",
                   "AddressSanitizer:DEADLYSIGNAL"):
        at = text.find(marker)
        if at >= 0:
            return text[max(0, text.rfind("\n", 0, at) + 1):]
    return ""


def _in_stock_tflite(report):
    """A SEGV report whose stack has no frame of the delegate library: a crash inside
    stock TFLite's own (unsanitized) kernels. A bad access by the delegate is reported by
    ASan where it happens, in the delegate's instrumented code."""
    frames = [line for line in report.splitlines() if line.strip().startswith("#")]
    return bool("SEGV on unknown address" in report and frames
                and "libpywrap_tflite" in frames[0]
                and not any("libxnor_kernels" in f or "/native/" in f for f in frames))


def _serve(worker, paths, out):
    try:
        for path in paths:
            record = worker.run(path, TIMEOUT)
            if "crash" in record or "hang" in record:
                record["pid"], record["stderr"] = worker.process.pid, worker.stderr_path
                if record.get("crash") == "direct":  # the project's path on the same file
                    record["deploy_only"] = worker.run(f"{path}\tdeploy", TIMEOUT)
            out.append(record)
    finally:
        worker.close()


@pytest.fixture(scope="module")
def seeds():
    return {name: build() for name, build in SEEDS.items()}


def _edit(data, change):
    """``data`` with ``change(operators, graph)`` applied to its main subgraph, where
    ``operators(name)`` lists the (object API) operators of op type ``name`` in order."""
    from deploy.tflite_model import TFLiteModel

    model = TFLiteModel(data)
    graph = model._model.subgraphs[0]
    names = [op.name for op in model.ops]
    change(lambda name: [op for op, n in zip(graph.operators, names) if n == name], graph)
    return model.to_bytes()


def _findings(seeds):
    """The files with which the fuzzer found bugs in the delegate (minimal forms): name →
    (bytes, the expected rejection message, or None: it must run)."""
    from flatbuffers import flexbuffers

    def read_before_write(operators, graph):  # the first ADD reads the last LceQuantize's input
        add = operators("ADD")[0]
        add.inputs = [operators("LceQuantize")[-1].inputs[0], *list(add.inputs)[1:]]

    def bconv_option(key, value):
        def change(operators, graph):
            op = operators("LceBconv2d")[0]
            options = flexbuffers.Loads(bytes(np.asarray(op.customOptions, np.uint8)))
            options[key] = value
            op.customOptions = list(flexbuffers.Dumps(options))
        return change

    def uint16_tensor(operators, graph):  # a float ADD output declared UINT16 (TfLiteType 17)
        graph.tensors[operators("ADD")[0].outputs[0]].type = 16  # schema UINT16

    cbap, zoo = seeds["fashion_net_cbap"], seeds["layer_zoo"]
    return {
        # ReplaceNodeSubsetsWithDelegateKernels freed a bad pointer (ASan; SEGV without)
        "read_before_write": (_edit(cbap, read_before_write), "before it is written"),
        # `2 * 2147483647` in the window geometry (UBSan: signed overflow)
        "huge_dilation": (_edit(zoo, bconv_option("dilation_height_factor", (1 << 31) - 1)),
                          "out-of-range"),
        "large_dilation": (_edit(zoo, bconv_option("dilation_height_factor", 20000)),
                           "dilations must be <= 16384"),
        # TfLiteType 17 loaded from an enum declaring 0..9 (UBSan: invalid enum load)
        "uint16_tensor": (_edit(cbap, uint16_tensor), None),
    }


def test_fuzzer_findings_are_clear_rejections(seeds):
    """The delegate's bugs the fuzzer found, as regression tests on the plain build: a
    one-line rejection naming the problem, or (the enum case) a normal run."""
    import tensorflow as tf

    from deploy import native

    for name, (data, message) in _findings(seeds).items():
        rng = np.random.default_rng(0)
        if message is None:
            _run_direct(tf, str(native.build_library()), data, rng)
            continue
        with pytest.raises((ValueError, RuntimeError), match=message):
            _run_direct(tf, str(native.build_library()), data, rng)


def test_project_path_findings_are_one_line_errors(seeds):
    """What the fuzzer found on ``deploy.native``'s path (tracebacks, not crashes): a
    non-UTF-8 tensor name, and a RESHAPE whose shape is computed at run time from
    another tensor (TFLite's kernel fails in invoke)."""
    from deploy import native
    from deploy.errors import DeployError

    def bad_name(operators, graph):
        graph.tensors[graph.outputs[0]].name = b"logits\xe5\x00"

    def runtime_shape(operators, graph):
        reshape = operators("RESHAPE")[0]
        reshape.inputs = [reshape.inputs[0], operators("LceQuantize")[0].outputs[0]]

    cases = ((_edit(seeds["fashion_net"], bad_name), "tensor names are not UTF-8"),
             (_edit(seeds["fashion_net_no_k"], runtime_shape),
              "TensorFlow Lite failed to run this model: .*RESHAPE|reshape"))
    for data, message in cases:
        with pytest.raises(DeployError, match=message) as error:
            native.make_interpreter(data).run(np.zeros((1, 28, 28, 1), np.float32))
        assert "\n" not in str(error.value)


def test_sanitized_delegate_survives_the_mutated_corpus(sanitized_library, seeds, tmp_path,
                                                        capsys):
    library, preload = sanitized_library
    files = corpus(seeds, N_FILES)
    paths, origin = [], {}
    for i, (name, kind, data) in enumerate(files):
        path = str(tmp_path / f"m{i:05d}.tflite")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
        origin[path] = (name, kind)
    for name, (data, _) in _findings(seeds).items():  # the fuzzer's earlier findings
        path = str(tmp_path / f"finding_{name}.tflite")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
        origin[path] = (name, "finding")
    for name, data in seeds.items():  # the unmutated seeds must run on both paths
        path = str(tmp_path / f"seed_{name}.tflite")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
        origin[path] = (name, "original")
    logs = tmp_path / "sanitizer"
    logs.mkdir()
    start = time.monotonic()
    outputs = [[] for _ in range(WORKERS)]
    worker = _worker_class()
    threads = [threading.Thread(target=_serve, args=(worker(library, preload, str(logs), k),
                                                     paths[k::WORKERS], outputs[k]))
               for k in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - start
    records = [record for output in outputs for record in output]
    assert len(records) == len(paths)
    failures, counts, delegate_messages, tflite_crashes = [], {}, 0, []
    for record in records:
        where = f"{record['path']} {origin[record['path']]}"
        if "crash" in record or "hang" in record:
            report = "".join(open(p, errors="replace").read() for p in
                             glob.glob(f"{logs}/report.{record['pid']}") + [record["stderr"]])
            report = _sanitizer_lines(report) or report[-1500:]
            deploy = record.get("deploy_only", {})
            if _in_stock_tflite(report) and deploy.get("results") == {"deploy": "rejected"} \
                    and not deploy.get("problems"):
                frame = next(line for line in report.splitlines() if "#0" in line)
                tflite_crashes.append(f"{where}: {frame.strip()[:120]}; deploy: "
                                      f"{deploy['messages']['deploy'][:100]}")
                continue
            failures.append(f"{where}: {record} {report[:3000]}")
            continue
        failures += [f"{where}: {problem}" for problem in record["problems"]]
        for step, outcome in record["results"].items():
            counts.setdefault(step, {}).setdefault(outcome, 0)
            counts[step][outcome] += 1
        delegate_messages += "xnor_keras native kernels" in record["messages"].get("direct", "")
    # Reports of processes that did not die (none expected: both sanitizers halt).
    crashed = {r.get("stderr") for r in records} | {f"{logs}/report.{r.get('pid')}"
                                                    for r in records}
    reports = [p for p in sorted(glob.glob(f"{logs}/*")) if p not in crashed
               and _sanitizer_lines(open(p, errors="replace").read())]
    failures += [f"sanitizer report {p}: {_sanitizer_lines(open(p).read())[:3000]}"
                 for p in reports]
    with capsys.disabled():  # shown without -s, to be quoted
        print(f"\nsanitized delegate fuzz: {len(paths)} files ({N_FILES} mutants, "
              f"{len(paths) - N_FILES - len(seeds)} earlier findings, {len(seeds)} seeds) in "
              f"{seconds:.0f} s, {len(failures)} crashes/hangs/"
              f"sanitizer reports/tracebacks")
        if tflite_crashes:
            print(f"  {len(tflite_crashes)} crash(es) inside stock TFLite's own kernels on the "
                  "unvalidated path (no delegate frame; the deploy path rejects them):")
            print("\n".join(f"    {line}" for line in tflite_crashes))
        for step in ("direct", "deploy"):
            c = counts.get(step, {})
            print(f"  {step:6s}: {c.get('ran', 0)} ran / {c.get('rejected', 0)} rejected"
                  + (f" ({delegate_messages} by the delegate's own checks)"
                     if step == "direct" else " (one-line DeployError)"))
    assert not failures, "\n".join(failures[:10])
    from deploy.tflite_model import TFLiteModel

    for record in records:
        name, kind = origin[record["path"]]
        if kind == "original":  # the project's runtime takes single-output models only
            single = len(TFLiteModel(seeds[name])._model.subgraphs[0].outputs) == 1
            assert record["results"] == {"direct": "ran",
                                         "deploy": "ran" if single else "rejected"}, record
    # The corpus reaches the delegate: some mutants run, others are rejected by it.
    assert counts["direct"].get("ran", 0) > N_FILES // 20
    assert counts["direct"].get("rejected", 0) > N_FILES // 4


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    sys.path.insert(0, ROOT)
    _worker(sys.argv[2])
