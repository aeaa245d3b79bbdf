"""MMCosine (Xu, Feng, Zhang, Hu; "MMCosine: Multi-Modal Cosine Loss Towards Balanced Audio-Visual Fine-Grained
Learning", ICASSP 2023), as the authors' code (`GeWu-Lab/MMCosine_ICASSP23`, `main_CD.py`, `--mmcosine`)
computes it.

The fused linear logits W [a; v] + b become a sum of scaled per-modality cosines, with no bias:

    z_m = s * (h_m / ||h_m||) . (W_m[k] / ||W_m[k]||)       for every class k    (W_m: modality m's weights)
    z   = z_a + z_v,    L = CE(z, y)

which equalises the logit magnitudes the two modalities can reach. `setup` swaps the model's fusion module for a
`CosineFusion` that reuses the linear head's weight tensors (the trainer's optimizer keeps working on them), so
`model(...)["logits"]` are the cosine logits in training *and* in evaluation, and `split` gives the two cosine
shares (OGM-style methods read them). The linear bias is left in place, unused (it gets no gradient).

Fusion modules: concat (W_m: the weight columns of modality m) and sum (the weights of fc_a and fc_v). FiLM
and gated fusion mix the modalities multiplicatively before one linear layer, so there is no per-modality
weight to normalise: MMCosine refuses them. (The authors' README command uses gated fusion with s = 10 and
MMCosine#1 reports that FiLM/gated need s ~ 50; how their code normalises a gated head was not checked.)

Checkpoints: the swapped module is part of the model, so its state dict has `fusion.linear.*` keys. Resuming a
run with MMCosine works as usual (setup swaps before the checkpoint loads). To load such weights elsewhere,
build the same model, call `cosine_fusion(model, scale)`, then `load_state_dict`; a plain model refuses them
(missing/unexpected keys) rather than silently evaluating with the biased linear head.

Defaults: s = 10 (official argparse, MLB; BalanceBenchmark 15). The authors train with SGD (lr 1e-3, momentum
0.9, weight decay 1e-4, StepLR(100, 0.1), 200 epochs, batch 32). The cosine head is not a gradient scale, so
Adam does not cancel it.

Not verified: the paper's CREMA-D numbers (methods-more.md section 3.6). Deviations: the authors' `valid()`
scores the biased linear logits, not the cosine ones they train (a train/test mismatch); here both are the
cosine logits, as BalanceBenchmark does. The optional NCE term (lambda = 0 by default in the code) is not
implemented.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from avlab.methods.base import Method

SUPPORTED = ("concat", "sum")


def cosine_logits(features: torch.Tensor, weight: torch.Tensor, scale: float) -> torch.Tensor:
    """s * cos(feature, class weight row): (B, D) features, (C, D) weights -> (B, C)."""
    return scale * F.normalize(features, dim=1) @ F.normalize(weight, dim=1).T


class CosineFusion(nn.Module):
    """The fusion head of a concat or sum model, with MMCosine's logits: s * (cos_a + cos_v), no bias."""

    def __init__(self, linear: nn.Module, fusion_name: str, scale: float):
        super().__init__()
        if fusion_name not in SUPPORTED:
            raise ValueError(f"MMCosine does not support fusion {fusion_name!r}: it needs a linear head whose "
                             f"weights split per modality ({' or '.join(SUPPORTED)}); FiLM and gated fusion mix "
                             "the modalities before their one linear layer")
        self.linear, self.fusion_name, self.scale = linear, fusion_name, scale

    def modality_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fusion_name == "concat":
            w, d = self.linear.fc.weight, self.linear.dim_a
            return w[:, :d], w[:, d:]
        return self.linear.fc_a.weight, self.linear.fc_v.weight

    def split_logits(self, a: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w_a, w_v = self.modality_weights()
        return cosine_logits(a, w_a, self.scale), cosine_logits(v, w_v, self.scale)

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        z_a, z_v = self.split_logits(a, v)
        return z_a + z_v


def cosine_fusion(model: nn.Module, scale: float = 10.0) -> nn.Module:
    """Give `model` MMCosine's cosine head in place (idempotent: an already cosine head gets the new scale)."""
    if isinstance(model.fusion, CosineFusion):
        model.fusion.scale = scale
    else:
        model.fusion = CosineFusion(model.fusion, model.fusion_name, scale)
    return model


class MMCosine(Method):
    """`MMCosine(scale=10.0)`: the model's fused head becomes the cosine head (see the module docstring).

    The base fused loss is then the MMCosine loss; nothing else changes. Logged per step: `mmcosine_logit_<m>`,
    the mean true-class cosine logit of each modality (their gap is what the method keeps small)."""
    name = "mmcosine"
    designed_for = "sgd"  # the authors' code: SGD lr 1e-3, momentum 0.9 (module docstring)
    owns = frozenset({"head"})

    def __init__(self, scale: float = 10.0):
        if scale <= 0:
            raise ValueError(f"MMCosine scale must be positive, got {scale}")
        self.scale = scale

    def setup(self, trainer) -> None:
        cosine_fusion(trainer.model, self.scale)

    def after_backward(self, out: dict, batch: dict, trainer) -> dict:
        if out.get("split") is None or "audio" not in out["features"] or "visual" not in out["features"]:
            return {}
        y = batch["label"].view(-1, 1)
        return {f"mmcosine_logit_{m}": z.detach().float().gather(1, y).mean()
                for m, z in zip(("audio", "visual"), out["split"])}
