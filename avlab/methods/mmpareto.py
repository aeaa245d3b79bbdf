"""MMPareto (Wei & Hu, "MMPareto: Boosting Multimodal Learning with Innocent Unimodal Assistance", ICML 2024),
as the authors' code (`GeWu-Lab/MMPareto_ICML2024`, `code/MMPareto.py`, `min_norm_solvers.py`) computes it.

Objective: the multi-loss L = CE(fused) + CE(audio head) + CE(visual head); the uni-modal heads train the
encoders (`model.detach_heads = False`, as for MLB). On each encoder m the fused loss's gradient g_mm and the
uni-modal loss's gradient g_u (the encoder's own head) may conflict; MMPareto replaces their sum by a Pareto
direction:

    cos_m = cos(g_mm, g_u)                                 over all of encoder m's parameters, flattened
    (w_mm, w_u) = (1/2, 1/2)                  if cos_m > 0
                = min-norm weights            otherwise: the point of least norm on the segment [g_u, g_mm]
                  w_mm = (g_u.g_u - g_mm.g_u) / |g_mm - g_u|^2,  w_u = 1 - w_mm   (MGDA's two-task solver in
                  closed form, with its end-point rule: 0.999/0.001 when one end is the nearest point)
    per parameter tensor theta of encoder m (g_tot: theta's gradient of the whole loss):
        g_new = 2 (w_mm g_mm + w_u g_u)
        theta.grad = gamma |g_tot| / |g_new| * g_new    if |g_tot| > |g_new|
                   = gamma g_new                         otherwise                (gamma = 1.5, hard-coded)

Note the two granularities: cos and the weights per encoder, the magnitude rule per tensor. With no conflict
(cos > 0) g_new = g_tot and the rule is theta.grad = 1.5 g_tot. Heads and the fusion module keep g_tot.

BalanceBenchmark's port (`MMPareto_trainer.py`) is wrong: it runs all three backward passes before copying any
gradient, with no zero_grad between them, so both "per-loss" gradients are the gradient G of the summed loss,
cos = 1 always, the min-norm branch is unreachable, and its "MMPareto" is a multi-loss with encoder gradients
x3 (a no-op under its AdamW). Here each loss's gradient is taken on its own (`torch.autograd.grad`).

Cost: one forward, three backward passes (the fused loss and the uni-modal losses w.r.t. the encoders, then the
whole loss), ≈2x a joint step; memory holds two extra copies of the encoder gradients. The uni-modal losses of
the two encoders are differentiated together, which is exact because each head reads only its own encoder.

Defaults and optimiser: gamma 1.5; the authors train with **SGD** lr 2e-3, momentum 0.9, weight decay 1e-4,
batch 64, 50 epochs, and a StepLR that is built but never stepped (constant LR). Under Adam the constant gamma
cancels. Their code is CREMA-D and concat fusion only; the authors say concat is not needed (MMPareto#3), and
here it runs on every fusion module. Not verified (research notes, methods-more.md 3.4 and 6): the paper's text
and numbers were not read; the rule above is the code's.

AMP: the per-loss gradients are taken of `trainer.scaler.scale(loss)`, so every gradient carries the same
scale; cos, the weights and the norm comparison are scale-free, and the loop unscales the result as usual. A
non-finite gradient (an AMP overflow) is left untouched for the scaler to skip the step.
"""
from __future__ import annotations

import torch

from avlab.methods.base import Method, require_late_fusion


def min_norm_weights(g1: torch.Tensor, g2: torch.Tensor) -> tuple[float, float]:
    """(w1, w2), w1 + w2 = 1: the point w1 g1 + w2 g2 of least norm between two flat gradients (MGDA, 2 tasks)."""
    v11, v12, v22 = (g1 @ g1).item(), (g1 @ g2).item(), (g2 @ g2).item()
    if v12 >= v11:  # g1 itself is the nearest point to the origin
        return 0.999, 0.001
    if v12 >= v22:
        return 0.001, 0.999
    w1 = (v22 - v12) / (v11 + v22 - 2 * v12)
    return w1, 1 - w1


