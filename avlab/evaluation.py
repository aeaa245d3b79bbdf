"""Evaluation over a dataset: stacked predictions and accuracies of the fused output and each uni-modal head."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from avlab.models.classifier import MODALITIES


@torch.no_grad()
def predict(model: torch.nn.Module, data: Dataset, modalities=MODALITIES, batch_size: int = 256) -> dict:
    """Stacked outputs over a dataset: `logits`, `audio`, `visual` (head logits), `label`."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    chunks: dict[str, list] = {}
    for batch in DataLoader(data, batch_size, shuffle=False):
        out = model(**{m: batch[m].to(device) for m in modalities})
        for k in ("logits", *MODALITIES):
            if out.get(k) is not None:
                chunks.setdefault(k, []).append(out[k].float().cpu())
        chunks.setdefault("label", []).append(batch["label"])
    model.train(was_training)
    return {k: torch.cat(v) for k, v in chunks.items()}


def evaluate(model: torch.nn.Module, data: Dataset, modalities=MODALITIES, batch_size: int = 256) -> dict:
    """Accuracy of the fused logits (`acc`) and of each uni-modal head (`acc_audio`, `acc_visual`), fused loss."""
    p = predict(model, data, modalities, batch_size)
    y = p["label"]
    result = {"acc": (p["logits"].argmax(1) == y).float().mean().item(),
              "loss": F.cross_entropy(p["logits"], y).item()}
    for m in MODALITIES:
        if m in p:
            result[f"acc_{m}"] = (p[m].argmax(1) == y).float().mean().item()
    if not math.isfinite(result["loss"]):
        raise FloatingPointError("evaluation loss is not finite: the model's weights hold NaN or inf")
    return result
