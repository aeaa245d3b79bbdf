"""How chapter 06's contrastive pre-training setting was chosen, and what the pilot showed: Zorro (masked)
pre-trained with the symmetric InfoNCE alone (heads detached), on pilot seeds 20-22 (never the chapter's 0-2).

In AV-Digits a clip's audio and video share only the class, so a masked model can at best learn the class.
The chapter's earlier run (3 epochs on its 1,500 clips) learned nothing. Trials on seed 20 alone (chapter's model
and data, Adam, batch 64, tau 0.1 unless said; class retrieval a->v on the 1,000 test clips, chance 0.10; linear
probes of the audio / video stream used alone, random init 0.435 / 0.231):

    1,500 clips, 30 epochs (703 steps)              train in-batch retrieval 0.96, class ret. 0.13, probes 0.47 / 0.30
    same, tau 0.5 / batch 256, tau 0.3 / lr 3e-4    class ret. 0.14 / 0.10 / 0.14, probes <= 0.48 / 0.30
    same, Gaussian noise on both inputs (0.5 sd)    class ret. 0.06, probes 0.39 / 0.21
    4,000 pairs, 9 epochs (563 steps)               class ret. 0.17, probes 0.52 / 0.34
    12,000 pairs, 3 epochs (563 steps)              class ret. 0.37, probes 0.72 / 0.53
    12,000 pairs, 3 epochs, lr 2e-3                 class ret. 0.24, probes 0.69 / 0.46
    12,000 pairs, 2 epochs, lr 3e-3                 class ret. 0.11, probes 0.37 / 0.21
    12,000 pairs, 2 epochs, tau 0.2                 class ret. 0.25, probes 0.69 / 0.39
    12,000 pairs, 2 epochs, batch 32 (750 steps)    class ret. 0.07 / 0.16 / 0.12 (lr 1e-3 / 5e-4 / tau 0.2)

With few pairs seen many times the model memorises the pairs (training retrieval -> 1, a fingerprint of each
clip), a faster route than the class; no temperature, batch size, learning rate or noise augmentation changed
that. What changes it is the number of distinct pairs at the same number of steps: with many pairs, each seen
a few times, the only thing that pays is what pairs share, the class. That is the regime contrastive
pre-training is meant for (Zorro pre-trains on AudioSet's ~2M clips), and unlabelled pairs cost nothing but
compute: the chapter pre-trains on 12,000 unlabelled clips from the training speakers and images (no label read)
and probes with its 1,500 labelled ones.

This script makes the choice on seeds 20-22: stage 1 pre-trains on the 12,000 pairs at tau 0.1 and 0.2 and scores
after 2 and 3 epochs; the setting is the one with the best mean class retrieval, or the fewest epochs within 0.03
of it (the chapter's time). Stage 2 runs the memorisation control for that setting: the same number of steps on
the chapter's 1,500 clips. Both are compared with the same model untrained (same seed, same initial weights):
class and instance retrieval, linear probes, and the seed-paired gains from which the chapter's assertion and
margins are fixed.

    python benchmarks/pilot_06_contrastive.py

took 807 s on a 2-core machine shared with three other jobs (load ~8), plus about 2 minutes to build the
12,000-clip audio cache the first time. Its output (mean ± sd over seeds 20-22; gains mean ± s.e. [per seed]):

                          class ret. a→v  instance ret.  train in-batch   probe audio    probe video
    untrained             0.105 ± 0.028  0.001 ± 0.001        —         0.427 ± 0.009  0.265 ± 0.033
    tau 0.1, 2 epochs     0.146 ± 0.015  0.001 ± 0.001  0.021 ± 0.003   0.453 ± 0.081  0.318 ± 0.055
    tau 0.1, 3 epochs     0.264 ± 0.092  0.003 ± 0.001  0.033 ± 0.011   0.579 ± 0.127  0.452 ± 0.069
    tau 0.2, 2 epochs     0.167 ± 0.075  0.002 ± 0.002  0.026 ± 0.004   0.563 ± 0.112  0.343 ± 0.057
    tau 0.2, 3 epochs     0.283 ± 0.048  0.002 ± 0.000  0.041 ± 0.011   0.680 ± 0.078  0.490 ± 0.050   <- chosen
    1,500 clips, 24 ep.   0.145 ± 0.013  0.002 ± 0.002  0.816 ± 0.027   0.462 ± 0.036  0.293 ± 0.011   (control)
    gain, chosen          class +0.178 ± 0.034 [0.235, 0.118, 0.182]  audio +0.253 ± 0.042 [0.334, 0.194, 0.231]
                          video +0.225 ± 0.047 [0.307, 0.143, 0.226]
    gain, control         class +0.040 ± 0.015 [0.055, 0.011, 0.054]  audio +0.035 ± 0.020 [0.061, -0.005, 0.049]
                          video +0.028 ± 0.017 [0.062, 0.008, 0.014]

From it the chapter asserts, on seeds 0-2, a seed-paired mean gain over the untrained model above max(0.1, 2 s.e.)
for each probe and above max(0.05, 2 s.e.) for class retrieval (margins below the chosen setting's mean gain
minus two s.e. here: 0.169 audio, 0.131 video, 0.110 class retrieval).
"""
from __future__ import annotations

import math
import time

import torch
from torch.utils.data import DataLoader

from avlab.data import load_avdigits
from avlab.diagnostics import linear_probe
from avlab.experiment import mean_std
from avlab.methods.zorro_contrastive import ZorroContrastive, retrieval_accuracy
from avlab.models.zorro import build_transformer
from avlab.train import Trainer, TrainConfig
from avlab.utils import seed_everything

