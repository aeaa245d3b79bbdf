"""How chapter 01's data setting was chosen: seven variants of `dominant_audio`, each trained on concat fusion as
visual alone, joint and MLB, over pilot seeds 10-12 (not the chapter's seeds 0-2). Prints one row per variant.

    python benchmarks/pilot_01_setting.py        # about 5 minutes on 2 CPU cores
"""
from __future__ import annotations

import time

from avlab.data import load_avdigits
from avlab.diagnostics import linear_probe
from avlab.evaluation import evaluate
from avlab.experiment import mean_std, train_many
from avlab.methods import MLB, DiscrepancyMonitor

SEEDS = [10, 11, 12]
SIZES = dict(n_train=1500, n_val=200, n_test=500)
TRAIN = dict(epochs=6, batch_size=64, lr=3e-3, width=8, progress=False)
VARIANTS = {  # name: data overrides; frames=4 variants train 5 epochs to cost about the same
    "frames 2, vis_noise 0.3, snr 20": dict(frames=2),
    "frames 2, vis_noise 0.2, snr 20": dict(frames=2, vis_noise=0.2),
    "frames 2, vis_noise 0.1, snr 20": dict(frames=2, vis_noise=0.1),
    "frames 2, vis_noise 0.2, snr 10": dict(frames=2, vis_noise=0.2, snr_db=10.0),
    "frames 2, vis_noise 0.2, snr 5 (chosen)": dict(frames=2, vis_noise=0.2, snr_db=5.0),
    "frames 4, vis_noise 0.3, snr 20": dict(frames=4),
    "frames 4, vis_noise 0.2, snr 20": dict(frames=4, vis_noise=0.2),
}


def main():
    print("variant | alone probe | joint probe | MLB probe | joint acc | MLB acc | seconds")
    for name, overrides in VARIANTS.items():
        start = time.perf_counter()
        splits = load_avdigits("dominant_audio", **SIZES, **overrides)
        train = {**TRAIN, "epochs": 5 if overrides["frames"] == 4 else 6}
        groups = {"alone": lambda: dict(modalities=("visual",)), "joint": lambda: dict(method=DiscrepancyMonitor()),
                  "MLB": lambda: dict(method=MLB(alpha=0.8))}  # a fresh method object for every run
        jobs = [dict(seed=seed, **extra()) for extra in groups.values() for seed in SEEDS]
        models = [model for model, _ in train_many(splits, jobs, **train)]
        scores = {}
        for i, group in enumerate(groups):
            chunk = list(zip(jobs[3 * i:3 * i + 3], models[3 * i:3 * i + 3]))
            test = splits["test"]
            scores[group, "probe"] = mean_std(linear_probe(m, splits["train"], test, "visual") for _, m in chunk)
            scores[group, "acc"] = mean_std(evaluate(m, test, j.get("modalities", ("audio", "visual")))["acc"]
                                            for j, m in chunk)
        cells = [scores[k] for k in (("alone", "probe"), ("joint", "probe"), ("MLB", "probe"), ("joint", "acc"),
                                     ("MLB", "acc"))]
        seconds = round(time.perf_counter() - start)
        print(name, "|", " | ".join("%.3f ± %.3f" % c for c in cells), "|", seconds, flush=True)


if __name__ == "__main__":
    main()
