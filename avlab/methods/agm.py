"""AGM: Adaptive Gradient Modulation (Li et al., "Boosting Multi-modal Model Performance with Adaptive Gradient
Modulation", ICCV 2023; code `lihongcs/AGM`).

Each modality gets a Shapley-style share of the fused logits, from passes of the fusion module with the other
modality's feature set to zero (two players, f = the fusion module, z = f(a, v)):

    m_a = 1/2 (z - f(0, v) + f(a, 0))        m_v = 1/2 (z - f(a, 0) + f(0, v))        m_a + m_v = z

m_a is audio's exact two-player Shapley value 1/2 [(f(a,v) - f(0,v)) + (f(a,0) - f(0,0))] plus half the
baseline f(0,0): the authors' code leaves the f(0,0) term out, so the two shares add up to z. The fused loss
becomes CE(m_a + m_v, y): the same value as CE(z), but its gradient reaches the model through m_a and m_v,
whose backward hooks multiply it by k_a and k_v. Per step, from the detached shares:

    s_m     = mean over the batch of -log max(softmax(m_m)[y], 1e-8)       (an NLL: lower = better learnt)
    r_a     = exp(s_v - s_a),   r_v = exp(s_a - s_v)                      (r_m > 1: m is ahead this step)
    rbar_a  = exp(S_v - S_a),   rbar_v = exp(S_a - S_v)                   (S_m: running mean of s_m over every
                                                                           step so far, across epochs; 0 at first)
    k_m     = exp(alpha * min(rbar_m - r_m, cap))                          then S_m is updated with s_m
    after backward: if any weight gradient of the fused head's output layer lies outside [-clip, clip],
                    clip_grad_norm_(all parameters, clip)                  (hard-coded 1.0 in the authors' script)

**Sign convention** (the authors' script): a modality that is further ahead than its running average
(r_m > rbar_m) is slowed (k_m < 1), one that is behind it is sped up (k_m > 1): AGM damps deviations of the
ratio from its running mean. BalanceBenchmark's port has the opposite sign (it amplifies them).

For sum and concat fusion (linear in each modality) the two hooks amount to multiplying the gradient that reaches
encoder m, and modality m's weights of the fused head, by exactly k_m (the fused head's biases get the mean of
the two k); for FiLM and gated fusion the gradient is the Shapley-weighted mix of the two. So AGM works on every
fusion module.

Defaults: alpha 1.5 (authors' CREMA-D, issues AGM#3/#5/#10; AV-MNIST 2.5, UR-Funny 4.0), cap 10, clip 1.0,
modulation on every epoch (authors: epochs 0-1500 of 1500). Designed for **SGD** (a user config in AGM#17:
SGD lr 1e-3, batch 64); under Adam a time-varying gradient scale is largely divided away.

Not verified (research notes, methods-more.md 3.2 and 6): the official `lihongcs/AGM` repository was not read;
the update rule is from unattributed public copies of its script (cross-checked with MLB's re-implementation);
the paper's text was not read, so whether the paper's score is an NLL (then paper and code agree on the sign)
is not verified; the initial value of the running mean S_m (0 here) and whether S_m keeps updating outside
the modulation window (it does here) are not verified.

Deviations from the script: the "zeroed" modality is its *feature* vector at the fusion input (avlab's
convention for an absent modality), not its raw input; so the padded passes re-run only the fusion module (≈1x
cost instead of ≈3.3x) and involve no eval-mode batch norm, and the shares are exact at the fusion. The scores
are vectorised instead of per-sample Python loops.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from avlab.methods.base import Method, in_window, require_late_fusion

PAIR = ("audio", "visual")


def shapley_logits(fusion, a: torch.Tensor, v: torch.Tensor, z: torch.Tensor | None = None):
    """(m_a, m_v): AGM's shares of the fused logits z = fusion(a, v), with a zeroed modality's feature set to 0.

    m_a = (z - f(0, v) + f(a, 0)) / 2, m_v = (z - f(a, 0) + f(0, v)) / 2; gradients flow through all passes."""
    z = fusion(a, v) if z is None else z
    a_only, v_only = fusion(a, torch.zeros_like(v)), fusion(torch.zeros_like(a), v)
    return 0.5 * (z - v_only + a_only), 0.5 * (z - a_only + v_only)


def agm_score(share: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean NLL of the true class under softmax(share), the probability clamped at 1e-8 (a detached 0-d float32)."""
    p = F.softmax(share.detach().float(), dim=1).gather(1, labels.view(-1, 1)).squeeze(1)
    return -p.clamp_min(1e-8).log().mean()


