"""DistributedDataParallel as a thin layer: 2 CPU processes (gloo) train exactly what 1 process trains on the same
global batch. BatchNorm is computed over the global batch (`GlobalBatchNorm`: PyTorch's SyncBatchNorm runs on
CUDA only), so the comparison holds for the course's real ResNet-18 encoders, BN included. The model runs in
float64 so that the comparison can be tight: only the order of floating-point sums differs between the runs.

All the 2-process work runs in one launch (a module fixture) to pay the process start-up once."""
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from avlab import distributed as D
from avlab.methods.base import Method
from avlab.methods.ogm import OGMGE
from avlab.models.classifier import AVClassifier
from avlab.train import TrainConfig
from avlab.utils import seed_everything

METHODS = {"joint": lambda: Method(), "ogm_ge": lambda: OGMGE(alpha=0.8)}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.one_thread


class Toy(Dataset):
    """64 float64 samples with a learnable label (a class offset in both modalities)."""
    num_classes = 4

    def __init__(self, n: int = 64):
        g = torch.Generator().manual_seed(0)
        self.y = torch.randint(0, 4, (n,), generator=g)
        shift = self.y.double().view(-1, 1, 1, 1)
        self.a = torch.randn(n, 1, 16, 16, generator=g, dtype=torch.float64) + shift
        self.v = torch.randn(n, 1, 2, 16, 16, generator=g, dtype=torch.float64) + shift.unsqueeze(-1)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"audio": self.a[i], "visual": self.v[i], "label": self.y[i], "index": i}


def train_toy(method: str):
    seed_everything(0)
    model = AVClassifier(4, "concat", 4, audio_channels=1, visual_channels=1).double()
    config = TrainConfig(epochs=1, batch_size=16, optimizer="sgd", lr=0.05, seed=0, device="cpu", progress=False)
    run = D.DistributedTrainer(model, config, METHODS[method]()).fit(Toy())
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, run.history


def cli_args(cache_dir, out):
    return ["train", "--data", "avdigits", "--data-arg", "n_train=200", "--data-arg", "n_val=100",
            "--data-arg", "n_test=100", "--data-arg", f"cache_dir={cache_dir}", "--width", "4", "--epochs", "1",
            "--batch-size", "64", "--optimizer", "sgd", "--lr", "0.01", "--device", "cpu", "--no-progress",
            "--out", str(out)]


def _job(out_dir: str, cache_dir: str):
    """Runs in each of the 2 processes."""
    from avlab import cli

    rank, out_dir = dist.get_rank(), Path(out_dir)
    results = {m: train_toy(m) for m in METHODS}
    # GlobalBatchNorm over 2 halves vs BatchNorm2d over the whole batch (values, input gradients, running stats)
    torch.manual_seed(0)
    x, w = torch.randn(8, 3, 5, 5, dtype=torch.float64), torch.randn(8, 3, 5, 5, dtype=torch.float64)
    bn = D.convert_batchnorm(nn.Sequential(nn.BatchNorm2d(3)).double(), torch.device("cpu"))[0]
    assert isinstance(bn, D.GlobalBatchNorm)
    part = x[4 * rank:4 * rank + 4].clone().requires_grad_(True)
    out = bn(part)
    (out * w[4 * rank:4 * rank + 4]).sum().backward()
    gathered = [torch.empty_like(part.grad) for _ in range(2)], [torch.empty_like(out) for _ in range(2)]
    dist.all_gather(gathered[0], part.grad)
    dist.all_gather(gathered[1], out.detach())
    weight_grad = bn.weight.grad.clone()
    dist.all_reduce(weight_grad)
    results["bn"] = {"y": torch.cat(gathered[1]), "x_grad": torch.cat(gathered[0]), "w_grad": weight_grad,
                     "running_var": bn.running_var.clone(), "x": x, "w": w}
    cli.run(cli_args(cache_dir, out_dir / "cli-ddp"))
    if rank == 0:
        torch.save(results, out_dir / "ddp.pt")


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory, avdigits_cache):
    out = tmp_path_factory.mktemp("ddp")
    D.launch(_job, 2, str(out), str(avdigits_cache))
    return out, torch.load(out / "ddp.pt", weights_only=False)


def assert_same_state(a: dict, b: dict, tol: float):
    assert a.keys() == b.keys()
    for k in a:
        scale = max(1.0, a[k].double().abs().max().item())
        diff = (a[k].double() - b[k].double()).abs().max().item()
        assert diff <= tol * scale, f"{k}: differs by {diff:.3g}"


