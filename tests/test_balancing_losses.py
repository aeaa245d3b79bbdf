"""G-Blending, PMR and MMCosine: their weights, terms and logits against hand-worked numbers, training on every
fusion module they support (a clear error on the others), and exact resume from a checkpoint."""
import math

import pytest
import torch
import torch.nn.functional as F

from avlab.experiment import train_model
from avlab.methods import PMR, CosineFusion, GBlending, MMCosine, blend_weights, pmr_terms
from avlab.methods.pmr import class_means
from avlab.models.fusion import ConcatFusion, SumFusion
from avlab.train import Trainer, TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = dict(batch_size=64, progress=False, width=4)


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])


def check_history(run, keys):
    for key in keys + ("loss", "val_acc"):
        assert all(math.isfinite(h[key]) for h in run.history), key


def resume_matches(splits, make_method, tmp_path, fusion="concat"):
    """2 epochs straight == 1 epoch, a 'crash', then resuming from the checkpoint to 2 (weights and history)."""
    straight, run_straight = train_model(splits, make_method(), fusion=fusion, seed=1, epochs=2, **FAST)
    ckpt = tmp_path / "ckpt.pt"
    train_model(splits, make_method(), fusion=fusion, seed=1, checkpoint=ckpt, epochs=1, **FAST)
    torch.manual_seed(12345)  # the process state after a crash is arbitrary; the checkpoint restores it
    resumed, run_resumed = train_model(splits, make_method(), fusion=fusion, seed=1, checkpoint=ckpt, epochs=2, **FAST)
    assert torch.equal(weights(straight), weights(resumed))
    assert run_resumed.history == run_straight.history
    return run_straight


# ----------------------------------------------------------------------------- G-Blending

def test_blend_weights_by_hand():
    # (L_T(0), L_V(0), L_T(N), L_V(N)) per head
    losses = {"fused": (2.0, 2.2, 1.0, 1.6), "audio": (2.0, 2.1, 1.5, 1.8), "visual": (2.3, 2.3, 2.0, 2.4)}
    r = blend_weights(losses)
    # fused:  G = 2.2 - 1.6 = 0.6; O = (1.6 - 1.0) - (2.2 - 2.0) = 0.4; G/O^2 = 0.6 / 0.16 = 3.75
    # audio:  G = 2.1 - 1.8 = 0.3; O = (1.8 - 1.5) - (2.1 - 2.0) = 0.2; G/O^2 = 0.3 / 0.04 = 7.5
    # visual: G = 2.3 - 2.4 = -0.1 (held-out loss got worse) -> weight 0;  O = 0.4 - 0 = 0.4
    # sum 11.25: w_fused = 3.75 / 11.25 = 1/3, w_audio = 7.5 / 11.25 = 2/3, w_visual = 0
    assert r["G"]["fused"] == pytest.approx(0.6) and r["O"]["fused"] == pytest.approx(0.4)
    assert r["G"]["audio"] == pytest.approx(0.3) and r["O"]["audio"] == pytest.approx(0.2)
    assert r["G"]["visual"] == pytest.approx(-0.1) and r["O"]["visual"] == pytest.approx(0.4)
    assert r["w"]["fused"] == pytest.approx(1 / 3) and r["w"]["audio"] == pytest.approx(2 / 3)
    assert r["w"]["visual"] == 0.0
    # no head improved: no weights (the method keeps the ones it has)
    assert blend_weights({"fused": (1.0, 1.0, 0.5, 1.1), "audio": (1.0, 1.0, 0.9, 1.0)})["w"] is None
    # a gap that did not move: |O| floored at 1e-4, the head takes (almost) all the weight
    r = blend_weights({"fused": (1.0, 1.2, 0.8, 1.0), "audio": (1.0, 1.1, 0.9, 1.05)})
    # fused: G = 0.2, O = 0.2 - 0.2 = 0 -> 0.2 / 1e-8 = 2e7; audio: G = 0.05, O = 0.15 - 0.1 = 0.05 -> 20
    assert r["w"]["fused"] == pytest.approx(2e7 / (2e7 + 20))


def test_gblending_refuses_the_test_split_and_missing_data(tiny_splits):
    with pytest.raises(ValueError, match="test split"):
        GBlending().use_data(train=tiny_splits["train"], held_out=tiny_splits["test"])
    no_val = {k: v for k, v in tiny_splits.items() if k != "val"}  # nothing held out: nothing to estimate on
    with pytest.raises(ValueError, match="needs a held_out split"):
        train_model(no_val, GBlending(), epochs=1, **FAST)
    with pytest.raises(ValueError, match="estimate_epochs"):
        GBlending(estimate_epochs=0)


