"""The audio-visual classifier every chapter trains: two encoders, a fusion module, and one linear head per
modality. `forward` takes audio, visual or both, and returns the fused logits and each modality's logits.

The uni-modal heads read *detached* features by default: trained with their own loss they are online linear
probes that measure each encoder without changing it. Multi-loss methods (MLB) set `detach_heads=False`, so
the same heads' losses train the encoders too.
"""
from __future__ import annotations

import torch
from torch import nn

from avlab.models.encoders import AudioEncoder, VisualEncoder
from avlab.models.fusion import make_fusion
from avlab.models.resnet import init_weights

MODALITIES = ("audio", "visual")


class AVClassifier(nn.Module):
    def __init__(self, num_classes: int, fusion: str = "concat", width: int = 16,
                 audio_channels: int = 1, visual_channels: int = 3, detach_heads: bool = True):
        super().__init__()
        self.audio = AudioEncoder(width, audio_channels)
        self.visual = VisualEncoder(width, visual_channels)
        self.fusion_name, self.num_classes, self.detach_heads = fusion, num_classes, detach_heads
        self.fusion = make_fusion(fusion, self.audio.out_dim, self.visual.out_dim, num_classes)
        self.heads = nn.ModuleDict({m: nn.Linear(getattr(self, m).out_dim, num_classes) for m in MODALITIES})
        init_weights(self.fusion)
        init_weights(self.heads)

    def encoder(self, modality: str) -> nn.Module:
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; choose one of {MODALITIES}")
        return getattr(self, modality)

    def forward(self, audio: torch.Tensor | None = None, visual: torch.Tensor | None = None) -> dict:
        """Returns `logits` (fused), `audio` and `visual` (head logits, None for an absent modality),
        `split` (each modality's share of the fused logits, or None), `features` {modality: (B, D)}.
        An absent modality enters the fusion as a zero feature vector."""
        if audio is None and visual is None:
            raise ValueError("AVClassifier needs at least one of audio= or visual=")
        if audio is not None and visual is not None and len(audio) != len(visual):
            raise ValueError(f"audio batch {tuple(audio.shape)} and visual batch {tuple(visual.shape)} differ in size")
        inputs = {"audio": audio, "visual": visual}
        features = {m: self.encoder(m)(x) for m, x in inputs.items() if x is not None}
        ref = next(iter(features.values()))
        a = features.get("audio", ref.new_zeros(len(ref), self.audio.out_dim))
        v = features.get("visual", ref.new_zeros(len(ref), self.visual.out_dim))
        out = {"logits": self.fusion(a, v), "split": self.fusion.split_logits(a, v), "features": features}
        for m in MODALITIES:
            f = features.get(m)
            out[m] = None if f is None else self.heads[m](f.detach() if self.detach_heads else f)
        return out
