"""Training recipes (§4.2) and a resumable `model.fit` loop with logs, curves and metrics.

`train(config)` builds a zoo model, loads its data set, and fits it with the recipe's
optimizer and learning-rate schedule. In ``config.output_dir`` it writes:

| file                   | what                                                        |
|------------------------|-------------------------------------------------------------|
| ``checkpoints/``       | model + optimizer + epoch after every epoch (resume point)  |
| ``history.csv``        | per-epoch loss, top-1 and top-5, train and validation, lr   |
| ``tensorboard/``       | TensorBoard logs                                            |
| ``curves.png``         | top-1/top-5 train (dashed) and validation (solid), Fig. 5/6 |
| ``model.keras``        | the final model                                             |
| ``model.json``         | how it was trained: config, data set, labels, preprocessing |
| ``metrics.json``       | test-set loss, top-1, top-5                                 |

Run it again with the same ``output_dir`` after an interruption and it resumes from
the last completed epoch.

Example (a few steps on the offline Fashion-MNIST data):

>>> from xnor_keras.training import TrainConfig, train
>>> result = train(TrainConfig(model="fashion_net", precision="xnor", epochs=1,
...                            train_limit=512, eval_limit=256, output_dir="/tmp/run"))
>>> sorted(result["test"])
['loss', 'top1', 'top5']
"""

import csv
import dataclasses
import io
import json
import math
import os
import sys

import tensorflow as tf

from xnor_keras import data, distribute, models
from xnor_keras.io import atomic_savefig, atomic_write
from xnor_keras.options import BinaryOptions
from xnor_keras.validation import one_of, positive_int

