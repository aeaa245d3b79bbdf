"""OGM-GE: On-the-fly Gradient Modulation with Generalisation Enhancement (Peng et al., CVPR 2022).

As the authors' code (`GeWu-Lab/OGM-GE_CVPR2022`, `main.py`) runs it, after the fused loss's backward pass:

    s_m     = sum over the batch of softmax(uni-modal logits of m)[y]        (the split fused logits)
    rho_v   = s_v / s_a,   rho_a = 1 / rho_v
    if rho_v > 1:  k_v = 1 - tanh(alpha * rho_v),  k_a = 1                 (visual dominant)
    else:          k_a = 1 - tanh(alpha * rho_a),  k_v = 1                 (audio dominant, rho = 1 included)
    for every conv weight W (4-D) of encoder m:
        OGM:     W.grad = k_m * W.grad
        OGM-GE:  W.grad = k_m * W.grad + N(0, std(W.grad)^2)               (std of the unmodulated gradient)

only on epochs `start <= epoch <= end`. BN parameters and the fusion layer are never touched. In the authors'
code the GE noise is added to the conv weights of *both* encoders (the non-dominant one with k = 1), which is
what `OGMGE` does. Note tanh(alpha * rho), not tanh(alpha * (rho - 1)): the dominant modality's coefficient
jumps from 1 to 1 - tanh(alpha) as rho crosses 1 (MLB removes exactly this discontinuity).

The uni-modal logits are the fusion layer's per-modality shares (`out["split"]`, sum and concat fusion). FiLM
and gated fusion have no such split (the authors' code crashes on them, OGM-GE issues #39, #46); there
`OGMGE` falls back to the model's uni-modal heads (online linear probes on the detached features) and records
`source = "heads"` in its config.

Optimiser: designed for **SGD with momentum** (`designed_for = "sgd"`). The authors' `main.py` trains with SGD,
lr 1e-3, momentum 0.9, weight decay 1e-4, StepLR(70, 0.1), 100 epochs, batch size 64 (the journal version,
`GeWu-Lab/BML_TPAMI2024`, switched to AdamW lr 1e-3 with alpha 2.6, per the maintainers in BML issue #3). Under
SGD the coefficient k scales the dominant encoder's step directly; Adam divides each step by a running RMS of the
gradient, so a constant k cancels exactly and a slowly varying one is damped, while the GE noise (the size of the
unmodulated gradient) is not. Chapter 02 measures both: `TrainConfig(optimizer="sgd")` is SGD with momentum 0.9.
"""
from __future__ import annotations

import math

import torch

from avlab.methods.base import Method, encoder_parameters, in_window, true_class_confidence

MODALITY_PAIR = ("audio", "visual")


def true_class_score(logits: torch.Tensor, labels: torch.Tensor, reduce: str = "sum") -> torch.Tensor:
    """Softmax probability of the true class, summed (OGM-GE) or averaged (MLB) over the batch."""
    p = true_class_confidence(logits, labels)
    return p.sum() if reduce == "sum" else p.mean()


def ogm_coefficients(logits_audio: torch.Tensor, logits_visual: torch.Tensor, labels: torch.Tensor,
                     alpha: float) -> dict[str, torch.Tensor]:
    """OGM's per-batch discrepancy ratios and gradient coefficients, exactly as the authors' code computes them.

    Returns 0-d tensors: `score_audio`, `score_visual` (summed true-class confidences), `ratio_audio` = s_a/s_v
    (> 1 when audio dominates), `ratio_visual` = s_v/s_a, `k_audio`, `k_visual` (the dominant modality gets
    1 - tanh(alpha * its ratio), the other 1)."""
    s_a = true_class_score(logits_audio, labels)
    s_v = true_class_score(logits_visual, labels)
    ratio_v = s_v / s_a
    ratio_a = 1 / ratio_v
    one = torch.ones_like(ratio_v)
    if ratio_v > 1:  # visual dominant
        k_v, k_a = 1 - torch.tanh(alpha * torch.relu(ratio_v)), one
    else:  # audio dominant; rho_v == 1 exactly lands here too, as in the authors' code
        k_a, k_v = 1 - torch.tanh(alpha * torch.relu(ratio_a)), one
    return {"score_audio": s_a, "score_visual": s_v, "ratio_audio": ratio_a, "ratio_visual": ratio_v,
            "k_audio": k_a, "k_visual": k_v}


