"""Foundation figures: AV-Digits build time and size, training throughput of avlab's loop against a bare
PyTorch loop on the same model and batches (goal: overhead under 5%), and peak memory.

    python benchmarks/bench_foundation.py [--epochs 2] [--width 8] [--device auto]
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from avlab.data import load_avdigits
from avlab.experiment import build_model
from avlab.train import Trainer, TrainConfig
from avlab.utils import get_device, seed_everything


def bare_loop(model, data, config, device) -> float:
    """The loop a researcher would write by hand: same loader, model, optimiser and batch, nothing else."""
    trainer = Trainer(model, TrainConfig(**{**vars(config), "progress": False}))  # only to share its loader
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    model.train()
    seen, start = 0, time.perf_counter()
    for epoch in range(config.epochs):
        for batch in trainer.loader(data, epoch):
            audio, visual, y = (batch[k].to(device) for k in ("audio", "visual", "label"))
            loss = F.cross_entropy(model(audio=audio, visual=visual)["logits"], y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def avlab_loop(model, data, config) -> float:
    trainer = Trainer(model, config)
    start = time.perf_counter()
    trainer.fit(data)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return config.epochs * (len(data) // config.batch_size) * config.batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = get_device(args.device)

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        splits = load_avdigits("dominant_audio", cache_dir=cache)
        build = time.perf_counter() - start
        size = sum(f.stat().st_size for f in Path(cache).glob("*.npz"))
        start = time.perf_counter()
        load_avdigits("dominant_audio", cache_dir=cache)
        load = time.perf_counter() - start
    n = sum(len(s) for s in splits.values())
    print(f"AV-Digits (dominant_audio, {n} samples): build {build:.1f} s, load from cache {load:.2f} s, "
          f"cache {size / 2**20:.1f} MiB on disk")

    config = TrainConfig(epochs=args.epochs, device=str(device), progress=False)
    bare, ours = [], []
    for r in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        seed_everything(r)
        bare.append(bare_loop(build_model(splits["train"], width=args.width).to(device), splits["train"], config, device))
        seed_everything(r)
        ours.append(avlab_loop(build_model(splits["train"], width=args.width), splits["train"], config))
    b, o = max(bare), max(ours)
    print(f"training throughput on {device} (width {args.width}, batch {config.batch_size}, best of {args.repeats}): "
          f"bare loop {b:.0f} samples/s, avlab loop {o:.0f} samples/s, overhead {100 * (b - o) / b:+.1f}%")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {peak:.0f} MiB resident" + (
        f", {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB CUDA" if device.type == "cuda" else ""))


if __name__ == "__main__":
    main()
