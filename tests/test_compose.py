"""Compose: several plug-ins in one loop, hook by hook in order; declared conflicts refused; state per part."""
import pickle

import pytest
import torch

from avlab.experiment import build_model, train_model
from avlab.methods import MLB, OGMGE, UMT, Compose, FusionTuning, Method
from avlab.methods.compose import claims, conflicts
from avlab.train import Trainer, TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(width=4, epochs=1, batch_size=100, progress=False)


class Tracer(Method):
    """Writes every hook call into a shared list; adds one loss and one log of its own."""

    def __init__(self, name: str, events: list):
        self.name, self._events = name, events

    def setup(self, trainer):
        self._events.append((self.name, "setup"))

    def on_epoch_start(self, trainer, epoch):
        self._events.append((self.name, "on_epoch_start"))

    def transform_batch(self, batch, trainer):
        self._events.append((self.name, "transform_batch"))
        return {**batch, "trace": batch.get("trace", ()) + (self.name,)}

    def losses(self, out, batch, trainer):
        self._events.append((self.name, "losses"))
        assert batch["trace"] == ("A", "B")  # both transforms ran, in order, before any loss
        return {f"extra_{self.name}": 0.0 * out["logits"].sum()}

    def after_backward(self, out, batch, trainer):
        self._events.append((self.name, "after_backward"))
        return {"seen": 1.0}

    def on_epoch_end(self, trainer, epoch, record):
        self._events.append((self.name, "on_epoch_end"))


def test_hooks_run_part_by_part_in_order_and_losses_merge(tiny_splits):
    events = []
    _, run = train_model(tiny_splits, Compose(Tracer("A", events), Tracer("B", events)), **TINY)
    steps = len(tiny_splits["train"]) // 100  # 200 samples, batch 100: 2 steps
    per_step = [(p, h) for h in ("transform_batch", "losses", "after_backward") for p in "AB"]
    assert events == ([("A", "setup"), ("B", "setup"), ("A", "on_epoch_start"), ("B", "on_epoch_start")]
                      + per_step * steps + [("A", "on_epoch_end"), ("B", "on_epoch_end")])
    h = run.history[0]
    assert h["loss_extra_A"] == 0.0 and h["loss_extra_B"] == 0.0  # both parts' losses reached the loop
    assert h["seen"] == 1.0 and h["B_seen"] == 1.0  # a log key taken by A: B's gets its name as a prefix
    assert run.record["method"] == {"name": "A+B", "parts": [{"name": "A"}, {"name": "B"}]}


def test_umt_plus_mlb_trains_with_both_and_the_record_lists_both(tiny_splits):
    teacher = build_model(tiny_splits["train"], "concat", 4)  # any visual encoder of this architecture
    method = Compose(UMT({"visual": teacher}, weight=2.0), MLB(alpha=0.5))
    model, run = train_model(tiny_splits, method, **TINY)
    h = run.history[0]
    assert h["loss_distill_visual"] > 0 and "mlb_k_audio" in h and "mlb_k_visual" in h
    assert model.detach_heads is False  # MLB's setup ran: the head losses train the encoders
    parts = run.record["method"]["parts"]
    assert run.record["method"]["name"] == "umt+mlb"
    assert [p["name"] for p in parts] == ["umt", "mlb"] and parts[0]["weight"] == 2.0 and parts[1]["alpha"] == 0.5


def test_conflicting_methods_are_refused_naming_both_and_the_claim():
    with pytest.raises(ValueError, match=r"ogm_ge and mlb cannot be composed: both claim grad:audio, grad:visual"):
        Compose(OGMGE(), MLB())
    with pytest.raises(ValueError, match="mlb and multiloss .* loss:head_audio, loss:head_visual"):
        Compose(MLB(), MLB(balance=False))

    class EveryEncoder(Method):
        name = "every_encoder"
        owns = frozenset({"grad:*"})

    assert conflicts([("a", frozenset({"grad:*"})), ("b", frozenset({"grad:visual", "batch"}))]) == \
        [("a", "b", ["grad:*", "grad:visual"])]
    with pytest.raises(ValueError, match="every_encoder and ogm .*grad:\\*"):
        Compose(EveryEncoder(), OGMGE(noise=False))
    allowed = Compose(MLB(balance=False), OGMGE())  # multi-loss claims the head losses only: no clash with OGM-GE
    # train_many sends methods to worker processes: a composition survives pickling
    assert pickle.loads(pickle.dumps(allowed)).config() == allowed.config()


