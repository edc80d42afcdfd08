"""Table 3a, directly: do "α by eq. 6" and "learned α" train the same weights?

The README's Table 3a runs (BWN with α = mean|W| per filter, eq. 6, vs α as a separate
learned per-filter scale) tie to the last digit with Adam. The explanation offered
(issue 15): BatchNorm after each binary layer divides a per-filter scale out of the
forward pass, and Adam's update m/(√v + ε) is invariant to a per-parameter scale of the
gradient, so both variants may follow one trajectory; SGD's update is proportional to
the gradient, so with SGD they should part.

This script checks that claim step by step instead of from final accuracies: it builds
`fashion_net` in BWN twice (alpha="mean_abs" and alpha="learned"), gives both the same
initial weights (every weight they share, copied by name), trains both on the same real
Fashion-MNIST batches with Adam and with SGD (momentum 0.9; the recipe's rates), and after
each of ``--steps`` steps prints, per optimizer:

- the relative distance of the binary layers' latent kernels, ‖W_a − W_b‖ / ‖W_a‖;
- the fraction of latent weights whose sign differs (sign(W) is what the network uses);
- the largest |Δlogit| relative to the logit range on a fixed held-out batch, computed
  with batch statistics in BatchNorm (as in the training forward pass, where a
  per-filter scale cancels up to BatchNorm's ε; the moving averages used at inference
  lag behind and differ between the variants for many steps).

Step 0 (before any update) shows how far the two forward passes already are apart.

    python benchmarks/table3a_trajectories.py --steps=60 --every=10

What it measured (seed 0, 60 steps, batch 128; deterministic, not a timing — rerun
2026-12-02 with the same figures as the README's of 2026-11-27):

| optimizer | ‖ΔW‖/‖W‖ | signs differing | max abs(Δlogit) / range |
|-----------|----------|-----------------|-------------------------|
| step 0    | 0        | 0%              | 1.2e-4 (BatchNorm's ε)  |
| Adam      | 0.234    | 5.68%           | 0.24                    |
| SGD (0.9) | 0.046    | 0.83%           | 0.22                    |

So the forward passes agree before training (BatchNorm divides α out), but the
explanation "with Adam the two runs are one trajectory" does not hold: the latent
weights part from the first steps under both optimizers, and faster under Adam. The
gradients differ by more than a per-parameter scale (eq. 6's weight gradient adds the
1/n term of ∂α/∂W, and learned α uses the clipped straight-through gradient), so no
optimizer's scale invariance makes them equal; the tied final accuracies of the Adam
runs are two different trajectories. Table 3a under the paper's SGD is
``reproduce.py --runs=bwn_sgd,bwn_learned_alpha_sgd``.

A benchmark-style experiment (prints figures, asserts nothing); a few minutes on 2 cores.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import xnor_keras  # noqa: E402,F401  (legacy Keras 2 before TensorFlow loads)
import tensorflow as tf  # noqa: E402
from xnor_keras import data, models  # noqa: E402
from xnor_keras.layers import BinaryWeightConv2D, BinaryWeightDense  # noqa: E402
from xnor_keras.training import recipe_for  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", 50, "Training steps per optimizer.")
flags.DEFINE_integer("every", 5, "Print every N steps.")
flags.DEFINE_integer("batch_size", 128, "Images per step.")
flags.DEFINE_integer("seed", 0, "Seed of the initial weights and the batch order.")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST IDX directory (default: the Debian package's).")


def _pair(seed):
    """Two BWN fashion_nets (eq. 6 α, learned α) with identical shared initial weights."""
    tf.keras.utils.set_random_seed(seed)
    eq6 = models.build("fashion_net", "bwn")
    tf.keras.utils.set_random_seed(seed)
    learned = models.build("fashion_net", "bwn", alpha="learned")
    shared = {w.name: w for w in eq6.weights}
    copied = 0
    for w in learned.weights:
        if w.name in shared:
            w.assign(shared[w.name])
            copied += 1
    assert copied == len(eq6.weights), "the two variants must share every eq. 6 weight"
    return eq6, learned


def _binary_kernels(model):
    return [layer.kernel for layer in model.layers
            if isinstance(layer, (BinaryWeightConv2D, BinaryWeightDense))]


def _distance(a, b):
    wa = np.concatenate([k.numpy().ravel() for k in _binary_kernels(a)])
    wb = np.concatenate([k.numpy().ravel() for k in _binary_kernels(b)])
    relative = float(np.linalg.norm(wa - wb) / np.linalg.norm(wa))
    flipped = float(np.mean(np.where(wa >= 0, 1, -1) != np.where(wb >= 0, 1, -1)))
    return relative, flipped


def _optimizer(kind):
    recipe = recipe_for("fashion_net")
    if kind == "adam":
        return tf.keras.optimizers.Adam(recipe.adam_lr)
    return tf.keras.optimizers.SGD(recipe.sgd_lr, momentum=0.9)


def _step_fn(model, optimizer):
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def compare(kind, batches, probe, *, every):
    eq6, learned = _pair(FLAGS.seed)
    steps = [_step_fn(eq6, _optimizer(kind)), _step_fn(learned, _optimizer(kind))]
    print(f"\n{kind}: step | ‖ΔW‖/‖W‖ | signs differing | max |Δlogit| / range (held-out batch)")
    rows = [_row(kind, 0, eq6, learned, probe)]
    for i, (x, y) in enumerate(batches, start=1):
        for step in steps:
            step(x, y)
        if i % every == 0 or i == len(batches):
            rows.append(_row(kind, i, eq6, learned, probe))
    return rows


def _forward(model, x):
    """Logits with BatchNorm on batch statistics, leaving its moving averages untouched."""
    moving = [(w, w.numpy()) for w in model.non_trainable_weights]
    logits = model(x, training=True).numpy()
    for w, value in moving:
        w.assign(value)
    return logits


def _row(kind, i, eq6, learned, probe):
    relative, flipped = _distance(eq6, learned)
    la, lb = _forward(eq6, probe), _forward(learned, probe)
    logit = float(np.abs(la - lb).max() / (la.max() - la.min()))
    print(f"{kind}: {i:4d} | {relative:.3e} | {100 * flipped:6.3f}% | {logit:.3e}", flush=True)
    return i, relative, flipped, logit


def main(argv):
    del argv
    train = data.load("fashion_mnist", "train", batch_size=FLAGS.batch_size,
                      data_dir=FLAGS.data_dir, recipe="fashion_net", shuffle=True,
                      seed=FLAGS.seed, limit=FLAGS.steps * FLAGS.batch_size)
    batches = [(x, y) for x, y in train.take(FLAGS.steps)]
    probe = next(iter(data.load("fashion_mnist", "test", batch_size=256,
                                data_dir=FLAGS.data_dir, shuffle=False, limit=256)))[0]
    final = {kind: compare(kind, batches, probe, every=FLAGS.every)[-1]
             for kind in ("adam", "sgd")}
    print("\nafter", len(batches), "steps (eq. 6 α vs learned α, same start, same batches):")
    for kind, (_, relative, flipped, logit) in final.items():
        print(f"  {kind}: ‖ΔW‖/‖W‖ = {relative:.3e}, signs differing = {100 * flipped:.3f}%, "
              f"max |Δlogit|/range = {logit:.3e}")


if __name__ == "__main__":
    app.run(main)
