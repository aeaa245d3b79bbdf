"""AGM, MMPareto and Diagnosing & Re-learning: coefficients, combined gradients and purities against hand-worked
numbers, which gradients or weights each one changes, runs through the Trainer on every fusion module, exact
resume, and the loop's default backward hook."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from avlab.experiment import build_model, train_model
from avlab.methods import (AGM, MMPareto, Method, Relearn, agm_coefficients, agm_score, kmeans, min_norm_weights,
                           minmax_scale, pareto_gradients, purity, reinit_strength, shapley_logits, soft_reinit)
from avlab.models.fusion import FUSIONS
from avlab.models.zorro import build_transformer
from avlab.train import Trainer, TrainConfig
from avlab.utils import seed_everything

LN3 = math.log(3.0)
FAST = dict(batch_size=64, progress=False, width=4)


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])


def one_batch(splits, fusion, method, seed=0):
    """A real Trainer around a fresh model (set up with `method`) and one real training batch."""
    torch.manual_seed(seed)
    model = build_model(splits["train"], fusion, width=4)
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=64, progress=False, seed=seed), method)
    return trainer, next(iter(DataLoader(splits["train"], 64, shuffle=False)))


def check_history(run, keys):
    for key in keys + ("loss", "val_acc"):
        assert all(math.isfinite(h[key]) for h in run.history if key in h), key
        assert any(key in h for h in run.history), key


def assert_resume_is_exact(splits, method_factory, tmp_path, **kwargs):
    """2 epochs straight == 1 epoch, a 'crash', then resuming from the checkpoint to 2 epochs."""
    straight, run_straight = train_model(splits, method_factory(), seed=1, epochs=2, **FAST, **kwargs)
    ckpt = tmp_path / "ckpt.pt"
    train_model(splits, method_factory(), seed=1, epochs=1, checkpoint=ckpt, **FAST, **kwargs)
    torch.manual_seed(12345)  # the process state after a crash is arbitrary; the checkpoint restores it
    resumed, run_resumed = train_model(splits, method_factory(), seed=1, epochs=2, checkpoint=ckpt, **FAST, **kwargs)
    assert torch.equal(weights(straight), weights(resumed))
    assert run_resumed.history == run_straight.history


# ----------------------------------------------------------------------------- the loop's backward hook

def test_default_backward_hook_is_the_plain_backward(tiny_splits, one_thread):
    """One epoch of the Trainer (default hook) == the same epoch written out by hand with loss.backward()."""
    config = TrainConfig(epochs=1, batch_size=64, progress=False, seed=2)
    seed_everything(2)
    model = build_model(tiny_splits["train"], "concat", width=4)
    by_hand = copy.deepcopy(model)
    trainer = Trainer(model, config, Method())
    trainer.fit(tiny_splits["train"])
    optimizer = torch.optim.Adam(by_hand.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    for batch in trainer.loader(tiny_splits["train"], 0):
        out = by_hand(audio=batch["audio"], visual=batch["visual"])
        y = batch["label"]
        loss = F.cross_entropy(out["logits"], y) + F.cross_entropy(out["audio"], y) + F.cross_entropy(out["visual"], y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    assert torch.equal(weights(model), weights(by_hand))


# ----------------------------------------------------------------------------- AGM

def test_shapley_logits_by_hand():
    # a multiplicative toy "fusion" f(a, v) = a v + 2a + 3v + 1, at a = 2, v = 5:
    # f(a,v) = 10 + 4 + 15 + 1 = 30, f(0,v) = 16, f(a,0) = 5, f(0,0) = 1
    # m_a = (30 - 16 + 5) / 2 = 9.5, m_v = (30 - 5 + 16) / 2 = 20.5, m_a + m_v = 30 = f(a,v)
    # exact Shapley value of a: ((30 - 16) + (5 - 1)) / 2 = 9 = m_a - f(0,0) / 2
    f = lambda a, v: a * v + 2 * a + 3 * v + 1  # noqa: E731
    m_a, m_v = shapley_logits(f, torch.tensor([[2.0]]), torch.tensor([[5.0]]))
    assert m_a.item() == 9.5 and m_v.item() == 20.5


def test_shapley_logits_of_concat_fusion_are_its_split():
    # concat is linear: f(a,0) = W_a a + b, f(0,v) = W_v v + b, so m_a = W_a a + b/2, the split-head logit
    torch.manual_seed(0)
    fusion = FUSIONS["concat"](3, 4, 5)
    a, v = torch.randn(6, 3), torch.randn(6, 4)
    m_a, m_v = shapley_logits(fusion, a, v)
    s_a, s_v = fusion.split_logits(a, v)
    torch.testing.assert_close(m_a, s_a)
    torch.testing.assert_close(m_v, s_v)


def test_agm_coefficients_by_hand():
    # audio shares [ln 3, 0], [0, ln 3] with labels (0, 1): true-class p = 3/4, s_a = -ln(3/4) = ln(4/3)
    # visual shares all zero: p = 1/2, s_v = ln 2
    # r_a = exp(s_v - s_a) = exp(ln(2 * 3/4)) = 1.5, r_v = 1/1.5 = 2/3
    y = torch.tensor([0, 1])
    s_a = agm_score(torch.tensor([[LN3, 0.0], [0.0, LN3]]), y).item()
    s_v = agm_score(torch.zeros(2, 2), y).item()
    assert s_a == pytest.approx(math.log(4 / 3)) and s_v == pytest.approx(math.log(2))
    # first step, running means S = 0: rbar = 1; k_a = exp(1.5 (1 - 1.5)) = exp(-0.75) = 0.472367 (audio is
    # ahead of its average: slowed), k_v = exp(1.5 (1 - 2/3)) = exp(0.5) = 1.648721 (behind: sped up)
    c = agm_coefficients(s_a, s_v, 0.0, 0.0, alpha=1.5)
    assert c["ratio_audio"] == pytest.approx(1.5) and c["ratio_visual"] == pytest.approx(2 / 3)
    assert c["k_audio"] == pytest.approx(0.472367, abs=1e-6) and c["k_visual"] == pytest.approx(1.648721, abs=1e-6)
    # running means equal to this step's scores: rbar = r, k = 1 both
    c = agm_coefficients(s_a, s_v, s_a, s_v, alpha=1.5)
    assert c["k_audio"] == pytest.approx(1.0) and c["k_visual"] == pytest.approx(1.0)
    # the cap: s_a = 0, s_v = 5, S_a = 5, S_v = 0: rbar_v - r_v = exp(5) - exp(-5) = 148.4 > 10, k_v = exp(0.1 * 10) = e
    c = agm_coefficients(0.0, 5.0, 5.0, 0.0, alpha=0.1, cap=10.0)
    assert c["k_visual"] == pytest.approx(math.e)


@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_agm_scales_each_encoders_gradient_by_its_k(tiny_splits, fusion):
    """For fusions linear in each modality the hooks multiply encoder m's gradient by exactly k_m."""
    method = AGM(alpha=1.5, clip=None)
    trainer, batch = one_batch(tiny_splits, fusion, method)
    model = trainer.model
    out = model(audio=batch["audio"], visual=batch["visual"])
    plain = torch.autograd.grad(F.cross_entropy(out["logits"], batch["label"]), list(model.parameters()),
                                retain_graph=True, allow_unused=True)
    loss = method.losses(out, batch, trainer)["fused"]
    assert loss.item() == pytest.approx(F.cross_entropy(out["logits"], batch["label"]).item(), abs=1e-5)
    loss.backward()
    logs = method.after_backward(out, batch, trainer)
    k = {m: logs[f"agm_k_{m}"] for m in ("audio", "visual")}
    assert k["audio"] != pytest.approx(1.0) and k["visual"] != pytest.approx(1.0)
    checked = 0
    for (name, p), g0 in zip(model.named_parameters(), plain):
        modality = name.split(".")[0]
        if modality in k and g0 is not None:
            # up to rounding: m_a + m_v equals z only to float precision, and batch norm's backward amplifies it
            assert (p.grad - k[modality] * g0).norm() <= 1e-4 * (k[modality] * g0).norm(), name
            checked += 1
    assert checked > 40
    # the running means now hold this step's scores, so the same batch again gives k = 1
    assert method.state_dict()["mean"]["audio"] == pytest.approx(logs["agm_score_audio"])


