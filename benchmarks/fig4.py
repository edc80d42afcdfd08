"""Paper Fig. 4 (§4.1): weight memory and binary-vs-float convolution speedup.

Writes out/fig4/{fig4a_memory.png, fig4b_channels.png, fig4c_filter_size.png, fig4.md,
fig4.json}: the theoretical speedup S = 64·c·N_W/(c·N_W + 64) beside the speedup of
LCE's binary convolution over TFLite/XNNPACK float32 measured on this machine (one
thread, interleaved runs). Same as ``xnor-deploy fig4``; run on an otherwise idle
machine.

    python benchmarks/fig4.py [--out_dir out/fig4] [--runs 30]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import xnor_keras  # noqa: E402,F401  (legacy Keras before TensorFlow)

from deploy import efficiency  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default="out/fig4")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    efficiency.run(args.out_dir, runs=args.runs)
    with open(os.path.join(args.out_dir, "fig4.md")) as f:
        print(f.read())


if __name__ == "__main__":
    main()
