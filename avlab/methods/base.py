"""The plug-in surface of the one training loop (`avlab.train.Trainer`).

A method changes training only through these hooks; it never copies the loop. Per step the loop calls

    batch = transform_batch(batch)            # e.g. Fusion Tuning masks easy samples' strong modality
    out = model(**inputs)
    losses = base losses + losses(out, batch) # e.g. UMT distillation; MLB's heads become part of the objective
    backward(loss, losses)                    # default: scaler.scale(loss).backward(); MMPareto: per-loss grads
    (AMP gradients are unscaled here)
    logs = after_backward(out, batch)         # e.g. OGM-GE, MLB: rescale encoder gradients in place
    optimizer.step()

and `setup` once, `on_epoch_start` / `on_epoch_end` around each epoch (schedules, stages, windows). Whatever
`after_backward` returns (floats or 0-d tensors) is averaged per epoch into the history. `state_dict` /
`load_state_dict` carry a method's own state (running means, ...) through checkpoints.

`backward(loss, losses, trainer)` turns the summed loss into `.grad`s; `losses` is the dict that was summed
(base losses with the method's replacements and extras). The default is the loop's own
`trainer.scaler.scale(loss).backward()`. A method that needs each loss's gradient separately (MMPareto) overrides
it; under AMP it must leave *scaled* gradients in `.grad` (the loop unscales them right after), so it works on
`trainer.scaler.scale(...)` of each loss throughout.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class Method:
    name = "joint"  # plain joint training: the base losses and nothing else
    # What this method takes over, so that `avlab.methods.compose.Compose` can refuse two methods that claim the
    # same thing. Tokens: "loss:<key>" (replaces or redefines that base loss: "loss:fused", "loss:head_audio"),
    # "grad:<modality>" (rescales that encoder's gradients after backward; "grad:*": every encoder's),
    # "head" (replaces the fused classifier head), "batch" (transform_batch changes the inputs),
    # "backward" (a custom backward pass), "weights" (re-initialises weights during training).
    owns: frozenset[str] = frozenset()
    # The optimiser the method's authors trained with ("sgd", "adam"; None: no claim), kept in the run record.
    # It matters for gradient-scaling methods: Adam divides each step by a running RMS of the gradient, so a
    # slowly varying gradient coefficient is largely normalised away (chapter 02).
    designed_for: str | None = None

    def setup(self, trainer) -> None:
        pass

    def on_epoch_start(self, trainer, epoch: int) -> None:
        pass

    def transform_batch(self, batch: dict, trainer) -> dict:
        return batch

    def losses(self, out: dict, batch: dict, trainer) -> dict[str, torch.Tensor]:
        return {}

    def backward(self, loss: torch.Tensor, losses: dict[str, torch.Tensor], trainer) -> None:
        trainer.scaler.scale(loss).backward()

    def after_backward(self, out: dict, batch: dict, trainer) -> dict:
        return {}

    def on_epoch_end(self, trainer, epoch: int, record: dict) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def use_data(self, train=None, held_out=None) -> "Method":
        """Datasets the method reads itself (PMR's prototypes, G-Blending's and Re-learning's held-out
        estimates), where they differ from the ones `Trainer.fit(train, val)` fits on. Returns the method."""
        if held_out is not None:
            refuse_test_split(held_out, "held-out", type(self).__name__)
        given = {"train": train, "held_out": held_out}
        self._data = {**getattr(self, "_data", {}), **{k: v for k, v in given.items() if v is not None}}
        return self

    def data(self, trainer, which: str):
        """The "train" or "held_out" dataset: the one given to `use_data`, else the one the trainer fits on."""
        found = getattr(self, "_data", {}).get(which)
        if found is None:
            found = trainer.train_data if which == "train" else trainer.val_data
        if found is None:
            raise ValueError(f"{type(self).__name__} needs a {which} split: pass it to Trainer.fit(train, val) or "
                             f"{type(self).__name__}(...).use_data({which}=...) (a split carved from the training "
                             "data, never the test split)")
        if which == "held_out":
            refuse_test_split(found, "held-out", type(self).__name__)
        return found

    def config(self) -> dict:
        """Hyper-parameters, for the run record: every public attribute that is a plain value, and the
        optimiser the method was designed for (`designed_for`) where it names one."""
        designed = {"designed_for": self.designed_for} if self.designed_for is not None else {}
        plain = (int, float, str, bool, tuple, list, type(None))
        return {**designed, **{k: v for k, v in vars(self).items() if not k.startswith("_") and isinstance(v, plain)}}


def require_late_fusion(model, method: str, why: str) -> None:
    """A clear error unless `model` has separate encoders joined by one of the late-fusion modules."""
    from avlab.models.fusion import FUSIONS  # local: models import nothing from methods, keep it that way

    fusion = getattr(model, "fusion_name", None)
    if fusion not in FUSIONS or not hasattr(model, "fusion"):
        raise ValueError(f"{method} {why} (fusion one of {sorted(FUSIONS)}); got fusion {fusion!r} "
                         f"({type(model).__name__})")


def refuse_test_split(data, role: str, method: str) -> None:
    """A clear error if `data` says it is the test split (AV-Digits and real datasets carry `.split`)."""
    split = getattr(data, "split", None) or getattr(getattr(data, "dataset", None), "split", None)
    if split == "test":
        raise ValueError(f"{method}: the {role} dataset is the test split; estimate on a held-out split carved "
                         "from training data (splits['val']), never on the test split")


def true_class_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) softmax probability of each sample's true class, detached, in float32: the score OGM-GE and MLB
    balance on and Fusion Tuning's per-sample confidence."""
    return F.softmax(logits.detach().float(), dim=1).gather(1, labels.view(-1, 1)).squeeze(1)


def in_window(epoch: int, start: int, end: int | None) -> bool:
    """Whether `epoch` lies in the inclusive window start..end (end None: to the last epoch)."""
    return start <= epoch and (end is None or epoch <= end)


def encoder_parameters(model, modality: str, conv_only: bool = False):
    """(name, parameter) pairs of one modality's encoder; `conv_only` keeps the 4-D conv weights (OGM-GE)."""
    for name, p in model.encoder(modality).named_parameters():
        if p.grad is not None and (not conv_only or p.dim() == 4):
            yield name, p
