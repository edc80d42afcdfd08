"""`xnor-train`: train a zoo model with the paper's recipe (see `xnor_keras.training`).

    xnor-train --model=fashion_net --precision=xnor --output_dir=runs/xnor
    xnor-train --model=resnet18 --precision=bwn --data_dir=~/tensorflow_datasets
    xnor-train --model=fashion_net --precision=xnor --noinput_scaling --block_order=cbap
    xnor-train --model=fashion_net --precision=xnor --jit_compile   (XLA; one device on CPU)

Run the same command again after an interruption to resume from the last epoch.
"""

import dataclasses
import sys

from absl import app, flags, logging

from xnor_keras import models
from xnor_keras.options import BinaryOptions
from xnor_keras.training import SCHEDULES, TrainConfig

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "fashion_net", list(models.ARCHITECTURES), "Zoo architecture.")
flags.DEFINE_enum("precision", "xnor", list(models.PRECISIONS), "fp, bwn, xnor, bc or bnn.")
flags.DEFINE_string("dataset", None, "Data set (default: the architecture's).")
flags.DEFINE_string("data_dir", None, "Directory with the data (TFDS data_dir or IDX files).")
flags.DEFINE_string("output_dir", "runs/default", "Where checkpoints, logs and the model go.")
flags.DEFINE_integer("epochs", None, "Epochs (default: the recipe's).")
flags.DEFINE_integer("batch_size", None, "Batch size of one replica (default: the recipe's); "
                     "the global batch is this × replicas.")
flags.DEFINE_enum("optimizer", None, ["sgd", "adam"],
                  "Default: the recipe's (§4.2: SGD for fp/bwn/bc, Adam for xnor/bnn; "
                  "fashion_net also trains bwn with Adam).")
flags.DEFINE_float("learning_rate", None, "Starting learning rate (default: the recipe's).")
flags.DEFINE_enum("schedule", None, list(SCHEDULES), "Learning-rate schedule.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker", "tpu"],
                  "tf.distribute strategy (xnor_keras.distribute); multi_worker reads TF_CONFIG.")
flags.DEFINE_string("tpu", None, "TPU name or grpc:// address, with --strategy=tpu.")
flags.DEFINE_boolean("sync_batchnorm", False, "All-reduce BatchNorm statistics over replicas.")
flags.DEFINE_float("worker_timeout", 60.0, "Seconds to wait for the other workers (multi_worker).")
flags.DEFINE_integer("cpu_devices", None, "Split the CPU into N logical devices (mirrored on CPU).")
flags.DEFINE_integer("train_limit", None, "Use only the first N training examples.")
flags.DEFINE_integer("eval_limit", None, "Use only the first N test examples.")
BinaryOptions.define_flags(FLAGS)
TrainConfig.define_flags(FLAGS)  # the fields declared with their help (--jit_compile)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)  # keep TensorFlow's checkpoint chatter out
    from xnor_keras import data
    from xnor_keras.training import train

    try:
        config = TrainConfig(**{f.name: FLAGS[f.name].value
                                for f in dataclasses.fields(TrainConfig) if f.name in FLAGS})
        result = train(config)
    except (ValueError, data.DataUnavailableError) as error:
        print(f"xnor-train: error: {error}", file=sys.stderr)
        return 2
    test = result["test"]
    print(f"xnor-train: test top-1 {100 * test['top1']:.2f}%  top-5 {100 * test['top5']:.2f}%  "
          f"model {result['model_path']}")
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
