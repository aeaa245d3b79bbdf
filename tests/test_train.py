import functools
import json

import pytest
import torch

from avlab.experiment import build_model, train_many, train_model
from avlab.methods import MLB, Method
from avlab.train import Trainer, TrainConfig, evaluate
from avlab.utils import seed_everything

FAST = dict(epochs=2, batch_size=32, progress=False)


def weights(model):
    return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])


def test_history_and_record(tiny_splits, tmp_path):
    model, run = train_model(tiny_splits, width=4, record=tmp_path / "run.json", **FAST)
    assert [h["epoch"] for h in run.history] == [0, 1]
    for key in ("loss", "loss_fused", "acc", "val_acc", "val_acc_audio", "val_acc_visual",
                "grad_norm_audio", "grad_norm_visual", "lr"):
        assert all(key in h for h in run.history), key
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["config"]["epochs"] == 2 and record["device"] == "cpu"
    assert record["versions"]["torch"] == torch.__version__ and len(record["history"]) == 2


def test_seeded_runs_are_identical_on_cpu(tiny_splits):
    a, _ = train_model(tiny_splits, width=4, seed=3, **FAST)
    b, _ = train_model(tiny_splits, width=4, seed=3, **FAST)
    c, _ = train_model(tiny_splits, width=4, seed=4, **FAST)
    assert torch.equal(weights(a), weights(b))
    assert not torch.equal(weights(a), weights(c))


def test_resume_is_exact(tiny_splits, tmp_path):
    """3 epochs straight == 1 epoch, a 'crash', then resuming from the checkpoint for the remaining 2."""
    straight, run_straight = train_model(tiny_splits, width=4, seed=1, **{**FAST, "epochs": 3})
    ckpt = tmp_path / "ckpt.pt"
    train_model(tiny_splits, width=4, seed=1, checkpoint=ckpt, **{**FAST, "epochs": 1})
    torch.manual_seed(12345)  # the process state after a crash is arbitrary; the checkpoint restores it
    resumed, run_resumed = train_model(tiny_splits, width=4, seed=1, checkpoint=ckpt, **{**FAST, "epochs": 3})
    assert torch.equal(weights(straight), weights(resumed))
    assert run_resumed.history == run_straight.history


def test_resume_refuses_other_settings(tiny_splits, tmp_path):
    ckpt = tmp_path / "ckpt.pt"
    train_model(tiny_splits, width=4, checkpoint=ckpt, **{**FAST, "epochs": 1})
    with pytest.raises(ValueError, match="lr"):
        train_model(tiny_splits, width=4, checkpoint=ckpt, lr=0.5, **FAST)


def test_nan_loss_is_reported(tiny_splits):
    with pytest.raises(FloatingPointError, match="learning rate"):
        train_model(tiny_splits, width=4, lr=1e12, optimizer="sgd", **{**FAST, "epochs": 3})


def test_unimodal_training_and_bad_config(tiny_splits):
    model, run = train_model(tiny_splits, width=4, modalities=("visual",), **FAST)
    assert "grad_norm_audio" not in run.history[-1] and "val_acc_audio" not in run.history[-1]
    with pytest.raises(ValueError, match="modalities"):
        TrainConfig(modalities=("smell",))
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lion")


def test_training_learns(tiny_splits):
    model, run = train_model(tiny_splits, width=4, epochs=6, batch_size=32, progress=False)
    assert run.history[-1]["loss_fused"] < run.history[0]["loss_fused"]
    assert evaluate(model, tiny_splits["train"])["acc"] > 0.5  # chance is 0.1: it fits what it saw


class Recorder(Method):
    """Checks the order and arguments of every hook, and that after_backward sees the gradients."""
    name = "recorder"

    def __init__(self):
        self.calls = []

    def setup(self, trainer):
        self.calls.append("setup")

    def on_epoch_start(self, trainer, epoch):
        self.calls.append(f"start{epoch}")

    def transform_batch(self, batch, trainer):
        self.calls.append("batch")
        return {**batch, "visual": batch["visual"] * 0}

    def losses(self, out, batch, trainer):
        assert batch["visual"].abs().sum() == 0  # the transformed batch reached the model
        return {"extra": out["logits"].pow(2).mean() * 0}

    def after_backward(self, out, batch, trainer):
        grad = trainer.model.audio.backbone.conv1.weight.grad
        assert grad is not None and torch.isfinite(grad).all()
        return {"seen": 1.0}

    def on_epoch_end(self, trainer, epoch, record):
        self.calls.append(f"end{epoch}")


