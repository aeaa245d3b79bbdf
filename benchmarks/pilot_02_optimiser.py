"""How chapter 02's SGD setting was chosen, and what the pilot showed: on chapter 01's data (concat fusion), over
pilot seeds 20-22 (never the chapter's seeds 0-2).

Stage 1 picks SGD's learning rate and epochs on joint training alone, so that the choice favours no method: the
learning rate with the best validation accuracy of joint training at the last of 10 epochs, then the fewest of
6, 8, 10 epochs within 0.01 of that (constant learning rate: a run's first epochs are those of a shorter run).
Stage 2 trains joint, OGM, OGM-GE, multi-loss and MLB under SGD (stage 1's choice) and under Adam (chapter 01's
lr 3e-3, 6 epochs), plus OGM-GE ablations under SGD (modulation window, alpha), and prints test accuracy, visual
probe and the seed-paired differences. Stage 3 trains the visual encoder alone under each optimiser (the dominance
gap's reference).

    python benchmarks/pilot_02_optimiser.py      # about 25 minutes on one busy CPU core
"""
from __future__ import annotations

import statistics
import time

import torch

from avlab.data import load_avdigits
from avlab.diagnostics import linear_probe
from avlab.evaluation import evaluate
from avlab.experiment import mean_std, paired_difference, train_many
from avlab.methods import MLB, OGMGE, DiscrepancyMonitor

SEEDS = [20, 21, 22]
DATA = dict(n_train=1500, n_val=200, n_test=500, frames=2, vis_noise=0.2, snr_db=5.0)  # chapter 01's setting
COMMON = dict(batch_size=64, width=8, progress=False)
ADAM = dict(optimizer="adam", lr=3e-3, epochs=6)  # chapter 01
SGD_LRS = [0.01, 0.03, 0.1]
SGD_EPOCHS = [6, 8, 10]
ALPHA = 0.8
METHODS = {"joint": lambda: DiscrepancyMonitor(ALPHA), "OGM": lambda: OGMGE(ALPHA, noise=False),
           "OGM-GE": lambda: OGMGE(ALPHA), "multi-loss": lambda: MLB(ALPHA, balance=False),
           "MLB": lambda: MLB(ALPHA)}


def paired(a, b):
    """(mean, s.e.) of a - b over the pairs."""
    return paired_difference(a, b)[:2]


def score(splits, jobs, **train):
    out = []
    for model, run in train_many(splits, jobs, workers=1, **COMMON, **train):
        out.append({"acc": evaluate(model, splits["test"])["acc"],
                    "probe": linear_probe(model, splits["train"], splits["test"], "visual"),
                    "val": [h["val_acc"] for h in run.history]})
    return out


def main():
    torch.set_num_threads(1)
    splits = load_avdigits("dominant_audio", **DATA)
    start = time.perf_counter()

    print("Stage 1: joint training under SGD (momentum 0.9), validation accuracy by epoch, mean over seeds")
    print("lr | val acc @6 | @8 | @10")
    curves = {}
    for lr in SGD_LRS:
        rows = score(splits, [dict(method=DiscrepancyMonitor(ALPHA), seed=s) for s in SEEDS],
                     optimizer="sgd", lr=lr, epochs=max(SGD_EPOCHS))
        curves[lr] = {e: statistics.fmean(r["val"][e - 1] for r in rows) for e in SGD_EPOCHS}
        print(lr, "|", " | ".join("%.3f" % curves[lr][e] for e in SGD_EPOCHS), flush=True)
    lr = max(SGD_LRS, key=lambda x: curves[x][max(SGD_EPOCHS)])
    epochs = min(e for e in SGD_EPOCHS if curves[lr][e] >= curves[lr][max(SGD_EPOCHS)] - 0.01)
    sgd = dict(optimizer="sgd", lr=lr, epochs=epochs)
    print(f"chosen: SGD lr {lr}, {epochs} epochs ({time.perf_counter() - start:.0f} s)\n", flush=True)

    print("Stage 2: test accuracy and visual probe, mean ± std over seeds; paired difference to joint (± s.e.)")
    print("optimiser | method | fused acc | visual probe | acc - joint | probe - joint")
    results = {}
    groups = [("SGD", name, make, sgd) for name, make in METHODS.items()]
    groups += [("Adam", name, make, ADAM) for name, make in METHODS.items()]
    groups += [("SGD", f"OGM-GE, window 0-{epochs // 2 - 1}", lambda: OGMGE(ALPHA, end=epochs // 2 - 1), sgd),
               ("SGD", "OGM-GE, alpha 0.1", lambda: OGMGE(0.1), sgd)]
    for opt, name, make, train in groups:
        rows = score(splits, [dict(method=make(), seed=s) for s in SEEDS], **train)
        results[opt, name] = rows
        acc, probe = [r["acc"] for r in rows], [r["probe"] for r in rows]
        base = results[opt, "joint"]
        d_acc, d_probe = paired(acc, [r["acc"] for r in base]), paired(probe, [r["probe"] for r in base])
        print(f"{opt} | {name} | %.3f ± %.3f | %.3f ± %.3f | %+.3f ± %.3f | %+.3f ± %.3f"
              % (*mean_std(acc), *mean_std(probe), *d_acc, *d_probe), flush=True)
    for opt in ("SGD", "Adam"):
        for a, b in (("MLB", "multi-loss"), ("OGM-GE", "OGM")):
            d = [paired([r[k] for r in results[opt, a]], [r[k] for r in results[opt, b]]) for k in ("acc", "probe")]
            print(f"{opt}: {a} - {b}: acc %+.3f ± %.3f, probe %+.3f ± %.3f" % (*d[0], *d[1]))
    print(f"({time.perf_counter() - start:.0f} s)\n")
    visual_alone(splits, sgd, results)


def visual_alone(splits, sgd, results=None):
    """Stage 3: the visual encoder trained alone under each optimiser, the reference of the dominance gap."""
    print("Stage 3: visual alone, visual probe (mean ± std); gap = alone - joint probe, paired (± s.e.)")
    for opt, train in (("SGD", sgd), ("Adam", ADAM)):
        rows = score(splits, [dict(modalities=("visual",), seed=s) for s in SEEDS], **train)
        probe = [r["probe"] for r in rows]
        gap = paired(probe, [r["probe"] for r in results[opt, "joint"]]) if results else (float("nan"),) * 2
        print(f"{opt} | visual alone | probe %.3f ± %.3f | gap %+.3f ± %.3f" % (*mean_std(probe), *gap), flush=True)


if __name__ == "__main__":
    main()