def test_agm_clips_when_the_fused_head_gradient_is_large(tiny_splits):
    method = AGM(alpha=1.5, clip=1e-6)  # any gradient is "large"
    trainer, batch = one_batch(tiny_splits, "gated", method)
    out = trainer.model(audio=batch["audio"], visual=batch["visual"])
    method.losses(out, batch, trainer)["fused"].backward()
    assert method.after_backward(out, batch, trainer)["agm_clipped"] == 1.0
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in trainer.model.parameters()
                                                  if p.grad is not None]))
    assert total.item() == pytest.approx(1e-6, rel=1e-3)


# ----------------------------------------------------------------------------- MMPareto

def test_min_norm_and_pareto_gradient_by_hand():
    # conflict: g_mm = (1, 0), g_u = (-1, 1); cos = -1/sqrt(2) < 0
    # w_mm = (g_u.g_u - g_mm.g_u) / |g_mm - g_u|^2 = (2 - (-1)) / |(2, -1)|^2 = 3/5, w_u = 2/5
    # min-norm point 0.6 (1,0) + 0.4 (-1,1) = (0.2, 0.4): orthogonal to g_mm - g_u = (2, -1), as it must be
    g_mm, g_u = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    w = min_norm_weights(g_mm, g_u)
    assert w[0] == pytest.approx(0.6) and w[1] == pytest.approx(0.4)
    # g_new = 2 (0.2, 0.4) = (0.4, 0.8), |g_new| = sqrt(0.8) = 0.894427; g_tot = g_mm + g_u = (0, 1), |g_tot| = 1
    # |g_tot| > |g_new|: grad = 1.5 * (1 / 0.894427) * (0.4, 0.8) = (0.670820, 1.341641)
    new, info = pareto_gradients([g_mm], [g_u], [g_mm + g_u], gamma=1.5)
    assert info["cos"] == pytest.approx(-1 / math.sqrt(2)) and info["w_mm"] == pytest.approx(0.6)
    torch.testing.assert_close(new[0], torch.tensor([0.670820, 1.341641]))
    # a smaller whole-loss gradient, e.g. (0, 0.5) with another loss in the sum: |g_tot| < |g_new|, grad = 1.5 g_new
    new, _ = pareto_gradients([g_mm], [g_u], [torch.tensor([0.0, 0.5])], gamma=1.5)
    torch.testing.assert_close(new[0], torch.tensor([0.6, 1.2]))
    # no conflict: g_u = (1, 1), cos > 0, weights 1/2 each, g_new = g_mm + g_u = (2, 1) = g_tot: grad = 1.5 g_tot
    new, info = pareto_gradients([g_mm], [torch.tensor([1.0, 1.0])], [torch.tensor([2.0, 1.0])], gamma=1.5)
    assert (info["w_mm"], info["w_uni"]) == (0.5, 0.5)
    torch.testing.assert_close(new[0], torch.tensor([3.0, 1.5]))
    # the solver's end-point rule: g_mm.g_u = 2 >= g_mm.g_mm = 1, g_mm is the nearest point: (0.999, 0.001)
    assert min_norm_weights(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0])) == (0.999, 0.001)
    # cos and weights are per encoder (all tensors together), the magnitude rule per tensor:
    # tensor 1: g_mm (1, 0), g_u (-1, 0); tensor 2: g_mm (0, 1), g_u (0, 0); flat: (1,0,0,1) and (-1,0,0,0)
    # v11 = 2, v12 = -1, v22 = 1: w_mm = (1 + 1) / (2 + 1 + 2) = 0.4; tensor 1 g_new = 2 (0.4 - 0.6, 0) = (-0.4, 0),
    # its g_tot (0, 0) is smaller: grad = 1.5 (-0.4, 0); tensor 2 g_new = 2 (0, 0.4) = (0, 0.8), g_tot (0, 1)
    # is larger: grad = 1.5 (1 / 0.8) (0, 0.8) = (0, 1.5)
    new, info = pareto_gradients([torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])],
                                 [torch.tensor([-1.0, 0.0]), torch.zeros(2)],
                                 [torch.zeros(2), torch.tensor([0.0, 1.0])], gamma=1.5)
    assert info["w_mm"] == pytest.approx(0.4)
    torch.testing.assert_close(new[0], torch.tensor([-0.6, 0.0]))
    torch.testing.assert_close(new[1], torch.tensor([0.0, 1.5]))


