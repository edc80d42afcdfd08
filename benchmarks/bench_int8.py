"""What `--int8_float_layers` gains in speed, and threads, interleaved in one run (issue 13).

For XNOR ResNet-18 and AlexNet at 224 (their float stems, shortcut projections and heads
being most of their time, README "Where the time goes"), the same Keras model is converted
twice — float layers in float (the default) and in int8 (`convert_model(...,
int8_float_layers=True)`, calibrated on real photos: scikit-image's and scikit-learn's sample
images, resized and normalised as ImageNet inputs; ImageNet itself is not available offline
and only the speed is measured here, not accuracy) — and both run on the native runtime
beside the float32 twin on stock TFLite + XNNPACK, all interleaved in the same rounds, at 1
and at 2 threads:

    python benchmarks/bench_int8.py                 # resnet18 and alexnet, 20 rounds
    python benchmarks/bench_int8.py --models=resnet18 --rounds=40 --threads=1,2

Prints per network and thread count the median ms of each and the ratios (× vs the fp32
twin, int8 vs float layers, 2 threads vs 1), and writes ``OUTPUT_DIR/results.md``. The
accuracy side of int8 is `benchmarks/int8_accuracy.py` (Fashion-MNIST, trained model).
"""

import os
import sys
import tempfile

from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import xnor_keras  # noqa: E402,F401  (legacy Keras before TensorFlow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from deploy.bench import (CpuTimes, cpu_name as _cpu_name, time_interleaved,  # noqa: E402
                          twin_flatbuffers, write_results)
from deploy.convert import convert_model  # noqa: E402
from deploy.runtime import make_interpreter  # noqa: E402
from xnor_keras import models  # noqa: E402

NETWORKS = {"resnet18": "XNOR ResNet-18 (224)", "alexnet": "XNOR AlexNet (224)"}

FLAGS = flags.FLAGS
flags.DEFINE_list("models", list(NETWORKS), f"Which, of: {', '.join(NETWORKS)}.")
flags.DEFINE_list("threads", ["1", "2"], "Thread counts to time.")
flags.DEFINE_integer("rounds", 20, "Interleaved rounds.", lower_bound=1)
flags.DEFINE_string("output_dir", "out/bench_int8", "results.md goes here.")


def photo_dir():
    """A temporary directory of real photos for calibration: Matplotlib's bundled sample
    photos (Grace Hopper's portrait, the Minduka pack), whole and as four crops each."""
    import matplotlib.cbook
    from PIL import Image

    directory = tempfile.mkdtemp(prefix="xnor-int8-photos-")
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"):
        with Image.open(matplotlib.cbook.get_sample_data(name)) as photo:
            photo = photo.convert("RGB")
            w, h = photo.size
            crops = [(0, 0, w, h), (0, 0, w // 2, h // 2), (w // 2, 0, w, h // 2),
                     (0, h // 2, w // 2, h), (w // 2, h // 2, w, h)]
            for i, box in enumerate(crops):
                photo.crop(box).save(os.path.join(directory, f"{name.split('.')[0]}_{i}.jpg"))
    return directory


def bench_network(name, photos, thread_counts, rounds):
    """{threads: {label: median ms}} for one network."""
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    model = models.build(name, "xnor")
    plain = convert_model(model).flatbuffer
    int8 = convert_model(model, dataset="imagenet2012", int8_float_layers=True,
                         calibration_data=photos, calibration_n=10).flatbuffer
    fp32 = twin_flatbuffers(model, int8=False)["float32"]
    shape = (1, *model.input_shape[1:])
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    # Every thread count in the same rounds, so that a drift of the machine's speed during
    # the run (these are shared machines) does not enter the thread ratios.
    runners = []
    for threads in thread_counts:
        runners += [((threads, "float layers float"),
                     make_interpreter(plain, "native", num_threads=threads)),
                    ((threads, "float layers int8"),
                     make_interpreter(int8, "native", num_threads=threads)),
                    ((threads, "fp32 twin"), make_interpreter(fp32, "tflite", num_threads=threads))]
    times = time_interleaved(runners, x, runs=rounds, warmup=3)
    result = {threads: {} for threads in thread_counts}
    for (threads, label), t in times.items():
        result[threads][label] = 1e3 * float(np.median(t))
    return result


def main(argv):
    del argv
    unknown = [m for m in FLAGS.models if m not in NETWORKS]
    if unknown:
        sys.exit(f"error: unknown model(s) {', '.join(unknown)}; known: {', '.join(NETWORKS)}")
    try:
        thread_counts = [int(t) for t in FLAGS.threads]
    except ValueError:
        sys.exit(f"error: --threads must be integers. Received: {','.join(FLAGS.threads)}")
    if any(t < 1 for t in thread_counts):
        sys.exit(f"error: --threads must be >= 1. Received: {','.join(FLAGS.threads)}")
    header = (f"CPU: {_cpu_name()} ({os.cpu_count()} cores), medians of {FLAGS.rounds} "
              f"interleaved rounds, load average before {os.getloadavg()[0]:.2f}")
    print(header, flush=True)
    cpu_times = CpuTimes.read()
    lines = [header, "",
             "| network | threads | float layers float ms | float layers int8 ms | fp32 twin ms "
             "| × vs fp32 (float) | × vs fp32 (int8) | int8 gain |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    photos = photo_dir()
    notes = []
    for name in FLAGS.models:
        result = bench_network(name, photos, thread_counts, FLAGS.rounds)
        for threads, ms in result.items():
            plain, int8, fp32 = (ms["float layers float"], ms["float layers int8"],
                                 ms["fp32 twin"])
            row = (f"| {NETWORKS[name]} | {threads} | {plain:.3f} | {int8:.3f} | {fp32:.3f} | "
                   f"{fp32 / plain:.2f} | {fp32 / int8:.2f} | {plain / int8:.2f}× |")
            print(row, flush=True)
            lines.append(row)
        one = result.get(1)
        for threads, ms in result.items():
            if one is None or threads == 1:
                continue
            note = (f"{NETWORKS[name]}: {threads} threads vs 1, float layers float "
                    f"{one['float layers float'] / ms['float layers float']:.2f}×, "
                    f"int8 {one['float layers int8'] / ms['float layers int8']:.2f}×")
            print(note, flush=True)
            notes.append(note)
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    write_results(lines, FLAGS.output_dir, cpu_times_before=cpu_times)


if __name__ == "__main__":
    app.run(main)
