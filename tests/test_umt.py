import pytest
import torch

from avlab.experiment import train_model
from avlab.methods.umt import UMT, distillation_loss, ensemble_accuracy, umt_or_ume

FAST = dict(width=4, epochs=2, batch_size=32, progress=False)


def test_distillation_loss_by_hand():
    student = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    teacher = torch.tensor([[0.0, 2.0], [2.0, -1.0]])
    # squared errors 1, 0, 4, 0 -> mean over the 4 entries = 5 / 4
    assert distillation_loss(student, teacher).item() == pytest.approx(1.25)
    with pytest.raises(ValueError, match="same architecture"):
        distillation_loss(student, teacher[:, :1])


def test_umt_pulls_the_encoder_towards_a_frozen_teacher(tiny_splits):
    teacher, _ = train_model(tiny_splits, modalities=("visual",), seed=0, **FAST)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    method = UMT({"visual": teacher}, weight=10.0)
    student, run = train_model(tiny_splits, method=method, seed=1, **{**FAST, "epochs": 3})
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # teacher untouched
    distill = [h["loss_distill_visual"] for h in run.history]
    assert distill[-1] < distill[0]
    assert "loss_distill_audio" not in run.history[0]


def test_umt_window_and_bad_setup(tiny_splits):
    teacher, _ = train_model(tiny_splits, modalities=("visual",), **FAST)
    _, run = train_model(tiny_splits, method=UMT({"visual": teacher}, start=1), **FAST)
    assert "loss_distill_visual" not in run.history[0] and "loss_distill_visual" in run.history[1]
    with pytest.raises(ValueError, match="visual teacher"):
        train_model(tiny_splits, method=UMT({"visual": teacher}), modalities=("audio",), **FAST)
    with pytest.raises(ValueError, match="at least one teacher"):
        UMT({})


def test_uni_modal_ensemble(tiny_splits):
    audio, _ = train_model(tiny_splits, modalities=("audio",), **FAST)
    visual, _ = train_model(tiny_splits, modalities=("visual",), **FAST)
    acc = ensemble_accuracy({"audio": audio, "visual": visual}, tiny_splits["test"])
    assert 0.0 <= acc <= 1.0
    assert umt_or_ume(0.8, 0.7) == "UME" and umt_or_ume(0.6, 0.7) == "UMT"
