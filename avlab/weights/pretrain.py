"""The small pre-trained visual ResNet-18 that chapter 04 transfers to audio, made offline and reproducibly.

No weights can be downloaded here, so avlab pre-trains its own image network: the width-8 ResNet-18 of the
visual encoder, trained on the AV-Digits visual task (digit clips, noise-free frames). At this scale plain
pre-training leaves no dead BN channels (measured in shared/research/data.md 3.3: the phenomenon of Feng et
al. comes from ImageNet-scale training). So the pre-training adds an L1 penalty on every BN gamma, as in
network slimming (Liu et al. 2017):

    loss = CE + l1 * sum_layers sum_channels |gamma|

which drives part of the channels to gamma ~ 0 and, through weight decay, beta ~ 0: the dead channels that
large-scale pre-training leaves behind, induced on purpose. This is said plainly in the chapter.

    python -m avlab.weights.pretrain     # writes avlab/weights/pretrained/visual_resnet18_w8_slim.pt and .json

The checkpoint and its provenance ship inside the package (package data, so a pip-installed avlab has the same
bytes). `pretrained_visual_state()` loads it (or, where it is missing, runs the same pre-training again and
caches the result in the data folder).
"""
from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from avlab.methods.base import Method
from avlab.utils import data_dir, in_clone, versions

CHECKPOINT = "visual_resnet18_w8_slim.pt"
SHIPPED = Path(__file__).resolve().parent / "pretrained"  # package data: in the wheel, next to this file


class GammaL1(Method):
    """Network-slimming sparsity: adds l1 * sum |gamma| over the BN layers of one modality's encoder."""

    name = "gamma_l1"

    def __init__(self, l1: float = 5e-3, modality: str = "visual"):
        self.l1, self.modality = l1, modality

    def losses(self, out, batch, trainer):
        gammas = [m.weight for m in trainer.model.encoder(self.modality).modules() if isinstance(m, nn.BatchNorm2d)]
        return {"gamma_l1": self.l1 * torch.cat([g.abs() for g in gammas]).sum()}


@dataclass
class PretrainConfig:
    width: int = 8
    preset: str = "complementary"  # only its visual frames are used
    vis_noise: float = 0.0  # the source task: clean digit clips
    l1: float = 5e-3
    epochs: int = 30
    optimizer: str = "sgd"
    lr: float = 0.05
    weight_decay: float = 5e-4
    scheduler: str | None = "cosine"
    batch_size: int = 64
    seed: int = 0


def pretrain_visual(config: PretrainConfig | None = None, progress: bool = False) -> tuple[dict, dict]:
    """Train the visual encoder alone with the gamma-L1 penalty; returns (backbone state dict, info)."""
    from avlab.data import load_avdigits
    from avlab.diagnostics.dead_channels import bn_parameters
    from avlab.diagnostics import linear_probe
    from avlab.experiment import train_model

    c = config or PretrainConfig()
    splits = load_avdigits(c.preset, vis_noise=c.vis_noise)
    model, run = train_model(splits, GammaL1(c.l1, "visual"), fusion="concat", width=c.width,
                             modalities=("visual",), seed=c.seed, epochs=c.epochs, optimizer=c.optimizer,
                             lr=c.lr, weight_decay=c.weight_decay, scheduler=c.scheduler,
                             batch_size=c.batch_size, progress=progress)
    state = {k: v.clone() for k, v in model.visual.backbone.state_dict().items()}
    params = bn_parameters(model.visual.backbone)
    small = sum(r["abs_gamma"] < 0.05 and r["abs_beta"] < 0.05 for r in params) / len(params)
    info = {"config": asdict(c), "val_acc_visual": run.last("val_acc"),
            "probe_test_visual": linear_probe(model, splits["train"], splits["test"], "visual"),
            "fraction_bn_channels_gamma_and_beta_below_0.05": small, "bn_channels": len(params),
            "history": run.history, "versions": versions()}
    return state, info


def save_pretrained(state: dict, info: dict, folder: str | Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CHECKPOINT
    # float16 on disk (half the size); `pretrained_visual_state` returns float32
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    provenance = {
        "file": CHECKPOINT, "sha256": digest,
        "what": "avlab.models.ResNet18(in_channels=1, width=8) state dict (float16 on disk): the visual "
                "encoder's backbone",
        "how": "python -m avlab.weights.pretrain (avlab.weights.pretrain.pretrain_visual): AV-Digits visual task alone, CE plus "
               "network-slimming L1 on every BN gamma, seeded and deterministic on the CPU",
        "why_l1": "without it no dead BN channels appear at this scale (shared/research/data.md 3.3); the L1 "
                  "induces the small-|gamma|, small-|beta| channels that ImageNet pre-training leaves",
        **{k: v for k, v in info.items() if k != "history"},
        "val_acc_per_epoch": [round(h["val_acc"], 4) for h in info.get("history", [])],
    }
    (folder / (Path(CHECKPOINT).stem + ".json")).write_text(json.dumps(provenance, indent=1, default=str))
    return path


def pretrained_visual_state(build: bool = True, progress: bool = False) -> dict:
    """The checkpoint shipped in the package (`avlab/weights/pretrained/`), else one cached in the data folder;
    where neither exists, pre-train it again with the recorded settings (a minute or two on a CPU) and cache it."""
    for folder in (SHIPPED, data_dir() / "pretrained"):
        if (folder / CHECKPOINT).exists():
            state = torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=True)
            return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    if not build:
        raise FileNotFoundError(f"{CHECKPOINT} not found; run `python -m avlab.weights.pretrain` to make it")
    print(f"{CHECKPOINT} not found: pre-training it now (python -m avlab.weights.pretrain does the same)")
    state, info = pretrain_visual(progress=progress)
    save_pretrained(state, info, data_dir() / "pretrained")
    return state


def pretrained_provenance() -> dict:
    """How the shipped checkpoint was made (settings, sha256, accuracy, small-channel fraction); {} if absent."""
    path = SHIPPED / (Path(CHECKPOINT).stem + ".json")
    return json.loads(path.read_text()) if path.exists() else {}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # a clone re-makes the shipped file; an installed avlab writes to its data folder, never into site-packages
    parser.add_argument("--out", default=str(SHIPPED if in_clone() else data_dir() / "pretrained"))
    defaults = PretrainConfig()
    for name, value in asdict(defaults).items():
        kind = type(value) if value is not None else str
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=value)
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    state, info = pretrain_visual(PretrainConfig(**args), progress=True)
    path = save_pretrained(state, info, out)
    print(json.dumps({k: v for k, v in info.items() if k not in ("history", "versions")}, indent=1))
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
