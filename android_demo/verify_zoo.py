"""Java interpreter vs LCE's interpreter on every zoo model (all architectures × precisions).

Each model is built with random weights (and randomized BatchNorm statistics so binary
activations are mixed), converted with ``xnor-deploy convert --target arm64`` (or LCE
directly when the ``deploy`` package is not importable; ``--converter`` chooses), and run on
``--n`` random inputs by both interpreters. Where LCE's optimized and reference binary
convolutions disagree with each other on an input (a value that rounds to ±0 flips a sign
bit), the Java output is judged against the reference kernel, and the line says so. The
ImageNet architectures run at a reduced input size (64 or 96 pixels) and 10 classes
(``--small``, the default) so the sweep fits a laptop; their layer structure is unchanged.
Prints one line per model and a summary; exit status 1 if any model exceeds the tolerance
or disagrees on top-1.

    python android_demo/verify_zoo.py [--n 5] [--models alexnet,resnet18] [--precisions xnor]
"""

import json
import os
import sys
import subprocess
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# This checkout's xnor_keras and deploy, even if another one is installed in the venv.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402

from deploy.validation import validate_bytes  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("n", 5, "Random inputs per model.")
flags.DEFINE_list("models", None, "Architectures (default: the whole zoo).")
flags.DEFINE_list("precisions", None, "Precisions (default: fp, bwn, xnor, bc, bnn).")
flags.DEFINE_enum("converter", "auto", ["auto", "deploy", "lce"], "Conversion path.")
flags.DEFINE_boolean("small", True, "Reduced inputs and 10 classes for the ImageNet models.")
flags.DEFINE_float("tolerance", 1e-4, "Allowed max |Δ| / max |reference|.")
flags.DEFINE_string("json", None, "Also write the results to this JSON file.")
flags.DEFINE_string("keep_failures", None, "Save the .tflite and inputs of failing models here.")
flags.DEFINE_integer("repeat", 1, "Build, convert and compare each model this many times.")

HERE = os.path.dirname(os.path.abspath(__file__))
# Reduced inputs keep every feature map at least as large as the 3×3 kernels: LCE's
# optimized binary convolutions (not its reference kernel) mis-handle zero padding when the
# input is smaller than the kernel, which would make LCE, not the Java code, disagree.
SMALL_SHAPES = {"alexnet": (64, 64, 3), "resnet18": (96, 96, 3), "googlenet": (96, 96, 3)}


def _compile_host(tmp):
    sources = [os.path.join(d, f) for d, _, files in os.walk(os.path.join(HERE, "interpreter"))
               for f in files if f.endswith(".java")]
    subprocess.run(["javac", "-nowarn", "--release", "8", "-d", tmp, *sources], check=True)
    return tmp


def _convert(model, converter):
    if converter in ("auto", "deploy"):
        try:
            from deploy.convert import convert_model
        except ImportError:
            if converter == "deploy":
                raise
        else:
            return convert_model(model, target="arm64").flatbuffer, "deploy"
    import larq_compute_engine as lce

    return lce.convert_keras_model(model, target="arm"), "lce"


def _lce(flatbuffer, inputs, reference_kernel=False):
    import numpy as np
    from larq_compute_engine.tflite.python.interpreter import Interpreter

    validate_bytes(flatbuffer)
    interpreter = Interpreter(flatbuffer, num_threads=1, use_reference_bconv=reference_kernel,
                              use_indirect_bgemm=not reference_kernel, use_xnnpack=False)
    return np.stack([interpreter.predict(x[None])[0] for x in inputs])


