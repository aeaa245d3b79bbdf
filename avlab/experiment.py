"""One-line runs for the chapters: build the model that fits a dataset, train it, return model and history."""
from __future__ import annotations

import math
import multiprocessing
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from typing import NamedTuple

import torch

from avlab.methods.base import Method
from avlab.models.classifier import MODALITIES, AVClassifier
from avlab.train import Run, Trainer, TrainConfig
from avlab.utils import get_device, seed_everything


def build_model(data, fusion: str = "concat", width: int = 8, **kwargs) -> AVClassifier:
    """An AVClassifier whose input channels match `data`'s samples (AV-Digits: 1-channel frames)."""
    sample = data[0]
    return AVClassifier(data.num_classes, fusion, width, audio_channels=sample["audio"].shape[0],
                        visual_channels=sample["visual"].shape[0], **kwargs)


def train_model(splits: dict, method: Method | None = None, fusion: str = "concat", width: int = 8,
                modalities=MODALITIES, seed: int = 0, checkpoint=None, record=None, build=None,
                **config) -> tuple[AVClassifier, Run]:
    """Train on splits["train"], validating on splits["val"]; `config` goes to TrainConfig (epochs, lr, ...;
    `select="val_acc"` returns the model at its best validation epoch instead of its last). `build`, a function
    of the training data that returns the model (e.g. `functools.partial(build_transformer, zorro=True)`), replaces
    `build_model(data, fusion, width)`."""
    config = TrainConfig(seed=seed, modalities=tuple(modalities), **config)
    seed_everything(seed)  # before building: the initial weights are part of what a seed fixes
    model = build(splits["train"]) if build else build_model(splits["train"], fusion, width)
    run = Trainer(model, config, method, checkpoint=checkpoint, record=record).fit(splits["train"], splits.get("val"))
    return model, run


def mean_std(values) -> tuple[float, float]:
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


class Paired(NamedTuple):
    """A paired comparison a - b (two conditions run on the same seeds): mean difference, its standard error,
    and the differences themselves."""
    mean: float
    se: float
    diffs: tuple

    def clear(self, margin: float = 0.0) -> bool:
        """mean > max(2 s.e., margin): the course's test for a clear gain (of at least `margin`)."""
        return self.mean > max(2 * self.se, margin)

    def __str__(self) -> str:
        return f"{self.mean:+.3f} ± {self.se:.3f} (s.e., {len(self.diffs)} pairs)"


def paired_difference(a, b) -> Paired:
    """a[i] - b[i] over the pairs, e.g. two conditions' accuracies listed in the same seed order."""
    a, b = [float(x) for x in a], [float(y) for y in b]
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"paired_difference needs two sequences of the same length, at least 2; got {len(a)} "
                         f"and {len(b)} values")
    diffs = tuple(x - y for x, y in zip(a, b))
    return Paired(statistics.fmean(diffs), statistics.stdev(diffs) / math.sqrt(len(diffs)), diffs)


# ----------------------------------------------------------------------------- many runs at once

def train_many(splits: dict, jobs: list[dict], workers: int | None = None, **common) -> list[tuple[AVClassifier, Run]]:
    """`train_model(splits, **common, **job)` for every job, in order; returns [(model, run), ...].

    A job is a dict of train_model's arguments, e.g. `dict(method=MLB(alpha=0.8), fusion="sum", seed=1)`.
    On the CPU the jobs run in `workers` processes of one thread each (default: one per CPU core). A model this
    small cannot keep two cores busy from one process: on 2 cores, two one-thread processes get through six of
    chapter 01's runs 1.37x sooner than one process with two threads, start-up included
    (benchmarks/bench_sweep.py). With `workers=0`, or on a GPU, the jobs run one after the other in this process.

    Runs are seeded as in train_model and repeat exactly at a fixed number of threads. On another thread count
    the rounding differs, and a small model's training can drift far from there: compare runs made alike.
    """
    jobs = [{**common, **job} for job in jobs]
    if workers is None:
        on_cpu = get_device(common.get("device", "auto")).type == "cpu"
        workers = min(len(jobs), _cpu_count()) if on_cpu else 0
    if workers <= 1:
        return [train_model(splits, **job) for job in jobs]
    # spawn, not fork: this usually runs in a notebook kernel, a process with threads of its own (ZeroMQ,
    # OpenMP), and forking a threaded process is unsafe
    context = multiprocessing.get_context("spawn")
    needed = {k: splits[k] for k in ("train", "val") if k in splits}
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_setup, initargs=(needed,)) as pool:
        futures = [pool.submit(_worker_train, job) for job in jobs]
        try:
            return [future.result() for future in futures]
        finally:  # after a failure (or an interrupt), drop the jobs that have not started
            pool.shutdown(cancel_futures=True)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_WORKER_SPLITS: dict = {}


def _worker_setup(splits: dict) -> None:
    torch.set_num_threads(1)
    _WORKER_SPLITS.update(splits)


def _worker_train(job: dict) -> tuple[AVClassifier, Run]:
    model, run = train_model(_WORKER_SPLITS, **job)
    return model.cpu(), run
