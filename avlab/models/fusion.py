"""Fusion modules of the OGM-GE family: feature vectors of the two modalities in, fused class logits out.

`split_logits(a, v)` gives each modality's additive share of the fused logits where one exists (sum and
concat are linear in each modality); OGM-GE reads its per-modality confidences there. FiLM and gated fusion
mix the modalities multiplicatively, so they have no such split and return None (the OGM-GE code crashes on
them; avlab falls back to the uni-modal heads instead).
"""
from __future__ import annotations

import torch
from torch import nn


class SumFusion(nn.Module):
    """logits = fc_a(a) + fc_v(v)."""

    def __init__(self, dim_a: int, dim_v: int, num_classes: int):
        super().__init__()
        self.fc_a, self.fc_v = nn.Linear(dim_a, num_classes), nn.Linear(dim_v, num_classes)

    def forward(self, a, v):
        return self.fc_a(a) + self.fc_v(v)

    def split_logits(self, a, v):
        return self.fc_a(a), self.fc_v(v)


class ConcatFusion(nn.Module):
    """logits = W [a; v] + b, which is W_a a + W_v v + b: the bias is shared half and half in the split."""

    def __init__(self, dim_a: int, dim_v: int, num_classes: int):
        super().__init__()
        self.dim_a = dim_a
        self.fc = nn.Linear(dim_a + dim_v, num_classes)

    def forward(self, a, v):
        return self.fc(torch.cat([a, v], dim=1))

    def split_logits(self, a, v):
        w, b = self.fc.weight, self.fc.bias / 2
        return a @ w[:, :self.dim_a].T + b, v @ w[:, self.dim_a:].T + b


class FiLMFusion(nn.Module):
    """logits = fc(gamma(a) * v + beta(a)): audio modulates the visual features (OGM-GE's x_film=True)."""

    def __init__(self, dim_a: int, dim_v: int, num_classes: int):
        super().__init__()
        self.film = nn.Linear(dim_a, 2 * dim_v)
        self.fc = nn.Linear(dim_v, num_classes)

    def forward(self, a, v):
        gamma, beta = self.film(a).chunk(2, dim=1)
        return self.fc(gamma * v + beta)

    def split_logits(self, a, v):
        return None


class GatedFusion(nn.Module):
    """logits = fc(sigmoid(fc_a(a)) * fc_v(v)): audio gates the projected visual features (x_gate=True)."""

    def __init__(self, dim_a: int, dim_v: int, num_classes: int, dim: int | None = None):
        super().__init__()
        dim = dim or dim_v
        self.fc_a, self.fc_v = nn.Linear(dim_a, dim), nn.Linear(dim_v, dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, a, v):
        return self.fc(torch.sigmoid(self.fc_a(a)) * self.fc_v(v))

    def split_logits(self, a, v):
        return None


FUSIONS = {"sum": SumFusion, "concat": ConcatFusion, "film": FiLMFusion, "gated": GatedFusion}


def make_fusion(name: str, dim_a: int, dim_v: int, num_classes: int) -> nn.Module:
    if name not in FUSIONS:
        raise ValueError(f"unknown fusion {name!r}; choose one of {sorted(FUSIONS)}")
    return FUSIONS[name](dim_a, dim_v, num_classes)