__all__ = ["TrainConfig", "check_jit_compile", "Recipe", "RECIPES", "recipe_for", "train",
           "plot_curves"]


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A training recipe: epochs, batch size, starting learning rates and a schedule.

    ``schedule`` is ``"step"`` (multiply by ``decay`` at each of ``milestones`` epochs),
    ``"poly"`` (lr·(1 − epoch/epochs)^power), ``"cosine"`` (lr·(1 + cos(π·epoch/epochs))/2)
    or ``"constant"``. Precisions listed in
    ``adam_for`` train with Adam, the others with SGD (momentum 0.9); §4.2 uses Adam for
    xnor/bnn and SGD for fp/bwn/bc.
    """

    epochs: int
    batch_size: int
    sgd_lr: float
    adam_lr: float
    schedule: str = "step"
    milestones: tuple = ()
    decay: float = 0.1
    power: float = 4.0
    adam_for: tuple = ("xnor", "bnn")
    augmentation: str | None = None  # a key of data.AUGMENTATIONS; None: the model's own
    source: str = ""
    # {precision: {field: value}}: a precision's own settings over the others' (see
    # `recipe_for`), e.g. fashion_net's tuned XNOR recipe.
    by_precision: dict = dataclasses.field(default_factory=dict)


# The paper starts every ImageNet recipe at 0.1, the SGD rate; Adam uses its own
# customary 1e-3 (0.1 diverges with Adam).
RECIPES = {
    "alexnet": Recipe(16, 512, 0.1, 1e-3, "step", (4, 8, 12), 0.01,
                      source="§4.2 AlexNet: 16 epochs, batch 512, lr 0.1, decay 0.01 every 4 epochs"),
    "resnet18": Recipe(58, 256, 0.1, 1e-3, "step", (30, 40), 0.01,
                       source="§4.2 ResNet-18: 58 epochs, batch 256, lr 0.1, decay 0.01 at 30 and 40"),
    "googlenet": Recipe(80, 128, 0.1, 1e-3, "poly", power=4.0,
                        source="§4.2 GoogLeNet variant: 80 epochs, batch 128, lr 0.1, poly decay β=4"),
    "cifar_net": Recipe(100, 128, 0.05, 1e-3, "step", (50, 75), 0.1,
                        source="ours, in the spirit of BinaryConnect/BinaryNet's CIFAR-10 runs"),
    # BWN trains with Adam here: the paper's weight gradient is scaled by α = mean|W|
    # (0.03–0.08 in this net), which likely slows SGD on the latent weights; on Fashion-MNIST BWN
    # with SGD 0.05 trails FP by 1.9 points, with Adam it matches FP (README, reproduction).
    # XNOR (and its ablations): the best of benchmarks/tune_xnor.py's screen (issue 15),
    # batch 256, Adam 4e-3 with cosine decay: 91.67% against 91.01% for the shared recipe
    # (seed 0); README, "Tuning the XNOR recipe".
    "fashion_net": Recipe(8, 128, 0.05, 2e-3, "step", (5, 7), 0.1,
                          adam_for=("bwn", "xnor", "bnn"),
                          source="ours: the offline default; Adam for bwn/xnor/bnn; xnor: "
                                 "batch 256, Adam 4e-3, cosine",
                          by_precision={"xnor": {"batch_size": 256, "adam_lr": 4e-3,
                                                 "schedule": "cosine"}}),
}

SCHEDULES = ("step", "poly", "cosine", "constant")
OPTIMIZERS = ("sgd", "adam")


def _setting(default, kind, help):
    """A `TrainConfig` field that is also an ``xnor-train`` flag (`TrainConfig.define_flags`):
    its default, kind (bool, int, float or str) and help text, declared once here."""
    return dataclasses.field(default=default, metadata={"kind": kind, "help": help})


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(BinaryOptions):
    """Everything `train` needs; None fields take the model's recipe or data set defaults.

    The binary options (`xnor_keras.options.BinaryOptions`: ``alpha``, ``block_order``,
    ...) are ablation switches; None takes the precision's default (see
    `xnor_keras.models.Policy`).
    """

    model: str = "fashion_net"
    precision: str = "xnor"
    dataset: str | None = None
    data_dir: str | None = None
    output_dir: str = "runs/default"
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    schedule: str | None = None
    seed: int = 0
    # Distribution (xnor_keras.distribute): batch_size is per replica.
    strategy: str = "default"
    tpu: str | None = None
    sync_batchnorm: bool = False
    worker_timeout: float = 60.0
    cpu_devices: int | None = None
    train_limit: int | None = None
    eval_limit: int | None = None
    verbose: int | None = None
    jit_compile: bool = _setting(
        False, bool, "Compile the training step with XLA (model.compile(jit_compile=True)); "
        "one device only on CPU. Off by default: slower on the CPUs measured (README).")
    weight_decay: float = _setting(
        0.0, float, "Decoupled weight decay of the optimizer (every trainable variable, "
        "v -= lr·weight_decay·v each step); 0: none (the recipes).")
    adam_beta_2: float = _setting(0.999, float, "Adam's β2 (with --optimizer=adam).")
    adam_epsilon: float = _setting(1e-7, float, "Adam's ε (with --optimizer=adam).")
    augmentation: str | None = _setting(
        None, str, "Training augmentation: a key of xnor_keras.data.AUGMENTATIONS (default: "
        "the recipe's, else the model's own, e.g. fashion_net: none).")

    def model_options(self):
        """The binary options given (not None), for `xnor_keras.models.build`."""
        return self.given()

    @classmethod
    def define_flags(cls, flag_values=None):
        """Defines one absl flag per field declared with ``_setting`` (default: the field's).

        >>> from absl import flags
        >>> fv = flags.FlagValues()
        >>> TrainConfig.define_flags(fv)
        >>> _ = fv(["xnor-train", "--jit_compile"])
        >>> fv.jit_compile
        True
        """
        from absl import flags

        flag_values = flags.FLAGS if flag_values is None else flag_values
        define = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer,
                  float: flags.DEFINE_float, str: flags.DEFINE_string}
        for f in dataclasses.fields(cls):
            if "help" in f.metadata and f.name not in BinaryOptions.field_names():
                define[f.metadata["kind"]](f.name, f.default, f.metadata["help"],
                                           flag_values=flag_values)


def recipe_for(model, precision=None):
    """The `Recipe` of ``model``; with ``precision``, its ``by_precision`` settings applied.

    >>> recipe_for("fashion_net", "xnor").batch_size, recipe_for("fashion_net", "bwn").batch_size
    (256, 128)
    """
    recipe = RECIPES[one_of("model", model, tuple(RECIPES))]
    settings = recipe.by_precision.get(precision, {}) if precision is not None else {}
    return dataclasses.replace(recipe, **settings) if settings else recipe


def _resolve(config):
    """Fills a config's None fields from the recipe and validates it."""
    one_of("precision", config.precision, models.PRECISIONS)
    recipe = recipe_for(config.model, config.precision)
    for name in ("epochs", "batch_size", "train_limit", "eval_limit"):
        value = getattr(config, name)
        if value is not None:  # None: the recipe's default (the flags cannot pass None)
            positive_int(name, value)
    if not isinstance(config.jit_compile, bool):
        raise ValueError(f"jit_compile must be True or False. Received: "
                         f"jit_compile={config.jit_compile!r}")
    optimizer = config.optimizer or ("adam" if config.precision in recipe.adam_for else "sgd")
    one_of("optimizer", optimizer, OPTIMIZERS)
    schedule = config.schedule or recipe.schedule
    one_of("schedule", schedule, SCHEDULES)
    if config.weight_decay < 0:
        raise ValueError(f"weight_decay must be 0 or positive. Received: "
                         f"weight_decay={config.weight_decay}")
    if not 0 < config.adam_beta_2 < 1:
        raise ValueError(f"adam_beta_2 must be in (0, 1). Received: "
                         f"adam_beta_2={config.adam_beta_2}")
    if config.adam_epsilon <= 0:
        raise ValueError(f"adam_epsilon must be positive. Received: "
                         f"adam_epsilon={config.adam_epsilon}")
    lr = config.learning_rate
    if lr is None:
        lr = recipe.adam_lr if optimizer == "adam" else recipe.sgd_lr
    if lr <= 0:
        raise ValueError(f"learning_rate must be positive. Received: learning_rate={lr}")
    augmentation = one_of("augmentation",
                          config.augmentation or recipe.augmentation or config.model,
                          tuple(data.AUGMENTATIONS))
    return dataclasses.replace(
        config,
        augmentation=augmentation,
        dataset=config.dataset or models.ARCHITECTURES[config.model].dataset,
        epochs=config.epochs or recipe.epochs,
        batch_size=config.batch_size or recipe.batch_size,
        optimizer=optimizer,
        learning_rate=lr,
        schedule=schedule,
        verbose=config.verbose if config.verbose is not None else (1 if sys.stdout.isatty() else 2),
    )


def learning_rate(config, epoch):
    """The learning rate of ``epoch`` (0-based) under the config's schedule."""
    recipe = recipe_for(config.model, config.precision)
    if config.schedule == "constant":
        return config.learning_rate
    if config.schedule == "poly":
        return config.learning_rate * (1.0 - epoch / config.epochs) ** recipe.power
    if config.schedule == "cosine":
        return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))
    # Milestones are in the recipe's epochs; scale them to a shortened or longer run.
    scale = config.epochs / recipe.epochs
    passed = sum(epoch >= round(m * scale) for m in recipe.milestones)
    return config.learning_rate * recipe.decay**passed


