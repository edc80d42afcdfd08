"""``xnor-deploy``: convert, verify, inspect, bench, predict, fig4.

    xnor-deploy convert MODEL -o OUT.tflite [--target arm64|x86_64|xcore]
                        [--dataset NAME] [--labels FILE] [--allow-float-fallback]
                        [--int8_float_layers [--calibration_data DATASET|DIR]
                         [--calibration_n 256]]
    xnor-deploy verify MODEL OUT.tflite [--data DATASET | --images DIR] [-n N]
                       [--tolerance 1e-3] [--runtime lce]
    xnor-deploy inspect OUT.tflite [--json]
    xnor-deploy bench OUT.tflite [--threads 1] [--runs 20] [--model MODEL] [--runtime auto]
                      [--against OTHER.tflite]
    xnor-deploy bench OUT.tflite --profile [--threads 1] [--runs 20]   (per-op table, native)
    xnor-deploy predict OUT.tflite IMAGE... [--top 5] [--runtime auto]
    xnor-deploy fig4 [--out_dir out/fig4] [--runs 30]

The logic lives in importable modules (`deploy.convert`, `deploy.verify`, …); this is
a thin absl front end. Bad input (missing or corrupt files, unknown flag values,
unreadable images, mismatching input sizes) prints one ``error:`` line and exits
with status 2, without a traceback and without writing partial output; a ``verify``
whose layer-wise certificate FAILs exits with status 1. Native TensorFlow/LCE log lines are hidden
unless ``XNOR_DEPLOY_VERBOSE=1``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from absl import app, flags

from deploy.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, DeployError

__all__ = ["main", "run", "VERBS"]

VERBS = ("convert", "verify", "inspect", "bench", "predict", "fig4")

FLAGS = flags.FLAGS
flags.DEFINE_string("output", None, "convert: the .tflite file to write.", short_name="o")
flags.DEFINE_string("target", "arm64", "convert: arm64, x86_64 (LCE 'arm' graph) or xcore.")
flags.DEFINE_string("dataset", None, "convert: data set whose preprocessing and labels to "
                    "record (default: model.json beside the model, the model name, or its "
                    "input shape).")
flags.DEFINE_string("labels", None, "convert: text file with one class label per line.")
flags.DEFINE_boolean("allow-float-fallback", False, "convert: accept binary layers that "
                     "cannot be lowered to binary ops (they run in float; the report says so).")
flags.DEFINE_boolean("int8_float_layers", False, "convert: quantize the float conv/dense "
                     "layers (stem, shortcut projections, head) to int8, calibrated on real "
                     "images; binary layers stay LCE ops. Default: float, as in the paper.")
flags.DEFINE_string("calibration_data", None, "convert: images for --int8_float_layers: a "
                    "data set name (its train split) or an image directory (default: the "
                    "model's data set).")
flags.DEFINE_integer("calibration_n", None, "convert: number of calibration images for "
                     "--int8_float_layers (default 256).")
flags.DEFINE_string("data", None, "verify: data set (test split) or image-folder directory.")
flags.DEFINE_string("images", None, "verify: directory of images to compare on.")
flags.DEFINE_integer("n", None, "verify: number of inputs (default: 1000 from --data, all "
                     "--images, 100 random).")
flags.DEFINE_float("tolerance", 1e-3, "verify: end-to-end statistic: the share of inputs whose "
                   "max |Δ| is within this fraction of the logit range (reported; the "
                   "verdict is layer-wise).")
flags.DEFINE_integer("certify_n", None, "verify: certify layer by layer on the first N inputs "
                     "(default: all).")
flags.DEFINE_integer("seed", 0, "verify/bench: seed of the random inputs.")
flags.DEFINE_string("runtime", None, "verify/bench/predict: auto, native, lce, lce-default, "
                    "lce-reference (tflite for models without LCE ops; java for verify: the "
                    "Android demo's Java interpreter on this JVM). Default: lce for "
                    "verify (LCE's own interpreter), auto for bench/predict (this "
                    "project's native kernels on x86-64, LCE elsewhere).")
flags.DEFINE_integer("threads", 1, "verify/bench/predict: interpreter threads.")
flags.DEFINE_integer("runs", None, "bench: timed rounds (default 20); fig4: runs per conv "
                     "(default 30).")
flags.DEFINE_integer("warmup", 3, "bench: untimed rounds first.")
flags.DEFINE_string("model", None, "bench: Keras model for the float/int8 twins (default: "
                    "the architecture stored in the .tflite, random weights).")
flags.DEFINE_boolean("int8", True, "bench: also time an int8 twin.")
flags.DEFINE_multi_string("against", [], "bench: another converted .tflite (repeatable), "
                          "timed on the same runtime in the same interleaved rounds, e.g. "
                          "the --int8_float_layers conversion of the same model.")
flags.DEFINE_boolean("profile", False, "bench: instead, a per-op time table of the binary model "
                     "on the native runtime (LCE ops timed in the delegate, other ops as one-op "
                     "models; see deploy.bench).")
flags.DEFINE_integer("top", 5, "predict: classes to print per image.")
flags.DEFINE_boolean("json", False, "inspect/bench/verify: print JSON instead of text.")
flags.DEFINE_string("out_dir", "out/fig4", "fig4: where to write plots and tables.")
flags.DEFINE_boolean("quick", False, "fig4: a few sweep points only (smoke test).")


class _Usage(DeployError):
    pass


@contextlib.contextmanager
def _quiet_native_logs():
    """Sends native (C++) writes to stderr to /dev/null; Python's sys.stderr still
    reaches the terminal (progress bars, our messages)."""
    if os.environ.get("XNOR_DEPLOY_VERBOSE") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr.close()
        sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


def _positional(argv, verb, names, *, at_least=None):
    args = argv[2:]
    if at_least is None and len(args) != len(names):
        raise _Usage(f"usage: xnor-deploy {verb} {' '.join(names)} [flags]")
    if at_least is not None and len(args) < at_least:
        raise _Usage(f"usage: xnor-deploy {verb} {' '.join(names)} [flags]")
    return args


def _convert(argv):
    (model_path,) = _positional(argv, "convert", ["MODEL"])
    if not FLAGS.output:
        raise _Usage("convert needs -o OUT.tflite")
    from deploy.convert import TARGETS, convert_file

    if FLAGS.target not in TARGETS:
        raise DeployError(f"unknown target {FLAGS.target!r}: expected one of "
                          f"{', '.join(TARGETS)}")
    result = convert_file(model_path, FLAGS.output, target=FLAGS.target,
                          allow_float_fallback=FLAGS["allow-float-fallback"].value,
                          dataset=FLAGS.dataset, labels_path=FLAGS.labels,
                          int8_float_layers=FLAGS.int8_float_layers,
                          calibration_data=FLAGS.calibration_data,
                          calibration_n=FLAGS.calibration_n)
    print(result.report.format())
    print(f"wrote {FLAGS.output} ({result.report.file_bytes} bytes, target {FLAGS.target})")
    return 0


def _verify(argv):
    model_path, tflite_path = _positional(argv, "verify", ["MODEL", "OUT.tflite"])
    from deploy.verify import verify_files

    result = verify_files(model_path, tflite_path, data=FLAGS.data, images=FLAGS.images,
                          n=FLAGS.n, seed=FLAGS.seed, runtime=FLAGS.runtime or "lce",
                          threads=FLAGS.threads, tolerance=FLAGS.tolerance,
                          certify_n=FLAGS.certify_n)
    if FLAGS.json:
        print(json.dumps(result.as_dict()))
    else:
        print(result.format())
    return 0 if result.passed else EXIT_CHECK_FAILED


def _inspect(argv):
    (tflite_path,) = _positional(argv, "inspect", ["OUT.tflite"])
    from deploy.inspection import inspect_file

    result = inspect_file(tflite_path)
    print(json.dumps(result.as_dict(), indent=2) if FLAGS.json else result.format())
    return 0


def _bench(argv):
    (tflite_path,) = _positional(argv, "bench", ["OUT.tflite"])
    from deploy.bench import bench_file, profile_file

    if FLAGS.profile:
        result = profile_file(tflite_path, threads=FLAGS.threads,
                              runs=20 if FLAGS.runs is None else FLAGS.runs,
                              warmup=FLAGS.warmup, runtime=FLAGS.runtime or "auto",
                              seed=FLAGS.seed)
        print(json.dumps(result.as_dict()) if FLAGS.json else result.format())
        return 0
    result = bench_file(tflite_path, threads=FLAGS.threads,
                        runs=20 if FLAGS.runs is None else FLAGS.runs,
                        warmup=FLAGS.warmup, runtime=FLAGS.runtime or "auto",
                        model_path=FLAGS.model,
                        int8=FLAGS.int8, seed=FLAGS.seed, against=FLAGS.against)
    print(json.dumps(result.as_dict()) if FLAGS.json else result.format())
    return 0


def _predict(argv):
    args = _positional(argv, "predict", ["OUT.tflite", "IMAGE..."], at_least=2)
    from deploy.predict import predict_files

    def show(runner):
        print(f"runtime {runner.name}: {runner.describe()}")

    for prediction in predict_files(args[0], args[1:], top=FLAGS.top,
                                    runtime=FLAGS.runtime or "auto", threads=FLAGS.threads,
                                    on_runner=show):
        print(prediction.format())
    return 0


def _fig4(argv):
    _positional(argv, "fig4", [])
    from deploy import efficiency

    from xnor_keras.validation import positive_int

    runs = 30 if FLAGS.runs is None else FLAGS.runs
    positive_int("--runs", runs, error=DeployError)
    options = {}
    if FLAGS.quick:
        options = dict(channels=(16, 256), filter_sizes=(1, 3), memory=False)
    efficiency.run(FLAGS.out_dir, runs=runs, **options)
    with open(os.path.join(FLAGS.out_dir, "fig4.md")) as f:
        print(f.read())
    print(f"wrote {FLAGS.out_dir}/fig4.md, fig4.json and the PNG plots")
    return 0


_COMMANDS = {"convert": _convert, "verify": _verify, "inspect": _inspect, "bench": _bench,
             "predict": _predict, "fig4": _fig4}


def main(argv) -> int:
    """Runs one verb; returns the exit status (see the module docstring)."""
    if len(argv) < 2 or argv[1] not in _COMMANDS:
        got = f" {argv[1]!r}" if len(argv) > 1 else ""
        print(f"error: unknown or missing command{got}: expected one of {', '.join(VERBS)}",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with _quiet_native_logs():
            return _COMMANDS[argv[1]](argv)
    except DeployError as error:
        message = " ".join(str(error).split())
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _parse_flags(argv):
    try:
        return FLAGS(argv)
    except flags.Error as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def run():
    """Console entry point (``xnor-deploy``)."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