def test_mmpareto_uses_each_losss_own_gradient(tiny_splits):
    """The per-loss gradients are each loss's own (BalanceBenchmark's port captures the summed gradient twice)."""
    method = MMPareto()
    trainer, batch = one_batch(tiny_splits, "concat", method)
    model = trainer.model
    assert model.detach_heads is False
    out = model(audio=batch["audio"], visual=batch["visual"])
    losses = trainer.base_losses(out, batch["label"])
    loss = sum(losses.values())
    names = [n for n, p in model.named_parameters()]
    params = list(model.parameters())
    g_mm = torch.autograd.grad(losses["fused"], params, retain_graph=True, allow_unused=True)
    g_u = torch.autograd.grad(losses["head_audio"] + losses["head_visual"], params, retain_graph=True,
                              allow_unused=True)
    g_tot = torch.autograd.grad(loss, params, retain_graph=True)
    method.backward(loss, losses, trainer)
    logs = method.after_backward(out, batch, trainer)
    for m in ("audio", "visual"):
        idx = [i for i, n in enumerate(names) if n.startswith(m + ".")]
        expected, info = pareto_gradients([g_mm[i] for i in idx], [g_u[i] for i in idx], [g_tot[i] for i in idx])
        assert logs[f"mmpareto_cos_{m}"] == pytest.approx(info["cos"], abs=1e-6)
        assert abs(info["cos"]) < 0.99  # two different gradients, not the same one twice
        for i, e in zip(idx, expected):
            torch.testing.assert_close(params[i].grad, e, rtol=1e-4, atol=1e-8)
    for i, n in enumerate(names):  # heads and fusion keep the whole loss's gradient
        if n.startswith(("heads.", "fusion.")):
            torch.testing.assert_close(params[i].grad, g_tot[i])


