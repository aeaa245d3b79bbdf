"""More than one GPU: the same training under `torchrun`, with DistributedDataParallel, as a thin layer over the
one training loop.

    torchrun --nproc_per_node 4 -m avlab train --data cremad --method ogm_ge ...

`DistributedTrainer` is `avlab.train.Trainer` with four changes, none of which copies the loop:

* `loader`: each process reads its shard of every epoch's permutation (`DistributedSampler`, seeded with
  (seed, epoch)), `batch_size // world_size` samples per step, so `TrainConfig.batch_size` stays the *global*
  batch and the learning rate means the same thing on 1 or 8 GPUs;
* the model's forward goes through `DistributedDataParallel` (gradients are averaged across processes in the
  backward pass) while `trainer.model` stays the plain module, so `model.encoder(m)`, `model.heads`,
  `model.fusion` and the checkpoints work as on one process (the checkpoint loads into a single-process model);
* BatchNorm computes its statistics over the global batch (`SyncBatchNorm` on CUDA; on the CPU, where
  PyTorch's SyncBatchNorm does not run, `GlobalBatchNorm`, an all-reduce of the batch moments), so a run on W
  processes computes what one process computes on the same global batch. Turn it off (`sync_batchnorm=False`)
  for the usual per-GPU statistics: cheaper, and no longer the same function of the batch;
* a method's `after_backward` (OGM-GE, MLB: coefficients from the batch's confidences) sees the outputs and
  labels of the whole global batch, gathered from all processes, and the gradients it modulates are then
  broadcast from rank 0, so every replica takes the same step even when a method draws random numbers (OGM-GE's
  noise). The per-step logs are averaged across processes before they enter the history.

Rank 0 alone writes the record and the checkpoint; every rank resumes from the checkpoint. Evaluation runs on
the plain module (no collective), so any rank, or rank 0 alone, may evaluate.

With one process (no `torchrun`), `DistributedTrainer` is the single-process reference: the same sampler and
batches, no process group. `launch(fn, world_size, ...)` starts CPU processes with the gloo backend (the tests).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from avlab.methods.base import Method
from avlab.train import Trainer, TrainConfig


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def info() -> DistInfo:
    """This process's place in the process group (rank 0 of 1 without one)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return DistInfo()


def init_from_env(backend: str | None = None) -> DistInfo:
    """Join the process group that `torchrun` describes in the environment (WORLD_SIZE, RANK, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT); a no-op on a single process. NCCL on CUDA (one GPU per local rank), else gloo."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or (dist.is_available() and dist.is_initialized()):
        return info()
    global _OWNED
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend)
    _OWNED = True
    return info()


_OWNED = False  # whether init_from_env created the process group (then shutdown destroys it)


def shutdown() -> None:
    """Wait for every process, then leave the process group if `init_from_env` created it."""
    global _OWNED
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        if _OWNED:
            dist.destroy_process_group()
            _OWNED = False


@contextlib.contextmanager
def main_first():
    """Rank 0 runs the block first (e.g. builds a dataset cache), the others after it, from the cache."""
    me = info()
    if me.enabled and not me.is_main:
        dist.barrier()
    yield
    if me.enabled and me.is_main:
        dist.barrier()


# ----------------------------------------------------------------------------- BatchNorm over the global batch

class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch across processes (any backend,
    CPU included): one all-reduce (with autograd) of each channel's sum and sum of squares, in float64, so the
    backward pass is that of one BatchNorm over the concatenated batch. Same parameters and buffers (and
    state_dict keys) as BatchNorm2d."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        c = x.shape[1]
        x64 = x.double()
        count = x64.new_full((1,), x.numel() // c)
        moments = all_reduce(torch.cat([x64.sum((0, 2, 3)), (x64 * x64).sum((0, 2, 3)), count]))
        n = moments[-1]
        mean = moments[:c] / n
        var = (moments[c:2 * c] / n - mean * mean).clamp_min(0)  # biased, as BatchNorm normalises with
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.to(x.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_((var * n / (n - 1)).to(x.dtype), alpha=m)
        scale = torch.rsqrt(var + self.eps).to(x.dtype)
        y = (x - mean.to(x.dtype).view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y


def convert_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm over the global batch: torch's SyncBatchNorm on CUDA, `GlobalBatchNorm` elsewhere."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            like = next(child.parameters(), None) if child.affine else child.running_mean
            if like is not None:
                new = new.to(device=like.device, dtype=like.dtype)
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(model, name, new)
        else:
            convert_batchnorm(child, device)
    return model


# ----------------------------------------------------------------------------- methods on the global batch

def _gather(value, world_size: int):
    """Concatenate, along dim 0, a (nested) batch-shaped value from every process (no gradient)."""
    if torch.is_tensor(value) and value.dim() >= 1:
        parts = [torch.empty_like(value) for _ in range(world_size)]
        dist.all_gather(parts, value.detach().contiguous())
        return torch.cat(parts)
    if isinstance(value, dict):
        return {k: _gather(v, world_size) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_gather(v, world_size) for v in value)
    return value


def _broadcast_gradients(model: nn.Module) -> None:
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.broadcast(flat, src=0)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


class GlobalBatchMethod(Method):
    """Runs a method under DDP as it runs on one process over the global batch: its `after_backward` sees the
    gathered outputs and labels, then rank 0's (modulated) gradients are broadcast. Other hooks are the
    method's own; attributes are read from it (`trainer.method.alpha`)."""

    def __init__(self, method: Method):
        self.method = method
        self.name = method.name

    def __getattr__(self, name):
        if name == "method":
            raise AttributeError(name)
        return getattr(self.method, name)

    def setup(self, trainer):
        self.method.setup(trainer)

    def on_epoch_start(self, trainer, epoch):
        self.method.on_epoch_start(trainer, epoch)

    def transform_batch(self, batch, trainer):
        return self.method.transform_batch(batch, trainer)

    def losses(self, out, batch, trainer):
        return self.method.losses(out, batch, trainer)

    def backward(self, loss, losses, trainer):
        if type(self.method).backward is not Method.backward:  # e.g. MMPareto's per-loss gradients
            raise ValueError(f"{self.method.name} computes its own backward pass, which DistributedTrainer does not "
                             "synchronise across processes; train it on one process")
        super().backward(loss, losses, trainer)

    def after_backward(self, out, batch, trainer):
        if type(self.method).after_backward is Method.after_backward:
            return {}
        world = dist.get_world_size()
        logs = self.method.after_backward(_gather(out, world), _gather(batch, world), trainer)
        _broadcast_gradients(trainer.model)
        return logs

    def on_epoch_end(self, trainer, epoch, record):
        self.method.on_epoch_end(trainer, epoch, record)

    def state_dict(self):
        return self.method.state_dict()

    def load_state_dict(self, state):
        self.method.load_state_dict(state)

    def config(self):
        return self.method.config()


