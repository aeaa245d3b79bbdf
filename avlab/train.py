"""The one training loop. Every method of the course plugs into it (`avlab.methods.base.Method`).

    trainer = Trainer(model, TrainConfig(epochs=10, seed=0), method=OGMGE(alpha=0.8))
    run = trainer.fit(splits["train"], splits["val"])
    run.history[-1]   # {"epoch": 9, "loss": ..., "val_acc": ..., "val_acc_audio": ..., "grad_norm_visual": ...}

It picks the device (CUDA, then MPS, then CPU), uses mixed precision on CUDA, is seeded and deterministic on
the CPU, keeps a per-epoch history, writes one JSON record per run, and saves a checkpoint each epoch from
which `fit` resumes exactly where it stopped. `TrainConfig(select="val_acc")` ends with the weights of the best
validation epoch instead of the last (`run.record["selected_epoch"]`, `run.selected`); off by default.
"""
from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, RandomSampler
from tqdm.auto import tqdm

from avlab.evaluation import evaluate, predict  # noqa: F401  (re-exported: avlab.train.evaluate)
from avlab.methods.base import Method
from avlab.models.classifier import MODALITIES
from avlab.utils import get_device, seed_everything, versions


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"  # "adam", "adamw" or "sgd" (momentum 0.9)
    weight_decay: float = 1e-4
    scheduler: str | None = None  # None, "cosine" (per epoch) or "step" (x0.1 at 70% of the epochs)
    seed: int = 0
    modalities: tuple[str, ...] = MODALITIES  # train on a subset, e.g. ("visual",), for a uni-modal model
    device: str = "auto"
    amp: bool = True  # mixed precision where it pays off (CUDA); ignored elsewhere
    grad_clip: float | None = None
    num_workers: int = 0
    progress: bool = True
    # "val_acc" (or another "val_acc*" key of the history): keep, in memory, the weights of the epoch where that
    # validation number was highest, and restore them when training ends (the epoch is chosen on validation,
    # never on test). None (default): the weights of the last epoch.
    select: str | None = None

    def __post_init__(self):
        self.modalities = tuple(self.modalities)
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities:
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose 'adam', 'adamw' or 'sgd'")
        if self.scheduler not in (None, "cosine", "step"):
            raise ValueError(f"unknown scheduler {self.scheduler!r}; choose None, 'cosine' or 'step'")
        if self.select is not None and not str(self.select).startswith("val_acc"):
            raise ValueError(f"select={self.select!r}: choose None (last epoch) or a validation accuracy of the "
                             "history, e.g. 'val_acc' (the best-validation epoch's weights are restored)")


@dataclass
class Run:
    """What `fit` returns: the per-epoch history and the run record (also written as JSON)."""
    history: list[dict] = field(default_factory=list)
    record: dict = field(default_factory=dict)

    def last(self, key: str):
        return self.history[-1][key]

    def best(self, key: str = "val_acc"):
        return max(h[key] for h in self.history)

    @property
    def selected(self) -> dict:
        """The history entry of the epoch whose weights the model holds (the last one unless `select`)."""
        epoch = self.record.get("selected_epoch")
        return self.history[-1] if epoch is None else next(h for h in self.history if h["epoch"] == epoch)