def test_mmpareto_under_a_loss_scaler_gives_the_unscaled_result(tiny_splits):
    """With AMP's GradScaler (here its CPU form, scale 1024) .grad holds 1024 x the result until the loop's
    unscale_, which recovers the unscaled gradients."""
    grads = {}
    for scale in (None, 1024.0):
        method = MMPareto()
        trainer, batch = one_batch(tiny_splits, "gated", method)
        if scale is not None:
            trainer.scaler = torch.amp.GradScaler("cpu", init_scale=scale)
        out = trainer.model(audio=batch["audio"], visual=batch["visual"])
        losses = trainer.base_losses(out, batch["label"])
        method.backward(sum(losses.values()), losses, trainer)
        grads[scale, "backward"] = [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]
        trainer.scaler.unscale_(trainer.optimizer)
        grads[scale] = [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]
    for plain, scaled, raw in zip(grads[None], grads[1024.0], grads[1024.0, "backward"]):
        torch.testing.assert_close(raw, 1024.0 * plain, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(scaled, plain, rtol=1e-5, atol=1e-8)


# ----------------------------------------------------------------------------- Re-learning

def test_purity_scaling_and_strength_by_hand():
    # clusters 0: labels (1, 1, 2) -> 2 of the majority; 1: (0, 0) -> 2; 2: (2) -> 1; purity = 5/6
    assert purity(torch.tensor([0, 0, 0, 1, 1, 2]), torch.tensor([1, 1, 2, 0, 0, 2])) == pytest.approx(5 / 6)
    # column 0: 0, 2, 4 -> -1, 0, 1; the constant column 1 -> -1 (scikit-learn's MinMaxScaler(-1, 1))
    x = torch.tensor([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0]])
    torch.testing.assert_close(minmax_scale(x), torch.tensor([[-1.0, -1.0], [0.0, -1.0], [1.0, -1.0]]))
    # gap |0.9 - 0.6| = 0.3, alpha = tanh(3 * 0.3) = tanh(0.9) = 0.716298
    assert reinit_strength(0.9, 0.6, 3.0) == pytest.approx(0.716298, abs=1e-6)
    assert reinit_strength(0.6, 0.9, 3.0) == reinit_strength(0.9, 0.6, 3.0)
    # theta <- 0.25 * init + 0.75 * theta: (1, 3) toward (0, 1) gives (0.75, 2.5)
    p = torch.nn.Parameter(torch.tensor([1.0, 3.0]))
    soft_reinit([p], [torch.tensor([0.0, 1.0])], 0.25)
    torch.testing.assert_close(p.detach(), torch.tensor([0.75, 2.5]))


