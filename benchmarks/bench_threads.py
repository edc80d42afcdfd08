"""Where the 2-thread speed-up goes: one network, 2 vs 1 thread under four schedules (issue 13).

bench_int8 times every interpreter once per round, interleaved with the others; a camera app
runs one interpreter back to back. To tell whether the interleaving (cold caches, sleeping
pool workers) is what keeps the 2-thread ratio down, this script times the same two
interpreters (the network's native runtime at 1 and at 2 threads) in the same rounds under:

- ``alone``: the two alternate, nothing else in between;
- ``after_twins``: each run follows one run of the fp32 twin at 1 and at 2 threads on stock
  TFLite + XNNPACK (bench_int8's situation: ~60 ms of other work, caches and workers cold);
- ``after_idle``: each run follows 60 ms of sleep (workers asleep, caches warm);
- ``streaming``: five runs back to back, the last four timed (a camera app's steady state).

    python benchmarks/bench_threads.py                          # resnet18, 60 rounds
    python benchmarks/bench_threads.py --model=alexnet --rounds=100

Prints the median ms of each schedule and thread count, the 2-vs-1 ratios, the CPU, and
(`deploy.bench.write_results`) the load average and the share of CPU time the hypervisor stole
during the run, and writes ``OUTPUT_DIR/results.md``.
"""

import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import xnor_keras  # noqa: E402,F401  (legacy Keras before TensorFlow)
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from deploy.bench import CpuTimes, cpu_name, twin_flatbuffers, write_results  # noqa: E402
from deploy.convert import convert_model  # noqa: E402
from deploy.runtime import make_interpreter  # noqa: E402
from xnor_keras import models  # noqa: E402

SCHEDULES = ("alone", "after_twins", "after_idle", "streaming")
STREAM = 5  # runs per streaming burst; the first is not timed

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "resnet18", ["resnet18", "alexnet", "fashion_net"],
                  "The XNOR network (random weights: speed does not depend on them).")
flags.DEFINE_integer("rounds", 60, "Rounds; each times every schedule at both thread counts.",
                     lower_bound=1)
flags.DEFINE_string("output_dir", "out/bench_threads", "results.md goes here.")


def time_schedules(native, twins, x, rounds):
    """{(schedule, threads): [seconds]}; ``native``/``twins``: {threads: Runner}."""
    from tqdm import tqdm

    def timed(runner):
        start = time.perf_counter()
        runner.run(x)
        return time.perf_counter() - start

    for runner in (*native.values(), *twins.values()):
        for _ in range(3):
            runner.run(x)
    times = {(s, t): [] for s in SCHEDULES for t in native}
    for round_index in tqdm(range(rounds), desc="bench", unit="round", leave=False):
        order = list(native) if round_index % 2 else list(native)[::-1]
        for threads in order:
            times[("alone", threads)].append(timed(native[threads]))
        for threads in order:
            for twin in twins.values():
                twin.run(x)
            times[("after_twins", threads)].append(timed(native[threads]))
        for threads in order:
            time.sleep(0.06)
            times[("after_idle", threads)].append(timed(native[threads]))
        for threads in order:
            burst = [timed(native[threads]) for _ in range(STREAM)]
            times[("streaming", threads)].extend(burst[1:])
    return times


def main(argv):
    del argv
    tf.keras.utils.set_random_seed(0)
    model = models.build(FLAGS.model, "xnor")
    flatbuffer = convert_model(model).flatbuffer
    fp32 = twin_flatbuffers(model, int8=False)["float32"]
    x = np.random.default_rng(0).standard_normal((1, *model.input_shape[1:])).astype(np.float32)
    native = {t: make_interpreter(flatbuffer, "native", num_threads=t) for t in (1, 2)}
    twins = {t: make_interpreter(fp32, "tflite", num_threads=t) for t in (1, 2)}
    header = (f"CPU: {cpu_name()} ({os.cpu_count()} cores), XNOR {FLAGS.model}, medians of "
              f"{FLAGS.rounds} rounds, load average before {os.getloadavg()[0]:.2f}")
    print(header, flush=True)
    before = CpuTimes.read()
    times = time_schedules(native, twins, x, FLAGS.rounds)
    ms = {key: 1e3 * float(np.median(v)) for key, v in times.items()}
    lines = [header, "", "| schedule | 1 thread ms | 2 threads ms | 2 vs 1 |",
             "|---|---:|---:|---:|"]
    for s in SCHEDULES:
        lines.append(f"| {s} | {ms[(s, 1)]:.3f} | {ms[(s, 2)]:.3f} | "
                     f"{ms[(s, 1)] / ms[(s, 2)]:.2f}× |")
    print("\n".join(lines[1:]), flush=True)
    write_results(lines, FLAGS.output_dir, cpu_times_before=before)


if __name__ == "__main__":
    app.run(main)
