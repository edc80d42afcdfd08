"""Reproduces the paper's Table 1 and Table 3 comparisons on Fashion-MNIST, over seeds.

Trains the default network (`fashion_net`) with the default recipe in every precision
(FP, BWN, BC, XNOR, BNN: the analogue of Table 1) and the XNOR/BWN ablations of Table 3
and §4.2 (α by eq. 6 vs a learned scale, with Adam and with the paper's SGD; B-A-C-P vs
C-B-A-P; with and without the input scaling K; the four readings of the binary
gradient), then writes a Markdown table (mean ± sample std over seeds) and the top-1
curves (mean line, ± std band) of every run.

    python benchmarks/reproduce.py --output_dir=runs/reproduce            # everything, 1 seed
    python benchmarks/reproduce.py --runs=fp,fp_adam,bwn,bc,xnor,bnn,xnor_no_k --seeds=3
    python benchmarks/reproduce.py --runs=fp,bwn,xnor --epochs=3          # a subset, shorter
    python benchmarks/reproduce.py --archive_dir=docs/reproduce_runs      # keep the results
    python benchmarks/reproduce.py --output_dir=docs/reproduce_runs --notrain  # table, curves

``--archive_dir`` copies each finished seed's small result files (`ARCHIVED`: metrics,
history, model config, minutes; not the weights or checkpoints) into the same layout
under another directory, which the table and the curves can be rebuilt from with
``--notrain`` (the repository keeps the runs behind the README's numbers there).

Layout: ``OUTPUT_DIR/<run>/seed<k>/`` for k = 0 … seeds−1, each a `train` output
directory plus ``minutes.json``. A seed whose ``metrics.json`` exists is never
retrained; an interrupted one resumes from its last epoch. The table and the curves
use every finished ``seed<k>`` directory of the listed runs, also those beyond
``--seeds`` (so ``--seeds=1`` after a 3-seed run still reports 3 seeds).

"Δ vs FP" is against the better (by mean) of ``fp`` (SGD) and ``fp_adam`` among the
listed runs; the table's heading says which. It is a benchmark, not a test: a full
run takes hours on a 2-core CPU.
"""

import dataclasses
import os
import shutil
import sys

import numpy as np
from absl import app, flags

from timed_run import finished, read_run, train_timed
from xnor_keras.io import atomic_savefig, atomic_write
from xnor_keras.training import TrainConfig, read_history

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Run:
    """One row of the table: a precision, its `TrainConfig` options and what it shows."""

    precision: str
    options: dict
    what: str


RUNS = {
    "fp": Run("fp", {}, "Table 1: full precision"),
    "bwn": Run("bwn", {}, "Table 1: BWN (α by eq. 6)"),
    "bc": Run("bc", {}, "Table 1: BinaryConnect"),
    "xnor": Run("xnor", {}, "Table 1: XNOR-Net (B-A-C-P, K, α by eq. 6)"),
    "bnn": Run("bnn", {}, "Table 1: BinaryNet"),
    "bwn_learned_alpha": Run("bwn", {"alpha": "learned"}, "Table 3a: α as a separate layer"),
    "xnor_cbap": Run("xnor", {"block_order": "cbap"}, "Table 3b: C-B-A-P block"),
    "xnor_no_k": Run("xnor", {"input_scaling": False}, "§4.2: removing β (no K)"),
    "xnor_bg_position": Run("xnor", {"binary_gradient": "position"},
                            "§4.2: binary gradient, max per position (default)"),
    "xnor_bg_example": Run("xnor", {"binary_gradient": "example"},
                           "§4.2: binary gradient, max per example"),
    "xnor_bg_channel": Run("xnor", {"binary_gradient": "channel"},
                           "§4.2: binary gradient, max per channel"),
    "xnor_bg_tensor": Run("xnor", {"binary_gradient": "tensor"},
                          "§4.2: binary gradient, max over the tensor"),
    "xnor_bg_position_dw": Run("xnor", {"binary_gradient": "position",
                                        "binary_gradient_for": "weights"},
                               "§4.2: binary gradient per position, for ∂C/∂W only"),
    "xnor_bg_position_di": Run("xnor", {"binary_gradient": "position",
                                        "binary_gradient_for": "inputs"},
                               "§4.2: binary gradient per position, for ∂C/∂I only"),
    "bwn_sgd": Run("bwn", {"optimizer": "sgd"}, "Table 3a under SGD: α by eq. 6"),
    "bwn_learned_alpha_sgd": Run("bwn", {"alpha": "learned", "optimizer": "sgd"},
                                 "Table 3a under SGD: α as a separate layer"),
    "fp_adam": Run("fp", {"optimizer": "adam"}, "FP with Adam, the bwn/xnor optimizer"),
    "xnor_20ep": Run("xnor", {"epochs": 20}, "XNOR's recipe (batch 256, Adam 4e-3, cosine), "
                     "20 epochs"),
    "xnor_pad_flip_20ep": Run("xnor", {"epochs": 20, "augmentation": "fashion_net_pad_flip"},
                              "XNOR's recipe, 20 epochs, 2-px pad-crop + flip augmentation"),
}
FP_RUNS = ("fp", "fp_adam")  # "FP" of the Δ column: the better of these

