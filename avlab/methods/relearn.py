"""Diagnosing & Re-learning (Wei, Li, Feng, Hu, "Diagnosing and Re-learning for Balanced Multimodal Learning",
ECCV 2024), as the authors' code (`GeWu-Lab/Diagnosing_Relearning_ECCV2024`, `code/ours.py`) computes it.

Training is plain joint training (the fused loss). At the end of epoch e (after the validation pass), when
e > 0 and e % every == 0, at most `max_resets` times, each encoder m is diagnosed and softly re-initialised:

    h_m        = encoder m's features (eval mode, no grad) on the training split and on a held-out split
    per split:   scale each feature to [-1, 1] (min-max), k-means with C clusters (C = number of classes),
                 purity P = (1/N) sum over clusters of the count of the cluster's most frequent label
    gap_m      = |P_train,m - P_held-out,m|
    alpha_m    = tanh(strength * gap_m)
    theta      <- alpha_m * theta_init + (1 - alpha_m) * theta      for every parameter of encoder m

theta_init is the encoder's weights when training started. A modality whose features separate the training
data much better than held-out data (over-fitted, typically the dominant one) is pulled back harder toward its
initialisation; heads, fusion, batch-norm running statistics and the optimiser's momentum are not reset (as in
the authors' code).

The held-out split is the validation split the trainer is given (`Trainer.fit(train, val)`), or an explicit
one (`Relearn(...).use_data(held_out=dataset)`); never the test split. (The authors' code diagnoses on its own `val`
split but picks the best epoch on test; BalanceBenchmark's port diagnoses on the test set.)

Defaults: strength (the authors' lambda) 3, every 20 epochs, at most 3 resets (authors' CREMA-D; BalanceBenchmark
uses every 15, 2 resets). The authors train with **SGD** lr 2e-3, momentum 0.9, weight decay 1e-4, batch 64,
90 epochs, no LR scheduler (KS: lr 1e-3, D&R#3).

Not verified (research notes, methods-more.md 3.9 and 6): the paper's text was not read, so the rule above
(tanh(lambda * |purity gap|), the reset of every encoder parameter toward its initial value) is the code's at
commit 025085e, not checked against the paper; the paper's numbers are not verified (one user reports CREMA-D
69.76 -> 77.69, D&R#4).

Deviations from the code: k-means is avlab's own, in torch (k-means++ seeding from a generator seeded by
(run seed, epoch, modality), the same for both splits, then at most `kmeans_iters` Lloyd iterations), where the
authors call scikit-learn's KMeans (random_state 0, its own iteration and restart settings), so cluster
assignments, and thus purities, can differ slightly; theta_init lives in the method's state (and its
checkpoints), not in a shared `init_para.pkl`. The authors' training split is unaugmented (`my_train`, a
protocol gap of their code); here it is whatever split the trainer trains on.
"""
from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader

from avlab.methods.base import Method, require_late_fusion