def modulate_gradient(grad: torch.Tensor, k: float | torch.Tensor, noise: bool) -> None:
    """In place: grad <- k * grad (+ N(0, std(grad)^2) elementwise, std of the gradient before scaling)."""
    std = grad.std() + 1e-8 if noise and grad.numel() > 1 else None  # a tensor: no device sync
    grad.mul_(k)
    if std is not None:
        grad.add_(torch.randn_like(grad) * std)


class DiscrepancyMonitor(Method):
    """Joint training that logs OGM's discrepancy ratio each step (nothing is modulated): the phenomenon's probe.

    The logs land in the history as `ogm_ratio_audio` (s_a/s_v: above 1 while audio dominates),
    `ogm_score_audio`, `ogm_score_visual` (mean true-class confidence) and `ogm_k_audio`, `ogm_k_visual` (what
    OGM would apply with `alpha`)."""
    name = "joint"

    def __init__(self, alpha: float = 0.8):
        self.alpha = alpha
        self.source = None  # "split" (fusion layer shares) or "heads" (uni-modal heads; FiLM / gated)

    def setup(self, trainer) -> None:
        missing = [m for m in MODALITY_PAIR if m not in trainer.config.modalities]
        if missing:
            raise ValueError(f"{type(self).__name__} balances audio against visual; the run leaves out {missing}")

    def unimodal_logits(self, out: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if out.get("split") is not None:
            self.source = "split"
            return out["split"]
        self.source = "heads"
        return out["audio"], out["visual"]

    def coefficients(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        logits_a, logits_v = self.unimodal_logits(out)
        return ogm_coefficients(logits_a, logits_v, batch["label"], self.alpha)

    def after_backward(self, out: dict, batch: dict, trainer) -> dict:
        c = self.coefficients(out, batch)
        n = len(batch["label"])
        return {"ogm_ratio_audio": c["ratio_audio"], "ogm_score_audio": c["score_audio"] / n,
                "ogm_score_visual": c["score_visual"] / n, "ogm_k_audio": c["k_audio"], "ogm_k_visual": c["k_visual"]}


class OGMGE(DiscrepancyMonitor):
    """OGM-GE as a plug-in: `OGMGE(alpha=0.8, start=0, end=50, noise=True)`; `noise=False` is plain OGM.

    `start`/`end` bound the modulation window in epochs, inclusive (authors' defaults 0 and 50; `end=None`
    means to the last epoch). Logged per step (epoch means in the history): `ogm_ratio_audio`, the scores,
    `ogm_k_audio`, `ogm_k_visual` (1 outside the window) and `ogm_active`."""
    owns = frozenset({"grad:audio", "grad:visual"})  # rescales both encoders' conv gradients (and adds noise)
    designed_for = "sgd"  # the authors' CVPR 2022 code: SGD, momentum 0.9 (module docstring)

    def __init__(self, alpha: float = 0.8, start: int = 0, end: int | None = 50, noise: bool = True):
        super().__init__(alpha)
        self.start, self.end, self.noise = start, end, noise
        self.name = "ogm_ge" if noise else "ogm"

    def active(self, epoch: int) -> bool:
        return in_window(epoch, self.start, self.end)

    def after_backward(self, out: dict, batch: dict, trainer) -> dict:
        logs = super().after_backward(out, batch, trainer)
        active = self.active(trainer.epoch)
        if active:
            for m in MODALITY_PAIR:
                k = logs[f"ogm_k_{m}"].item()
                if k == 1.0 and not self.noise:
                    continue
                for _, p in encoder_parameters(trainer.model, m, conv_only=True):
                    modulate_gradient(p.grad, k, self.noise)
        else:
            logs["ogm_k_audio"] = logs["ogm_k_visual"] = torch.tensor(1.0)
        logs["ogm_active"] = float(active)
        return logs


def discontinuity(alpha: float) -> float:
    """The dominant modality's coefficient just above rho = 1: 1 - tanh(alpha) (0.34 for alpha = 0.8)."""
    return 1 - math.tanh(alpha)