def test_gblending_losses_are_the_weighted_head_losses(tiny_splits):
    method = GBlending(start=5)  # the trainer's own splits: train_model fits on train, holds out val
    model, run = train_model(tiny_splits, method, epochs=1, **FAST)  # warm-up only: equal weights 1/3
    assert model.detach_heads is False  # the head losses train the encoders
    assert all(h["gb_w_fused"] == pytest.approx(1 / 3) for h in run.history)
    assert all("gb_G_fused" not in h for h in run.history)  # no estimate during the warm-up
    trainer = Trainer(model, TrainConfig(epochs=1, progress=False), method)
    method._weights = {"fused": 0.5, "audio": 0.3, "visual": 0.2}
    batch = next(iter(torch.utils.data.DataLoader(tiny_splits["val"], 8)))
    out = model(audio=batch["audio"], visual=batch["visual"])
    terms = method.losses(out, batch, trainer)
    y = batch["label"]
    torch.testing.assert_close(terms["fused"], 0.5 * F.cross_entropy(out["logits"], y))
    torch.testing.assert_close(terms["head_audio"], 0.3 * F.cross_entropy(out["audio"], y))
    torch.testing.assert_close(terms["head_visual"], 0.2 * F.cross_entropy(out["visual"], y))


@pytest.mark.parametrize("fusion", ["sum", "concat", "film", "gated"])
def test_gblending_trains_on_every_fusion(tiny_splits, fusion):
    # the re-estimated schedule: estimates at the start of epochs 0 and 1, each with 1-epoch copies
    method = GBlending(estimate_epochs=1, every=1).use_data(train=tiny_splits["train"], held_out=tiny_splits["val"])
    _, run = train_model(tiny_splits, method, fusion=fusion, epochs=2, **FAST)
    keys = ("gb_w_fused", "gb_w_audio", "gb_w_visual", "gb_G_fused", "gb_O_audio", "gb_G_visual", "gb_kept",
            "loss_fused", "loss_head_audio")
    check_history(run, keys)
    for h in run.history:
        assert sum(h[f"gb_w_{k}"] for k in ("fused", "audio", "visual")) == pytest.approx(1)
        if not h["gb_kept"]:  # the weights in use are the ones this estimate gave
            raw = {k: max(h[f"gb_G_{k}"], 0) / max(abs(h[f"gb_O_{k}"]), 1e-4) ** 2
                   for k in ("fused", "audio", "visual")}
            assert h["gb_w_audio"] == pytest.approx(raw["audio"] / sum(raw.values()), rel=1e-6)
    assert run.record["method"] == {"name": "gblending", "designed_for": "adam", "estimate_epochs": 1, "start": 0,
                                    "every": 1}


def test_gblending_resumes_exactly(tiny_splits, tmp_path):
    # one-off estimate at epoch 0: the resumed run must not estimate again, it restores the weights
    run = resume_matches(tiny_splits, lambda: GBlending(estimate_epochs=1).use_data(
        train=tiny_splits["train"], held_out=tiny_splits["val"]), tmp_path)
    assert "gb_G_fused" in run.history[0] and "gb_G_fused" not in run.history[1]
    assert run.history[0]["gb_w_audio"] == run.history[1]["gb_w_audio"]


# ----------------------------------------------------------------------------- PMR

def test_prototypes_are_class_means():
    # class 0: (0, 0) and (2, 0) -> (1, 0); class 1: (0, 4) and (0, 2) -> (0, 3); class 2: no sample
    features = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [0.0, 2.0]])
    sums, counts = class_means(features, torch.tensor([0, 0, 1, 1]), 3)
    assert counts.tolist() == [2, 2, 0]
    torch.testing.assert_close(sums[:2] / counts[:2, None], torch.tensor([[1.0, 0.0], [0.0, 3.0]]))


