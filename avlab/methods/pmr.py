"""PMR: Prototypical Modal Rebalance (Fan et al., "PMR: Prototypical Modal Rebalance for Multimodal
Learning", CVPR 2023), as the authors' code (`fanyunfeng-bit/Modal-Imbalance-PMR`, `main_Prototype_grad.py`)
computes it.

At the start of every epoch, class prototypes per modality from the training set (eval mode, no gradient):

    c_m[k] = mean of h_m(x) over the training samples of class k          (h_m: pooled encoder-m feature)
    c_m   <- (1 - momentum) * c_m(new) + momentum * c_m(previous epoch)  (from the second epoch on)

Each step, inside the window start..end, a non-parametric prototype classifier per modality:

    d_m[i, k] = ||h_m,i - c_m[k]||_2                                      (torch.cdist)
    score_m   = sum_i softmax(-d_m)[i, y_i],   rho = score_a / score_v
    L = CE(fused) + alpha * CE(-d_v, y)   if rho > 1   (audio ahead: pull the visual features to their prototypes)
                  + alpha * CE(-d_a, y)   if rho < 1
                  + 0                     if rho = 1

so the rebalancing coefficient is a switch: alpha on the slower modality, 0 on the faster one. The prototypes
are constants; the term's gradient reaches the slower encoder only. It works on every fusion module (it reads
the encoder features, not the head).

Defaults (the authors' `bash.sh`, CREMA-D concat): alpha = 2.0, momentum = 0 (argparse default 0.2;
BalanceBenchmark 0.5), window epochs 0-70 of 130; other lines: film and gated alpha 3.0, sum alpha 5.0. The
authors train with SGD (lr 1e-3, StepLR), though some released lines use AdaGrad or Adam. The term is a loss,
not a gradient scale, so Adam does not cancel it.

Not verified (methods-more.md sections 3.3 and 6): the paper's own coefficient schedule and its prototypical
entropy regulariser (PER) on the dominant modality, which is not in the authors' code (PMR#4, #7, #9) and not
here.

Deviations: the prototypes are the class means over the *whole* training set, batched (the authors' code uses
the first tenth of the batches of a shuffled loader, for AVE the validation set; BalanceBenchmark the first
10 %); the distances use `torch.cdist` (the authors' `EU_dist` is a Python double loop, same values); raw
features as the authors' code (MLB's re-implementation puts them through BatchNorm1d(affine=False) first).
A class with no training sample keeps its previous prototype (zeros before the first).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from avlab.methods.base import Method, in_window

MODALITY_PAIR = ("audio", "visual")


def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class sums of (N, D) features as a (C, D) matrix, and the (C,) counts: one matmul, no loop."""
    onehot = F.one_hot(labels, num_classes).to(features.dtype)
    return onehot.T @ features, onehot.sum(0)


@torch.no_grad()
def compute_prototypes(model: torch.nn.Module, data: Dataset, modalities, num_classes: int, device,
                       batch_size: int = 256) -> dict[str, torch.Tensor]:
    """{modality: (C, D) mean encoder feature per class} over `data`, in eval mode; NaN rows for absent classes."""
    was_training = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    counts = torch.zeros(num_classes, device=device)
    for batch in DataLoader(data, batch_size, shuffle=False):
        y = batch["label"].to(device)
        for m in modalities:
            s, n = class_means(model.encoder(m)(batch[m].to(device)).float(), y, num_classes)
            sums[m] = sums[m] + s if m in sums else s
        counts += n
    model.train(was_training)
    return {m: s / counts.unsqueeze(1) for m, s in sums.items()}  # 0/0 = NaN where a class has no sample


