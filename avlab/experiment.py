"""One-line runs for the chapters: build the model that fits a dataset, train it, return model and history."""
from __future__ import annotations

import statistics

from avlab.methods.base import Method
from avlab.models.classifier import MODALITIES, AVClassifier
from avlab.train import Run, Trainer, TrainConfig


def build_model(data, fusion: str = "concat", width: int = 8, **kwargs) -> AVClassifier:
    """An AVClassifier whose input channels match `data`'s samples (AV-Digits: 1-channel frames)."""
    sample = data[0]
    return AVClassifier(data.num_classes, fusion, width, audio_channels=sample["audio"].shape[0],
                        visual_channels=sample["visual"].shape[0], **kwargs)


def train_model(splits: dict, method: Method | None = None, fusion: str = "concat", width: int = 8,
                modalities=MODALITIES, seed: int = 0, checkpoint=None, record=None,
                **config) -> tuple[AVClassifier, Run]:
    """Train on splits["train"], validating on splits["val"]; `config` goes to TrainConfig (epochs, lr, ...)."""
    config = TrainConfig(seed=seed, modalities=tuple(modalities), **config)
    # seed before building: the initial weights are part of what a seed fixes
    from avlab.utils import seed_everything
    seed_everything(seed)
    model = build_model(splits["train"], fusion, width)
    run = Trainer(model, config, method, checkpoint=checkpoint, record=record).fit(splits["train"], splits.get("val"))
    return model, run


def mean_std(values) -> tuple[float, float]:
    values = list(values)
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)