def minmax_scale(x: torch.Tensor, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """Each column of x mapped linearly onto [low, high]; a constant column maps to `low` (as scikit-learn)."""
    lo = x.min(0).values
    span = x.max(0).values - lo
    span = torch.where(span == 0, torch.ones_like(span), span)
    return (x - lo) / span * (high - low) + low


def kmeans(x: torch.Tensor, k: int, iters: int = 20, generator: torch.Generator | None = None) -> torch.Tensor:
    """(N,) cluster index of each row of x: k-means++ seeding, then at most `iters` Lloyd iterations."""
    n = len(x)
    k = min(k, n)
    centres = x[torch.randint(n, (1,), generator=generator)]
    nearest = torch.cdist(x, centres).squeeze(1).pow(2)
    for _ in range(1, k):  # k-means++: the next centre drawn with probability proportional to squared distance
        weights = nearest if nearest.sum() > 0 else torch.ones_like(nearest)
        pick = x[torch.multinomial(weights, 1, generator=generator)]
        centres = torch.cat([centres, pick])
        nearest = torch.minimum(nearest, torch.cdist(x, pick).squeeze(1).pow(2))
    assign = torch.cdist(x, centres).argmin(1)
    for _ in range(iters):
        counts = torch.bincount(assign, minlength=k).unsqueeze(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)  # an empty cluster keeps its centre
        new = torch.cdist(x, centres).argmin(1)
        if torch.equal(new, assign):
            break
        assign = new
    return assign


def purity(clusters: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of samples whose label is their cluster's most frequent label."""
    table = torch.zeros(int(clusters.max()) + 1, int(labels.max()) + 1, dtype=torch.long)
    table.index_put_((clusters.long(), labels.long()), torch.ones_like(labels, dtype=torch.long), accumulate=True)
    return (table.max(1).values.sum() / len(labels)).item()


def reinit_strength(purity_train: float, purity_held_out: float, strength: float = 3.0) -> float:
    """alpha = tanh(strength * |P_train - P_held-out|): how far the encoder is pulled back toward its init."""
    return math.tanh(strength * abs(purity_train - purity_held_out))


@torch.no_grad()
def soft_reinit(params, initial, alpha: float) -> None:
    """In place, for each pair: theta <- alpha * theta_init + (1 - alpha) * theta."""
    for p, p0 in zip(params, initial):
        p.lerp_(p0.to(p.device, p.dtype), alpha)


@torch.no_grad()
def encoder_features(model, data, modalities, batch_size: int, device) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """({modality: (N, D) float32 CPU features}, (N,) labels) of a whole split, in eval mode."""
    was_training = model.training
    model.eval()
    feats, labels = {m: [] for m in modalities}, []
    # an own generator: the loader's base seed is not drawn from (and does not advance) the global RNG
    for batch in DataLoader(data, batch_size, shuffle=False, generator=torch.Generator()):
        out = model(**{m: batch[m].to(device) for m in modalities})
        for m in modalities:
            feats[m].append(out["features"][m].float().cpu())
        labels.append(batch["label"])
    model.train(was_training)
    return {m: torch.cat(f) for m, f in feats.items()}, torch.cat(labels)


class Relearn(Method):
    """`Relearn(strength=3.0, every=20, max_resets=3, kmeans_iters=20)`: diagnose, then softly re-initialise.

    Recorded on each diagnosed epoch: `relearn_purity_train_<m>`, `relearn_purity_held_out_<m>`,
    `relearn_alpha_<m>`; on every epoch: `relearn_resets` (how many resets so far)."""
    name = "relearn"
    designed_for = "sgd"  # the authors' code: SGD lr 2e-3, momentum 0.9 (module docstring)
    owns = frozenset({"weights"})

    def __init__(self, strength: float = 3.0, every: int = 20, max_resets: int = 3, kmeans_iters: int = 20):
        if every < 1:
            raise ValueError(f"relearn: every must be a positive number of epochs, got {every}")
        self.strength, self.every, self.max_resets, self.kmeans_iters = strength, every, max_resets, kmeans_iters
        self._initial: dict[str, list[torch.Tensor]] = {}
        self._resets = 0

    def setup(self, trainer) -> None:
        require_late_fusion(trainer.model, "relearn", "re-initialises separate encoders of a late-fusion model, not "
                            "one whose modalities share parameters")
        self._initial = {m: [p.detach().clone() for p in trainer.model.encoder(m).parameters()]
                         for m in trainer.config.modalities}

    def due(self, epoch: int) -> bool:
        return epoch > 0 and epoch % self.every == 0 and self._resets < self.max_resets

    def diagnose(self, trainer, epoch: int) -> dict[str, float]:
        """Purities of each encoder's features on the training and held-out splits, and the re-init strengths."""
        held_out = self.data(trainer, "held_out")
        model, modalities = trainer.model, trainer.config.modalities
        num_classes = getattr(model, "num_classes", None) or len(torch.unique(torch.as_tensor(
            [held_out[i]["label"] for i in range(len(held_out))])))
        logs = {}
        splits = {"train": self.data(trainer, "train"), "held_out": held_out}
        scores = {}
        for split, data in splits.items():
            feats, labels = encoder_features(model, data, modalities, trainer.config.batch_size * 4, trainer.device)
            for i, m in enumerate(modalities):
                # the same seed for both splits (as the authors' random_state=0): equal data, equal purity
                g = torch.Generator().manual_seed((trainer.config.seed * 1000 + epoch) * 10 + i)
                clusters = kmeans(minmax_scale(feats[m]), num_classes, self.kmeans_iters, g)
                scores[split, m] = purity(clusters, labels)
                logs[f"relearn_purity_{split}_{m}"] = scores[split, m]
        for m in modalities:
            logs[f"relearn_alpha_{m}"] = reinit_strength(scores["train", m], scores["held_out", m], self.strength)
        return logs

    def on_epoch_end(self, trainer, epoch: int, record: dict) -> None:
        if self.due(epoch):
            logs = self.diagnose(trainer, epoch)
            for m in trainer.config.modalities:
                soft_reinit(trainer.model.encoder(m).parameters(), self._initial[m], logs[f"relearn_alpha_{m}"])
            self._resets += 1
            record.update(logs)
        record["relearn_resets"] = self._resets

    def state_dict(self) -> dict:
        return {"initial": {m: [t.cpu() for t in ts] for m, ts in self._initial.items()}, "resets": self._resets}

    def load_state_dict(self, state: dict) -> None:
        self._initial, self._resets = state["initial"], state["resets"]