class Trainer:
    def __init__(self, model: torch.nn.Module, config: TrainConfig | None = None, method: Method | None = None,
                 checkpoint: str | Path | None = None, record: str | Path | None = None):
        self.config = config or TrainConfig()
        self.method = method or Method()
        self.checkpoint, self.record_path = (Path(p) if p else None for p in (checkpoint, record))
        self.device = get_device(self.config.device)
        seed_everything(self.config.seed)
        self.model = model.to(self.device)
        self.optimizer = self._make_optimizer()
        self.scheduler = self._make_scheduler()
        self.use_amp = self.config.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.epoch, self.step = 0, 0
        self.history: list[dict] = []
        self.train_data = self.val_data = None  # set by fit: methods that read a split themselves (`Method.data`)
        self.best: dict | None = None  # with config.select: {"epoch", "value", "model": state dict on the CPU}
        self.method.setup(self)

    # ------------------------------------------------------------------ set-up
    def _make_optimizer(self):
        c, params = self.config, [p for p in self.model.parameters() if p.requires_grad]
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=0.9, weight_decay=c.weight_decay)
        kind = torch.optim.Adam if c.optimizer == "adam" else torch.optim.AdamW
        return kind(params, lr=c.lr, weight_decay=c.weight_decay)

    def _make_scheduler(self):
        c = self.config
        if c.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=c.epochs)
        if c.scheduler == "step":
            return torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=max(1, int(0.7 * c.epochs)), gamma=0.1)
        return None

    def loader(self, data: Dataset, epoch: int) -> DataLoader:
        # One generator per epoch, seeded from (seed, epoch): the order of epoch e is the same whether or not
        # training was interrupted before it, which is what makes resuming exact.
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        return DataLoader(data, self.config.batch_size, sampler=RandomSampler(data, generator=generator),
                          num_workers=self.config.num_workers, drop_last=len(data) > self.config.batch_size)

    def inputs(self, batch: dict) -> dict:
        return {m: batch[m] for m in self.config.modalities}

    def to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    # ------------------------------------------------------------------ training
    def base_losses(self, out: dict, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Cross-entropy of the fused logits, plus one per uni-modal head (online probes, or MLB's multi-loss)."""
        losses = {"fused": F.cross_entropy(out["logits"], y)}
        for m in self.config.modalities:
            losses[f"head_{m}"] = F.cross_entropy(out[m], y)
        return losses

    def train_step(self, batch: dict) -> dict:
        model, method = self.model, self.method
        batch = method.transform_batch(self.to_device(batch), self)
        y = batch["label"]
        with torch.autocast(self.device.type, enabled=self.use_amp):
            out = model(**self.inputs(batch))
            losses = {**self.base_losses(out, y), **method.losses(out, batch, self)}
            loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss.item()} at epoch {self.epoch}, step {self.step} ({ {k: v.item() for k, v in losses.items()} }); "
                "lower the learning rate or set TrainConfig(grad_clip=...); the last checkpoint holds the last good epoch")
        self.optimizer.zero_grad(set_to_none=True)
        method.backward(loss, losses, self)  # default: self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # methods read and modulate real gradients, never scaled ones
        logs = {f"loss_{k}": v.detach() for k, v in losses.items()}
        for m in self.config.modalities:
            grads = [p.grad for p in model.encoder(m).parameters() if p.grad is not None]
            logs[f"grad_norm_{m}"] = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))  # one fused call
        logs.update(method.after_backward(out, batch, self))
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        logs["loss"] = loss.detach()
        logs["acc"] = (out["logits"].argmax(1) == y).float().mean()
        return logs

    def fit(self, train: Dataset, val: Dataset | None = None) -> Run:
        if self.checkpoint is not None and self.checkpoint.exists():
            self.load_checkpoint(self.checkpoint)
        self.train_data, self.val_data = train, val
        start = time.perf_counter()
        bar = tqdm(range(self.epoch, self.config.epochs), desc=self.method.name, disable=not self.config.progress,
                   initial=self.epoch, total=self.config.epochs, leave=False)
        for epoch in bar:
            self.epoch = epoch
            self.model.train()
            self.method.on_epoch_start(self, epoch)
            sums: dict[str, torch.Tensor] = {}
            steps = 0
            for batch in self.loader(train, epoch):
                for k, v in self.train_step(batch).items():
                    sums[k] = sums.get(k, 0.0) + torch.as_tensor(v, dtype=torch.float32).detach()
                steps += 1
            record = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"],
                      **{k: (v / steps).item() for k, v in sums.items()}}
            if val is not None:
                record.update({f"val_{k}": v for k, v in evaluate(self.model, val, self.config.modalities,
                                                                  self.config.batch_size * 4).items()})
            self._remember_if_best(record)  # the weights just scored: before a method's epoch-end change (Re-learning)
            self.method.on_epoch_end(self, epoch, record)
            if self.scheduler is not None:
                self.scheduler.step()
            self.history.append(record)
            self.epoch = epoch + 1
            bar.set_postfix({k: round(record[k], 3) for k in ("loss", "val_acc") if k in record})
            if self.checkpoint is not None:
                self.save_checkpoint(self.checkpoint)
        if self.best is not None:  # the selected epoch's weights; the checkpoint keeps the last epoch's
            self.model.load_state_dict(self.best["model"])
        run = Run(list(self.history), self.run_record(time.perf_counter() - start))
        if self.record_path is not None:
            self.record_path.parent.mkdir(parents=True, exist_ok=True)
            self.record_path.write_text(json.dumps(run.record, indent=1, default=str))
        return run

    def _remember_if_best(self, record: dict) -> None:
        key = self.config.select
        if key is None:
            return
        if key not in record:
            raise ValueError(f"select={key!r}, but the epoch's record has no {key!r} (keys: {sorted(record)}); "
                             "pass a validation split to fit(train, val), or select=None")
        if self.best is None or record[key] > self.best["value"]:  # ties keep the earlier epoch
            state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            self.best = {"epoch": record["epoch"], "value": record[key], "model": state}

    def run_record(self, seconds: float) -> dict:
        selected = {"select": self.config.select, "selected_epoch": self.best["epoch"]} if self.best else {}
        return {"config": asdict(self.config), "method": {"name": self.method.name, **self.method.config()},
                "model": {"class": type(self.model).__name__, "fusion": getattr(self.model, "fusion_name", None),
                          "parameters": sum(p.numel() for p in self.model.parameters())},
                "history": self.history, "versions": versions(), "device": str(self.device), "seconds": seconds,
                **selected}

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: Path) -> None:
        state = {"epoch": self.epoch, "step": self.step, "history": self.history, "config": asdict(self.config),
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                 "scaler": self.scaler.state_dict(), "method": self.method.state_dict(), "best": self.best,
                 "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                         "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)  # atomic: a crash mid-save leaves the previous checkpoint intact

    def load_checkpoint(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as err:
            raise RuntimeError(f"checkpoint {path} cannot be read ({err}); delete it to start afresh") from err
        saved, now = state["config"], asdict(self.config)
        # more epochs may be asked for (training goes on), unless a schedule was laid out over the old number
        free = {"progress", "device", "num_workers"} | ({"epochs"} if self.config.scheduler is None else set())
        differ = {k: (saved.get(k), v) for k, v in now.items() if k not in free and saved.get(k) != v
                  and not (isinstance(v, tuple) and tuple(saved.get(k) or ()) == v)}
        if differ:
            raise ValueError(f"checkpoint {path} was written with other settings {differ} (saved, now); "
                             "use another checkpoint path or delete it")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.method.load_state_dict(state["method"])
        self.epoch, self.step, self.history = state["epoch"], state["step"], state["history"]
        self.best = state.get("best")
        rng = state["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
