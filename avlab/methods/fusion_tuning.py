"""Fusion Tuning (FusT), the two-stage recipe of Feng, Xia & Hu, "Revisiting Pre-training in Audio-Visual
Learning" (arXiv 2302.03533; official code: `models/model.py`, `dataloader/av_dataset.py`, no training script).

Stage 1 fine-tunes each uni-modal encoder alone on its own modality and records, for every training sample, its
confidence in the true class, averaged over the epochs (`ConfidenceRecorder`: the authors' dump script is not
released; softmax(logits)[y] at each training step is our reading of "sample-wise mean confidence").

Stage 2 fine-tunes the whole audio-visual model from the stage-1 encoders while randomly masking patches of the
easy-to-learn modality on easy samples (`FusionTuning.transform_batch`, training only). Per sample, from its
stage-1 confidences c_a, c_v, the authors' rule (`args.mask = 'conf'`):

    if c_v >= threshold:    ratio_a = rho_a * tanh(eta_a * (c_a - c_v)),  ratio_v = 0
    elif c_a >= threshold:  ratio_v = rho_v * tanh(eta_v * (c_v - c_a)),  ratio_a = 0
    else:                   both 0;          a modality is masked only where its ratio > 0

As released the `elif` branch can never give a positive visual ratio (there c_v < threshold <= c_a), so only
the audio is ever masked: on samples that both modalities find easy, when audio is the more confident.
`rule="as_released"` keeps that; `rule="symmetric"` gives the visual the mirror rule (ratio_v where
c_a >= threshold and c_v > c_a). `ratio_mode="mean"` (their `args.mask = 'mean'`) gives every sample the
dataset-mean ratio instead. `ratio_mode="shuffled"` is our control, not the authors': the rule's ratios dealt to
the samples in a random order (one fixed permutation), so the same number of samples is masked at the same
ratios, but which samples no longer depends on their confidences: a random mask at the rule's rate. Masking
zeroes int(n_patches * ratio) random patches, drawn anew every time the sample is seen; for a clip, each frame
draws its own patches.
"""
from __future__ import annotations

import torch

from avlab.methods.base import Method, true_class_confidence

RULES = ("as_released", "symmetric")
RATIO_MODES = ("conf", "mean", "shuffled")


class ConfidenceRecorder(Method):
    """Stage 1: records each training sample's softmax confidence in its true class at every training step
    (indexed by `batch["index"]`); `mean_confidence()` is the mean over the epochs. Adds no loss and changes
    no gradient. `source` is the output read: "logits" (the model's fused output: in a uni-modal run, the
    encoder's own classifier) or a modality's head ("audio", "visual")."""

    name = "confidence_recorder"

    def __init__(self, num_samples: int, source: str = "logits"):
        self.num_samples, self.source = num_samples, source
        self._sum = torch.zeros(num_samples, dtype=torch.float64)
        self._count = torch.zeros(num_samples, dtype=torch.int64)

    def after_backward(self, out, batch, trainer) -> dict:
        with torch.no_grad():
            conf = true_class_confidence(out[self.source], batch["label"]).cpu().double()
            index = torch.as_tensor(batch["index"]).cpu().long()
            if index.max() >= self.num_samples:
                raise IndexError(f"sample index {int(index.max())} >= num_samples={self.num_samples}")
            self._sum.index_add_(0, index, conf)
            self._count.index_add_(0, index, torch.ones_like(index))
        return {"confidence": conf.mean().item()}

    def mean_confidence(self) -> torch.Tensor:
        """(num_samples,) mean recorded confidence; NaN for a sample never seen (e.g. dropped by drop_last)."""
        out = (self._sum / self._count.clamp(min=1)).float()
        out[self._count == 0] = float("nan")
        return out

    def state_dict(self) -> dict:
        return {"sum": self._sum.clone(), "count": self._count.clone()}

    def load_state_dict(self, state: dict) -> None:
        self._sum, self._count = state["sum"].clone(), state["count"].clone()


def fusion_tuning_ratios(conf_audio, conf_visual, threshold: float = 0.5, eta_audio: float = 5.0,
                         eta_visual: float = 5.0, rho_audio: float = 0.5, rho_visual: float = 0.5,
                         rule: str = "as_released", ratio_mode: str = "conf",
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample mask ratios (ratio_audio, ratio_visual) from stage-1 mean confidences, >= 0 (see the module
    docstring for the rule). A NaN confidence (sample never seen in stage 1) gives no mask. `generator` draws
    the permutation of `ratio_mode="shuffled"` (one permutation for both modalities, so no sample gets both)."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")
    if ratio_mode not in RATIO_MODES:
        raise ValueError(f"unknown ratio_mode {ratio_mode!r}; choose one of {RATIO_MODES}")
    c_a = torch.as_tensor(conf_audio, dtype=torch.float32)
    c_v = torch.as_tensor(conf_visual, dtype=torch.float32)
    zero = torch.zeros_like(c_a)
    ratio_a = torch.where(c_v >= threshold, rho_audio * torch.tanh(eta_audio * (c_a - c_v)), zero)
    if rule == "as_released":  # the elif: only where c_v < threshold, so c_v - c_a < 0 and nothing is masked
        visual_branch = (c_v < threshold) & (c_a >= threshold)
    else:
        visual_branch = c_a >= threshold
    ratio_v = torch.where(visual_branch, rho_visual * torch.tanh(eta_visual * (c_v - c_a)), zero)
    ratio_a, ratio_v = ratio_a.clamp(min=0).nan_to_num(0.0), ratio_v.clamp(min=0).nan_to_num(0.0)
    if ratio_mode == "mean":
        ratio_a, ratio_v = torch.full_like(ratio_a, ratio_a.mean().item()), torch.full_like(ratio_v, ratio_v.mean().item())
    elif ratio_mode == "shuffled":
        order = torch.randperm(len(ratio_a), generator=generator)
        ratio_a, ratio_v = ratio_a[order], ratio_v[order]
    return ratio_a, ratio_v


