"""A seed sweep on the CPU: `train_many` in this process (all cores, as torch sets them) against one worker
process per core with one thread each, on chapter 01's setting. Prints wall times and the speed-up.

    python benchmarks/bench_sweep.py [--jobs 6] [--epochs 6]
"""
from __future__ import annotations

import argparse
import time

import torch

from avlab.data import load_avdigits
from avlab.experiment import _cpu_count, train_many


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    splits = load_avdigits("dominant_audio", n_train=1500, n_val=200, n_test=500, frames=2, vis_noise=0.2, snr_db=5.0)
    jobs = [dict(seed=s) for s in range(args.jobs)]
    train = dict(epochs=args.epochs, batch_size=64, lr=3e-3, width=8, progress=False)
    workers = _cpu_count()
    times = {}
    for label, n in ((f"in this process, {torch.get_num_threads()} threads", 0),
                     (f"{workers} worker processes, 1 thread each", workers)):
        start = time.perf_counter()
        train_many(splits, jobs, workers=n, **train)
        times[label] = time.perf_counter() - start
        print(f"{args.jobs} runs of {args.epochs} epochs, {label}: {times[label]:.1f} s", flush=True)
    first, second = times.values()
    print(f"speed-up of the worker processes: {first / second:.2f}x (worker start-up included)")


if __name__ == "__main__":
    main()