# ----------------------------------------------------------------------------- the trainer

class _ThroughDDP:
    """Instance `forward` of the plain module that sends training forwards through the DDP wrapper (which calls
    the module again: the re-entrant call runs the real forward). Eval / no-grad forwards skip DDP."""

    def __init__(self, module: nn.Module, ddp: nn.Module):
        self.forward = type(module).forward.__get__(module)
        self.module, self.ddp, self.inside = module, ddp, False

    def __call__(self, *args, **kwargs):
        if self.inside or not (self.module.training and torch.is_grad_enabled()):
            return self.forward(*args, **kwargs)
        self.inside = True
        try:
            return self.ddp(*args, **kwargs)
        finally:
            self.inside = False


class DistributedTrainer(Trainer):
    """`Trainer` under DistributedDataParallel (see the module docstring); on one process, the reference run
    with the same sampler. `sync_batchnorm`: BatchNorm statistics over the global batch (default).
    `find_unused_parameters`: for DDP; default True when training a subset of the modalities."""

    def __init__(self, model: nn.Module, config: TrainConfig | None = None, method: Method | None = None,
                 checkpoint=None, record=None, *, sync_batchnorm: bool = True,
                 find_unused_parameters: bool | None = None):
        self.dist = info()
        config = config or TrainConfig()
        world = self.dist.world_size
        if config.batch_size % world:
            raise ValueError(f"the global batch_size {config.batch_size} must divide by the {world} processes")
        if self.dist.enabled:
            if torch.cuda.is_available() and config.device in ("auto", "cuda"):
                config = dataclasses.replace(config, device=f"cuda:{self.dist.local_rank}")
            config = dataclasses.replace(config, progress=config.progress and self.dist.is_main)
            if sync_batchnorm:
                device = torch.device("cuda" if str(config.device).startswith("cuda") else "cpu")
                model = convert_batchnorm(model, device)
            method = GlobalBatchMethod(method or Method())
        super().__init__(model, config, method, checkpoint, record if self.dist.is_main else None)
        self.ddp = None
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            unused = len(self.config.modalities) < 2 if find_unused_parameters is None else find_unused_parameters
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DDP(self.model, device_ids=ids, broadcast_buffers=False, find_unused_parameters=unused)

    @property
    def per_process_batch(self) -> int:
        return self.config.batch_size // self.dist.world_size

    def loader(self, data: Dataset, epoch: int) -> DataLoader:
        sampler = DistributedSampler(data, num_replicas=self.dist.world_size, rank=self.dist.rank, shuffle=True,
                                     seed=self.config.seed, drop_last=False)
        sampler.set_epoch(epoch)
        b = self.per_process_batch
        return DataLoader(data, b, sampler=sampler, num_workers=self.config.num_workers,
                          pin_memory=self.device.type == "cuda", drop_last=len(sampler) > b)

    def train_step(self, batch: dict) -> dict:
        logs = super().train_step(batch)
        if not self.dist.enabled:
            return logs
        keys = sorted(logs)
        values = torch.stack([torch.as_tensor(logs[k], dtype=torch.float32, device=self.device).detach().reshape(())
                              for k in keys])
        dist.all_reduce(values)
        return dict(zip(keys, values / self.dist.world_size))

    def fit(self, train: Dataset, val: Dataset | None = None):
        if self.ddp is None:
            return super().fit(train, val)
        self.model.forward = _ThroughDDP(self.model, self.ddp)
        try:
            return super().fit(train, val)
        finally:
            del self.model.forward  # back to the class's forward

    def save_checkpoint(self, path: Path) -> None:
        if self.dist.is_main:
            super().save_checkpoint(path)


# ----------------------------------------------------------------------------- CPU launcher (tests, notebooks)

def _entry(rank: int, fn, world_size: int, init_file: str, args: tuple) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        fn(*args)
    finally:
        dist.barrier()
        dist.destroy_process_group()


def launch(fn, world_size: int, *args, start_method: str | None = None) -> None:
    """Run `fn(*args)` in `world_size` CPU processes joined by a gloo process group (what torchrun does for a
    script, for a function), one thread each. `start_method`: "fork" where there is one (Linux; no re-import,
    as DataLoader workers start), else "spawn", for which `fn` must be importable (a module's top level)."""
    import multiprocessing

    import torch.multiprocessing as mp

    if start_method is None:
        start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() and sys.platform == "linux" else "spawn"
    with tempfile.TemporaryDirectory() as folder:
        init_file = str(Path(folder) / "rendezvous")
        mp.start_processes(_entry, args=(fn, world_size, init_file, args), nprocs=world_size, join=True,
                           start_method=start_method)