def mask_patches(x: torch.Tensor, ratio: torch.Tensor, patch: tuple[int, int] = (4, 4),
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero int(n_patches * ratio[i]) randomly chosen (patch[0] x patch[1]) patches of every image of sample i.

    x is (B, C, H, W) (a spectrogram: all channels share the patches) or (B, C, T, H, W) (a clip: each frame
    draws its own patches, all channels alike). Pixels outside the last whole patch are never masked (the
    authors' 224-pixel frames keep a 4-pixel border). Returns a new tensor; x is left untouched."""
    ratio = torch.as_tensor(ratio, dtype=torch.float32).flatten().cpu()
    if len(ratio) != len(x):
        raise ValueError(f"{len(ratio)} ratios for a batch of {len(x)}")
    if x.dim() == 5:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        out = mask_patches(frames, ratio.repeat_interleave(t), patch, generator)
        return out.reshape(b, t, c, h, w).transpose(1, 2)
    if x.dim() != 4:
        raise ValueError(f"mask_patches expects (B, C, H, W) or (B, C, T, H, W), got {tuple(x.shape)}")
    b, _, h, w = x.shape
    gh, gw = h // patch[0], w // patch[1]
    n = gh * gw
    k = (n * ratio.clamp(0, 1)).floor().long()  # int(n * ratio), as the authors' code
    if int(k.max()) == 0:
        return x.clone()
    rank = torch.rand(b, n, generator=generator).argsort(1).argsort(1)  # a random order of the patches
    keep = (rank >= k[:, None]).float().reshape(b, 1, gh, gw)
    keep = keep.repeat_interleave(patch[0], 2).repeat_interleave(patch[1], 3)
    full = torch.ones(b, 1, h, w)
    full[:, :, : gh * patch[0], : gw * patch[1]] = keep
    return x * full.to(device=x.device, dtype=x.dtype)


class FusionTuning(Method):
    """Stage 2: masks the easy-to-learn modality on easy training samples (a `transform_batch` plug-in).

    `conf_audio`, `conf_visual`: (N,) stage-1 mean confidences of the training samples (from a
    `ConfidenceRecorder` each), indexed like `batch["index"]`. The other settings go to
    `fusion_tuning_ratios`; the authors' values of threshold, eta and rho are not published (their training
    script is not released), so the defaults here are ours. `rule="as_released"` is the default: it is what
    the authors' code does (only audio is ever masked, which fits their setting, where the strong pre-trained
    encoder is the audio one); `"symmetric"` masks whichever modality is more confident.
    `ratio_mode="shuffled"` (the random-mask control) deals the ratios out by a permutation drawn from `seed`
    (0 if None) when the method is built; `seed` also seeds the patch positions (None: the run's seed).
    """

    name = "fusion_tuning"
    owns = frozenset({"batch"})  # masks patches of the inputs

    def __init__(self, conf_audio, conf_visual, threshold: float = 0.5, eta_audio: float = 5.0,
                 eta_visual: float = 5.0, rho_audio: float = 0.5, rho_visual: float = 0.5,
                 rule: str = "as_released", ratio_mode: str = "conf", audio_patch=(4, 4), visual_patch=(4, 4),
                 seed: int | None = None):
        self.threshold, self.eta_audio, self.eta_visual = threshold, eta_audio, eta_visual
        self.rho_audio, self.rho_visual, self.rule, self.ratio_mode = rho_audio, rho_visual, rule, ratio_mode
        self.audio_patch, self.visual_patch, self.seed = tuple(audio_patch), tuple(visual_patch), seed
        self.ratio_audio, self.ratio_visual = fusion_tuning_ratios(
            conf_audio, conf_visual, threshold, eta_audio, eta_visual, rho_audio, rho_visual, rule, ratio_mode,
            torch.Generator().manual_seed(0 if seed is None else seed))
        self.masked_audio = float((self.ratio_audio > 0).float().mean())  # fraction of training samples
        self.masked_visual = float((self.ratio_visual > 0).float().mean())
        self._generator = torch.Generator()
        self._logs: dict = {}

    def setup(self, trainer) -> None:
        self._generator.manual_seed(trainer.config.seed if self.seed is None else self.seed)

    def transform_batch(self, batch: dict, trainer) -> dict:
        index = torch.as_tensor(batch["index"]).cpu().long()
        batch = dict(batch)
        for m, ratios, patch in (("audio", self.ratio_audio, self.audio_patch),
                                 ("visual", self.ratio_visual, self.visual_patch)):
            r = ratios[index]
            self._logs[f"mask_ratio_{m}"] = r.mean().item()
            if m in batch and bool((r > 0).any()):
                batch[m] = mask_patches(batch[m], r, patch, self._generator)
        return batch

    def after_backward(self, out, batch, trainer) -> dict:
        return dict(self._logs)

    def state_dict(self) -> dict:
        return {"generator": self._generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self._generator.set_state(state["generator"])
