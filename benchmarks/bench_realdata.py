"""Real-data pipeline figures on fixture data it makes itself: preprocessing throughput (clips/s, 0 and N worker
processes), data-loader throughput (samples/s, at the papers' input shapes), and what the training step consumes
(samples/s of `Trainer.train_step` on the same shapes). The loader keeps the accelerator fed when its rate is
above the step's; otherwise raise `--workers` (TrainConfig.num_workers, `python -m avlab train --workers`).

    python benchmarks/bench_realdata.py [--dataset cremad] [--clips 48] [--seconds 3] [--video-size 320 240]
                                        [--workers 4] [--image-size 224] [--width 64] [--device auto]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from avlab.data.fixtures import make_raw
from avlab.data.preprocess import preprocess
from avlab.data.realdata import load_real
from avlab.experiment import build_model
from avlab.train import Trainer, TrainConfig
from avlab.utils import seed_everything


def make_fixture(dataset: str, folder: Path, clips: int, seconds: float, video_size: tuple[int, int]) -> dict:
    per_class = max(1, clips // 6)
    return make_raw(dataset, folder, clips_per_class=per_class, num_classes=6 if dataset == "cremad" else 3,
                    seconds=seconds, size=video_size)


def loader_rate(data, batch_size: int, workers: int, batches: int) -> float:
    loader = DataLoader(data, batch_size, shuffle=True, num_workers=workers, drop_last=True,
                        persistent_workers=False)
    seen, start = 0, None
    for i, batch in enumerate(loader):
        if i == 0:
            start = time.perf_counter()  # after the workers' start-up and the first batch
            continue
        seen += len(batch["label"])
        if i == batches:
            break
    return seen / (time.perf_counter() - start) if seen else float("nan")


def step_rate(data, width: int, batch_size: int, device: str, steps: int) -> tuple[float, str]:
    seed_everything(0)
    model = build_model(data, "concat", width)
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=batch_size, device=device, progress=False))
    batch = next(iter(DataLoader(data, batch_size, shuffle=False)))
    batch = {k: (v.repeat(*([batch_size // len(v) + 1] + [1] * (v.dim() - 1)))[:batch_size] if torch.is_tensor(v)
                 else v) for k, v in batch.items()}
    batch = trainer.to_device(batch)
    trainer.train_step(batch)  # warm-up (cuDNN autotune, lazy init)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start), str(trainer.device)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="cremad", choices=["cremad", "ave", "kinetics_sounds", "vggsound", "ucf101"])
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--video-size", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--width", type=int, default=64, help="ResNet-18 width of the step benchmark (64 = real)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="avlab-bench-"))
    try:
        start = time.perf_counter()
        info = make_fixture(args.dataset, folder / "raw", args.clips, args.seconds, tuple(args.video_size))
        print(f"fixture: {args.dataset}, {len(info['clips'])} clips of {args.seconds:g} s at "
              f"{args.video_size[0]}x{args.video_size[1]}, 10 fps, written in {time.perf_counter() - start:.1f} s")
        rows = []
        for workers in sorted({0, args.workers}):
            out = folder / f"out{workers}"
            report = preprocess(args.dataset, folder / "raw", out, workers=workers, progress=False,
                                **info["options"])
            rows.append((f"preprocess, {workers} workers", report.clips_per_second, "clips/s"))
        splits = load_real(args.dataset, folder / f"out{args.workers}", image_size=args.image_size)
        train = splits["train"]
        if len(train) < 2 * args.batch_size:  # the loader rate is timed from the second full batch on
            raise SystemExit(f"--clips {args.clips} gives {len(train)} training clips; timing the loader needs at "
                             f"least two batches of --batch-size {args.batch_size}")
        sample = train[0]
        print(f"item: audio {tuple(sample['audio'].shape)}, visual {tuple(sample['visual'].shape)}")
        for workers in sorted({0, args.workers}):
            rows.append((f"data loader, {workers} workers", loader_rate(train, args.batch_size, workers, args.batches),
                         "samples/s"))
        rate, device = step_rate(train, args.width, args.batch_size, args.device, args.steps)
        rows.append((f"train step (width {args.width}, {device})", rate, "samples/s"))
        width = max(len(r[0]) for r in rows)
        for name, value, unit in rows:
            print(f"{name:<{width}}  {value:10.1f} {unit}")
        best_loader = max(v for n, v, _ in rows if n.startswith("data loader"))
        verdict = "keeps up with" if best_loader >= rate else "is SLOWER than"
        print(f"the data loader ({best_loader:.1f} samples/s) {verdict} the training step ({rate:.1f} samples/s)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
