"""Converts every zoo architecture in BWN and XNOR form and verifies it (issue 4's "done when").

For each model: build it (random weights: no pretrained ImageNet/CIFAR weights exist
offline), give its BatchNorm layers trained-like statistics (moving mean/variance
measured on a batch of inputs, γ and β drawn at random), convert with
``deploy.convert.convert_model`` (target arm64), then compare Keras and the LCE
interpreter on N inputs (Fashion-MNIST test images for fashion_net, standard-normal
inputs otherwise) with ``deploy.verify.compare``, and certify the conversion layer by
layer (`deploy.certify`) on the first ``--certify_n`` inputs on each of ``--runtimes``:
layers checked, sign decisions compared, disagreements inside / outside the rounding
band and the verdict. Also measures each model's noise floor (`deploy.verify.noise_floor`:
Keras against itself with inputs changed by one float32 rounding step). Prints a table
and writes ``out/deploy_zoo/results.{json,md}`` and the .tflite files; exits 1 unless
every model is certified (PASS) with no binary layer left in float.

    python benchmarks/deploy_zoo.py            # all models, 1000 inputs each
    python benchmarks/deploy_zoo.py -n 50 --models fashion_net,alexnet --precisions xnor
    python benchmarks/deploy_zoo.py --precisions xnor --option input_scaling=False \
        --out_dir out/deploy_zoo_no_k      # XNOR without K (eqs. 10-11)
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import xnor_keras  # noqa: E402,F401  (legacy Keras before TensorFlow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tqdm import tqdm  # noqa: E402

from deploy.certify import certify  # noqa: E402
from deploy.convert import convert_model  # noqa: E402
from deploy.inputs import dataset_inputs, random_inputs  # noqa: E402
from deploy.lowering import lower  # noqa: E402
from deploy.runtime import make_interpreter  # noqa: E402
from deploy.verify import compare, noise_floor  # noqa: E402
from xnor_keras import models  # noqa: E402
from xnor_keras.io import atomic_write  # noqa: E402


def trained_like_batch_norm(model, x, *, seed=0):
    """Sets every BatchNorm's moving statistics to those of its input on batch ``x``
    (one forward pass in training mode with momentum 0) and draws γ ~ U(0.5, 1.5)
    with a random 5% made negative, β ~ N(0, 0.2²)."""
    rng = np.random.default_rng(seed)
    norms = [layer for layer in model.layers
             if isinstance(layer, tf.keras.layers.BatchNormalization)]
    for layer in norms:
        channels = layer.gamma.shape[0]
        gamma = rng.uniform(0.5, 1.5, channels) * np.where(rng.random(channels) < 0.05, -1, 1)
        layer.gamma.assign(gamma.astype(np.float32))
        layer.beta.assign(rng.normal(0, 0.2, channels).astype(np.float32))
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum


def run_one(name, precision, n, out_dir, threads, options=None, diagnose=False,
            certify_n=16, runtimes=("lce", "native")):
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    options = options or {}
    model = models.build(name, precision, **options)
    shape = tuple(model.inputs[0].shape[1:])
    dataset = models.ARCHITECTURES[name].dataset
    if dataset == "fashion_mnist":
        x = dataset_inputs("fashion_mnist", n, shape)
        source = "Fashion-MNIST test images"
    else:
        x = random_inputs(n, shape, seed=1)
        source = "standard-normal inputs"
    trained_like_batch_norm(model, random_inputs(16, shape, seed=2))
    start = time.time()
    result = convert_model(model, target="arm64")
    convert_s = time.time() - start
    suffix = "".join(f"_{k}-{v}" for k, v in sorted(options.items()))
    path = os.path.join(out_dir, f"{name}_{precision}{suffix}.tflite")
    atomic_write(path, result.flatbuffer)
    report = result.report
    start = time.time()
    reference = model.predict(x, batch_size=16, verbose=0)
    runner = make_interpreter(result.flatbuffer, "lce", num_threads=threads)
    outputs = np.concatenate([runner.run(x[i:i + 1]) for i in
                              tqdm(range(n), desc=f"{name} {precision}", leave=False)])
    verify_s = time.time() - start
    check = compare(reference, outputs, source=source, runtime="lce")
    floor = noise_floor(model, x, reference, batch_size=16)
    diagnosis = {}
    if diagnose:
        # Is a failure the conversion or float rounding? (a) the lowered graph executed by
        # TensorFlow (the rewrite, without LCE); (b) LCE's optimized vs reference kernels.
        lowered = lower(model)
        rewritten = np.concatenate([lowered(x[i:i + 1]) for i in range(n)])
        reference_kernels = make_interpreter(result.flatbuffer, "lce-reference",
                                             num_threads=threads)
        lce_reference = np.concatenate([reference_kernels.run(x[i:i + 1]) for i in
                                        tqdm(range(n), desc="lce-reference", leave=False)])
        for key, (a, b) in {"keras_vs_lowered_tf": (reference, rewritten),
                            "lce_vs_lce_reference": (lce_reference, outputs)}.items():
            c = compare(a, b)
            diagnosis[key] = {"relative_diff": c.relative_diff, "top1_agreement": c.top1_agreement,
                              "within_tolerance": c.within_tolerance}
    start = time.time()
    certificates = {runtime: certify(model, result.flatbuffer, x[:certify_n], runtime=runtime,
                                     num_threads=threads) for runtime in runtimes}
    certify_s = time.time() - start
    for certificate in certificates.values():
        print(f"{name} {precision}{''.join(f' {k}={v}' for k, v in options.items())}: "
              f"{certificate.format_verdict()}", flush=True)
    first = next(iter(certificates.values()))
    summary = report.summary()
    census = dict(__import__("deploy.tflite_model", fromlist=["TFLiteModel"])
                  .TFLiteModel(result.flatbuffer).op_census())
    return {
        "model": name, "precision": precision + suffix, "file_bytes": report.file_bytes,
        "float_twin_bytes": summary["float_twin_bytes"],
        "binary_layers": summary["binary_layers"],
        "in_binary_ops": summary["binary_layers_in_binary_ops"],
        "binary_weight": summary["binary_weight_layers"],
        "in_float": summary["binary_layers_in_float"],
        "LceBconv2d": census.get("LceBconv2d", 0),
        "binary_macs": summary["binary_macs"], "float_macs": summary["float_macs"],
        "n": n, "inputs": source, "max_abs_diff": check.max_abs_diff,
        "logit_range": check.logit_range, "relative_diff": check.relative_diff,
        "top1_agreement": check.top1_agreement,
        "within_tolerance": check.within_tolerance,
        "passed": all(c.passed for c in certificates.values()),
        "certified_n": first.images, "layer_checks": len(first.checks),
        "sign_decisions": first.sign_decisions,
        "verdicts": {runtime: c.format_verdict() for runtime, c in certificates.items()},
        "inside_band": {runtime: c.inside for runtime, c in certificates.items()},
        "outside_band": {runtime: c.outside for runtime, c in certificates.items()},
        "certify_s": round(certify_s, 1),
        "noise_floor_relative_diff": floor.relative_diff,
        "noise_floor_top1_agreement": floor.top1_agreement,
        "noise_floor_within_tolerance": floor.within_tolerance,
        "convert_s": round(convert_s, 1), "verify_s": round(verify_s, 1),
        **diagnosis,
    }


def markdown(rows):
    lines = ["| model | precision | .tflite | float32 twin | binary layers (bconv / 1-bit-weight / float) "
             "| layers checked | sign decisions | disagreements inside / outside the band "
             "| verdict | end to end: max abs diff / range, top-1 agreement (n) "
             "| noise floor: / range, top-1 |",
             "|---|---|---:|---:|---|---:|---:|---|---|---|---|"]
    for r in rows:
        bands = ", ".join(f"{rt}: {r['inside_band'][rt]:,} / {r['outside_band'][rt]:,}"
                          for rt in r["verdicts"])
        verdicts = ", ".join(f"{v.split(':')[0]}" for v in r["verdicts"].values())
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['file_bytes'] / 1e6:.2f} MB | "
            f"{r['float_twin_bytes'] / 1e6:.1f} MB | {r['binary_layers']} "
            f"({r['in_binary_ops']} / {r['binary_weight']} / {r['in_float']}) | "
            f"{r['layer_checks']} × {r['certified_n']} inputs | {r['sign_decisions']:,} | "
            f"{bands} | {verdicts} | {r['relative_diff']:.2e}, "
            f"{100 * r['top1_agreement']:.1f}% ({r['n']}) | "
            f"{r['noise_floor_relative_diff']:.2e}, {100 * r['noise_floor_top1_agreement']:.1f}% |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="inputs per model")
    parser.add_argument("--models", default=",".join(models.ARCHITECTURES))
    parser.add_argument("--precisions", default="bwn,xnor")
    parser.add_argument("--out_dir", default="out/deploy_zoo")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--certify_n", type=int, default=16,
                        help="inputs certified layer by layer (deploy.certify) per model")
    parser.add_argument("--runtimes", default="lce,native",
                        help="runtimes the certificate runs on (lce, native, java, ...)")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a models.build option, e.g. input_scaling=False (repeatable)")
    parser.add_argument("--diagnose", action="store_true",
                        help="also compare Keras with the lowered graph run by TensorFlow, "
                             "and LCE's optimized with its reference kernels")
    args = parser.parse_args()
    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        options[key] = {"True": True, "False": False}.get(value, value)
    os.makedirs(args.out_dir, exist_ok=True)
    rows = []
    for name in args.models.split(","):
        for precision in args.precisions.split(","):
            row = run_one(name, precision, args.n, args.out_dir, args.threads, options,
                          args.diagnose, args.certify_n, tuple(args.runtimes.split(",")))
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = markdown(rows)
    print(table)
    atomic_write(os.path.join(args.out_dir, "results.json"), json.dumps(rows, indent=2))
    atomic_write(os.path.join(args.out_dir, "results.md"), table)
    sys.exit(0 if all(r["passed"] and r["in_float"] == 0 for r in rows) else 1)


if __name__ == "__main__":
    main()