class _Resume(tf.keras.callbacks.Callback):
    """Saves model, optimizer and epoch after each epoch; restores them on start."""

    def __init__(self, directory, model):
        super().__init__()
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer,
                                              epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=2)

    def restore(self):
        """Returns the number of completed epochs found in the checkpoint (0 if none)."""
        if self.manager.latest_checkpoint is None:
            return 0
        self.checkpoint.restore(self.manager.latest_checkpoint)
        return int(self.epoch.numpy())

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


class _History(tf.keras.callbacks.Callback):
    """Appends one CSV row per epoch (after the checkpoint of that epoch is saved)."""

    FIELDS = ("epoch", "lr", "loss", "top1", "top5", "val_loss", "val_top1", "val_top5")

    def __init__(self, path, completed_epochs):
        super().__init__()
        self.path = path
        # Rows of epochs not covered by the checkpoint are dropped: they will be rerun.
        rows = read_history(path)[:completed_epochs] if os.path.exists(path) else []
        _write_csv(path, rows)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, "lr": float(tf.keras.backend.get_value(self.model.optimizer.learning_rate))}
        row.update({k: float(logs[k]) for k in self.FIELDS[2:] if k in logs})
        _write_csv(self.path, read_history(self.path) + [row])


def _write_csv(path, rows):
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=_History.FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, text.getvalue())


