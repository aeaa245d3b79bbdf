"""Cross-modal initialisation: load a pre-trained ResNet-18 (ours, or torchvision's ImageNet weights) into an
encoder of another modality, e.g. an image network into the spectrogram encoder.

`avlab.models.ResNet18` has torchvision's module names, so the weights load by name; what needs care is
(1) the first convolution, whose input channels differ (RGB images vs a 1-channel spectrogram: the kernel is
collapsed over its input channels), and (2) making sure every pre-trained tensor really arrived: the authors'
code loads with `strict=False`, which skips any key that does not match without a word. Here a missing,
unused or mis-shaped tensor is an error.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

INPUT_MODES = ("sum", "mean")


def collapse_input_channels(weight: torch.Tensor, in_channels: int, mode: str = "sum") -> torch.Tensor:
    """Adapt a first-conv kernel (C_out, C_src, k, k) to `in_channels` inputs.

    Same count: unchanged (the identity: AV-Digits frames are already 1-channel, like the audio). To 1 channel:
    sum over the source channels (`"sum"`: a grey image fed as C_src equal channels gives the same response)
    or their mean (`"mean"`: the response shrinks by C_src, which the BN after the conv normalises away in
    training but not in its running statistics).
    """
    if mode not in INPUT_MODES:
        raise ValueError(f"unknown input-channel mode {mode!r}; choose one of {INPUT_MODES}")
    if weight.dim() != 4:
        raise ValueError(f"expected a conv kernel (C_out, C_in, k, k), got shape {tuple(weight.shape)}")
    source = weight.shape[1]
    if source == in_channels:
        return weight.clone()
    if in_channels == 1:
        return weight.sum(1, keepdim=True) if mode == "sum" else weight.mean(1, keepdim=True)
    raise ValueError(f"cannot map a {source}-channel first conv to {in_channels} channels; only to the same "
                     "count or to 1")


def load_resnet_weights(resnet: nn.Module, state_dict: dict, input_mode: str = "sum", source_prefix: str = "",
                        ignore_prefixes=("fc.",)) -> dict:
    """Load a ResNet-18 state dict (torchvision names, optionally under `source_prefix`, e.g. "backbone.")
    into `resnet` (an `avlab.models.ResNet18`, before any ABRi wrapping), collapsing `conv1.weight` to its
    input channels. Raises if any pre-trained tensor (outside `ignore_prefixes`, torchvision's classifier `fc.`
    by default) is unused, any tensor of `resnet` is not filled, or a shape disagrees.

    Returns a report: `loaded` (names), `ignored` (names), `conv1` (source -> target input channels).
    """
    source = {k[len(source_prefix):]: v for k, v in state_dict.items() if k.startswith(source_prefix)}
    ignored = sorted(k for k in source if k.startswith(tuple(ignore_prefixes)))
    source = {k: v for k, v in source.items() if k not in ignored}
    target = resnet.state_dict()
    unused, missing = sorted(set(source) - set(target)), sorted(set(target) - set(source))
    if unused or missing:
        raise ValueError(f"pre-trained weights do not match the network: {len(unused)} unused pre-trained "
                         f"tensor(s) {unused[:6]}, {len(missing)} tensor(s) of the network left unfilled "
                         f"{missing[:6]} (was the network already wrapped by ABRi? load first, then wrap)")
    new = {}
    for k, v in source.items():
        if k == "conv1.weight":
            v = collapse_input_channels(v, target[k].shape[1], input_mode)
        if v.shape != target[k].shape:
            raise ValueError(f"{k}: pre-trained shape {tuple(v.shape)} does not fit the network's "
                             f"{tuple(target[k].shape)} (is the width the same?)")
        new[k] = v.to(dtype=target[k].dtype, device=target[k].device)
    resnet.load_state_dict(new, strict=True)
    loaded = resnet.state_dict()
    not_equal = [k for k in new if not torch.equal(loaded[k], new[k])]
    assert not not_equal, f"tensors not loaded: {not_equal}"
    return {"loaded": sorted(new), "ignored": ignored,
            "conv1": (state_dict[source_prefix + "conv1.weight"].shape[1], target["conv1.weight"].shape[1])}


def torchvision_resnet18_state_dict(source: str | Path = "IMAGENET1K_V1") -> dict:
    """torchvision's ResNet-18 weights: a saved state dict (a path), or a weights enum name, which downloads
    them (e.g. on Colab; "IMAGENET1K_V1" is ImageNet-1k top-1 69.8%)."""
    if Path(str(source)).exists():
        return torch.load(source, map_location="cpu", weights_only=True)
    import torchvision

    weights = torchvision.models.ResNet18_Weights[str(source)]
    return torchvision.models.resnet18(weights=weights).state_dict()


def cross_modal_init(model, state_dict: dict, modality: str = "audio", **kwargs) -> dict:
    """Initialise `model.encoder(modality)`'s ResNet from `state_dict`; see `load_resnet_weights`."""
    return load_resnet_weights(model.encoder(modality).backbone, state_dict, **kwargs)