def test_pmr_terms_by_hand():
    y = torch.tensor([0, 1])
    # audio: prototypes 0 and 1 on a line, each sample on its own class's prototype: d = [[0, 1], [1, 0]]
    #   true-class probability e^0 / (e^0 + e^-1) = 1 / (1 + e^-1) = 0.731059 twice -> score_a = 1.462117
    # visual: both prototypes at 0: equal distances -> probability 1/2 twice -> score_v = 1.0
    # rho = 1.462117 > 1: audio leads, visual gets alpha * CE(-d_v, y) = 2 * ln 2 = 1.386294
    protos = {"audio": torch.tensor([[0.0], [1.0]]), "visual": torch.tensor([[0.0], [0.0]])}
    h = {"audio": torch.tensor([[0.0], [1.0]], requires_grad=True),
         "visual": torch.tensor([[0.5], [-0.5]], requires_grad=True)}
    t = pmr_terms(h, protos, y, alpha=2.0)
    assert t["score_audio"].item() == pytest.approx(1.462117, abs=1e-6)
    assert t["score_visual"].item() == pytest.approx(1.0)
    assert t["ratio"].item() == pytest.approx(1.462117, abs=1e-6)
    assert t["coef_audio"].item() == 0.0 and t["coef_visual"].item() == 2.0
    assert t["loss"].item() == pytest.approx(2 * math.log(2), abs=1e-6)
    t["loss"].backward()
    assert h["audio"].grad is None or not h["audio"].grad.any()  # only the slower modality is pulled
    assert h["visual"].grad.abs().sum() == 0  # equidistant prototypes: no direction to pull in
    # swap the roles: audio is slower, gets the term; equal scores: no term at all
    t = pmr_terms({"audio": h["visual"], "visual": h["audio"]},
                  {"audio": protos["visual"], "visual": protos["audio"]}, y, alpha=2.0)
    assert t["ratio"].item() == pytest.approx(1 / 1.462117, abs=1e-6) and t["coef_audio"].item() == 2.0
    t = pmr_terms({"audio": h["audio"], "visual": h["audio"]}, {"audio": protos["audio"], "visual": protos["audio"]},
                  y, alpha=2.0)
    assert t["ratio"].item() == 1.0 and t["loss"].item() == 0.0 and t["coef_visual"].item() == 0.0


def test_pmr_gradient_pulls_the_slower_features_to_their_prototype():
    # visual feature h = 3 of class 0, prototypes 0 (class 0) and 4 (class 1): d = (h, 4 - h) = (3, 1)
    #   CE(-d, 0) = h + log(e^-h + e^(h-4)) = 3 + log(e^-3 + e^-1) = log(1 + e^2) = 2.126928
    #   dCE/dh = 1 + (-e^-h + e^(h-4)) / (e^-h + e^(h-4)) = 2 p_1, p_1 = 1 / (1 + e^-2) = 0.880797 -> 1.761594
    # audio h = 0 sits on its class-0 prototype (the other at 10): p ~ 1 > visual's 0.119, so visual is slower
    protos = {"audio": torch.tensor([[0.0], [10.0]]), "visual": torch.tensor([[0.0], [4.0]])}
    h = {"audio": torch.tensor([[0.0]]), "visual": torch.tensor([[3.0]], requires_grad=True)}
    t = pmr_terms(h, protos, torch.tensor([0]), alpha=1.0)
    assert t["coef_visual"].item() == 1.0 and t["loss"].item() == pytest.approx(math.log(1 + math.e ** 2))
    t["loss"].backward()
    assert h["visual"].grad.item() == pytest.approx(1.761594, abs=1e-6)  # > 0: descent moves h towards 0


@pytest.mark.parametrize("fusion", ["sum", "concat", "film", "gated"])
def test_pmr_trains_on_every_fusion(tiny_splits, fusion):
    method = PMR(alpha=2.0, momentum=0.5, end=0).use_data(train=tiny_splits["train"])
    _, run = train_model(tiny_splits, method, fusion=fusion, epochs=2, **FAST)
    check_history(run, ("loss_pmr_proto", "pmr_active"))
    first, second = run.history
    for key in ("pmr_ratio", "pmr_score_audio", "pmr_score_visual", "pmr_coef_audio", "pmr_coef_visual"):
        assert math.isfinite(first[key]), key
    assert first["pmr_active"] == 1.0 and second["pmr_active"] == 0.0 and second["loss_pmr_proto"] == 0.0
    assert 0 < first["pmr_score_audio"] < 1 and first["pmr_coef_audio"] + first["pmr_coef_visual"] <= 2.0
    assert set(method._prototypes) == {"audio", "visual"}
    assert method._prototypes["audio"].shape == (tiny_splits["train"].num_classes, 8 * FAST["width"])  # (C, D)


