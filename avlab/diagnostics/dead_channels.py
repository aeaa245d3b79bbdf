"""A dead-channel meter for BatchNorm networks (Feng, Xia & Hu, "Revisiting Pre-training in Audio-Visual
Learning", arXiv 2302.03533).

A BN channel computes y = gamma * x_hat + beta. When |gamma| and |beta| are both tiny, y hardly moves from a
value near zero, the ReLU after it passes (almost) nothing, and the conv filter feeding it gets (almost) no
gradient: the channel is *dead*. The meter reads two things per BN layer:

* the weights: |gamma| and |beta| of every channel (`bn_parameters`, the histogram data);
* the behaviour: over a dataset, the fraction of positions (samples x height x width) at which each channel's
  output exceeds `eps`, i.e. at which the ReLU after it lets something through (`activation_rates`, a forward
  hook on every BN output). A channel active on fewer than `threshold` of its positions counts as dead
  (`dead_fraction`).

For the first BN of a block (and the stem) the ReLU follows the BN directly, so "output > eps" is exactly
"post-ReLU output > eps". For the second BN of a block and the downsample BN the ReLU comes after the residual
sum; there the meter reads the channel's own branch: a channel that never exceeds eps adds nothing positive to
the sum. An ABRi pair (`avlab.methods.abri.ABRiBatchNorm2d`) is metered as one layer, on its mixed output.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


def _abri_type():
    from avlab.methods.abri import ABRiBatchNorm2d  # local import: abri does not depend on this module

    return ABRiBatchNorm2d


def bn_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every BN layer in network order; an ABRi pair counts as one layer (its inner BNs
    are not listed separately)."""
    abri = _abri_type()
    layers, inside = [], []
    for name, m in module.named_modules():
        if any(name.startswith(p + ".") for p in inside):
            continue
        if isinstance(m, abri):
            layers.append((name, m))
            inside.append(name)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            layers.append((name, m))
    return layers