def read_history(path):
    """The rows of a ``history.csv`` as dicts of floats (epoch as int)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v != ""}
            for row in rows]


def plot_curves(history_path, png_path, title=""):
    """Draws top-1/top-5 accuracy per epoch, train dashed and validation solid (Fig. 5)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = read_history(history_path)
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in zip(axes, ("top1", "top5"), ("Top-1", "Top-5")):
        for prefix, style, name in (("", "--", "train"), ("val_", "-", "validation")):
            values = [100 * r[prefix + key] for r in rows if prefix + key in r]
            if values:
                ax.plot(epochs[: len(values)], values, style, marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{label} accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    try:
        atomic_savefig(fig, png_path, dpi=100)
    finally:
        plt.close(fig)


def _metrics():
    return [
        tf.keras.metrics.SparseCategoricalAccuracy(name="top1"),
        tf.keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"),
    ]


def _atomic_json(path, payload):
    atomic_write(path, json.dumps(payload, indent=2, default=str))


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker"
                                                      and resolver.task_id == 0)


def _shard_by_data():
    """Each worker takes every n-th batch (the data sets are in memory, not files)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options


def make_optimizer(config):
    """The optimizer of a resolved config: Adam (β2, ε) or SGD with momentum 0.9, with
    the config's decoupled weight decay (none for 0)."""
    decay = config.weight_decay or None
    if config.optimizer == "adam":
        return tf.keras.optimizers.Adam(config.learning_rate, beta_2=config.adam_beta_2,
                                        epsilon=config.adam_epsilon, weight_decay=decay)
    return tf.keras.optimizers.SGD(config.learning_rate, momentum=0.9, weight_decay=decay)


def check_jit_compile(strategy):
    """Raises ValueError if XLA cannot compile a training step under ``strategy``.

    Every layer and option of this package compiles with XLA on CPU (the quantizers'
    custom gradients, the paper's weight gradient, the binary gradient's max, K and β:
    tests/test_training_xla.py). What does not compile on CPU is TensorFlow's
    multi-replica training step:

    - ``mirrored`` over logical CPU devices: XLA cannot read a replica's variables that
      live on another logical CPU device ("Trying to access resource ... located in
      device CPU:1 from device CPU:0");
    - ``multi_worker`` on CPU: "Collectives are not yet implemented for CPU devices when
      compiling with XLA" (and the process may then abort in TensorFlow's clean-up).

    Several GPUs, or a TPU (which always compiles with XLA), are not affected.
    """
    if strategy.num_replicas_in_sync <= 1:
        return
    cpus = [d for d in strategy.extended.worker_devices if "CPU" in d.upper()]
    if cpus:
        kind = ("multi_worker" if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
                else "mirrored")
        reason = ("XLA has no CPU collectives (the all-reduce of the gradients)"
                  if kind == "multi_worker" else
                  "XLA cannot access variables of a replica on another logical CPU device")
        raise ValueError(
            f"jit_compile=True does not work with strategy={kind!r} on CPU devices "
            f"({strategy.num_replicas_in_sync} replicas on {', '.join(cpus)}): {reason}. "
            f"Train on one device, or without --jit_compile. Received: jit_compile=True, "
            f"strategy={kind!r}")


