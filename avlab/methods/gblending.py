"""G-Blending: Gradient-Blending (Wang, Tran, Feiszli, "What Makes Training Multi-modal Classification Networks
Hard?", CVPR 2020), from the paper's rule as the notes give it and BalanceBenchmark's `GBlending_trainer.py`.

The model trains on a weighted sum of the fused head's loss and one loss per uni-modal head:

    L = w_fused * CE(fused logits) + sum_m w_m * CE(head_m logits)         (the heads train their encoders)

and each weight comes from the head's overfitting-to-generalisation ratio (OGR), measured by training a copy of
the current model on that head's loss alone for E epochs (theta_0 -> theta_N):

    O_t = L_V(theta_t) - L_T(theta_t)           train/held-out gap, losses of head k over the whole split
    G_k = L_V(theta_0) - L_V(theta_N)           how much the held-out loss improved
    O_k = O_N - O_0                             how much the gap grew
    w_k = (G_k / O_k^2) / sum_j (G_j / O_j^2)   normalised so that the weights sum to 1

Schedules: `every=None` estimates once, at the start of epoch `start` (after `start` warm-up epochs with equal
weights 1/(M+1); `start=0` is the paper's offline G-Blend from the initial weights), then keeps the weights.
`every=k` re-estimates at epochs start, start + k, ... (online G-Blend; BalanceBenchmark: estimate and period
`super_epoch = 10`). Each estimate costs (M + 1) * E extra epochs of training (3 * E for audio-visual).

V is a held-out split, never the test split: the trainer's own splits (`Trainer.fit(train, val)`), or others
given with `GBlending().use_data(train=..., held_out=...)`; a dataset whose `split` is "test" is refused. BalanceBenchmark estimates on the test loader (its val loader *is* the test set for CREMA-D and KS).

Defaults: estimate_epochs E = 10 (BalanceBenchmark's super_epoch; MultiBench's gb_epoch is 20), one-off at
epoch 0. Optimiser: the authors released no estimator (VMZ#133) and the notes record none for their runs
[not verified]; BalanceBenchmark's trainer runs under its loop's AdamW. The weights scale losses: an
encoder's gradient mixes the fused loss and its head's loss, so their ratio survives Adam, but a weight cancels
under Adam for the parameters only its own loss reaches (the fused head, a uni-modal head's layer).

Not verified (notes, methods-more.md section 3.1): the paper's exact OGR and weight formula above were read
from secondary sources, not from the paper's PDF.

Deviations, each chosen where the reference code is wrong or silent:
* L_T and L_V are mean losses over the whole train and held-out splits in eval mode, before and after the
  copy trains (as MultiBench; BalanceBenchmark sums running train-mode batch losses over different numbers of
  batches, and measures after the first epoch instead of before training).
* the uni-modal losses are avlab's uni-modal heads (each reads its own encoder), not the fused head with the
  other modality's input zeroed (BalanceBenchmark), whose features are not zero (BN, biases).
* a head whose held-out loss did not improve (G_k <= 0) gets weight 0 (BalanceBenchmark's |G| rewards a head
  that got worse); |O_k| is floored at 1e-4 (as MultiBench); if every G_k <= 0 the previous weights are kept.
* the copies train in full precision with a fresh optimizer of the trainer's kind and current learning rate.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from avlab.evaluation import predict
from avlab.methods.base import Method

MIN_GAP = 1e-4


def blend_weights(losses: dict[str, tuple[float, float, float, float]], min_gap: float = MIN_GAP) -> dict:
    """G-Blending's weights from each head's losses (L_T(theta_0), L_V(theta_0), L_T(theta_N), L_V(theta_N)).

    Returns {"G": {k: G_k}, "O": {k: O_k}, "w": {k: w_k} or None when no head improved on the held-out split}."""
    g, o, raw = {}, {}, {}
    for k, (t0, v0, tn, vn) in losses.items():
        g[k] = v0 - vn
        o[k] = (vn - tn) - (v0 - t0)
        raw[k] = max(g[k], 0.0) / max(abs(o[k]), min_gap) ** 2
    total = sum(raw.values())
    return {"G": g, "O": o, "w": {k: r / total for k, r in raw.items()} if total > 0 else None}


def head_losses(model: torch.nn.Module, data: Dataset, modalities: tuple[str, ...], key: str) -> float:
    """Mean cross-entropy over `data` of the fused logits (`key="fused"`) or of head `key`, in eval mode."""
    p = predict(model, data, modalities)
    return F.cross_entropy(p["logits" if key == "fused" else key], p["label"]).item()


class GBlending(Method):
    """`GBlending(estimate_epochs=10, start=0, every=None)`; its data as `Method.data` finds it.

    Logged per epoch: `gb_w_fused`, `gb_w_<m>` (the weights in use) and, on epochs that estimate, `gb_G_<k>`,
    `gb_O_<k>` for k in fused and each modality, and `gb_kept` (1 when no head improved and the weights were
    kept)."""
    name = "gblending"
    designed_for = "adam"  # no released estimator; BalanceBenchmark runs AdamW [not verified]
    owns = frozenset({"loss:fused", "loss:head_audio", "loss:head_visual"})

    def __init__(self, estimate_epochs: int = 10, start: int = 0, every: int | None = None):
        if estimate_epochs < 1 or start < 0 or (every is not None and every < 1):
            raise ValueError(f"GBlending needs estimate_epochs >= 1, start >= 0 and every >= 1 or None; got "
                             f"estimate_epochs={estimate_epochs}, start={start}, every={every}")
        self.estimate_epochs, self.start, self.every = estimate_epochs, start, every
        self._weights: dict[str, float] = {}
        self._estimate: dict[str, float] = {}

    def setup(self, trainer) -> None:
        trainer.model.detach_heads = False  # the weighted head losses train the encoders
        keys = ("fused", *trainer.config.modalities)
        self._weights = {k: 1 / len(keys) for k in keys}  # until the first estimate (a checkpoint restores later)

    def estimates_at(self, epoch: int) -> bool:
        if epoch < self.start:
            return False
        return epoch == self.start if self.every is None else (epoch - self.start) % self.every == 0

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self._estimate = {}
        if self.estimates_at(epoch):
            self._estimate = self.estimate(trainer, epoch)

    def estimate(self, trainer, epoch: int) -> dict[str, float]:
        """Train one copy per head for `estimate_epochs`, measure its OGR, set the weights; returns the logs."""
        modalities = trainer.config.modalities
        losses = {}
        for key in ("fused", *modalities):
            # a head's own copy: the fused head sees every modality, a uni-modal head only its own
            inputs = modalities if key == "fused" else (key,)
            clone = copy.deepcopy(trainer.model)
            before = [head_losses(clone, d, inputs, key) for d in (self.data(trainer, "train"), self.data(trainer, "held_out"))]
            self.train_copy(clone, trainer, key, inputs, epoch)
            after = [head_losses(clone, d, inputs, key) for d in (self.data(trainer, "train"), self.data(trainer, "held_out"))]
            losses[key] = (*before, *after)
        result = blend_weights(losses)
        kept = result["w"] is None
        if not kept:
            self._weights = result["w"]
        logs = {f"gb_{q}_{k}": v for q in ("G", "O") for k, v in result[q].items()}
        return {**logs, "gb_kept": float(kept)}

    def train_copy(self, clone: torch.nn.Module, trainer, key: str, inputs: tuple[str, ...], epoch: int) -> None:
        clone.train()
        params = [p for p in clone.parameters() if p.requires_grad]
        # a fresh optimizer of the trainer's kind and hyper-parameters, at the learning rate in use now
        optimizer = type(trainer.optimizer)(params, **{**trainer.optimizer.defaults,
                                                       "lr": trainer.optimizer.param_groups[0]["lr"]})
        for e in range(self.estimate_epochs):
            for batch in trainer.loader(self.data(trainer, "train"), epoch + e):
                batch = trainer.to_device(batch)
                out = clone(**{m: batch[m] for m in inputs})
                loss = F.cross_entropy(out["logits" if key == "fused" else key], batch["label"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    def losses(self, out: dict, batch: dict, trainer) -> dict[str, torch.Tensor]:
        y = batch["label"]
        terms = {"fused": self._weights["fused"] * F.cross_entropy(out["logits"], y)}
        for m in trainer.config.modalities:
            terms[f"head_{m}"] = self._weights[m] * F.cross_entropy(out[m], y)
        return terms

    def on_epoch_end(self, trainer, epoch: int, record: dict) -> None:
        record.update({f"gb_w_{k}": w for k, w in self._weights.items()}, **self._estimate)

    def state_dict(self) -> dict:
        return {"weights": dict(self._weights)}

    def load_state_dict(self, state: dict) -> None:
        self._weights = dict(state.get("weights", {}))
