"""How chapter 07's data setting was chosen: a few cheaper variants of chapter 01's setting (`dominant_audio`,
frames 2, vis_noise 0.2, snr 5 dB), each trained on concat fusion as visual alone, joint (Adam and SGD), MLB
(Adam) and OGM-GE (SGD), over pilot seeds 10-12 (not the chapter's seeds 0-2). Every run keeps the weights of
its best validation epoch (`select="val_acc"`). Prints one row per variant, mean ± std over the pilot seeds.

    python benchmarks/pilot_07_setting.py              # about 12 minutes on 1 CPU core
    python benchmarks/pilot_07_setting.py batch 32     # only the variants whose name contains "batch 32"
    python benchmarks/pilot_07_setting.py chapter 01   # the budget chapter 07 now uses (18 runs, 16.6 s each on
                                                       # one core of a machine running 6 other jobs)

The small variants were the chapter's first budget (800 samples, 4 epochs): too small for a clear imbalance. The
row "chapter 01" (with the visual-alone model under SGD too, added then) chose the budget the chapter uses now,
`avlab.bench.BUDGETS["chapter01"]`, and the three claims the chapter asserts.
"""
from __future__ import annotations

import time

import torch

from avlab.data import load_avdigits
from avlab.diagnostics import linear_probe
from avlab.evaluation import evaluate
from avlab.experiment import mean_std, train_many
from avlab.methods import MLB, OGMGE, Method

SEEDS = [10, 11, 12]
DATA = dict(n_val=200, n_test=500, frames=2, vis_noise=0.2, snr_db=5.0)  # chapter 01's knobs
COMMON = dict(width=8, progress=False, select="val_acc")
ADAM, SGD = dict(optimizer="adam", lr=3e-3), dict(optimizer="sgd", lr=0.03)
VARIANTS = {  # name: (training samples, epochs, SGD learning rate, batch size)
    "1000 samples, 5 epochs": (1000, 5, 0.03, 64),
    "800 samples, 5 epochs": (800, 5, 0.03, 64),
    "600 samples, 6 epochs": (600, 6, 0.03, 64),
    "800 samples, 5 epochs, batch 32": (800, 5, 0.03, 32),
    "800 samples, 4 epochs": (800, 4, 0.03, 64),
    "chapter 01: 1500 samples, 6 epochs": (1500, 6, 0.03, 64),  # added at stop 15, for a clear imbalance
}
GROUPS = {  # a fresh method object for every run
    "alone": lambda: dict(modalities=("visual",), **ADAM),
    "alone sgd": lambda: dict(modalities=("visual",), **SGD),
    "joint adam": lambda: dict(method=Method(), **ADAM),
    "MLB adam": lambda: dict(method=MLB(alpha=0.8), **ADAM),
    "joint sgd": lambda: dict(method=Method(), **SGD),
    "OGM-GE sgd": lambda: dict(method=OGMGE(alpha=0.8), **SGD),
}
COLUMNS = [("alone", "probe"), ("alone sgd", "probe"), ("joint adam", "probe"), ("joint adam", "acc"), ("MLB adam", "probe"),
           ("MLB adam", "acc"), ("joint sgd", "probe"), ("joint sgd", "acc"), ("OGM-GE sgd", "acc")]


def main(workers: int = 1, only: str = ""):
    torch.set_num_threads(1)
    print("variant | " + " | ".join(f"{g} {k}" for g, k in COLUMNS) + " | seconds per run")
    for name, (n_train, epochs, sgd_lr, batch_size) in VARIANTS.items():
        if only not in name:
            continue
        splits = load_avdigits("dominant_audio", n_train=n_train, **DATA)
        jobs = [dict(seed=seed, epochs=epochs, batch_size=batch_size, **{**extra(), **({"lr": sgd_lr} if "sgd" in group else {})})
                for group, extra in GROUPS.items() for seed in SEEDS]
        start = time.perf_counter()
        models = [model for model, _ in train_many(splits, jobs, workers=workers, **COMMON)]
        seconds = (time.perf_counter() - start) / len(jobs) * max(workers, 1)
        scores = {}
        for i, group in enumerate(GROUPS):
            chunk = list(zip(jobs[3 * i:3 * i + 3], models[3 * i:3 * i + 3]))
            test = splits["test"]
            scores[group, "probe"] = mean_std(linear_probe(m, splits["train"], test, "visual") for _, m in chunk)
            scores[group, "acc"] = mean_std(evaluate(m, test, j.get("modalities", ("audio", "visual")))["acc"]
                                            for j, m in chunk)
        print(name, "|", " | ".join("%.3f ± %.3f" % scores[c] for c in COLUMNS), "|", f"{seconds:.1f}", flush=True)


if __name__ == "__main__":
    import sys

    main(only=" ".join(sys.argv[1:]))  # e.g. `batch 32`: only the variants whose name contains it
