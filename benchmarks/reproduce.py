"""Reproduces the paper's Table 1 and Table 3 comparisons on Fashion-MNIST.

Trains the default network (`fashion_net`) with the default recipe in every precision
(FP, BWN, BC, XNOR, BNN: the analogue of Table 1) and the XNOR/BWN ablations of Table 3
and §4.2 (α by eq. 6 vs a learned scale; B-A-C-P vs C-B-A-P; with and without the input
scaling K; with and without the binary gradient), then writes a Markdown table and the
top-1 curves of every run.

    python benchmarks/reproduce.py --output_dir=runs/reproduce            # everything
    python benchmarks/reproduce.py --runs=fp,bwn,xnor --epochs=3          # a subset, shorter

Each run resumes where it stopped, and finished runs are not retrained, so the
script can be interrupted and restarted. It is a benchmark, not a test: a full run
takes several hours on a 2-core CPU.
"""

import json
import os
import sys
import time

from absl import app, flags

from xnor_keras.io import atomic_savefig, atomic_write
from xnor_keras.training import TrainConfig, read_history, train

FLAGS = flags.FLAGS
# name -> (precision, ablation options, what it shows)
RUNS = {
    "fp": ("fp", {}, "Table 1: full precision"),
    "bwn": ("bwn", {}, "Table 1: BWN (α by eq. 6)"),
    "bc": ("bc", {}, "Table 1: BinaryConnect"),
    "xnor": ("xnor", {}, "Table 1: XNOR-Net (B-A-C-P, K, α by eq. 6)"),
    "bnn": ("bnn", {}, "Table 1: BinaryNet"),
    "bwn_learned_alpha": ("bwn", {"alpha": "learned"}, "Table 3a: α as a separate layer"),
    "xnor_cbap": ("xnor", {"block_order": "cbap"}, "Table 3b: C-B-A-P block"),
    "xnor_no_k": ("xnor", {"input_scaling": False}, "§4.2: removing β (no K)"),
    "xnor_binary_gradient": ("xnor", {"binary_gradient": True}, "§4.2: binary gradient"),
    "bwn_sgd": ("bwn", {"optimizer": "sgd"}, "BWN with §4.2's optimizer (SGD)"),
    "fp_adam": ("fp", {"optimizer": "adam"}, "FP with Adam, the bwn/xnor optimizer"),
}
flags.DEFINE_list("runs", list(RUNS), f"Which runs, of: {', '.join(RUNS)}.")
flags.DEFINE_string("output_dir", "runs/reproduce", "One sub-directory per run goes here.")
flags.DEFINE_integer("epochs", None, "Epochs per run (default: the recipe's).")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX directory (default: the Debian package's).")
flags.DEFINE_integer("train_limit", None, "Train on the first N images only (quick runs).")
flags.DEFINE_integer("eval_limit", None, "Evaluate on the first N test images only (quick runs).")


def _table(results):
    lines = ["| run | what | precision | optimizer | test top-1 (%) | Δ vs FP (points) | epochs "
             "| minutes |",
             "|---|---|---|---|---|---|---|---|"]
    fp = results.get("fp", {}).get("top1")
    for name, r in results.items():
        delta = f"{100 * (r['top1'] - fp):+.2f}" if fp is not None else "n/a"
        lines.append(f"| {name} | {RUNS[name][2]} | {RUNS[name][0]} | {r['optimizer']} | "
                     f"{100 * r['top1']:.2f} | "
                     f"{delta} | {r['epochs']} | {r['minutes']:.1f} |")
    return "\n".join(lines) + "\n"


# Panels of the curves figure: (title, runs drawn there if they were run).
PANELS = (
    ("Table 1: precisions", ("fp", "bwn", "bc", "xnor", "bnn")),
    ("XNOR ablations (Table 3b, §4.2)", ("xnor", "xnor_cbap", "xnor_no_k",
                                         "xnor_binary_gradient")),
    ("BWN ablations and optimizers (Table 3a)", ("fp", "fp_adam", "bwn", "bwn_sgd",
                                                 "bwn_learned_alpha")),
)


def _plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(title, [r for r in runs if r in results]) for title, runs in PANELS]
    panels = [(title, runs) for title, runs in panels if runs]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5), sharey=True,
                             squeeze=False)
    for ax, (title, runs) in zip(axes[0], panels):
        for name in runs:
            rows = read_history(results[name]["history"])
            epochs = [row["epoch"] for row in rows]
            line, = ax.plot(epochs, [100 * row["val_top1"] for row in rows], "-", label=name)
            ax.plot(epochs, [100 * row["top1"] for row in rows], "--", color=line.get_color())
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("top-1 accuracy (%) — solid: test, dashed: train")
    fig.suptitle("fashion_net on Fashion-MNIST")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)


def main(argv):
    del argv
    unknown = [r for r in FLAGS.runs if r not in RUNS]
    if unknown:
        print(f"reproduce: error: unknown runs {unknown}; choose from {list(RUNS)}", file=sys.stderr)
        return 2
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    results = {}
    for name in FLAGS.runs:
        precision, options, _ = RUNS[name]
        out = os.path.join(FLAGS.output_dir, name)
        metrics_path = os.path.join(out, "metrics.json")
        timing_path = os.path.join(out, "minutes.json")
        if not os.path.exists(metrics_path):
            print(f"reproduce: training {name}", flush=True)
            start = time.time()
            train(TrainConfig(model="fashion_net", precision=precision, output_dir=out,
                              epochs=FLAGS.epochs, data_dir=FLAGS.data_dir,
                              train_limit=FLAGS.train_limit, eval_limit=FLAGS.eval_limit,
                              **options))
            atomic_write(timing_path, json.dumps({"minutes": (time.time() - start) / 60}))
        with open(metrics_path) as f:
            metrics = json.load(f)
        minutes = float("nan")
        if os.path.exists(timing_path):
            with open(timing_path) as f:
                minutes = json.load(f)["minutes"]
        with open(os.path.join(out, "model.json")) as f:
            optimizer = json.load(f)["config"]["optimizer"]
        results[name] = {"top1": metrics["test"]["top1"], "epochs": metrics["epochs"],
                         "optimizer": optimizer,
                         "minutes": minutes, "history": os.path.join(out, "history.csv")}
    table = _table(results)
    results_path = os.path.join(FLAGS.output_dir, "results.md")
    atomic_write(results_path, table)
    _plot(results, os.path.join(FLAGS.output_dir, "curves.png"))
    print(table)
    return 0


if __name__ == "__main__":
    app.run(main)
