"""TrainConfig(select="val_acc"): the weights of the best validation epoch are restored when training ends."""
import pytest
import torch

from avlab.experiment import train_model
from avlab.methods import Method
from avlab.train import TrainConfig, evaluate

FAST = dict(batch_size=32, width=4, progress=False, seed=2)


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])


class WipeLastEpoch(Method):
    """Zeroes every weight at the start of the last epoch and freezes the step size: the last epoch is then the
    worst on validation (constant logits), so selection must go back to an earlier one."""

    def on_epoch_start(self, trainer, epoch):
        if epoch == trainer.config.epochs - 1:
            for group in trainer.optimizer.param_groups:
                group["lr"] = 0.0
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.zero_()


def test_select_restores_the_best_validation_epoch(tiny_splits, tmp_path, one_thread):
    ckpt = tmp_path / "ckpt.pt"
    model, run = train_model(tiny_splits, WipeLastEpoch(), epochs=3, select="val_acc", checkpoint=ckpt, **FAST)
    accs = [h["val_acc"] for h in run.history]
    assert accs[2] < max(accs[:2]), accs  # the wiped epoch is the worst
    best = accs.index(max(accs))  # first of ties, as the trainer keeps the earlier epoch
    assert run.record["selected_epoch"] == best and run.selected["val_acc"] == accs[best]
    assert evaluate(model, tiny_splits["val"])["acc"] == pytest.approx(accs[best])
    # the same weights as a run stopped after that epoch (same seed: the first epochs are identical)
    stopped, _ = train_model(tiny_splits, epochs=best + 1, **FAST)
    assert torch.equal(weights(model), weights(stopped))
    # the checkpoint keeps the selection: "resuming" a finished run restores the same weights
    again, rerun = train_model(tiny_splits, WipeLastEpoch(), epochs=3, select="val_acc", checkpoint=ckpt, **FAST)
    assert torch.equal(weights(again), weights(model)) and rerun.record["selected_epoch"] == best


class WipeAfterScoring(Method):
    """Zeroes every weight at the end of the last epoch, after validation (as Re-learning's resets act)."""

    def on_epoch_end(self, trainer, epoch, record):
        if epoch == trainer.config.epochs - 1:
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.zero_()


def test_select_keeps_the_weights_that_were_scored(tiny_splits, one_thread):
    model, run = train_model(tiny_splits, WipeAfterScoring(), epochs=2, select="val_acc", **FAST)
    assert evaluate(model, tiny_splits["val"])["acc"] == pytest.approx(run.selected["val_acc"])
    assert weights(model).abs().sum() > 0


def test_select_is_off_by_default(tiny_splits, one_thread):
    model, run = train_model(tiny_splits, WipeLastEpoch(), epochs=2, **FAST)
    assert "selected_epoch" not in run.record and run.selected is run.history[-1]
    assert evaluate(model, tiny_splits["val"])["acc"] == pytest.approx(run.history[-1]["val_acc"])


def test_select_needs_a_validation_accuracy(tiny_splits):
    with pytest.raises(ValueError, match="select='loss'"):
        TrainConfig(select="loss")
    with pytest.raises(ValueError, match="pass a validation split"):
        train_model({"train": tiny_splits["train"]}, epochs=1, select="val_acc", **FAST)
