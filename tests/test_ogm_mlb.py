"""OGM-GE and MLB: coefficients against hand-worked values, which gradients each one touches, and smoke runs of
both through the Trainer for every fusion module."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from avlab.experiment import build_model, train_model
from avlab.methods import MLB, OGMGE, DiscrepancyMonitor, mlb_coefficients, ogm_coefficients
from avlab.methods.mlb import mlb_coefficient
from avlab.models.fusion import FUSIONS
from avlab.train import Trainer, TrainConfig

LN3 = math.log(3.0)


def hand_logits():
    """Two samples, two classes, labels (0, 1).

    audio  logits [ln 3, 0] and [0, ln 3]: softmax = (3/4, 1/4) and (1/4, 3/4), true class 3/4 both times.
    visual logits all zero:                softmax = (1/2, 1/2), true class 1/2 both times."""
    audio = torch.tensor([[LN3, 0.0], [0.0, LN3]])
    visual = torch.zeros(2, 2)
    return audio, visual, torch.tensor([0, 1])


# ----------------------------------------------------------------------------- OGM coefficients

def test_ogm_coefficients_by_hand():
    audio, visual, y = hand_logits()
    c = ogm_coefficients(audio, visual, y, alpha=0.8)
    # s_a = 3/4 + 3/4 = 1.5 (sum over the batch, as the authors' code), s_v = 1/2 + 1/2 = 1.0
    # rho_v = s_v / s_a = 2/3 < 1 -> audio dominant; rho_a = 1.5
    # k_a = 1 - tanh(0.8 * 1.5) = 1 - tanh(1.2) = 1 - 0.833655 = 0.166345;  k_v = 1
    assert c["score_audio"].item() == pytest.approx(1.5)
    assert c["score_visual"].item() == pytest.approx(1.0)
    assert c["ratio_audio"].item() == pytest.approx(1.5)
    assert c["ratio_visual"].item() == pytest.approx(2 / 3)
    assert c["k_audio"].item() == pytest.approx(0.166345, abs=1e-6)
    assert c["k_visual"].item() == 1.0
    # swapping the roles: visual dominant, k_v = 0.166345, k_a = 1
    c = ogm_coefficients(visual, audio, y, alpha=0.8)
    assert c["k_visual"].item() == pytest.approx(0.166345, abs=1e-6) and c["k_audio"].item() == 1.0


def test_ogm_discontinuity_at_rho_one():
    # equal logits: s_a = s_v, rho_v = 1 exactly -> the else-branch: audio is damped, k_a = 1 - tanh(0.8) = 0.335963
    y = torch.tensor([0, 1])
    same = torch.zeros(2, 2)
    c = ogm_coefficients(same, same, y, alpha=0.8)
    assert c["k_audio"].item() == pytest.approx(0.335963, abs=1e-6) and c["k_visual"].item() == 1.0
    # visual a hair more confident (rho_v = 1 + eps): now visual is damped by ~1 - tanh(0.8) and audio jumps to 1
    eps = 1e-4
    c = ogm_coefficients(same, torch.tensor([[eps, 0.0], [0.0, eps]]), y, alpha=0.8)
    assert c["ratio_visual"].item() > 1
    assert c["k_audio"].item() == 1.0 and c["k_visual"].item() == pytest.approx(0.335963, abs=1e-4)
    # audio a hair more confident: mirrored. k jumps between 1 and 0.336 across rho = 1: no continuity
    c = ogm_coefficients(torch.tensor([[eps, 0.0], [0.0, eps]]), same, y, alpha=0.8)
    assert c["k_audio"].item() == pytest.approx(0.335963, abs=1e-4) and c["k_visual"].item() == 1.0


# ----------------------------------------------------------------------------- MLB coefficients

def test_mlb_coefficients_by_hand():
    audio, visual, y = hand_logits()
    c = mlb_coefficients({"audio": audio, "visual": visual}, y, alpha=0.8)
    # s_a = mean(3/4, 3/4) = 0.75, s_v = 0.5
    # r_a = s_v / s_a = 2/3, r_v = s_a / s_v = 1.5
    # default tanh mode, beta = 2 both ways: k = 1 + tanh(alpha (r - 1))
    # k_a = 1 + tanh(0.8 * (2/3 - 1)) = 1 + tanh(-0.266667) = 1 - 0.260520 = 0.739480
    # k_v = 1 + tanh(0.8 * 0.5) = 1 + tanh(0.4) = 1 + 0.379949 = 1.379949
    assert c["score"]["audio"].item() == pytest.approx(0.75)
    assert c["score"]["visual"].item() == pytest.approx(0.5)
    assert c["ratio"]["audio"].item() == pytest.approx(2 / 3)
    assert c["ratio"]["visual"].item() == pytest.approx(1.5)
    assert c["k"]["audio"].item() == pytest.approx(0.739480, abs=1e-6)
    assert c["k"]["visual"].item() == pytest.approx(1.379949, abs=1e-6)
    # beta_max = 4: the weak modality (r_v = 1.5 > 1) gets beta = 4, k_v = 1 + 3 * 0.379949 = 2.139847;
    # the dominant one keeps beta = 2, k_a = 0.739480
    c = mlb_coefficients({"audio": audio, "visual": visual}, y, alpha=0.8, beta_max=4.0)
    assert c["k"]["visual"].item() == pytest.approx(2.139847, abs=1e-6)
    assert c["k"]["audio"].item() == pytest.approx(0.739480, abs=1e-6)
    assert mlb_coefficient(1.5, 0.8, 4.0) == pytest.approx(2.139847, abs=1e-6)


def test_mlb_is_continuous_at_one_and_bounded():
    # no jump at r = 1 (contrast with OGM): k(1 -+ eps) -> 1
    for eps in (1e-3, -1e-3):
        assert mlb_coefficient(1 + eps, 0.8) == pytest.approx(1, abs=1e-3)
    # default mode: k in (0, 2); a weak modality (r > 1) is accelerated, a dominant one (r < 1) slowed
    assert 0 < mlb_coefficient(0.01, 1.5) < 1 < mlb_coefficient(2.0, 1.5) < 2
    assert mlb_coefficient(0.01, 1.5) == pytest.approx(1 + math.tanh(1.5 * -0.99))


def test_mlb_phases_out_when_both_heads_are_confident():
    # margins of 20 nats: both true-class probabilities ~ 1 - 9e-9, so r ~ 1 and k ~ 1
    y = torch.tensor([0, 1, 2])
    confident = 20 * F.one_hot(y, 3).float()
    c = mlb_coefficients({"audio": confident, "visual": 0.8 * confident}, y, alpha=1.5, beta_max=4.0)
    for m in ("audio", "visual"):
        assert c["score"][m].item() == pytest.approx(1, abs=1e-6)
        assert c["k"][m].item() == pytest.approx(1, abs=1e-5)


# ----------------------------------------------------------------------------- which gradients are touched

def backward_once(splits, fusion, method, epoch=0, seed=0):
    """A real Trainer, one real batch, one backward pass: (trainer, out, batch, gradients before the method)."""
    torch.manual_seed(seed)
    model = build_model(splits["train"], fusion, width=4)
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=64, progress=False, seed=seed), method)
    trainer.epoch = epoch
    batch = next(iter(DataLoader(splits["train"], 64, shuffle=False)))
    out = model(audio=batch["audio"], visual=batch["visual"])
    loss = sum(trainer.base_losses(out, batch["label"]).values())
    loss.backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return trainer, out, batch, before


def test_ogm_scales_only_the_dominant_encoders_conv_weights(tiny_splits):
    trainer, out, batch, before = backward_once(tiny_splits, "concat", OGMGE(alpha=0.8, noise=False))
    logs = trainer.method.after_backward(out, batch, trainer)
    k = {m: logs[f"ogm_k_{m}"].item() for m in ("audio", "visual")}
    dominant = "audio" if k["audio"] < 1 else "visual"
    assert min(k.values()) < 1 and max(k.values()) == 1.0
    assert trainer.method.source == "split"
    changed = 0
    for name, p in trainer.model.named_parameters():
        if name not in before:
            continue
        if name.startswith(dominant + ".") and p.dim() == 4:  # conv weight of the dominant encoder
            torch.testing.assert_close(p.grad, k[dominant] * before[name])
            changed += 1
        else:  # BN, the other encoder, fusion, heads: untouched
            assert torch.equal(p.grad, before[name]), name
    assert changed == 20  # ResNet-18: conv1 + 16 block convs + 3 downsample convs


def test_ge_noise_has_the_gradients_std(tiny_splits):
    torch.manual_seed(0)
    trainer, out, batch, before = backward_once(tiny_splits, "concat", OGMGE(alpha=0.8, noise=True))
    logs = trainer.method.after_backward(out, batch, trainer)
    checked = 0
    for name, p in trainer.model.named_parameters():
        if name not in before:
            continue
        modality = name.split(".")[0]
        if modality in ("audio", "visual") and p.dim() == 4:
            # the authors' code adds noise to both encoders' conv weights (k = 1 for the non-dominant one)
            noise = p.grad - logs[f"ogm_k_{modality}"] * before[name]
            if p.numel() >= 2000:  # enough elements for a tight std estimate
                assert noise.std().item() == pytest.approx(before[name].std().item(), rel=0.06), name
                assert abs(noise.mean().item()) < 0.1 * before[name].std().item()
                checked += 1
        else:
            assert torch.equal(p.grad, before[name]), name
    assert checked >= 6


def test_ogm_is_off_outside_its_window(tiny_splits):
    for epoch, method in ((0, OGMGE(alpha=0.8, start=2, end=3)), (4, OGMGE(alpha=0.8, start=2, end=3))):
        trainer, out, batch, before = backward_once(tiny_splits, "sum", method, epoch=epoch)
        logs = method.after_backward(out, batch, trainer)
        assert logs["ogm_active"] == 0.0 and logs["ogm_k_audio"] == 1 and logs["ogm_k_visual"] == 1
        assert logs["ogm_ratio_audio"] > 0  # the ratio is still measured
        for name, p in trainer.model.named_parameters():
            if name in before:
                assert torch.equal(p.grad, before[name]), name
    method = OGMGE(alpha=0.8, start=2, end=None)
    assert method.active(2) and method.active(1000) and not method.active(1)


def test_ogm_falls_back_to_heads_for_film_and_gated(tiny_splits):
    for fusion in ("film", "gated"):
        trainer, out, batch, _ = backward_once(tiny_splits, fusion, OGMGE())
        logs = trainer.method.after_backward(out, batch, trainer)
        assert out["split"] is None and trainer.method.source == "heads"
        expected = ogm_coefficients(out["audio"], out["visual"], batch["label"], 0.8)
        assert logs["ogm_ratio_audio"].item() == pytest.approx(expected["ratio_audio"].item())


@pytest.mark.parametrize("fusion", ["concat", "sum", "gated", "film"])
def test_mlb_scales_encoder_head_and_fused_part(tiny_splits, fusion):
    method = MLB(alpha=1.5)
    trainer, out, batch, before = backward_once(tiny_splits, fusion, method)
    assert trainer.model.detach_heads is False  # set by MLB.setup: head losses train the encoders
    logs = method.after_backward(out, batch, trainer)
    k = {m: logs[f"mlb_k_{m}"].item() for m in ("audio", "visual")}
    expected = mlb_coefficients({m: out[m] for m in k}, batch["label"], 1.5)
    assert k["audio"] == pytest.approx(expected["k"]["audio"].item())
    model = trainer.model
    for name, p in model.named_parameters():
        if name not in before:
            continue
        g0 = before[name]
        head = name.startswith("heads.")
        modality = name.split(".")[1] if head else name.split(".")[0]
        if modality in k:  # the whole encoder and its uni-modal head
            torch.testing.assert_close(p.grad, k[modality] * g0)
        elif fusion == "concat" and name == "fusion.fc.weight":
            d = model.fusion.dim_a
            torch.testing.assert_close(p.grad[:, :d], k["audio"] * g0[:, :d])
            torch.testing.assert_close(p.grad[:, d:], k["visual"] * g0[:, d:])
        elif fusion == "sum" and name in ("fusion.fc_a.weight", "fusion.fc_v.weight"):
            torch.testing.assert_close(p.grad, k["audio" if "fc_a" in name else "visual"] * g0)
        elif fusion == "gated" and name.startswith(("fusion.fc_a.", "fusion.fc_v.")):
            torch.testing.assert_close(p.grad, k["audio" if "fc_a" in name else "visual"] * g0)
        else:  # fused-head biases, FiLM, the gated output layer
            assert torch.equal(p.grad, g0), name


def test_multiloss_without_balancing_leaves_gradients(tiny_splits):
    method = MLB(balance=False)
    trainer, out, batch, before = backward_once(tiny_splits, "concat", method)
    method.after_backward(out, batch, trainer)
    for name, p in trainer.model.named_parameters():
        if name in before:
            assert torch.equal(p.grad, before[name])


# ----------------------------------------------------------------------------- smoke runs through the Trainer

@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_methods_run_through_the_trainer(tiny_splits, fusion):
    fast = dict(batch_size=64, progress=False, width=4, fusion=fusion)
    # OGM-GE with its window on epoch 0 only: modulated, then plain joint training that still logs the ratio
    _, run = train_model(tiny_splits, OGMGE(alpha=0.8, end=0), epochs=2, **fast)
    check_history(run, ("ogm_ratio_audio", "ogm_k_audio", "ogm_k_visual", "ogm_active"))
    assert [h["ogm_active"] for h in run.history] == [1.0, 0.0]
    assert run.history[1]["ogm_k_audio"] == 1.0 and run.history[1]["ogm_k_visual"] == 1.0
    assert run.record["method"]["name"] == "ogm_ge"
    assert run.record["method"]["source"] == ("split" if fusion in ("sum", "concat") else "heads")
    _, run = train_model(tiny_splits, MLB(alpha=0.8, beta_max=3.0), epochs=1, **fast)
    check_history(run, ("mlb_k_audio", "mlb_k_visual", "mlb_ratio_visual", "mlb_score_audio"))
    assert run.record["method"]["name"] == "mlb"


def test_plain_ogm_and_monitor_run(tiny_splits):
    fast = dict(batch_size=64, progress=False, width=4, epochs=1)
    _, run = train_model(tiny_splits, OGMGE(noise=False), **fast)
    check_history(run, ("ogm_k_audio", "ogm_k_visual"))
    assert run.record["method"]["name"] == "ogm"
    _, run = train_model(tiny_splits, DiscrepancyMonitor(), **fast)
    check_history(run, ("ogm_ratio_audio", "ogm_score_visual"))
    assert run.record["method"]["name"] == "joint"


def check_history(run, keys):
    for key in keys + ("val_acc", "val_acc_visual", "grad_norm_visual"):
        assert all(math.isfinite(h[key]) for h in run.history), key


def test_ogm_needs_both_modalities(tiny_splits):
    with pytest.raises(ValueError, match="visual"):
        train_model(tiny_splits, OGMGE(), modalities=("audio",), epochs=1, progress=False, width=4)
    _, run = train_model(tiny_splits, MLB(), modalities=("audio",), epochs=1, progress=False, width=4)
    assert "mlb_k_audio" not in run.history[0]  # nothing to balance against
