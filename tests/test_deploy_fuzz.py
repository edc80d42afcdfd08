"""A fuzz corpus: ≥ 2,000 mutated copies of a converted XNOR model through every verb and
runtime, in long-lived worker processes (restarted after a crash) with a timeout.

Asserts no crash (signal), no hang, no traceback: every (file, verb, runtime) is either
run or rejected with a one-line `DeployError`. The verbs are the library functions the
CLI calls (`inspect_file`, `predict_files`, `verify_files`, `bench_file`), so the
same code path (load_tflite → deploy.validation → make_interpreter) is exercised.
``bench`` and ``verify`` convert or load a Keras model after the file passes
validation (seconds each), so on files that pass they run for a fixed sample only;
every file still goes through their rejection path.

Run as ``python tests/test_deploy_fuzz.py --worker KERAS NPY`` it is the worker: one
path per stdin line, ``S <step>`` before each step and a JSON line when done.
"""

import json
import os
import select
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNTIMES = ("lce", "tflite", "native", "java")  # java: the Android demo's interpreter (JVM)
BENCH_RUNTIMES = ("lce", "tflite", "native")  # bench times the runtimes deploy.runtime has
N_FILES = int(os.environ.get("XNOR_FUZZ_FILES", 2000))  # a smaller corpus for a quick look
HEAVY_SAMPLE = 1  # files passing validation that bench/verify run on, per worker
TIMEOUT = 120  # seconds for one file through every verb and runtime


# ---------------------------------------------------------------------- mutations
def _tree_mutation(data, rng, kind):
    from deploy.tflite_model import TFLiteModel

    model = TFLiteModel(data)
    graph = model._model.subgraphs[0]
    if kind == "options":
        ops = [i for i, op in enumerate(model.ops) if op.custom and op.options]
        op = graph.operators[int(rng.choice(ops))]
        raw = list(op.customOptions)
        op.customOptions = raw[: int(rng.integers(0, len(raw)))]
    elif kind == "shape":
        tensor = graph.tensors[int(rng.integers(len(graph.tensors)))]
        shape = list(tensor.shape) if tensor.shape is not None else []
        if shape:
            shape[int(rng.integers(len(shape)))] = int(rng.choice([0, 1, 2, 3, 31, 33, 64, 999]))
        else:
            shape = [int(rng.integers(1, 5))]
        tensor.shape = shape
    elif kind == "type":
        graph.tensors[int(rng.integers(len(graph.tensors)))].type = int(rng.integers(0, 20))
    elif kind == "buffer":
        buffers = [b for b in model._model.buffers if b is not None and b.data is not None
                   and len(b.data)]
        buffer = buffers[int(rng.integers(len(buffers)))]
        size = max(0, len(buffer.data) + int(rng.choice([-8, -4, -1, 1, 4, 8])))
        buffer.data = np.resize(np.asarray(buffer.data, np.uint8), size)
    elif kind == "index":
        op = graph.operators[int(rng.integers(len(graph.operators)))]
        slots = list(op.inputs)
        slots[int(rng.integers(len(slots)))] = int(rng.integers(-2, len(graph.tensors) + 3))
        op.inputs = slots
    return model.to_bytes()


def _option_spans(data):
    """(start, end) byte ranges of the LCE ops' custom options inside the file."""
    from deploy.tflite_model import TFLiteModel

    model = TFLiteModel(data)
    spans = []
    for op in model._model.subgraphs[0].operators:
        if op.customOptions is not None and len(op.customOptions):
            raw = bytes(np.asarray(op.customOptions, np.uint8))
            start = data.find(raw)
            if start >= 0:
                spans.append((start, start + len(raw)))
    return spans