def test_two_parts_returning_the_same_loss_fail_naming_both(tiny_splits):
    class Extra(Method):
        def __init__(self, name):
            self.name = name

        def losses(self, out, batch, trainer):
            return {"extra": out["logits"].sum() * 0}

    with pytest.raises(ValueError, match="first and second both return the loss 'extra'"):
        train_model(tiny_splits, Compose(Extra("first"), Extra("second")), **TINY)


def test_a_part_with_its_own_backward_owns_it_and_compose_delegates(tiny_splits):
    class OwnBackward(Method):
        name = "own_backward"

        def __init__(self):
            self.calls = 0

        def backward(self, loss, losses, trainer):
            self.calls += 1
            trainer.scaler.scale(2 * loss).backward()

    assert "backward" in claims(OwnBackward())
    with pytest.raises(ValueError, match="own_backward and own_backward.*backward"):
        Compose(OwnBackward(), OwnBackward())
    part = OwnBackward()
    composed = Compose(MLB(), part)
    trainer = Trainer(build_model(tiny_splits["train"], "concat", 4), TrainConfig(device="cpu", progress=False),
                      composed)
    batch = trainer.to_device(next(iter(trainer.loader(tiny_splits["train"], 0))))
    out = trainer.model(**trainer.inputs(batch))
    loss = trainer.base_losses(out, batch["label"])["fused"]
    composed.backward(loss, {"fused": loss}, trainer)
    assert part.calls == 1 and trainer.model.fusion.fc.weight.grad is not None
    # without an owner the loop's own backward runs: the same gradient as loss.backward()
    plain = Compose(MLB())
    trainer.model.zero_grad()
    out = trainer.model(**trainer.inputs(batch))
    loss = trainer.base_losses(out, batch["label"])["fused"]
    plain.backward(loss, {"fused": loss}, trainer)
    grad = trainer.model.fusion.fc.weight.grad.clone()
    trainer.model.zero_grad()
    trainer.base_losses(trainer.model(**trainer.inputs(batch)), batch["label"])["fused"].backward()
    torch.testing.assert_close(grad, trainer.model.fusion.fc.weight.grad, rtol=0, atol=0)


def test_compose_of_one_method_is_that_method_bit_for_bit(tiny_splits):
    alone, run_alone = train_model(tiny_splits, OGMGE(alpha=0.5), **TINY)
    composed, run_composed = train_model(tiny_splits, Compose(OGMGE(alpha=0.5)), **TINY)
    assert run_alone.history == run_composed.history
    for (k, a), (_, b) in zip(alone.state_dict().items(), composed.state_dict().items()):
        assert torch.equal(a, b), k


def _ft_mlb(n):
    g = torch.Generator().manual_seed(0)
    conf_a, conf_v = torch.rand(n, generator=g), torch.rand(n, generator=g)
    return Compose(FusionTuning(conf_a, conf_v, threshold=0.2, rule="symmetric", seed=3), MLB())


def test_a_composition_resumes_from_its_checkpoint_exactly(tiny_splits, tmp_path):
    n = len(tiny_splits["train"])
    straight, run = train_model(tiny_splits, _ft_mlb(n), **{**TINY, "epochs": 2})
    path = tmp_path / "ckpt.pt"
    train_model(tiny_splits, _ft_mlb(n), checkpoint=path, **TINY)  # stops after epoch 0
    state = torch.load(path, weights_only=False)["method"]
    assert state["names"] == ["fusion_tuning", "mlb"] and "generator" in state["parts"][0]
    resumed, run2 = train_model(tiny_splits, _ft_mlb(n), checkpoint=path, **{**TINY, "epochs": 2})
    assert run2.history == run.history and run.history[1]["mask_ratio_audio"] > 0
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="composition"):  # another composition cannot read this state
        Compose(MLB(balance=False), OGMGE(noise=False)).load_state_dict(state)


def test_a_hook_compose_does_not_know_goes_to_the_one_part_that_defines_it(monkeypatch):
    monkeypatch.setattr(Method, "new_hook", lambda self, x: x, raising=False)  # a hook added to the loop later

    class Defines(Method):
        name = "defines"

        def new_hook(self, x):
            return 2 * x

        def only_mine(self):
            return "mine"

    composed = Compose(MLB(), Defines())
    assert composed.new_hook(3) == 6 and composed.only_mine() == "mine"
    assert Compose(MLB()).new_hook(3) == 3  # no part overrides it: the default
    assert not hasattr(Compose(MLB()), "only_mine")
    with pytest.raises(ValueError, match="defines and defines both define the hook 'new_hook'"):
        Compose(Defines(), Defines())