def train(config):
    """Trains ``config.model`` and writes the outputs listed in the module docstring.

    Returns a dict with the resolved config, the test metrics and the output paths.
    """
    config = _resolve(config)
    strategy = distribute.make_strategy(config.strategy, tpu=config.tpu,
                                        worker_timeout=config.worker_timeout,
                                        cpu_devices=config.cpu_devices)
    replicas = strategy.num_replicas_in_sync
    if replicas > 1:
        # Linear scaling rule: the rate was chosen for one replica's batch.
        batch_size = distribute.global_batch(config.batch_size, strategy)
        config = dataclasses.replace(config, learning_rate=distribute.scaled_learning_rate(
            config.learning_rate, global_batch_size=batch_size,
            recipe_batch_size=config.batch_size))
        print(f"xnor-train: {replicas} replicas ({config.strategy}), global batch {batch_size}, "
              f"learning rate {config.learning_rate:g}", flush=True)
    else:
        batch_size = config.batch_size
    if config.jit_compile:
        check_jit_compile(strategy)
    chief = _is_chief(strategy)
    if not chief:  # multi-worker: the others write to their own directory (Keras' rule)
        config = dataclasses.replace(
            config, output_dir=os.path.join(config.output_dir,
                                            f"worker-{strategy.cluster_resolver.task_id}"))
    os.makedirs(config.output_dir, exist_ok=True)
    tf.keras.utils.set_random_seed(config.seed)

    info = data.info(config.dataset, data_dir=config.data_dir)
    train_ds = data.load(config.dataset, "train", batch_size=batch_size,
                         data_dir=config.data_dir, recipe=config.augmentation, shuffle=True,
                         seed=config.seed, limit=config.train_limit)
    test_ds = data.load(config.dataset, "test", batch_size=batch_size,
                        data_dir=config.data_dir, recipe=config.augmentation, shuffle=False,
                        limit=config.eval_limit)
    if replicas > 1:
        train_ds, test_ds = (ds.with_options(_shard_by_data()) for ds in (train_ds, test_ds))

    with strategy.scope():
        model = models.build(config.model, config.precision, input_shape=info["input_shape"],
                             num_classes=info["num_classes"], **config.model_options())
        if config.sync_batchnorm:
            distribute.synchronize_batchnorm(model)
        model.compile(make_optimizer(config),
                      tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=_metrics(), jit_compile=config.jit_compile)
    if config.jit_compile and not model.jit_compile:
        # tf.keras turns jit_compile off (with a log warning) where XLA is missing.
        raise ValueError("jit_compile=True, but XLA is not available on this platform "
                         "(tf.keras fell back to jit_compile=False). Received: jit_compile=True")

    history_path = os.path.join(config.output_dir, "history.csv")
    resume = _Resume(os.path.join(config.output_dir, "checkpoints"), model)
    initial_epoch = resume.restore()
    if initial_epoch:
        print(f"xnor-train: resuming after epoch {initial_epoch} from "
              f"{resume.manager.latest_checkpoint}", flush=True)
    callbacks = [
        tf.keras.callbacks.LearningRateScheduler(lambda epoch: learning_rate(config, epoch)),
        resume,
        _History(history_path, initial_epoch),
        tf.keras.callbacks.TensorBoard(os.path.join(config.output_dir, "tensorboard")),
    ]
    if initial_epoch < config.epochs:
        model.fit(train_ds, validation_data=test_ds, epochs=config.epochs,
                  initial_epoch=initial_epoch, callbacks=callbacks, verbose=config.verbose)

    title = f"{config.model} ({config.precision}) on {config.dataset}"
    plot_curves(history_path, os.path.join(config.output_dir, "curves.png"), title)
    model_path = os.path.join(config.output_dir, "model.keras")
    tmp_model = os.path.join(config.output_dir, "model.tmp.keras")
    model.save(tmp_model)
    os.replace(tmp_model, model_path)

    evaluation = model.evaluate(test_ds, verbose=0, return_dict=True)
    test = {k: float(evaluation[k]) for k in ("loss", "top1", "top5")}
    _atomic_json(os.path.join(config.output_dir, "metrics.json"),
                 {"test": test, "dataset": config.dataset, "model": config.model,
                  "precision": config.precision, "epochs": config.epochs})
    _atomic_json(os.path.join(config.output_dir, "model.json"), {
        "config": dataclasses.asdict(config),
        "policy": models.Policy(config.precision, **config.model_options()).get_config(),
        "dataset": config.dataset,
        "class_names": info["class_names"],
        "preprocessing": data.preprocessing_spec(config.dataset),
    })
    return {"config": config, "test": test, "model_path": model_path,
            "history_path": history_path}