def pmr_terms(features: dict[str, torch.Tensor], prototypes: dict[str, torch.Tensor], labels: torch.Tensor,
              alpha: float) -> dict[str, torch.Tensor]:
    """PMR's prototype scores, ratio, coefficients and loss for audio and visual.

    Returns `score_audio`, `score_visual` (summed true-class prototype probabilities, detached), `ratio`
    (score_a / score_v), `coef_audio`, `coef_visual` (alpha on the slower modality, else 0) and `loss`
    (sum_m coef_m * CE(-d_m, y), with gradient into the features)."""
    logits = {m: -torch.cdist(features[m].float(), prototypes[m]) for m in MODALITY_PAIR}
    score = {m: F.softmax(logits[m].detach(), dim=1).gather(1, labels.view(-1, 1)).sum() for m in MODALITY_PAIR}
    ratio = score["audio"] / score["visual"]
    slower = "visual" if ratio > 1 else "audio" if ratio < 1 else None
    coef = {m: alpha if m == slower else 0.0 for m in MODALITY_PAIR}
    loss = alpha * F.cross_entropy(logits[slower], labels) if slower else logits["audio"].new_zeros(())
    return {"score_audio": score["audio"], "score_visual": score["visual"], "ratio": ratio,
            "coef_audio": torch.tensor(coef["audio"]), "coef_visual": torch.tensor(coef["visual"]), "loss": loss}


class PMR(Method):
    """`PMR(alpha=2.0, momentum=0.0, start=0, end=70)`; prototypes on the trainer's training set (or `use_data(train=...)`).

    Adds the loss `pmr_proto` (0 outside the window). Logged per step: `pmr_ratio` (score_a / score_v, above 1
    while audio leads), `pmr_score_audio`, `pmr_score_visual` (mean true-class prototype probability),
    `pmr_coef_audio`, `pmr_coef_visual`, `pmr_active`."""
    name = "pmr"
    designed_for = "sgd"  # the authors' bash.sh: SGD lr 1e-3 (module docstring)
    owns = frozenset()  # adds a loss, replaces none

    def __init__(self, alpha: float = 2.0, momentum: float = 0.0, start: int = 0, end: int | None = 70):
        if not 0 <= momentum < 1:
            raise ValueError(f"PMR momentum must lie in [0, 1), got {momentum}")
        self.alpha, self.momentum, self.start, self.end = alpha, momentum, start, end
        self._prototypes: dict[str, torch.Tensor] = {}
        self._logs: dict = {}

    def setup(self, trainer) -> None:
        missing = [m for m in MODALITY_PAIR if m not in trainer.config.modalities]
        if missing:
            raise ValueError(f"PMR balances audio against visual; the run leaves out {missing}")
        self._prototypes = {}

    def active(self, epoch: int) -> bool:
        return in_window(epoch, self.start, self.end)

    def on_epoch_start(self, trainer, epoch: int) -> None:
        if not self.active(epoch):
            return
        new = compute_prototypes(trainer.model, self.data(trainer, "train"), MODALITY_PAIR, trainer.model.num_classes,
                                 trainer.device, trainer.config.batch_size * 4)
        for m, c in new.items():
            old = self._prototypes.get(m)
            if old is None:
                old = torch.zeros_like(c)
            else:
                old = old.to(c.device)
                c = (1 - self.momentum) * c + self.momentum * old
            self._prototypes[m] = torch.where(torch.isnan(c), old, c)  # a class with no sample keeps its prototype

    def losses(self, out: dict, batch: dict, trainer) -> dict[str, torch.Tensor]:
        if not self.active(trainer.epoch):
            self._logs = {"pmr_active": 0.0}
            return {"pmr_proto": out["logits"].new_zeros((), dtype=torch.float32)}
        t = pmr_terms(out["features"], self._prototypes, batch["label"], self.alpha)
        n = len(batch["label"])
        self._logs = {"pmr_ratio": t["ratio"], "pmr_score_audio": t["score_audio"] / n,
                      "pmr_score_visual": t["score_visual"] / n, "pmr_coef_audio": t["coef_audio"],
                      "pmr_coef_visual": t["coef_visual"], "pmr_active": 1.0}
        return {"pmr_proto": t["loss"]}

    def after_backward(self, out: dict, batch: dict, trainer) -> dict:
        return self._logs

    def state_dict(self) -> dict:
        return {"prototypes": {m: c.cpu() for m, c in self._prototypes.items()}}

    def load_state_dict(self, state: dict) -> None:
        self._prototypes = dict(state.get("prototypes", {}))