def agm_coefficients(score_a: float, score_v: float, mean_a: float, mean_v: float, alpha: float,
                     cap: float = 10.0) -> dict[str, float]:
    """AGM's ratios and coefficients from this step's scores s_m and their running means S_m (floats).

    r_a = exp(s_v - s_a), rbar_a = exp(S_v - S_a), k_a = exp(alpha * min(rbar_a - r_a, cap)); visual mirrored."""
    r = {"audio": math.exp(score_v - score_a), "visual": math.exp(score_a - score_v)}
    rbar = {"audio": math.exp(mean_v - mean_a), "visual": math.exp(mean_a - mean_v)}
    k = {m: math.exp(alpha * min(rbar[m] - r[m], cap)) for m in PAIR}
    return {**{f"ratio_{m}": r[m] for m in PAIR}, **{f"ratio_mean_{m}": rbar[m] for m in PAIR},
            **{f"k_{m}": k[m] for m in PAIR}}


def output_weights(fusion: torch.nn.Module, name: str) -> list[torch.Tensor]:
    """The weight(s) of the fused head's output layer (the authors' `fc_out`), whose gradient triggers the clip."""
    return [fusion.fc_a.weight, fusion.fc_v.weight] if name == "sum" else [fusion.fc.weight]


class AGM(Method):
    """`AGM(alpha=1.5, start=0, end=None, cap=10.0, clip=1.0)`: Shapley shares, hooks that scale their gradients.

    `start`/`end`: the modulation window in epochs, inclusive (end None: to the last epoch); outside it k = 1.
    `clip=None` turns the conditional gradient clipping off. Logged per step (epoch means in the history):
    `agm_score_<m>` (s_m), `agm_ratio_<m>` (r_m), `agm_ratio_mean_<m>` (rbar_m), `agm_k_<m>`, `agm_active`,
    `agm_clipped`."""
    name = "agm"
    designed_for = "sgd"  # a user config in AGM#17: SGD lr 1e-3 (module docstring)
    owns = frozenset({"loss:fused", "grad:audio", "grad:visual"})

    def __init__(self, alpha: float = 1.5, start: int = 0, end: int | None = None, cap: float = 10.0,
                 clip: float | None = 1.0):
        self.alpha, self.start, self.end, self.cap, self.clip = alpha, start, end, cap, clip
        self._mean = {m: 0.0 for m in PAIR}  # S_m, running means of the scores over all steps so far
        self._count = 0
        self._logs: dict = {}

    def setup(self, trainer) -> None:
        require_late_fusion(trainer.model, "agm", "needs a late-fusion model whose fusion module takes (audio, "
                            "visual) features")
        missing = [m for m in PAIR if m not in trainer.config.modalities]
        if missing:
            raise ValueError(f"agm balances audio against visual; the run leaves out {missing}")

    def losses(self, out: dict, batch: dict, trainer) -> dict[str, torch.Tensor]:
        y = batch["label"]
        m_a, m_v = shapley_logits(trainer.model.fusion, out["features"]["audio"], out["features"]["visual"],
                                  out["logits"])
        s = {"audio": agm_score(m_a, y).item(), "visual": agm_score(m_v, y).item()}
        c = agm_coefficients(s["audio"], s["visual"], self._mean["audio"], self._mean["visual"], self.alpha, self.cap)
        self._count += 1
        for m in PAIR:  # S_m updated after k is computed, as in the authors' script
            self._mean[m] += (s[m] - self._mean[m]) / self._count
        active = in_window(trainer.epoch, self.start, self.end)
        if not active:
            c["k_audio"] = c["k_visual"] = 1.0
        elif m_a.requires_grad:
            k_a, k_v = c["k_audio"], c["k_visual"]
            m_a.register_hook(lambda g: g * k_a)
            m_v.register_hook(lambda g: g * k_v)
        self._logs = {**{f"agm_score_{m}": s[m] for m in PAIR}, **{f"agm_{key}": v for key, v in c.items()},
                      "agm_active": float(active)}
        return {"fused": F.cross_entropy(m_a + m_v, y)}  # replaces the base fused loss (same value, hooked path)

    def after_backward(self, out: dict, batch: dict, trainer) -> dict:
        clipped = False
        if self.clip is not None:
            model = trainer.model
            grads = [w.grad for w in output_weights(model.fusion, model.fusion_name) if w.grad is not None]
            if any(g.abs().max() > self.clip for g in grads):
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip)
                clipped = True
        return {**self._logs, "agm_clipped": float(clipped)}

    def state_dict(self) -> dict:
        return {"mean": dict(self._mean), "count": self._count}

    def load_state_dict(self, state: dict) -> None:
        self._mean, self._count = dict(state["mean"]), state["count"]