def mutants(data, n, seed=0):
    """``n`` (kind, bytes) mutations of ``data``: bit flips anywhere, option bytes
    changed, options truncated, shapes / types / buffer sizes / indices changed, file
    truncations."""
    rng = np.random.default_rng(seed)
    spans = _option_spans(data)
    assert spans, "the model has no custom options to corrupt"
    kinds = ("bitflip", "option_bytes", "options", "shape", "type", "buffer", "index",
             "truncate")
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "bitflip":
            raw = bytearray(data)
            for _ in range(int(rng.integers(1, 9))):
                position = int(rng.integers(len(raw)))
                raw[position] ^= 1 << int(rng.integers(8))
            yield kind, bytes(raw)
        elif kind == "option_bytes":
            raw = bytearray(data)
            start, end = spans[int(rng.integers(len(spans)))]
            for _ in range(int(rng.integers(1, 4))):
                raw[int(rng.integers(start, end))] = int(rng.integers(256))
            yield kind, bytes(raw)
        elif kind == "truncate":
            yield kind, data[: int(rng.integers(0, len(data)))]
        else:
            yield kind, _tree_mutation(data, rng, kind)


# ---------------------------------------------------------------------- the worker
def _worker(keras_path, npy_path):
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # library prints cannot corrupt the protocol
    import xnor_keras  # noqa: F401
    from deploy.bench import bench_file
    from deploy.errors import DeployError
    from deploy.inspection import inspect_file
    from deploy.predict import predict_files
    from deploy.verify import verify_files

    heavy_left = HEAVY_SAMPLE
    for line in sys.stdin:
        path = line.strip()
        results, problems = {}, []
        steps = [("inspect", lambda: inspect_file(path).format())]
        for runtime in RUNTIMES:
            steps.append((f"predict/{runtime}", (lambda: _java_predict(path, npy_path))
                          if runtime == "java" else lambda r=runtime: predict_files(
                              path, [npy_path], top=1, runtime=r)))
        passed = "ran" in _run_steps(steps[:1], results, problems, protocol, DeployError)
        steps = steps[1:]
        heavy = not passed or heavy_left > 0
        if heavy:
            heavy_left -= passed
            for runtime in RUNTIMES:
                steps.append((f"verify/{runtime}", lambda r=runtime: verify_files(
                    keras_path, path, n=1, runtime=r, with_noise_floor=False)))
                if runtime in BENCH_RUNTIMES:
                    steps.append((f"bench/{runtime}", lambda r=runtime: bench_file(
                        path, runs=1, warmup=0, runtime=r, model_path=keras_path, int8=False,
                        progress=False)))
        _run_steps(steps, results, problems, protocol, DeployError)
        protocol.write(json.dumps({"path": path, "results": results, "problems": problems})
                       + "\n")
        protocol.flush()


def _java_predict(path, npy_path):
    """The file on the Java interpreter (one long-lived JVM per worker), after the same
    validation every runtime's loader does."""
    from deploy.artifacts import load_tflite
    from deploy.certify.executor import SegmentExecutor

    _, flatbuffer = load_tflite(path)
    SegmentExecutor(flatbuffer, "java")([np.load(npy_path)[None].astype(np.float32)])


def _run_steps(steps, results, problems, protocol, error_type):
    outcomes = set()
    for name, step in steps:
        protocol.write(f"S {name}\n")
        protocol.flush()
        try:
            step()
            results[name] = "ran"
        except error_type as error:
            results[name] = "rejected"
            if "\n" in str(error) or not str(error):
                problems.append(f"{name}: error is not one line: {str(error)!r}")
        except BaseException as error:  # a traceback: the failure this test looks for
            import traceback

            results[name] = "traceback"
            problems.append(f"{name}: {type(error).__name__}: {error} "
                            f"{traceback.format_exc()[-800:]!r}")
        outcomes.add(results[name])
    return outcomes


# ---------------------------------------------------------------------- the parent
def summary(counts, n_files, seconds, n_failures) -> str:
    """The corpus table: per verb, per runtime, files run / rejected (one line each)."""
    lines = [f"fuzz corpus: {n_files} files (the original included) in {seconds:.0f} s, "
             f"{n_failures} crashes/hangs/tracebacks",
             f"  {'verb':8s}" + "".join(f"{r:>24s}" for r in RUNTIMES)]
    for verb in ("inspect", "predict", "verify", "bench"):
        cells = []
        for runtime in RUNTIMES:
            c = counts.get(verb if verb == "inspect" else f"{verb}/{runtime}", {})
            if verb == "bench" and runtime not in BENCH_RUNTIMES:
                cells.append("n/a")
                continue
            cells.append(f"{c.get('ran', 0)} ran / {c.get('rejected', 0)} rejected")
            if verb == "inspect":
                cells = [cells[0]] + [""] * (len(RUNTIMES) - 1)
                break
        lines.append(f"  {verb:8s}" + "".join(f"{c:>24s}" for c in cells))
    return "\n".join(lines)



