"""The two encoders of the OGM-GE family: a ResNet-18 over the spectrogram, and the same 2-D ResNet applied
frame by frame to a clip, pooled over time and space. Both return one feature vector per sample."""
from __future__ import annotations

import torch
from torch import nn

from avlab.models.resnet import ResNet18


class AudioEncoder(nn.Module):
    """(B, 1, F, T) spectrogram -> (B, 8 * width)."""

    def __init__(self, width: int = 64, in_channels: int = 1):
        super().__init__()
        self.backbone = ResNet18(in_channels, width)
        self.out_dim = self.backbone.out_dim

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        if spec.dim() != 4:
            raise ValueError(f"AudioEncoder expects a spectrogram batch (B, {self.backbone.in_channels}, F, T), "
                             f"got shape {tuple(spec.shape)}")
        return self.backbone(spec).mean(dim=(2, 3))


class VisualEncoder(nn.Module):
    """(B, C, T, H, W) clip -> (B, 8 * width): frame-wise 2-D ResNet, then average over T, H and W."""

    def __init__(self, width: int = 64, in_channels: int = 3):
        super().__init__()
        self.backbone = ResNet18(in_channels, width)
        self.out_dim = self.backbone.out_dim

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.dim() != 5:
            raise ValueError(f"VisualEncoder expects a clip batch (B, {self.backbone.in_channels}, T, H, W), "
                             f"got shape {tuple(clip.shape)}")
        b, c, t, h, w = clip.shape
        frames = clip.transpose(1, 2).reshape(b * t, c, h, w)
        maps = self.backbone(frames)  # (B*T, D, h', w')
        return maps.reshape(b, t, *maps.shape[1:]).mean(dim=(1, 3, 4))