def test_pmr_needs_both_modalities(tiny_splits):
    with pytest.raises(ValueError, match="visual"):
        train_model(tiny_splits, PMR(), modalities=("audio",), epochs=1, **FAST)


def test_pmr_resumes_exactly(tiny_splits, tmp_path):
    # momentum 0.5: epoch 1's prototypes mix in epoch 0's, which only the checkpoint carries across the crash
    resume_matches(tiny_splits, lambda: PMR(momentum=0.5).use_data(train=tiny_splits["train"]), tmp_path, "gated")


# ----------------------------------------------------------------------------- MMCosine

def test_cosine_logits_by_hand():
    # a = (3, 4): unit (0.6, 0.8); audio class rows (1, 0), (0, 2): unit (1, 0), (0, 1) -> cos_a = (0.6, 0.8)
    # v = (1, 0);                  visual class rows (0, 1), (5, 0): unit (0, 1), (1, 0) -> cos_v = (0, 1)
    # s = 10: z = 10 * (0.6 + 0, 0.8 + 1) = (6, 18); the linear bias (7, -7) is not used
    a, v = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0]])
    concat = ConcatFusion(2, 2, 2)
    with torch.no_grad():
        concat.fc.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 1.0], [0.0, 2.0, 5.0, 0.0]]))
        concat.fc.bias.copy_(torch.tensor([7.0, -7.0]))
    head = CosineFusion(concat, "concat", 10.0)
    torch.testing.assert_close(head(a, v), torch.tensor([[6.0, 18.0]]))
    z_a, z_v = head.split_logits(a, v)
    torch.testing.assert_close(z_a, torch.tensor([[6.0, 8.0]]))
    torch.testing.assert_close(z_v, torch.tensor([[0.0, 10.0]]))
    # the same weights as a sum fusion give the same logits
    total = SumFusion(2, 2, 2)
    with torch.no_grad():
        total.fc_a.weight.copy_(concat.fc.weight[:, :2])
        total.fc_v.weight.copy_(concat.fc.weight[:, 2:])
    torch.testing.assert_close(CosineFusion(total, "sum", 10.0)(a, v), torch.tensor([[6.0, 18.0]]))
    # scale-free in the features and the weights: doubling either changes nothing
    torch.testing.assert_close(head(2 * a, 5 * v), torch.tensor([[6.0, 18.0]]))


@pytest.mark.parametrize("fusion", ["sum", "concat"])
def test_mmcosine_trains_and_evaluates_with_cosine_logits(tiny_splits, fusion):
    model, run = train_model(tiny_splits, MMCosine(scale=10.0), fusion=fusion, epochs=2, **FAST)
    check_history(run, ("mmcosine_logit_audio", "mmcosine_logit_visual", "loss_fused"))
    assert isinstance(model.fusion, CosineFusion) and run.record["method"] == {"name": "mmcosine",
                                                                                   "designed_for": "sgd", "scale": 10.0}
    model.eval()
    batch = next(iter(torch.utils.data.DataLoader(tiny_splits["val"], 16)))
    with torch.no_grad():
        out = model(audio=batch["audio"], visual=batch["visual"])
        a, v = model.audio(batch["audio"]), model.visual(batch["visual"])
    w_a, w_v = model.fusion.modality_weights()
    expected = 10 * (F.normalize(a, dim=1) @ F.normalize(w_a, dim=1).T
                     + F.normalize(v, dim=1) @ F.normalize(w_v, dim=1).T)
    torch.testing.assert_close(out["logits"], expected)  # what evaluation scores: the cosine logits
    assert out["logits"].abs().max() <= 20 + 1e-4  # |z| <= 2 s
    # the trained weights are the linear head's own tensors (the optimizer updated them); its bias is unused
    bias = model.fusion.linear.fc.bias if fusion == "concat" else model.fusion.linear.fc_a.bias
    assert bias.grad is None


@pytest.mark.parametrize("fusion", ["film", "gated"])
def test_mmcosine_refuses_multiplicative_fusion(tiny_splits, fusion):
    with pytest.raises(ValueError, match=f"MMCosine does not support fusion '{fusion}'"):
        train_model(tiny_splits, MMCosine(), fusion=fusion, epochs=1, **FAST)


def test_mmcosine_resumes_exactly(tiny_splits, tmp_path):
    resume_matches(tiny_splits, MMCosine, tmp_path, "sum")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=False)["model"]
    assert "fusion.linear.fc_a.weight" in state  # the cosine head's keys: a plain model refuses them