def effective_affine(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(gamma, beta) per channel. For an ABRi pair, w * gamma_pre + (1 - w) * gamma_new (likewise beta): in
    train mode both BNs normalise the same batch, so this is exactly the pair's affine map."""
    if isinstance(layer, _abri_type()):
        w = layer.mix.detach().reshape(-1)
        g = w * layer.pre.weight.detach() + (1 - w) * layer.new.weight.detach()
        b = w * layer.pre.bias.detach() + (1 - w) * layer.new.bias.detach()
        return g, b
    return layer.weight.detach().clone(), layer.bias.detach().clone()


def stage_of(name: str) -> str:
    """'layer2.0.bn1' -> 'layer2'; the stem BN ('bn1', 'backbone.bn1') -> 'stem'."""
    for part in name.split("."):
        if part.startswith("layer"):
            return part
    return "stem"


def bn_parameters(module: nn.Module) -> list[dict]:
    """One row per BN channel: layer, stage, channel, gamma, beta, |gamma|, |beta| (histogram data)."""
    rows = []
    for name, layer in bn_layers(module):
        gamma, beta = effective_affine(layer)
        for c, (g, b) in enumerate(zip(gamma.tolist(), beta.tolist())):
            rows.append({"layer": name, "stage": stage_of(name), "channel": c, "gamma": g, "beta": b,
                         "abs_gamma": abs(g), "abs_beta": abs(b)})
    return rows


@torch.no_grad()
def activation_rates(encoder: nn.Module, data: Dataset | torch.Tensor, key: str | None = None, eps: float = 1e-2,
                     batch_stats: bool = False, batch_size: int = 256, max_samples: int | None = None
                     ) -> dict[str, torch.Tensor]:
    """{layer name: (C,) fraction of positions where the channel's BN output exceeds `eps`} over `data`.

    `data` is a dataset of dict items (read `key`, e.g. "audio") or a tensor of inputs for `encoder`.
    By default the encoder runs in eval mode (running statistics: the network as it is used at test time).
    `batch_stats=True` normalises with each batch's own statistics instead (train-mode BN), on a copy, so the
    running statistics of `encoder` are left untouched: use it for a freshly transferred encoder whose
    running statistics still describe the source modality.
    """
    net = copy.deepcopy(encoder).train() if batch_stats else encoder
    was_training = encoder.training
    if not batch_stats:
        net.eval()
    layers = bn_layers(net)
    counts = {name: torch.zeros(m.num_features, dtype=torch.float64) for name, m in layers}
    positions = {name: 0 for name, _ in layers}

    def hook(name):
        def fn(_module, _inputs, out):
            active = (out > eps).transpose(0, 1).reshape(out.shape[1], -1)  # (C, batch * H * W)
            counts[name] += active.sum(1).double().cpu()
            positions[name] += active.shape[1]
        return fn

    handles = [m.register_forward_hook(hook(name)) for name, m in layers]
    device = next(net.parameters()).device
    try:
        if torch.is_tensor(data):
            batches = data.split(batch_size)
        else:
            batches = (b[key] for b in DataLoader(data, batch_size, shuffle=False))
        seen = 0
        for x in batches:
            if max_samples is not None:
                x = x[: max_samples - seen]
                if len(x) == 0:
                    break
            net(x.to(device))
            seen += len(x)
    finally:
        for h in handles:
            h.remove()
        if not batch_stats:
            encoder.train(was_training)
    return {name: (counts[name] / max(positions[name], 1)).float() for name, _ in layers}


def dead_fraction(rates: dict[str, torch.Tensor], threshold: float = 0.01) -> dict[str, float]:
    """{layer: fraction of its channels active on fewer than `threshold` of positions}, plus "all" over every
    channel of every layer."""
    out = {name: (r < threshold).float().mean().item() for name, r in rates.items()}
    every = torch.cat(list(rates.values())) if rates else torch.zeros(0)
    out["all"] = (every < threshold).float().mean().item() if len(every) else 0.0
    return out


def dead_channel_rows(rates: dict[str, torch.Tensor], threshold: float = 0.01, **labels) -> list[dict]:
    """One row per layer (layer, stage, channels, dead, dead_fraction) plus any constant `labels` (run, seed):
    ready for a seaborn plot or `summary_table`."""
    rows = []
    for name, r in rates.items():
        dead = int((r < threshold).sum())
        rows.append({**labels, "layer": name, "stage": stage_of(name), "channels": len(r), "dead": dead,
                     "dead_fraction": dead / len(r)})
    return rows


def dead_channel_report(encoder: nn.Module, data, key: str | None = None, threshold: float = 0.01,
                        eps: float = 1e-2, **kwargs) -> dict:
    """Everything the chapter shows for one encoder: per-channel `rates`, per-layer `dead` fractions (and
    "all"), and the |gamma| / |beta| `parameters` rows."""
    rates = activation_rates(encoder, data, key, eps=eps, **kwargs)
    return {"rates": rates, "dead": dead_fraction(rates, threshold), "parameters": bn_parameters(encoder)}


def conv_feeding(bn_name: str) -> str:
    """Name of the convolution whose output a BN layer normalises, in the ResNet-18 layout:
    'layer1.0.bn2' -> 'layer1.0.conv2', 'layer2.0.downsample.1' -> 'layer2.0.downsample.0', 'bn1' -> 'conv1'."""
    head, _, last = bn_name.rpartition(".")
    if last.startswith("bn"):
        conv = "conv" + last[2:]
    elif head.endswith("downsample") and last == "1":
        conv = "0"
    else:
        raise ValueError(f"no convolution known to feed {bn_name!r}")
    return f"{head}.{conv}" if head else conv


def filter_gradient_norms(model, data: Dataset, modality: str, batches: int = 4, batch_size: int = 64
                          ) -> dict[str, torch.Tensor]:
    """{BN layer name: (C,) gradient norm of each output filter of the conv feeding it}, for the fused
    cross-entropy with `modality` alone, summed over the first `batches` batches (train-mode BN, on a copy:
    the model and its running statistics are left untouched). Dead channels pass no gradient back through
    their ReLU, so the filters feeding them are the ones that hardly get updated."""
    import torch.nn.functional as F

    net = copy.deepcopy(model).train()
    encoder = net.encoder(modality)
    modules = dict(encoder.named_modules())
    layers = bn_layers(encoder)
    device = next(net.parameters()).device
    net.zero_grad(set_to_none=True)
    with torch.enable_grad():
        for i, batch in enumerate(DataLoader(data, batch_size, shuffle=False)):
            if i == batches:
                break
            out = net(**{modality: batch[modality].to(device)})
            F.cross_entropy(out["logits"], batch["label"].to(device)).backward()
    norms = {}
    for name, _ in layers:
        grad = modules[conv_feeding(name)].weight.grad
        norms[name] = grad.flatten(1).norm(dim=1).cpu() if grad is not None else torch.zeros(modules[name].num_features)
    return norms


@torch.no_grad()
def silence_channels(state: dict, fraction: float, scale: float = 0.01, small: float = 0.05) -> dict:
    """A copy of a ResNet state dict with more dead channels: in every BN layer, the `fraction` of channels with
    the smallest |gamma| end with |gamma| and |beta| below `small` (those not already there are multiplied by
    `scale`). A dose of the pathology on top of a pre-trained network: the channels the gamma-L1 penalty of the
    pre-training (avlab.weights.pretrain) shrank first are the ones silenced first, and `fraction` at or below
    a layer's own small fraction leaves the layer unchanged. Running statistics are kept."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"silence_channels: fraction must lie in [0, 1], got {fraction}")
    out = {k: v.clone() for k, v in state.items()}
    layers = [k[: -len(".running_mean")] for k in state if k.endswith(".running_mean")]
    if not layers:
        raise ValueError("silence_channels: the state dict has no BatchNorm layer (no '*.running_mean' key)")
    for layer in layers:
        gamma, beta = out[f"{layer}.weight"], out[f"{layer}.bias"]
        chosen = gamma.abs().argsort()[: round(fraction * gamma.numel())]
        live = chosen[(gamma[chosen].abs() >= small) | (beta[chosen].abs() >= small)]
        gamma[live] *= scale
        beta[live] *= scale
        if ((gamma[chosen].abs() >= small) | (beta[chosen].abs() >= small)).any():
            raise ValueError(f"silence_channels: scale {scale} leaves a channel of {layer} above {small}")
    return out
