"""Per-op time breakdown of zoo models on the native runtime (issue 13, item 1).

For XNOR ResNet-18 and XNOR AlexNet (224x224x3) and fashion_net (28x28), each with and
without input scaling K (``input_scaling=False``, eqs. 10-11), converted with
``deploy.convert.convert_model`` (random weights: speed does not depend on them), prints
the table of ``deploy.bench.profile_flatbuffer`` (what ``xnor-deploy bench --profile``
prints): every node's median ms and share, split into binary kernels (LCE ops in this
project's delegate), float conv/FC layers and glue. Also writes the tables as Markdown and
JSON to ``--out_dir``. CPU and 1-minute load average are printed: absolute figures on a
shared machine are indicative, shares and ratios within one table less so affected.

    python benchmarks/profile_zoo.py [--models resnet18,alexnet,fashion_net] [--runs 20]
        [--threads 1] [--isa auto] [--no_fuse] [--out_dir out/profile_zoo]

``--no_fuse`` turns the delegate's fusion of the float glue off (the "before" table of
issue 13: every builtin node on TFLite).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import xnor_keras  # noqa: E402,F401  (legacy Keras before TensorFlow)
import tensorflow as tf  # noqa: E402

from benchmarks.bench_kernels import MODELS as BENCH_MODELS  # noqa: E402
from deploy.bench import cpu_name as _cpu_name  # noqa: E402
from deploy.bench import profile_flatbuffer  # noqa: E402
from deploy.convert import convert_model  # noqa: E402
from xnor_keras import models  # noqa: E402
from xnor_keras.io import atomic_write  # noqa: E402

# Each network once: this script profiles it with and without K itself.
MODELS = {name: title for name, title in BENCH_MODELS.items() if not name.endswith("_noK")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--isa", default=None, help="native kernel path (default: auto)")
    parser.add_argument("--no_fuse", action="store_true",
                        help="leave the float glue to TFLite (no fused K patterns)")
    parser.add_argument("--out_dir", default="out/profile_zoo")
    args = parser.parse_args()
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        sys.exit(f"error: unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    print(f"CPU: {_cpu_name()} ({os.cpu_count()} cores); load average {os.getloadavg()[0]:.2f}; "
          f"fusion {'off' if args.no_fuse else 'on'}")
    markdown, results = [], {}
    for name in names:
        for scaling in (True, False):
            tf.keras.backend.clear_session()
            tf.keras.utils.set_random_seed(0)
            model = models.build(name, "xnor", input_scaling=scaling)
            flatbuffer = convert_model(model).flatbuffer
            result = profile_flatbuffer(flatbuffer, threads=args.threads, runs=args.runs,
                                        isa=args.isa, fuse=not args.no_fuse)
            title = f"{MODELS[name]}, input scaling K {'on' if scaling else 'off'}"
            print(f"\n## {title}\n{result.format()}")
            sys.stdout.flush()
            markdown.append(result.markdown(title))
            results[f"{name}/K={'on' if scaling else 'off'}"] = result.as_dict()
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    os.makedirs(args.out_dir, exist_ok=True)
    atomic_write(os.path.join(args.out_dir, "results.md"),
                 f"CPU: {_cpu_name()}, {args.threads} thread(s), {args.runs} runs, fusion "
                 f"{'off' if args.no_fuse else 'on'}.\n\n" + "\n".join(markdown))
    atomic_write(os.path.join(args.out_dir, "results.json"),
                 json.dumps({"cpu": _cpu_name(), "threads": args.threads, "results": results},
                            indent=2))


if __name__ == "__main__":
    main()