SEEDS = [20, 21, 22]
DATA = dict(n_train=1500, vis_noise=0.0)  # chapter 06's data
POOL = dict(n_train=12000, vis_noise=0.0)  # its training split: the unlabelled pairs
MODEL = dict(dim=64, depth=2, heads=2, fusion_tokens=4)  # chapter 06's model
TEMPERATURES = [0.1, 0.2]
EPOCHS = [2, 3]  # constant learning rate: epoch 2 of a 3-epoch run is the 2-epoch run (the data order is seeded
BATCH, LR = 64, 1e-3  # per (seed, epoch) and probing reads no random numbers)
KEYS = ("class ret. a→v", "instance ret. a→v", "train in-batch ret.", "probe audio", "probe video")


@torch.no_grad()
def embeddings(model, data):
    model.eval()
    out = [model(audio=b["audio"], visual=b["visual"])["embeddings"] for b in DataLoader(data, 500)]
    model.train()
    return torch.cat([o["audio"] for o in out]), torch.cat([o["visual"] for o in out])


def scores(model, train, test, in_batch=float("nan")):
    ea, ev = embeddings(model, test)
    return {"class ret. a→v": retrieval_accuracy(ea, ev, test.labels).item(),
            "instance ret. a→v": retrieval_accuracy(ea, ev).item(), "train in-batch ret.": in_batch,
            "probe audio": linear_probe(model, train, test, "audio"),
            "probe video": linear_probe(model, train, test, "visual")}


class Scored(ZorroContrastive):
    """The contrastive plug-in, scoring the model at the end of the epochs in `at`."""

    def __init__(self, temperature, at, train, test):
        super().__init__(1.0, temperature)
        self.at, self.train, self.test, self.scores = at, train, test, {}

    def on_epoch_end(self, trainer, epoch, record):
        if epoch + 1 in self.at:
            self.scores[epoch + 1] = scores(trainer.model, self.train, self.test, record["contrastive_retrieval"])


def pretrain(seed, data, epochs, temperature, train, test, at):
    seed_everything(seed)  # same seed => same initial weights as the untrained reference
    model = build_transformer(train, **MODEL, detach_heads=True)
    method = Scored(temperature, at, train, test)
    Trainer(model, TrainConfig(seed=seed, epochs=epochs, batch_size=BATCH, lr=LR, progress=False), method).fit(data)
    return method.scores


def cell(values):
    return f"{'—':>21}" if any(math.isnan(v) for v in values) else "%13.3f ± %.3f" % mean_std(values)


def table(rows, untrained):
    print(f"{'':30}" + "".join(f"{k:>21}" for k in KEYS))
    for arm, rs in rows.items():
        print(f"{arm:30}" + "".join(cell([r[k] for r in rs]) for k in KEYS))
    print("seed-paired gain over the untrained model, mean ± s.e. [per seed]")
    for arm, rs in rows.items():
        if rs is untrained:
            continue
        cells = []
        for k in ("class ret. a→v", "probe audio", "probe video"):
            d = [r[k] - u[k] for r, u in zip(rs, untrained)]
            m, s = mean_std(d)
            cells.append(f"{k} {m:+.3f} ± {s / math.sqrt(len(d)):.3f} {[round(x, 3) for x in d]}")
        print(f"{arm:30}" + "   ".join(cells))


def main():
    torch.set_num_threads(1)
    start = time.perf_counter()
    splits = load_avdigits("dominant_audio", **DATA)
    train, test = splits["train"], splits["test"]
    pool = load_avdigits("dominant_audio", **POOL)["train"]
    chance = (torch.bincount(test.labels).float() / len(test)).pow(2).sum().item()
    print(f"class-retrieval chance {chance:.3f}; test: {len(test)} held-out clips; mean ± sd over seeds {SEEDS}")
    untrained = []
    for seed in SEEDS:
        seed_everything(seed)
        untrained.append(scores(build_transformer(train, **MODEL, detach_heads=True), train, test))

    print(f"\nStage 1: pre-training on the {len(pool):,} unlabelled pairs (batch {BATCH}, Adam lr {LR})")
    stage1 = {(t, e): [] for t in TEMPERATURES for e in EPOCHS}
    for seed in SEEDS:
        for t in TEMPERATURES:
            for e, row in pretrain(seed, pool, max(EPOCHS), t, train, test, EPOCHS).items():
                stage1[t, e].append(row)
        print(f"  seed {seed} done, {time.perf_counter() - start:.0f} s", flush=True)
    table({"untrained": untrained, **{f"tau {t}, {e} epochs": stage1[t, e] for t, e in stage1}}, untrained)
    # the choice: the best mean class retrieval, or the fewest epochs within 0.03 of it (the chapter's time)
    best = max(mean_std([r["class ret. a→v"] for r in rows])[0] for rows in stage1.values())
    tau, epochs = min((k for k, rows in stage1.items() if mean_std([r["class ret. a→v"] for r in rows])[0]
                       >= best - 0.03), key=lambda k: (k[1], -mean_std([r["class ret. a→v"] for r in stage1[k]])[0]))
    steps = math.ceil(len(pool) / BATCH) * epochs
    control_epochs = round(steps / math.ceil(len(train) / BATCH))
    print(f"chosen: tau {tau}, {epochs} epochs ({steps} steps)")

    print(f"\nStage 2: the memorisation control, the same {steps} steps on the chapter's {len(train):,} clips "
          f"({control_epochs} epochs)")
    control = [pretrain(seed, train, control_epochs, tau, train, test, [control_epochs])[control_epochs]
               for seed in SEEDS]
    table({"untrained": untrained, f"{len(train):,} clips, {control_epochs} epochs": control,
           f"{len(pool):,} pairs, {epochs} epochs": stage1[tau, epochs]}, untrained)
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