def _compare(flatbuffer, inputs, out, ref, tolerance):
    """(worst relative error, top-1 all equal, inputs judged against LCE's reference kernel).

    Errors are per input, relative to its largest |output|. Where an input differs from
    LCE's optimized binary convolution, and LCE's optimized and reference kernels disagree
    with each other on it (a value rounding to ±0 flips a sign bit depending on evaluation
    order), the Java output is compared with the reference kernel's instead.
    """
    import numpy as np

    def errors(a, b):
        axes = tuple(range(1, b.ndim))
        return np.abs(a - b).max(axes) / np.maximum(np.abs(b).max(axes), 1e-12)

    error = errors(out, ref)
    same = out.argmax(-1) == ref.argmax(-1)
    bad = (error > tolerance) | ~same
    split = 0
    if bad.any():
        ref2 = _lce(flatbuffer, inputs[bad], reference_kernel=True)
        disagree = errors(ref[bad], ref2) > tolerance
        split = int(disagree.sum())
        idx = np.flatnonzero(bad)[disagree]
        error[idx] = errors(out[idx], ref2[disagree])
        same[idx] = out[idx].argmax(-1) == ref2[disagree].argmax(-1)
    return float(error.max()), bool(same.all()), split


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    import numpy as np
    import tensorflow as tf

    import xnor_keras  # noqa: F401
    from xnor_keras import models
    from xnor_keras.io import atomic_write

    rng = np.random.default_rng(0)
    tf.keras.utils.set_random_seed(0)
    names = FLAGS.models or list(models.ARCHITECTURES)
    precisions = FLAGS.precisions or list(models.PRECISIONS)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        classpath = _compile_host(os.path.join(tmp, "classes"))
        jobs = [(n, p) for n in names for p in precisions for _ in range(FLAGS.repeat)]
        for name, precision in jobs:
            tf.keras.backend.clear_session()
            small = FLAGS.small and name in SMALL_SHAPES
            model = models.build(name, precision,
                                 input_shape=SMALL_SHAPES[name] if small else None,
                                 num_classes=10 if small else None)
            if small:
                # The converter infers the data set from the model name; these
                # reduced-size variants have none.
                model._name = f"{model.name}_small"
            for layer in model.layers:
                if isinstance(layer, tf.keras.layers.BatchNormalization):
                    shape = layer.get_weights()[0].shape
                    layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0, .3, shape),
                                       rng.normal(0, .3, shape), rng.uniform(0.5, 2, shape)])
            start = time.time()
            try:
                flatbuffer, converter = _convert(model, FLAGS.converter)
            except Exception as error:  # report and go on: this is a sweep
                print(f"{name:10s} {precision:5s} CONVERSION FAILED: {error}".splitlines()[0])
                results.append({"model": name, "precision": precision, "ok": False,
                                "error": str(error).splitlines()[0]})
                continue
            seconds = time.time() - start
            x = rng.normal(size=(FLAGS.n, *model.input_shape[1:])).astype(np.float32)
            ref = _lce(flatbuffer, x)
            paths = [os.path.join(tmp, f) for f in ("m.tflite", "x.npy", "y.npy")]
            with open(paths[0], "wb") as f:
                f.write(flatbuffer)
            np.save(paths[1], x)
            run = subprocess.run(["java", "-Xmx4g", "-cp", classpath, "xnor.tflite.Main", "run",
                                  *paths], capture_output=True, text=True)
            if run.returncode != 0:
                print(f"{name:10s} {precision:5s} JAVA FAILED: {run.stderr.strip()}")
                results.append({"model": name, "precision": precision, "ok": False,
                                "error": run.stderr.strip()})
                continue
            out = np.load(paths[2])
            error, top1, split = _compare(flatbuffer, x, out, ref, FLAGS.tolerance)
            ok = error <= FLAGS.tolerance and top1
            if not ok and FLAGS.keep_failures:
                os.makedirs(FLAGS.keep_failures, exist_ok=True)
                stem = os.path.join(FLAGS.keep_failures, f"{name}_{precision}_{len(results)}")
                atomic_write(stem + ".tflite", flatbuffer)
                np.save(stem + "_inputs.npy", x)
            binary = sum(1 for line in subprocess.run(
                ["java", "-cp", classpath, "xnor.tflite.Main", "info", paths[0]],
                capture_output=True, text=True).stdout.splitlines() if "LceBconv2d" in line)
            print(f"{name:10s} {precision:5s} {converter:6s} {len(flatbuffer) / 1e6:7.2f} MB "
                  f"{binary:3d} LceBconv2d  max|Δ|/max|ref| {error:.1e}  top-1 "
                  f"{'same' if top1 else 'DIFFERENT'}  {'ok' if ok else 'FAIL'} "
                  f"(convert {seconds:.0f}s)"
                  + (f"  [{split} input(s): LCE's optimized and reference kernels disagree; "
                     f"compared with its reference kernel]" if split else ""), flush=True)
            results.append({"model": name, "precision": precision, "converter": converter,
                            "bytes": len(flatbuffer), "bconv_ops": binary,
                            "rel_error": error, "top1_same": top1, "lce_kernels_disagree": split,
                            "ok": ok})
    failed = [r for r in results if not r["ok"]]
    print(f"verify_zoo: {len(results) - len(failed)} of {len(results)} models match LCE "
          f"(tolerance {FLAGS.tolerance:g}, {FLAGS.n} inputs each)")
    if FLAGS.json:
        atomic_write(FLAGS.json, json.dumps(results, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    app.run(main)