def test_kmeans_finds_separated_clusters_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = torch.arange(3).repeat_interleave(20)
    x = centres[labels] + 0.5 * torch.randn(60, 2, generator=g)
    a = kmeans(x, 3, generator=torch.Generator().manual_seed(1))
    b = kmeans(x, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and purity(a, labels) == 1.0
    assert purity(torch.zeros(60, dtype=torch.long), labels) == pytest.approx(1 / 3)  # one cluster: the majority


def test_relearn_pulls_encoders_toward_their_initialisation(tiny_splits):
    method = Relearn(strength=3.0, every=1)
    seed_everything(0)
    model = build_model(tiny_splits["train"], "concat", width=4)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=64, progress=False), method)
    run = trainer.fit(tiny_splits["train"], tiny_splits["val"])
    assert run.history[0]["relearn_resets"] == 0 and "relearn_alpha_audio" not in run.history[0]  # epoch 0: none
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    record = {}
    method.on_epoch_end(trainer, 1, record)
    assert record["relearn_resets"] == 1
    for name, p in model.named_parameters():
        modality = name.split(".")[0]
        if modality in ("audio", "visual"):
            alpha = record[f"relearn_alpha_{modality}"]
            assert alpha == pytest.approx(reinit_strength(record[f"relearn_purity_train_{modality}"],
                                                          record[f"relearn_purity_held_out_{modality}"]))
            torch.testing.assert_close(p.detach(), torch.lerp(before[name], initial[name], alpha))
        else:  # heads and fusion are not reset
            assert torch.equal(p.detach(), before[name]), name
    for m in ("audio", "visual"):
        assert 0 < record[f"relearn_purity_train_{m}"] <= 1 and 0 < record[f"relearn_alpha_{m}"] < 1
    # an explicit held-out split replaces the validation split; with neither there is a clear error
    record = {}
    method.use_data(held_out=tiny_splits["train"]).on_epoch_end(trainer, 2, record)
    for m in ("audio", "visual"):  # the same split twice: no gap, no reset
        assert record[f"relearn_purity_train_{m}"] == record[f"relearn_purity_held_out_{m}"]
        assert record[f"relearn_alpha_{m}"] == 0.0
    trainer.val_data, method._data = None, {}
    with pytest.raises(ValueError, match="needs a held_out split"):
        method.on_epoch_end(trainer, 3, {})


# ----------------------------------------------------------------------------- through the Trainer

@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_methods_train_on_every_fusion(tiny_splits, one_thread, fusion):
    _, run = train_model(tiny_splits, AGM(alpha=1.5), fusion=fusion, epochs=1, **FAST)
    check_history(run, ("agm_k_audio", "agm_k_visual", "agm_ratio_audio", "agm_score_visual", "agm_clipped"))
    assert run.record["method"]["name"] == "agm" and run.record["method"]["alpha"] == 1.5
    _, run = train_model(tiny_splits, MMPareto(), fusion=fusion, epochs=1, **FAST)
    check_history(run, ("mmpareto_cos_audio", "mmpareto_cos_visual", "mmpareto_w_fused_audio", "loss_head_audio"))
    _, run = train_model(tiny_splits, Relearn(every=1), fusion=fusion, epochs=2, **FAST)
    check_history(run, ("relearn_purity_train_audio", "relearn_purity_held_out_visual", "relearn_alpha_audio"))
    assert [h["relearn_resets"] for h in run.history] == [0, 1]


def test_methods_refuse_a_model_without_late_fusion(tiny_splits):
    model = build_transformer(tiny_splits["train"], dim=16, depth=1)
    for method, name in ((AGM(), "agm"), (MMPareto(), "mmpareto"), (Relearn(), "relearn")):
        with pytest.raises(ValueError, match=f"{name} .*'zorro'"):
            Trainer(model, TrainConfig(epochs=1, progress=False), method)
    with pytest.raises(ValueError, match="agm .*visual"):
        train_model(tiny_splits, AGM(), modalities=("audio",), epochs=1, **FAST)


@pytest.mark.parametrize("name", ["agm", "mmpareto", "relearn"])
def test_resume_is_exact(tiny_splits, one_thread, tmp_path, name):
    factory = {"agm": lambda: AGM(alpha=1.5), "mmpareto": lambda: MMPareto(),
               "relearn": lambda: Relearn(every=1)}[name]
    assert_resume_is_exact(tiny_splits, factory, tmp_path, fusion="gated" if name == "agm" else "concat",
                           optimizer="sgd", lr=0.01)


def test_command_line_names_and_simple_signatures():
    import inspect
    for cls, name in ((AGM, "agm"), (MMPareto, "mmpareto"), (Relearn, "relearn")):
        assert cls.name == name and isinstance(cls.owns, frozenset)
        for p in inspect.signature(cls).parameters.values():
            assert p.default is not inspect.Parameter.empty, (name, p.name)
            assert p.annotation in ("float", "int", "bool", "str", "float | None", "int | None"), (name, p.name)


def test_distributed_wrapper_refuses_a_custom_backward():
    from avlab.distributed import GlobalBatchMethod

    with pytest.raises(ValueError, match="mmpareto .*one process"):
        GlobalBatchMethod(MMPareto()).backward(None, {}, None)
