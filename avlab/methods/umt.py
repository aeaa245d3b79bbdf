"""Uni-Modal Teachers (UMT) and the Uni-Modal Ensemble (UME), Du et al. 2021 and ICML 2023.

Modality failure: encoders trained jointly learn worse uni-modal features than the same encoders trained alone.
UMT keeps the joint model and its fusion loss, and pulls each encoder's output towards the features of a
uni-modal teacher, the same encoder trained alone on its modality and then frozen:

    L = CE(fused logits) + lambda * sum_m MSE(phi_m(x_m), phi_m^teacher(x_m))

with phi_m the pooled encoder output, the feature that enters the fusion. No official code exists; the
defaults (MSE, pooled features, lambda = 10, students from scratch) are those of the BalanceBenchmark
re-implementation (shared/research/methods.md section 6.3) and are marked as such.

UME skips joint training altogether: train each modality alone, average the models' predictions. The paper's
rule of thumb: train the uni-modal models first; if their ensemble already matches naive joint training,
paired (cross-modal) features matter little and UME is the choice; otherwise UMT.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from avlab.methods.base import Method, in_window
from avlab.evaluation import predict


class UMT(Method):
    name = "umt"
    designed_for = "adam"  # no official code; BalanceBenchmark's re-implementation runs AdamW
    owns = frozenset()  # adds its own losses (distill_<m>); replaces nothing of the loop's

    def __init__(self, teachers: dict, weight: float = 10.0, start: int = 0, end: int | None = None):
        """`teachers`: {modality: a model trained on that modality alone}; its `encoder(modality)` is frozen
        and distilled. Distillation is on for epochs start..end (inclusive; None = to the last)."""
        if not teachers:
            raise ValueError("UMT needs at least one teacher, e.g. {'visual': visual_alone_model}")
        self.weight, self.start, self.end = weight, start, end
        self.modalities = tuple(teachers)
        # private frozen copies: the caller's models stay untouched (and trainable) whatever we do
        self._teachers = {m: copy.deepcopy(t.encoder(m)).eval().requires_grad_(False) for m, t in teachers.items()}

    def setup(self, trainer):
        for m, encoder in self._teachers.items():
            if m not in trainer.config.modalities:
                raise ValueError(f"UMT has a {m} teacher but the run trains only {trainer.config.modalities}")
            encoder.to(trainer.device)

    def active(self, epoch: int) -> bool:
        return in_window(epoch, self.start, self.end)

    def losses(self, out, batch, trainer):
        if not self.active(trainer.epoch):
            return {}
        terms = {}
        for m, teacher in self._teachers.items():
            with torch.no_grad():
                target = teacher(batch[m])  # eval mode: the teacher's BN running statistics, no update
            terms[f"distill_{m}"] = self.weight * distillation_loss(out["features"][m], target)
        return terms


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between student and teacher features, averaged over batch and feature dimensions."""
    if student.shape != teacher.shape:
        raise ValueError(f"student features {tuple(student.shape)} and teacher features {tuple(teacher.shape)} "
                         "differ: UMT distils encoders of the same architecture and width")
    return F.mse_loss(student, teacher.detach())


@torch.no_grad()
def ensemble_logits(models: dict, data) -> tuple[torch.Tensor, torch.Tensor]:
    """UME: the mean of the log-probabilities of uni-modal models {modality: model trained on it alone}."""
    outputs = [predict(model, data, (m,)) for m, model in models.items()]
    logp = torch.stack([F.log_softmax(o["logits"], dim=1) for o in outputs]).mean(0)
    return logp, outputs[0]["label"]


def ensemble_accuracy(models: dict, data) -> float:
    logp, y = ensemble_logits(models, data)
    return (logp.argmax(1) == y).float().mean().item()


def umt_or_ume(ume_accuracy: float, joint_accuracy: float) -> str:
    """The paper's rule of thumb: UME when the uni-modal ensemble already matches naive joint training."""
    return "UME" if ume_accuracy >= joint_accuracy else "UMT"
