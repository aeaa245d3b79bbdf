"""Zorro's contrastive loss (Recasens et al., 2023): symmetric InfoNCE between the audio and the video outputs
of the same clips, the other clips of the batch being the negatives.

    z_a = normalise(embeddings["audio"]),  z_v = normalise(embeddings["visual"])      (B, D) each
    S   = z_a z_v^T / temperature                                                   (B, B) similarities
    L   = 1/2 [ CE(S, diag) + CE(S^T, diag) ]       audio -> video and video -> audio retrieval

On a Zorro-masked `AVTransformer` the two outputs are modality-pure, so matching a clip's audio to its own video
can only go through what the two modalities share. Without the mask both outputs see both inputs and the loss
has a shortcut: the two "views" can read the same tokens.

As a plug-in it adds `weight * L` to the Trainer's base losses. For pre-training without labels set
`model.detach_heads = True` first: the base losses then train only the heads (online linear probes that measure
class information in each output as pre-training goes) and the transformer learns from `L` alone. For
supervised fine-tuning set it back to False (and keep this method, or not: `weight=0` adds nothing).
Logs per epoch: `contrastive_retrieval` (in-batch audio -> video top-1 accuracy: did it find its own clip?).

What it can learn depends on what the pairs share. In AV-Digits the audio and the video of a clip share only the
class, so a masked model can learn the class and nothing finer; with few pairs, seen many times, it memorises the
pairs instead (the "training" retrieval rises, held-out class retrieval stays at chance). Chapter 06 and
`benchmarks/pilot_06_contrastive.py` measure this: pre-trained on 12,000 unlabelled pairs it learns the class,
on the 1,500 labelled ones for the same number of steps it does not.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from avlab.methods.base import Method


def info_nce(a: torch.Tensor, v: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE of paired rows of `a` and `v` (B, D): row i of each is the other's positive."""
    if a.shape != v.shape or a.dim() != 2:
        raise ValueError(f"info_nce needs two (B, D) batches of the same shape, got {tuple(a.shape)} and {tuple(v.shape)}")
    similarity = F.normalize(a, dim=1) @ F.normalize(v, dim=1).T / temperature
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(similarity, target) + F.cross_entropy(similarity.T, target))


@torch.no_grad()
def retrieval_accuracy(a: torch.Tensor, v: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of rows of `a` whose most similar row of `v` (cosine) is their own pair (instance retrieval),
    or, given the rows' `labels` (B,), one of the same class (class retrieval: the level at which two modalities
    that share only the class can match; chance is the sum of the squared class frequencies)."""
    if a.shape != v.shape or a.dim() != 2:
        raise ValueError(f"retrieval_accuracy needs two (B, D) batches of the same shape, got {tuple(a.shape)} "
                         f"and {tuple(v.shape)}")
    if labels is not None and labels.shape != (len(a),):
        raise ValueError(f"labels must have shape ({len(a)},), got {tuple(labels.shape)}")
    retrieved = (F.normalize(a, dim=1) @ F.normalize(v, dim=1).T).argmax(dim=1)
    if labels is None:
        return (retrieved == torch.arange(len(a), device=a.device)).float().mean()
    return (labels[retrieved] == labels).float().mean()


class ZorroContrastive(Method):
    name = "zorro_contrastive"
    owns = frozenset()  # adds its own loss ("contrastive"); replaces nothing of the loop's

    def __init__(self, weight: float = 1.0, temperature: float = 0.1):
        self.weight, self.temperature = weight, temperature

    def setup(self, trainer) -> None:
        if set(trainer.config.modalities) != {"audio", "visual"}:
            raise ValueError("the contrastive loss pairs audio with video: train with both modalities")

    def losses(self, out: dict, batch: dict, trainer) -> dict[str, torch.Tensor]:
        if "embeddings" not in out:
            raise TypeError("ZorroContrastive needs a model that returns out['embeddings'] (avlab.models.zorro.AVTransformer)")
        if self.weight == 0:
            return {}
        emb = out["embeddings"]
        return {"contrastive": self.weight * info_nce(emb["audio"].float(), emb["visual"].float(), self.temperature)}

    def after_backward(self, out: dict, batch: dict, trainer) -> dict:
        emb = out["embeddings"]
        return {"contrastive_retrieval": retrieval_accuracy(emb["audio"].float(), emb["visual"].float())}