def test_method_hooks(tiny_splits):
    method = Recorder()
    _, run = train_model(tiny_splits, method, width=4, **FAST)
    assert method.calls[0] == "setup" and method.calls[1] == "start0" and method.calls[-1] == "end1"
    assert run.history[0]["seen"] == 1.0 and "loss_extra" in run.history[0]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_amp_on_cuda_gives_methods_unscaled_gradients(tiny_splits):
    seen = {}

    class Peek(Method):
        def after_backward(self, out, batch, trainer):
            seen["norm"] = trainer.model.audio.backbone.conv1.weight.grad.norm().item()
            seen["scale"] = trainer.scaler.get_scale()
            return {}

    model = build_model(tiny_splits["train"], width=4)
    Trainer(model, TrainConfig(epochs=1, progress=False), Peek()).fit(tiny_splits["train"])
    assert seen["scale"] > 1 and seen["norm"] < 1e3  # scaled gradients would be ~65536x larger


def test_train_many_in_worker_processes_matches_one_process(tiny_splits, one_thread):
    jobs = [dict(seed=1), dict(method=MLB(alpha=0.8), fusion="sum", seed=2)]
    in_workers = train_many(tiny_splits, jobs, workers=2, width=4, **FAST)
    in_process = train_many(tiny_splits, jobs, workers=0, width=4, **FAST)
    for (model_w, run_w), (model_p, run_p) in zip(in_workers, in_process):
        assert torch.equal(weights(model_w), weights(model_p))
        assert [h["val_acc"] for h in run_w.history] == [h["val_acc"] for h in run_p.history]
    assert type(in_workers[1][0].fusion).__name__ == type(in_process[1][0].fusion).__name__
    assert in_workers[1][1].history[-1]["mlb_k_audio"] == in_process[1][1].history[-1]["mlb_k_audio"]


def test_train_many_builds_another_model_in_workers(tiny_splits, one_thread):
    """`build` replaces the AVClassifier: a Zorro transformer trained contrastively in a worker is the one the
    same job trains in this process, from the initial weights its seed gives `build` here."""
    from avlab.methods import ZorroContrastive
    from avlab.models.zorro import build_transformer

    build = functools.partial(build_transformer, zorro=True, dim=16, depth=1, heads=2, fusion_tokens=2)
    jobs = [dict(build=build, method=ZorroContrastive(temperature=0.2), seed=3)]
    (model_w, run_w), = train_many(tiny_splits, jobs, workers=2, **FAST)
    (model_p, run_p), = train_many(tiny_splits, jobs, workers=0, **FAST)
    assert type(model_w).__name__ == "AVTransformer" and model_w.zorro
    assert torch.equal(weights(model_w), weights(model_p))
    assert run_w.history[-1]["loss_contrastive"] == run_p.history[-1]["loss_contrastive"]
    seed_everything(3)
    untrained = build(tiny_splits["train"])
    assert not torch.equal(weights(untrained), weights(model_w))  # it did train


def test_train_many_reports_a_failing_job(tiny_splits):
    with pytest.raises(ValueError, match="nope"):
        train_many(tiny_splits, [dict(seed=0), dict(fusion="nope")], workers=2, width=4, **FAST)


def test_paired_difference_mean_standard_error_and_the_clear_gain_test():
    from avlab.experiment import paired_difference

    gain = paired_difference([0.8, 0.75, 0.70], [0.7, 0.70, 0.65])  # differences 0.10, 0.05, 0.05
    assert gain.mean == pytest.approx(0.2 / 3)
    assert gain.se == pytest.approx(1 / 60)  # sample s.d. of the differences 0.0289, over sqrt(3)
    assert gain.diffs == pytest.approx((0.10, 0.05, 0.05))
    assert gain.clear(0.02) and not gain.clear(0.07)  # 2 s.e. = 0.033 < 0.067
    assert not paired_difference([0.7, 0.8], [0.6, 0.9]).clear()  # mean 0, spread 0.2
    assert str(gain) == "+0.067 ± 0.017 (s.e., 3 pairs)"
    with pytest.raises(ValueError, match="same length"):
        paired_difference([0.1, 0.2, 0.3], [0.1, 0.2])