flags.DEFINE_list("runs", list(RUNS), f"Which runs, of: {', '.join(RUNS)}.")
flags.DEFINE_integer("seeds", 1, "Train seeds 0 … N−1 of every listed run.", lower_bound=1)
flags.DEFINE_string("output_dir", "runs/reproduce", "One sub-directory per run goes here.")
flags.DEFINE_integer("epochs", None, "Epochs per run (default: the recipe's).")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX directory (default: the Debian package's).")
flags.DEFINE_integer("train_limit", None, "Train on the first N images only (quick runs).")
flags.DEFINE_integer("eval_limit", None, "Evaluate on the first N test images only (quick runs).")
flags.DEFINE_boolean("train", True, "Train unfinished seeds (--notrain: only tabulate and plot "
                     "the finished ones).")
flags.DEFINE_string("archive_dir", None, "Also copy every finished seed's result files "
                    "(ARCHIVED) to ARCHIVE_DIR/<run>/seed<k>/.")

# The files of a finished seed that --archive_dir keeps (what `collect` reads).
ARCHIVED = ("metrics.json", "minutes.json", "model.json", "history.csv")


@dataclasses.dataclass(frozen=True)
class RunResult:
    """The finished seeds of one run: their test top-1, minutes and histories."""

    name: str
    top1: tuple  # fractions, one per finished seed
    minutes: tuple
    epochs: int
    optimizer: str
    histories: tuple  # paths of history.csv

    @property
    def n(self):
        return len(self.top1)

    @property
    def mean(self):
        return float(np.mean(self.top1))

    @property
    def std(self):
        """The sample standard deviation (ddof=1); NaN for one seed."""
        return float(np.std(self.top1, ddof=1)) if self.n > 1 else float("nan")


def seed_dir(output_dir, run, seed):
    """Where seed ``seed`` of ``run`` trains: ``output_dir/<run>/seed<k>``."""
    return os.path.join(output_dir, run, f"seed{seed}")


def train_seed(name, seed, directory):
    """Trains one seed of a run into ``directory`` (resuming) and records its minutes."""
    run = RUNS[name]
    options = dict(run.options)
    if FLAGS.epochs is not None:  # --epochs overrides a run's own
        options["epochs"] = FLAGS.epochs
    print(f"reproduce: training {name} seed {seed}", flush=True)
    train_timed(TrainConfig(model="fashion_net", precision=run.precision, output_dir=directory,
                            seed=seed, data_dir=FLAGS.data_dir, train_limit=FLAGS.train_limit,
                            eval_limit=FLAGS.eval_limit, **options))


def collect(output_dir, name):
    """The `RunResult` of every finished ``seed<k>`` directory of a run (k = 0, 1, …)."""
    records = []
    while finished(seed_dir(output_dir, name, len(records))):
        records.append(read_run(seed_dir(output_dir, name, len(records))))
    return RunResult(name, tuple(r.top1 for r in records), tuple(r.minutes for r in records),
                     records[-1].epochs if records else None,
                     records[-1].optimizer if records else None,
                     tuple(r.history for r in records))


def archive(output_dir, archive_dir, name):
    """Copies the `ARCHIVED` files of every finished seed of run ``name``; returns how many."""
    seed = 0
    while finished(seed_dir(output_dir, name, seed)):
        source, target = seed_dir(output_dir, name, seed), seed_dir(archive_dir, name, seed)
        os.makedirs(target, exist_ok=True)
        for file in ARCHIVED:
            if os.path.exists(os.path.join(source, file)):
                shutil.copyfile(os.path.join(source, file), os.path.join(target, file) + ".tmp")
                os.replace(os.path.join(target, file) + ".tmp", os.path.join(target, file))
        seed += 1
    return seed


def _reference_fp(results):
    """The name of the better (by mean) FP run among the results, or None."""
    fps = [results[n] for n in FP_RUNS if n in results]
    return max(fps, key=lambda r: r.mean).name if fps else None


def _pm(mean, std):
    return f"{mean:.2f} ± {std:.2f}" if np.isfinite(std) else f"{mean:.2f}"


def table(results):
    """The Markdown table: mean ± sample std of test top-1 (%) over seeds, Δ vs FP."""
    fp = _reference_fp(results)
    lines = [f"FP = {fp} (the better of {' and '.join(FP_RUNS)} by mean)" if fp else
             "FP: neither fp nor fp_adam was run, so no Δ", "",
             "| run | what | precision | optimizer | seeds | test top-1 (%), mean ± std "
             "| Δ vs FP (points) | epochs | minutes per seed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        delta = f"{100 * (r.mean - results[fp].mean):+.2f}" if fp else "n/a"
        lines.append(f"| {name} | {RUNS[name].what} | {RUNS[name].precision} | {r.optimizer} | "
                     f"{r.n} | {_pm(100 * r.mean, 100 * r.std)} | {delta} | {r.epochs} | "
                     f"{np.mean(r.minutes):.1f} |")
    return "\n".join(lines) + "\n"


# Panels of the curves figure: (title, runs drawn there if they were run).
PANELS = (
    ("Table 1: precisions", ("fp", "fp_adam", "bwn", "bc", "xnor", "bnn")),
    ("XNOR ablations (Table 3b, §4.2)", ("xnor", "xnor_cbap", "xnor_no_k",
                                         "xnor_bg_position", "xnor_bg_example",
                                         "xnor_bg_channel", "xnor_bg_tensor",
                                         "xnor_bg_position_dw", "xnor_bg_position_di")),
    ("Table 3a: α by eq. 6 vs learned, Adam and SGD",
     ("bwn", "bwn_learned_alpha", "bwn_sgd", "bwn_learned_alpha_sgd")),
    ("XNOR's recipe: epochs and augmentation", ("xnor", "xnor_20ep", "xnor_pad_flip_20ep")),
)
COLLAPSED = 10.0  # points below the best final mean: drawn in their own, unzoomed panel
MARGIN = 3.0  # points of y-axis below the lowest final mean of a zoomed panel (the last epochs)


def _curves(result, key):
    """Per-epoch mean and sample std (0 for one seed) of a history column, in %."""
    rows = [read_history(path) for path in result.histories]
    length = min(len(r) for r in rows)
    values = 100 * np.array([[row[key] for row in r[:length]] for r in rows])
    std = values.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(length)
    return np.arange(1, length + 1), values.mean(axis=0), std


def _panels(results):
    """Zoomed panels of the runs present (runs of no `PANELS` entry share an "other runs"
    panel), plus one unzoomed panel of collapsed runs."""
    best = max(100 * r.mean for r in results.values())
    collapsed = [n for n, r in results.items() if 100 * r.mean < best - COLLAPSED]
    placed = {r for _, runs in PANELS for r in runs}
    panels = []
    for title, runs in PANELS + (("other runs", tuple(r for r in results if r not in placed)),):
        runs = [r for r in runs if r in results and r not in collapsed]
        if runs:
            low = min(100 * results[r].mean for r in runs) - MARGIN
            panels.append((title, runs, low))
    if collapsed:
        panels.append((f"collapsed (final mean > {COLLAPSED:g} points below the best)",
                       collapsed, None))
    return panels


def plot(results, path):
    """Test top-1 per epoch: mean line and ± std band per run (dashed: train mean).

    Each panel's y-axis spans from ``MARGIN`` points below its lowest final-epoch test
    mean to just above its highest test mean + std, so differences of tenths of a point
    stay visible (early epochs, and train curves above the test ones, may leave the
    axis); runs more than ``COLLAPSED`` points below the best are drawn in their own
    panel on the full 0–100 axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = _panels(results)
    cols = min(2, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 5 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (title, runs, low) in zip(axes.flat, panels):
        high = 0.0
        for name in runs:
            epochs, mean, std = _curves(results[name], "val_top1")
            n = results[name].n
            line, = ax.plot(epochs, mean, "-", label=f"{name} (n={n})")
            ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
            _, train_mean, _ = _curves(results[name], "top1")
            ax.plot(epochs, train_mean, "--", color=line.get_color(), linewidth=0.8)
            high = max(high, float(np.max(mean + std)))
        ax.set_ylim(*((low, min(100.0, high + 0.5)) if low is not None else (0.0, 100.0)))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("top-1 (%): test mean ± std (band), train mean (dashed)")
    fig.suptitle("fashion_net on Fashion-MNIST (y-axes zoomed to where the runs differ)")
    fig.tight_layout()
    try:
        atomic_savefig(fig, path, dpi=100)
    finally:
        plt.close(fig)


def main(argv):
    del argv
    unknown = [r for r in FLAGS.runs if r not in RUNS]
    if unknown:
        print(f"reproduce: error: unknown runs {unknown}; choose from {list(RUNS)}", file=sys.stderr)
        return 2
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    for seed in range(FLAGS.seeds if FLAGS.train else 0):  # seed-major: an interrupted
        for name in FLAGS.runs:                              # queue has every run's seed 0
            directory = seed_dir(FLAGS.output_dir, name, seed)
            if not finished(directory):
                train_seed(name, seed, directory)
    results = {name: collect(FLAGS.output_dir, name) for name in FLAGS.runs}
    missing = [name for name, result in results.items() if not result.n]
    if missing:
        print(f"reproduce: error: no finished seed of {missing} in {FLAGS.output_dir}",
              file=sys.stderr)
        return 2
    if FLAGS.archive_dir:
        for name in FLAGS.runs:
            archive(FLAGS.output_dir, FLAGS.archive_dir, name)
    text = table(results)
    atomic_write(os.path.join(FLAGS.output_dir, "results.md"), text)
    plot(results, os.path.join(FLAGS.output_dir, "curves.png"))
    print(text)
    return 0


if __name__ == "__main__":
    app.run(main)