class _Worker:
    def __init__(self, keras_path, npy_path):
        self.args = [sys.executable, os.path.abspath(__file__), "--worker", str(keras_path),
                     str(npy_path)]
        self.process = None

    def _start(self):
        env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.process = subprocess.Popen(self.args, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        env=env, bufsize=0)
        self.pending = b""

    def _line(self, timeout):
        """The worker's next stdout line (b"" at EOF, None on timeout); own buffer, since
        select() cannot see lines a buffered reader already holds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.pending:
            ready, _, _ = select.select([self.process.stdout], [], [],
                                        max(0.0, deadline - time.monotonic()))
            if not ready:
                return None
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                return b""
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return line + b"\n"

    def run(self, path, timeout):
        """The worker's JSON for ``path``, or {"crash"/"hang": step}."""
        if self.process is None or self.process.poll() is not None:
            self._start()
        self.process.stdin.write(f"{path}\n".encode())
        step = None
        while True:
            line = self._line(timeout)
            if line is None:
                self.process.kill()
                self.process.wait()
                return {"path": path, "hang": step}
            if not line:
                code = self.process.wait()
                return {"path": path, "crash": step, "returncode": code}
            line = line.decode()
            if line.startswith("S "):
                step = line[2:].strip()
            else:
                return json.loads(line)

    def close(self):
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=60)


def _serve(worker, paths, out):
    try:
        for path in paths:
            out.append(worker.run(path, TIMEOUT))
    finally:
        worker.close()


def test_fuzz_corpus_every_verb_every_runtime(xnor_tflite, tmp_path, capsys):
    tflite_path, keras_path = xnor_tflite
    data = tflite_path.read_bytes()
    npy = tmp_path / "image.npy"
    np.save(npy, np.zeros((28, 28, 1), np.float32))
    paths, kinds = [], {}
    for i, (kind, mutated) in enumerate(mutants(data, N_FILES)):
        path = tmp_path / f"m{i:05d}.tflite"
        path.write_bytes(mutated)
        paths.append(str(path))
        kinds[str(path)] = kind
    paths.append(str(tflite_path))  # the unmutated file must run everywhere
    start = time.monotonic()
    outputs = [[], []]
    threads = [threading.Thread(target=_serve, args=(_Worker(keras_path, npy), paths[k::2],
                                                     outputs[k])) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = outputs[0] + outputs[1]
    assert len(records) == len(paths)
    counts = {}
    failures = []
    for record in records:
        if "crash" in record or "hang" in record:
            failures.append(f"{kinds.get(record['path'], 'original')} {record}")
            continue
        failures += [f"{record['path']} ({kinds.get(record['path'], 'original')}): {p}"
                     for p in record["problems"]]
        for step, outcome in record["results"].items():
            counts.setdefault(step, {}).setdefault(outcome, 0)
            counts[step][outcome] += 1
    with capsys.disabled():  # shown without -s, to be quoted
        print(summary(counts, len(paths), time.monotonic() - start, len(failures)))
    original = next(r for r in records if r["path"] == str(tflite_path))
    # stock TFLite has no LCE ops: it rejects the original (one line), the others run it
    assert all(outcome == ("rejected" if step.endswith("/tflite") else "ran")
               for step, outcome in original["results"].items()), original
    assert not failures, "\n".join(failures[:20])
    assert counts["inspect"].get("rejected", 0) > N_FILES // 4  # the corpus is not harmless
    # nor all rejected: 221 of 2,000 pass validation (and ~210 run on lce and native)
    assert counts["inspect"].get("ran", 0) > N_FILES // 20


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    sys.path.insert(0, ROOT)
    _worker(sys.argv[2], sys.argv[3])
