"""MLB: Multi-Loss Balanced gradient modulation (Kontras et al., BMVC 2024), as `kkontras/MLB` runs it.

Objective: L = CE(fused) + CE(audio head) + CE(visual head). In avlab the uni-modal heads' losses are already
in the loop's base losses; MLB only sets `model.detach_heads = False`, so they train the encoders too.

Balancing, after backward, from the *detached training-batch* head outputs:

    s_i = mean over the batch of softmax(head_i logits)[y]
    r_i = (mean of s_j over the other modalities) / s_i            (two modalities: r_a = s_v / s_a)
    beta_i = beta_max if r_i > 1 else 2                            (default: no beta_max, beta = 2 both ways)
    k_i = 1 + (beta_i - 1) * tanh(alpha * (r_i - 1))               (k in (0, 2) by default)

k_i multiplies, in place, the gradient of every parameter of encoder i and of its uni-modal head (the
authors' head lives inside `enc_i`), and of modality i's part of the fused head: the weight columns of
concat fusion, the weight of sum fusion's `fc_a`/`fc_v`, and gated fusion's `fc_a`/`fc_v` projections (MLB's
`GatedFusion` names them `fc_mod0_x`/`fc_mod1_y`, so its name filter scales them). FiLM has no per-modality
part; fused-head biases are never scaled. So k scales both the fused loss's and the uni-modal loss's gradient
into the encoder. A weak modality (r > 1) is accelerated, a dominant one (r < 1) slowed, and as both heads
become confident on the training data (s -> 1) r -> 1 and k -> 1: the balancing phases itself out.

Optimiser: designed for **Adam** (`designed_for = "adam"`), unlike OGM-GE. `kkontras/MLB` trains with Adam, lr 1e-4
(CREMA-D) or 1e-3 (AVE, UCF), weight decay 1e-4, batch size 32, a cosine schedule with warm restarts stepped per
iteration, up to 1500 epochs with early stopping. Adam divides each step by a running RMS of the gradient, so a
constant k cancels exactly and a slowly varying one is damped (the step follows k relative to its own past RMS,
not k); SGD's step is k times the gradient. Chapter 02 measures MLB and the plain multi-loss under SGD with
momentum and under Adam.
"""
from __future__ import annotations

import math

import torch

from avlab.methods.base import Method
from avlab.methods.ogm import true_class_score


def mlb_coefficients(logits: dict[str, torch.Tensor], labels: torch.Tensor, alpha: float,
                     beta_max: float | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """MLB's scores, ratios and coefficients for two or more modalities, from their head logits.

    Returns {"score": {m: s_m}, "ratio": {m: r_m}, "k": {m: k_m}} of 0-d tensors."""
    names = list(logits)
    if len(names) < 2:
        raise ValueError(f"MLB balances two or more modalities, got {names}")
    s = {m: true_class_score(logits[m], labels, reduce="mean") for m in names}
    r = {m: torch.stack([s[o] for o in names if o != m]).mean() / s[m] for m in names}
    k = {m: mlb_coefficient(r[m], alpha, beta_max) for m in names}
    return {"score": s, "ratio": r, "k": k}


def mlb_coefficient(ratio, alpha: float, beta_max: float | None = None):
    """k for one ratio r, a float (for plots) or a 0-d tensor: 1 + (beta - 1) tanh(alpha (r - 1))."""
    beta = (beta_max if beta_max is not None else 2.0) if ratio > 1 else 2.0
    tanh = torch.tanh if torch.is_tensor(ratio) else math.tanh
    return 1 + (beta - 1) * tanh(alpha * (ratio - 1))


def fusion_gradient_parts(fusion: torch.nn.Module, name: str, modality: str) -> list[tuple[torch.Tensor, slice]]:
    """(parameter, column slice) pairs of the fused head that belong to one modality (see the module docstring)."""
    first = modality == "audio"
    if name == "concat":
        cols = slice(0, fusion.dim_a) if first else slice(fusion.dim_a, None)
        return [(fusion.fc.weight, cols)]
    if name == "sum":
        return [((fusion.fc_a if first else fusion.fc_v).weight, slice(None))]
    if name == "gated":
        layer = fusion.fc_a if first else fusion.fc_v
        return [(layer.weight, slice(None)), (layer.bias, slice(None))]
    return []  # film: audio conditions the visual features, no per-modality part


class MLB(Method):
    """`MLB(alpha=0.8, beta_max=None, scale_fusion=True)`: multi-loss plus balanced gradient modulation.

    Logged per step: `mlb_score_<m>` (mean true-class confidence of head m), `mlb_ratio_<m>`, `mlb_k_<m>`."""
    name = "mlb"
    # the head losses become part of the objective (they train the encoders), and k rescales each encoder's
    # gradients; the plain multi-loss (balance=False) claims only the head losses
    owns = frozenset({"loss:head_audio", "loss:head_visual", "grad:audio", "grad:visual"})
    MULTILOSS_OWNS = frozenset({"loss:head_audio", "loss:head_visual"})
    designed_for = "adam"  # kkontras/MLB: Adam, lr 1e-4 on CREMA-D (module docstring)

    def __init__(self, alpha: float = 0.8, beta_max: float | None = None, scale_fusion: bool = True,
                 balance: bool = True):
        self.alpha, self.beta_max, self.scale_fusion = alpha, beta_max, scale_fusion
        self.balance = balance  # False: the plain multi-loss baseline (the authors' multiloss.json)
        if not balance:
            self.name, self.owns = "multiloss", self.MULTILOSS_OWNS

    def setup(self, trainer) -> None:
        if self.balance and self.scale_fusion and not hasattr(trainer.model, "fusion"):
            raise ValueError(f"mlb scales the fused head's per-modality part, and {type(trainer.model).__name__} "
                             "has no late-fusion head (a transformer): use mlb with scale_fusion=False, or multiloss")
        trainer.model.detach_heads = False  # the head losses of the loop become the multi-loss

    def after_backward(self, out: dict, batch: dict, trainer) -> dict:
        modalities = [m for m in trainer.config.modalities if out.get(m) is not None]
        if len(modalities) < 2:
            return {}
        c = mlb_coefficients({m: out[m] for m in modalities}, batch["label"], self.alpha, self.beta_max)
        if self.balance:
            model = trainer.model
            for m in modalities:
                k = c["k"][m].item()
                params = [*model.encoder(m).parameters(), *model.heads[m].parameters()]
                for p in params:
                    if p.grad is not None:
                        p.grad.mul_(k)
                if self.scale_fusion:
                    for p, cols in fusion_gradient_parts(model.fusion, model.fusion_name, m):
                        if p.grad is not None:
                            p.grad[:, cols].mul_(k) if p.dim() == 2 else p.grad[cols].mul_(k)
        return {f"mlb_{key}_{m}": v for key, per in c.items() for m, v in per.items()}
