"""The main job (README's first command): train, convert, verify and report, offline.

1. trains the default XNOR network (`fashion_net`) on Fashion-MNIST (resumable);
2. converts it with larq-compute-engine (`xnor-deploy convert --target arm64`) and
   prints the per-layer report;
3. verifies the .tflite against Keras on 1,000 real test images;
4. measures the .tflite's own test accuracy on the whole test set (LCE interpreter);
5. times it (on `deploy.runtime`'s ``auto``: the native kernels on x86-64) against its
   float32 and int8 twins on stock TFLite, interleaved;
6. prints a short table and writes it to ``<output_dir>/report.md`` (and ``.json``).

    python -m deploy.pipeline [--epochs=3] [--output_dir=runs/main]

The deploy side owns this job (it imports the training package, never the reverse);
``scripts/main.sh`` starts it.
"""

import json
import os
import sys
import time

import numpy as np
from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/main", "Where the model, .tflite and report go.")
flags.DEFINE_integer("epochs", 3, "Training epochs (the full recipe is 8; 3 fit the 20-minute budget).")
flags.DEFINE_enum("precision", "xnor", ["fp", "bwn", "xnor", "bc", "bnn"], "Model precision.")
flags.DEFINE_string("target", "arm64", "Conversion target: arm64, x86_64 or xcore.")
flags.DEFINE_integer("verify_n", 1000, "Test images for Keras-vs-TFLite verification.")
flags.DEFINE_integer("bench_runs", 50, "Timed interleaved runs per runtime.")


def tflite_accuracy(flatbuffer, dataset, *, runtime="lce", batch_size=256):
    """Top-1 accuracy of a .tflite model on a data set's whole test split."""
    from tqdm import tqdm

    from deploy.runtime import make_interpreter
    from xnor_keras import data

    runner = make_interpreter(flatbuffer, runtime)
    total = data.info(dataset)["splits"]["test"]
    correct = 0
    with tqdm(total=total, desc=f"test set ({runner.name})", unit="image", leave=False) as bar:
        for images, labels in data.load(dataset, "test", batch_size=batch_size):
            for image, label in zip(images.numpy(), labels.numpy()):
                correct += int(np.argmax(runner.run(image[None])) == label)
                bar.update()
    return correct / total


def _size(path):
    return os.path.getsize(path)


def run_main_job(*, output_dir, epochs, precision="xnor", target="arm64", verify_n=1000,
                 bench_runs=50, train_limit=None):
    """Runs the whole job; returns the report as a dict.

    ``train_limit`` trains on the first that many training images only (a smoke run).
    """
    from deploy.bench import bench_file
    from deploy.convert import convert_file
    from deploy.verify import verify_files
    from xnor_keras.io import atomic_write
    from xnor_keras.training import TrainConfig, train

    started = time.time()
    print(f"== 1/5 training fashion_net ({precision}) for {epochs} epochs", flush=True)
    trained = train(TrainConfig(model="fashion_net", precision=precision, epochs=epochs,
                                output_dir=output_dir, train_limit=train_limit))
    model_path = trained["model_path"]
    train_minutes = (time.time() - started) / 60

    tflite_path = os.path.join(output_dir, "model.tflite")
    print(f"== 2/5 converting to {tflite_path} (target {target})", flush=True)
    conversion = convert_file(model_path, tflite_path, target=target)
    print(conversion.report.format(), flush=True)
    summary = conversion.report.summary()

    print(f"== 3/5 verifying against Keras on {verify_n} test images", flush=True)
    verification = verify_files(model_path, tflite_path, data="fashion_mnist", n=verify_n)
    print(verification.format(), flush=True)

    print("== 4/5 .tflite accuracy on the whole test set", flush=True)
    with open(tflite_path, "rb") as f:
        lite_top1 = tflite_accuracy(f.read(), "fashion_mnist")

    print("== 5/5 latency against the float32 and int8 twins", flush=True)
    bench = bench_file(tflite_path, model_path=model_path, runs=bench_runs)
    print(bench.format(), flush=True)

    base = bench.labels[0]
    report = {
        "model": f"fashion_net ({precision}), {epochs} epochs, {train_minutes:.1f} min training",
        "keras_test_top1": trained["test"]["top1"],
        "tflite_test_top1": lite_top1,
        "verify": {"n": verification.n, "top1_agreement": verification.top1_agreement,
                   "max_abs_diff": verification.max_abs_diff,
                   "logit_range": verification.logit_range,
                   "passed": verification.passed,
                   "verdict": verification.certificate.format_verdict()},
        "sizes": {"tflite_bytes": _size(tflite_path),
                  "float_twin_weight_bytes": summary["float_twin_bytes"],
                  "keras_file_bytes": _size(model_path)},
        "binary_layers": summary["binary_layers"],
        "binary_layers_in_float": summary["binary_layers_in_float"],
        "latency_ms": {label: bench.median_ms(label) for label in bench.labels},
        "kernels": bench.kernels[base],
        "speedup_vs": {label: bench.median_ms(label) / bench.median_ms(base)
                       for label in bench.labels[1:]},
        "minutes": (time.time() - started) / 60,
    }
    table = format_report(report, base)
    print(table)
    atomic_write(os.path.join(output_dir, "report.md"), table)
    atomic_write(os.path.join(output_dir, "report.json"), json.dumps(report, indent=2))
    return report


def format_report(report, base):
    sizes = report["sizes"]
    rows = [
        ("model", report["model"]),
        ("test top-1, Keras", f"{100 * report['keras_test_top1']:.2f}%"),
        ("test top-1, .tflite (LCE)", f"{100 * report['tflite_test_top1']:.2f}%"),
        ("verify (layer-wise)", report["verify"]["verdict"]),
        ("Keras vs .tflite", f"top-1 agreement {100 * report['verify']['top1_agreement']:.1f}% "
                             f"on {report['verify']['n']} images, max \\|Δlogit\\| "
                             f"{report['verify']['max_abs_diff']:.2g} (range "
                             f"{report['verify']['logit_range']:.3g})"),
        ("binary layers in binary ops", f"{report['binary_layers'] - report['binary_layers_in_float']}"
                                        f" of {report['binary_layers']}"),
        (".tflite size", f"{sizes['tflite_bytes'] / 1024:.1f} KiB (float32 weights: "
                         f"{sizes['float_twin_weight_bytes'] / 1024:.1f} KiB, "
                         f"{sizes['float_twin_weight_bytes'] / sizes['tflite_bytes']:.1f}× larger)"),
    ]
    rows.append((f"kernels of {base}", report["kernels"]))
    for label, ms in report["latency_ms"].items():
        rows.append((f"latency, {label}", f"{ms:.3f} ms"))
    for label, ratio in report["speedup_vs"].items():
        rows.append((f"speed vs {label}", f"{ratio:.2f}× faster (that median / {base} median)"))
    rows.append(("whole job", f"{report['minutes']:.1f} min"))
    lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    from deploy.errors import DeployError
    from xnor_keras.data import DataUnavailableError

    try:
        run_main_job(output_dir=FLAGS.output_dir, epochs=FLAGS.epochs,
                     precision=FLAGS.precision, target=FLAGS.target,
                     verify_n=FLAGS.verify_n, bench_runs=FLAGS.bench_runs)
    except (DeployError, DataUnavailableError, ValueError) as error:
        print(f"main job: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(main)