@pytest.mark.parametrize("method", list(METHODS))
def test_two_processes_train_what_one_process_trains_on_the_global_batch(ddp_runs, method):
    _, ddp = ddp_runs
    state, history = train_toy(method)
    ddp_state, ddp_history = ddp[method]
    assert len(history) == len(ddp_history) == 1
    # after 4 steps of SGD, BN running statistics included. OGM-GE computes its coefficients in float32
    # (`true_class_score`), summing the gathered batch in another order: its runs agree to float32 precision.
    assert_same_state(state, ddp_state, 1e-9 if method == "joint" else 1e-5)
    assert state["audio.backbone.bn1.num_batches_tracked"].item() == 4
    assert not torch.equal(state["fusion.fc.weight"], train_toy_initial()["fusion.fc.weight"])  # it did train
    for key in history[-1]:  # the logs are averaged over the processes: the global batch's numbers
        assert history[-1][key] == pytest.approx(ddp_history[-1][key], rel=1e-5, abs=1e-7), key
    if method == "ogm_ge":
        assert 0 < history[-1]["ogm_k_audio"] < 1 or 0 < history[-1]["ogm_k_visual"] < 1


def train_toy_initial():
    seed_everything(0)
    return AVClassifier(4, "concat", 4, audio_channels=1, visual_channels=1).double().state_dict()


def test_global_batchnorm_is_batchnorm_over_the_whole_batch(ddp_runs):
    _, ddp = ddp_runs
    r = ddp["bn"]
    bn = nn.BatchNorm2d(3).double()
    x = r["x"].clone().requires_grad_(True)
    y = bn(x)
    (y * r["w"]).sum().backward()
    assert torch.allclose(y, r["y"], atol=1e-12)
    assert torch.allclose(x.grad, r["x_grad"], atol=1e-12)
    assert torch.allclose(bn.weight.grad, r["w_grad"], atol=1e-12)
    assert torch.allclose(bn.running_var, r["running_var"], atol=1e-12)  # unbiased over all 200 values


def test_the_command_under_two_processes_matches_one_process(ddp_runs, avdigits_cache, capsys):
    from avlab import cli

    out, _ = ddp_runs
    row = cli.run(cli_args(avdigits_cache, out / "cli-single"))
    single = torch.load(out / "cli-single" / "checkpoint.pt", weights_only=False)
    both = torch.load(out / "cli-ddp" / "checkpoint.pt", weights_only=False)
    assert_same_state(single["model"], both["model"], 1e-4)  # float32: 3 SGD steps
    assert single["step"] == both["step"] == 3  # 200 samples, global batch 64, last partial batch dropped
    assert (out / "cli-ddp" / "record.json").is_file() and (out / "cli-ddp" / "results.json").is_file()
    # rank 0's checkpoint holds plain module keys: it loads into a single-process model
    AVClassifier(10, "concat", 4, 1, 1).load_state_dict(both["model"])
    assert row["val_acc"] == pytest.approx(both["history"][-1]["val_acc"], abs=0.02)


def test_each_process_reads_its_share_of_the_same_global_batch():
    data = Toy(40)
    trainer = D.DistributedTrainer(AVClassifier(4, "concat", 4, 1, 1).double(),
                                   TrainConfig(epochs=1, batch_size=8, seed=3, device="cpu", progress=False))
    single = [set(b["index"].tolist()) for b in trainer.loader(data, epoch=2)]
    shards = []
    for rank in range(2):
        sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=3)
        sampler.set_epoch(2)
        order = list(sampler)
        shards.append([set(order[i:i + 4]) for i in range(0, len(order), 4)])
    assert single == [a | b for a, b in zip(*shards)]
    assert len(single) == 5 and set().union(*single) == set(range(40))
    assert [set(b["index"].tolist()) for b in trainer.loader(data, epoch=2)] == single  # seeded per epoch
    assert [set(b["index"].tolist()) for b in trainer.loader(data, epoch=3)] != single


def test_a_method_keeps_its_hooks_and_settings_under_the_wrapper(monkeypatch):
    inner = OGMGE(alpha=0.3, end=None)
    wrapped = D.GlobalBatchMethod(inner)
    assert wrapped.name == "ogm_ge" and wrapped.alpha == 0.3 and wrapped.config() == inner.config()
    assert wrapped.state_dict() == inner.state_dict()
    monkeypatch.setattr(D, "info", lambda: D.DistInfo(rank=0, world_size=3))
    with pytest.raises(ValueError, match="batch_size 64 must divide by the 3 processes"):
        D.DistributedTrainer(AVClassifier(4, "concat", 4, 1, 1), TrainConfig(batch_size=64, device="cpu"))
