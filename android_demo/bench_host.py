"""Host-JVM latency of the Java interpreter beside LCE's Python interpreter, same run.

Both run one thread on the same input (a preprocessed Fashion-MNIST test image, or random
data for other models), alternating in ``--rounds`` rounds so that machine noise hits both.
LCE uses its fastest x86 path here (indirect BGEMM, no XNNPACK); its time is the Python
``predict`` call. The Java time is measured inside the JVM after a JIT warm-up. Host-JVM
numbers are not phone numbers: ART on a phone's ARM core behaves differently.

    python android_demo/bench_host.py [--model android_demo/build/assets/model.tflite]
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# This checkout's xnor_keras and deploy, even if another one is installed in the venv.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from deploy.validation import validate_bytes  # noqa: E402

FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))
flags.DEFINE_string("model", os.path.join(HERE, "build", "assets", "model.tflite"),
                    "The .tflite to time (default: the model bundled by build.sh).")
flags.DEFINE_integer("repeats", 500, "Timed inferences per round and runtime.")
flags.DEFINE_integer("rounds", 3, "Alternating rounds.")


def main(argv):
    del argv
    import numpy as np
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    if not os.path.isfile(FLAGS.model):
        print(f"bench_host: error: {FLAGS.model}: no such file (run android_demo/build.sh)",
              file=sys.stderr)
        return 2
    with open(FLAGS.model, "rb") as f:
        flatbuffer = validate_bytes(f.read(), path=FLAGS.model)
    lce = Interpreter(flatbuffer, num_threads=1, use_reference_bconv=False,
                      use_indirect_bgemm=True, use_xnnpack=False)
    shape = lce.input_shapes[0]
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    if tuple(shape[1:]) == (28, 28, 1):
        from xnor_keras import data

        image = data.read_idx(os.path.join(data.FASHION_MNIST_DEBIAN_DIR,
                                           "t10k-images-idx3-ubyte.gz"))[:1]
        x = np.asarray(data.preprocess_eval(image[0], data.preprocessing_spec("fashion_mnist")),
                       np.float32)[None]
    with tempfile.TemporaryDirectory() as tmp:
        sources = [os.path.join(d, f) for d, _, files in os.walk(os.path.join(HERE, "interpreter"))
                   for f in files if f.endswith(".java")]
        subprocess.run(["javac", "-nowarn", "--release", "8", "-d", tmp, *sources], check=True)
        np.save(os.path.join(tmp, "x.npy"), x)
        lce_ms, java_ms = [], []
        for _ in range(FLAGS.rounds):
            for _ in range(20):
                lce.predict(x)
            times = []
            for _ in range(FLAGS.repeats):
                start = time.perf_counter()
                lce.predict(x)
                times.append(time.perf_counter() - start)
            lce_ms.append(1e3 * statistics.median(times))
            run = subprocess.run(["java", "-cp", tmp, "xnor.tflite.Main", "bench", FLAGS.model,
                                  os.path.join(tmp, "x.npy"), str(FLAGS.repeats)],
                                 capture_output=True, text=True, check=True)
            java_ms.append(json.loads(run.stdout)["median_ms"])
    lce_median, java_median = statistics.median(lce_ms), statistics.median(java_ms)
    print(f"model: {FLAGS.model} ({len(flatbuffer) / 1024:.1f} KiB)")
    print(f"LCE Python interpreter (1 thread, indirect BGEMM): {lce_median:.3f} ms/inference "
          f"(round medians {', '.join(f'{v:.3f}' for v in lce_ms)})")
    print(f"Java interpreter, host JVM (1 thread):              {java_median:.3f} ms/inference "
          f"(round medians {', '.join(f'{v:.3f}' for v in java_ms)})")
    print(f"Java / LCE latency ratio: {java_median / lce_median:.2f}")
    return 0


if __name__ == "__main__":
    app.run(main)
