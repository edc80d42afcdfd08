"""What ``xnor-deploy convert --int8_float_layers`` costs in accuracy (issue 13, item 4).

Converts a trained model twice with `deploy.convert.convert_file` — float layers in
float (the default) and in int8, calibrated on ``--calibration_n`` images of its data
set's train split — and runs both .tflite files on the LCE interpreter over the whole
test split: top-1 accuracy of each, and how often their top-1 agree. Prints a Markdown
table and writes it to ``--output_dir`` (int8_accuracy.md, .json).

    python benchmarks/int8_accuracy.py --model=runs/main/model.keras
    python benchmarks/int8_accuracy.py --model=runs/main/model.keras --calibration_n=1024
"""

import json
import os
import sys

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "runs/main/model.keras", "Trained Keras model (model.json beside "
                    "it names its data set).")
flags.DEFINE_integer("calibration_n", 256, "Calibration images (train split).")
flags.DEFINE_string("dataset", None, "Data set (default: the model's, from model.json).")
flags.DEFINE_string("output_dir", "out/int8_accuracy", "Where the table goes.")


def _predictions(flatbuffer, dataset):
    """(top-1 per test image, labels) of a .tflite on the LCE interpreter."""
    from tqdm import tqdm

    from deploy.runtime import make_interpreter
    from xnor_keras import data

    runner = make_interpreter(flatbuffer, "lce")
    top1, labels = [], []
    total = data.info(dataset)["splits"]["test"]
    with tqdm(total=total, desc="test set", unit="image", leave=False) as bar:
        for images, batch_labels in data.load(dataset, "test", batch_size=256):
            for image in images.numpy():
                top1.append(int(np.argmax(runner.run(image[None]))))
                bar.update()
            labels.extend(int(y) for y in batch_labels.numpy())
    return np.array(top1), np.array(labels)


def run(model_path, *, calibration_n, dataset, output_dir):
    from deploy.convert import convert_file
    from xnor_keras.io import atomic_write

    os.makedirs(output_dir, exist_ok=True)
    results = {}
    for name, options in (("float", {}),
                          ("int8", dict(int8_float_layers=True, calibration_n=calibration_n))):
        path = os.path.join(output_dir, f"{name}.tflite")
        conversion = convert_file(model_path, path, dataset=dataset, **options)
        dataset = conversion.report.dataset
        with open(path, "rb") as f:
            top1, labels = _predictions(f.read(), dataset)
        results[name] = dict(top1=top1, accuracy=float(np.mean(top1 == labels)),
                             bytes=os.path.getsize(path),
                             int8_layers=conversion.report.summary()["int8_layers"])
    agreement = float(np.mean(results["float"]["top1"] == results["int8"]["top1"]))
    n = len(results["float"]["top1"])
    rows = [("model", model_path), ("data set", f"{dataset}, all {n} test images, LCE "
                                                "interpreter"),
            ("int8 layers", ", ".join(results["int8"]["int8_layers"])),
            ("calibration", f"min/max over the first {calibration_n} train images"),
            ("top-1, float layers in float", f"{100 * results['float']['accuracy']:.2f}%"),
            ("top-1, float layers in int8", f"{100 * results['int8']['accuracy']:.2f}%"),
            ("cost", f"{100 * (results['float']['accuracy'] - results['int8']['accuracy']):.2f}"
                     " points"),
            ("top-1 agreement float vs int8", f"{100 * agreement:.2f}%"),
            (".tflite size float / int8", f"{results['float']['bytes'] / 1024:.1f} KiB / "
                                          f"{results['int8']['bytes'] / 1024:.1f} KiB")]
    table = "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]) + "\n"
    atomic_write(os.path.join(output_dir, "int8_accuracy.md"), table)
    atomic_write(os.path.join(output_dir, "int8_accuracy.json"), json.dumps(
        {"model": model_path, "dataset": dataset, "images": n, "calibration_n": calibration_n,
         "agreement": agreement,
         **{f"{k}_accuracy": v["accuracy"] for k, v in results.items()}}, indent=2))
    return table


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from deploy.errors import DeployError

    try:
        print(run(FLAGS.model, calibration_n=FLAGS.calibration_n, dataset=FLAGS.dataset,
                  output_dir=FLAGS.output_dir))
    except DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    app.run(main)
