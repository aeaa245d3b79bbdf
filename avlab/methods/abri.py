"""ABRi, Adaptive BatchNorm Re-initialisation (Feng, Xia & Hu, "Revisiting Pre-training in Audio-Visual
Learning", arXiv 2302.03533; official code `models/abri_backbone.py`), and its two plain baselines.

Every BN layer of an initialised network gets a freshly initialised twin (gamma 1, beta 0, running mean 0,
running var 1). Both normalise the same input x, and a learnable weight w mixes them:

    y = w * BN_pre(x) + (1 - w) * BN_new(x)

w starts at 0.5 (the authors' default `alpha`), is trained with everything else and, as in the authors' code,
is not clamped to [0, 1]. `mode="layer"` gives one scalar w per BN layer (their `fusion='batch'`),
`mode="channel"` one w per channel. Nothing decides which layers get it: every BN does, as in their code.

Why it revives dead channels: in train mode both BNs normalise with the same batch statistics, so the pair is
one BN whose affine is gamma = w * gamma_pre + (1 - w) * gamma_new; a channel whose pre-trained gamma and beta
are ~0 starts at gamma ~ 0.5 instead of ~0, passes signal through its ReLU and gets gradient again.

Where it pays (chapter 04, audio alone on AV-Digits): only where dead channels are the network's shortage. With
40 % of the source's channels small it buys nothing over plain cross-modal transfer; with 81 % small and 4 epochs
of fine-tuning, plain transfer loses 0.11 of accuracy and ABRi keeps most of it (+0.09, six fresh seeds).
"""
from __future__ import annotations

import torch
from torch import nn

from avlab.weights.transfer import cross_modal_init

MODES = ("layer", "channel")


class ABRiBatchNorm2d(nn.Module):
    """A pre-trained BN (`pre`) and a fresh twin (`new`) mixed by a learnable weight `mix`."""

    def __init__(self, pre: nn.BatchNorm2d, mode: str = "layer", init: float = 0.5):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown ABRi mode {mode!r}; choose one of {MODES}")
        self.mode, self.num_features = mode, pre.num_features
        self.pre = pre
        self.new = nn.BatchNorm2d(pre.num_features, eps=pre.eps, momentum=pre.momentum, affine=True,
                                  track_running_stats=pre.track_running_stats)
        self.new.to(device=pre.weight.device, dtype=pre.weight.dtype)  # fresh: gamma 1, beta 0, mean 0, var 1
        shape = (1,) if mode == "layer" else (1, pre.num_features, 1, 1)
        self.mix = nn.Parameter(torch.full(shape, float(init), device=pre.weight.device, dtype=pre.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix * self.pre(x) + (1 - self.mix) * self.new(x)

    def extra_repr(self) -> str:
        return f"{self.num_features}, mode={self.mode!r}"


def _replace_bns(module: nn.Module, make) -> int:
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, ABRiBatchNorm2d):
            continue
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, make(child))
            count += 1
        else:
            count += _replace_bns(child, make)
    return count


def apply_abri(module: nn.Module, mode: str = "layer", init: float = 0.5) -> nn.Module:
    """Wrap every BatchNorm2d of `module` (in place) in an ABRi pair; returns `module`.

    Call it *after* loading the pre-trained weights (the pre-trained BN becomes `pre`). Parameters created
    here are new: build the optimiser afterwards (the Trainer does).
    """
    if mode not in MODES:
        raise ValueError(f"unknown ABRi mode {mode!r}; choose one of {MODES}")
    if _replace_bns(module, lambda bn: ABRiBatchNorm2d(bn, mode, init)) == 0:
        raise ValueError("apply_abri found no BatchNorm2d to wrap (already wrapped?)")
    return module


def mixing_weights(module: nn.Module) -> dict[str, torch.Tensor]:
    """{layer name: w} of every ABRi pair (a 1-element tensor, or C of them in channel mode)."""
    return {name: m.mix.detach().reshape(-1).clone() for name, m in module.named_modules()
            if isinstance(m, ABRiBatchNorm2d)}


@torch.no_grad()
def reset_bn(module: nn.Module, max_abs_gamma: float | None = None) -> int:
    """The authors' naive baselines. `max_abs_gamma=None`: reset every BN (gamma 1, beta 0, running mean 0,
    var 1; their `naive_bn_random`). A number: reset only the channels with |gamma| below it (their
    `better_naive_bn_random` uses 1e-6). Returns the number of channels reset."""
    count = 0
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            sel = torch.ones_like(m.weight, dtype=torch.bool) if max_abs_gamma is None else m.weight.abs() < max_abs_gamma
            m.weight[sel], m.bias[sel] = 1.0, 0.0
            if m.running_mean is not None:
                m.running_mean[sel], m.running_var[sel] = 0.0, 1.0
            count += int(sel.sum())
    return count


# ----------------------------------------------------------------------------- the four starts chapter 04 compares

INITS = ("random", "cross-modal", "ABRi", "BN reset")


def initialise_encoder(model: nn.Module, init: str, state: dict | None, modality: str = "audio",
                       abri_mode: str = "layer", w0: float = 0.5, input_mode: str = "sum") -> dict:
    """Start `model`'s `modality` encoder (in place) as one of `INITS`:

    "random"       left as built;
    "cross-modal"  its ResNet loaded from `state`, a network pre-trained on another modality;
    "ABRi"         that, then every BN paired with a fresh twin (`apply_abri(mode=abri_mode, init=w0)`);
    "BN reset"     that, then every BN reset (`reset_bn`, the authors' naive baseline).

    Returns `cross_modal_init`'s loading report ({} for "random"), with `bn_channels_reset` for "BN reset"."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {INITS}")
    if init == "random":
        return {}
    if state is None:
        raise ValueError(f"init {init!r} needs the pre-trained `state` to load")
    report = cross_modal_init(model, state, modality, input_mode=input_mode)
    backbone = model.encoder(modality).backbone
    if init == "ABRi":
        apply_abri(backbone, abri_mode, w0)
    elif init == "BN reset":
        report["bn_channels_reset"] = reset_bn(backbone)
    return report


def build_initialised(data, init: str, state: dict | None = None, modality: str = "audio", fusion: str = "concat",
                      width: int = 8, **options) -> nn.Module:
    """`build_model(data, fusion, width)` started by `initialise_encoder(model, init, state, modality, **options)`.

    A `build` for train_model / train_many: `functools.partial(build_initialised, init="ABRi", state=state)`
    pickles, so the runs can go to worker processes; each worker builds (and transfers into) its own model."""
    from avlab.experiment import build_model  # here: avlab.experiment imports avlab.methods

    model = build_model(data, fusion, width)
    initialise_encoder(model, init, state, modality, **options)
    return model