def pareto_weights(g_mm: torch.Tensor, g_uni: torch.Tensor) -> tuple[float, float, float]:
    """(w_mm, w_uni, cos) for one encoder's flat fused-loss and uni-modal-loss gradients."""
    cos = torch.nn.functional.cosine_similarity(g_mm, g_uni, dim=0).item()
    w_mm, w_uni = (0.5, 0.5) if cos > 0 else min_norm_weights(g_mm, g_uni)
    return w_mm, w_uni, cos


def pareto_gradients(g_mm: list[torch.Tensor], g_uni: list[torch.Tensor], g_tot: list[torch.Tensor],
                     gamma: float = 1.5) -> tuple[list[torch.Tensor], dict]:
    """MMPareto's new gradients for the tensors of one encoder, given each tensor's fused-loss, uni-modal-loss and
    whole-loss gradients. Returns (new gradients, {"cos", "w_mm", "w_uni"})."""
    flat = lambda gs: torch.cat([g.reshape(-1).float() for g in gs])  # noqa: E731
    w_mm, w_uni, cos = pareto_weights(flat(g_mm), flat(g_uni))
    new = []
    for gm, gu, gt in zip(g_mm, g_uni, g_tot):
        g = 2 * (w_mm * gm + w_uni * gu)
        norm_new, norm_tot = g.norm(), gt.norm()
        grow = (norm_tot > norm_new) & (norm_new > 0)  # a zero g_new (exactly opposed gradients) stays zero
        new.append(gamma * torch.where(grow, norm_tot / norm_new.clamp_min(1e-30), torch.ones_like(norm_new)) * g)
    return new, {"cos": cos, "w_mm": w_mm, "w_uni": w_uni}


class MMPareto(Method):
    """`MMPareto(gamma=1.5)`: multi-loss with Pareto-combined encoder gradients.

    Logged per step (epoch means in the history): `mmpareto_cos_<m>` (cos of the two gradients on encoder m),
    `mmpareto_conflict_<m>` (1 when cos <= 0, the min-norm branch), `mmpareto_w_fused_<m>` (w_mm)."""
    name = "mmpareto"
    designed_for = "sgd"  # the authors' code: SGD lr 2e-3, momentum 0.9 (module docstring)
    owns = frozenset({"backward", "grad:audio", "grad:visual"})

    def __init__(self, gamma: float = 1.5):
        self.gamma = gamma
        self._logs: dict = {}

    def setup(self, trainer) -> None:
        require_late_fusion(trainer.model, "mmpareto", "needs separate encoders with a late-fusion module, not a "
                            "model whose modalities share parameters")
        trainer.model.detach_heads = False  # the loop's head losses become the uni-modal losses of the multi-loss

    def backward(self, loss: torch.Tensor, losses: dict[str, torch.Tensor], trainer) -> None:
        model, scaler, modalities = trainer.model, trainer.scaler, trainer.config.modalities
        missing = [k for k in ("fused", *(f"head_{m}" for m in modalities)) if k not in losses]
        if missing:
            raise ValueError(f"mmpareto needs the losses {missing}; another method removed them")
        params = {m: [p for p in model.encoder(m).parameters() if p.requires_grad] for m in modalities}
        every = [p for m in modalities for p in params[m]]
        uni = sum(losses[f"head_{m}"] for m in modalities)
        g_mm = torch.autograd.grad(scaler.scale(losses["fused"]), every, retain_graph=True, allow_unused=True)
        g_uni = torch.autograd.grad(scaler.scale(uni), every, retain_graph=True, allow_unused=True)
        scaler.scale(loss).backward()
        g_mm, g_uni = dict(zip(every, g_mm)), dict(zip(every, g_uni))
        self._logs = {}
        for m in modalities:
            ps = [p for p in params[m] if p.grad is not None]
            zero = lambda g, p: torch.zeros_like(p) if g is None else g  # noqa: E731
            new, info = pareto_gradients([zero(g_mm[p], p) for p in ps], [zero(g_uni[p], p) for p in ps],
                                         [p.grad for p in ps], self.gamma)
            if all(torch.isfinite(g).all() for g in new):  # else: leave the overflow to the AMP scaler
                for p, g in zip(ps, new):
                    p.grad.copy_(g)
            self._logs.update({f"mmpareto_cos_{m}": info["cos"], f"mmpareto_conflict_{m}": float(info["cos"] <= 0),
                               f"mmpareto_w_fused_{m}": info["w_mm"]})

    def after_backward(self, out: dict, batch: dict, trainer) -> dict:
        return self._logs
