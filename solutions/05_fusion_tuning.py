# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/avlab-course/avlab/blob/v0.1.0/solutions/05_fusion_tuning.ipynb)
#
# On Colab, ask for a GPU first: *Runtime → Change runtime type → GPU*; then run the cells in order.

# %% [markdown]
# # Chapter 05 · Pre-training that backfires (2): a strong encoder starves its partner, and Fusion Tuning
#
# Chapter 04 looked inside one encoder. This chapter looks at two. Feng, Xia and Hu ("Revisiting Pre-training
# in Audio-Visual Learning", arXiv 2302.03533) observe that in joint audio-visual training, starting **one**
# modality's encoder from strong pre-trained weights makes the fused model good quickly, but leaves the **other**
# encoder under-trained: the pre-trained encoder drives the fused loss down before the other has learned much,
# and with the loss goes the gradient the other encoder needed (the dominance mechanism of chapter 01, now
# caused by pre-training).
#
# Their remedy, **Fusion Tuning**, has two stages:
# 1. fine-tune each encoder *alone* on its own modality, recording for every training sample how confident the
#    uni-modal model is in the true class (averaged over the epochs);
# 2. fine-tune the whole audio-visual model from the two stage-1 encoders, **randomly masking patches of the
#    easy-to-learn modality on easy samples**, so that the other modality has to carry those samples.
#
# You will measure the starvation, build both stages as plug-ins of the one training loop, and measure what
# each stage contributes.

# %%
# Colab set-up: installs avlab 0.1.0, the version this notebook was written for (Colab keeps its own torch).
# Does nothing elsewhere. KEEP_DATA_ON_DRIVE = True keeps avlab's data folder on your Google Drive across sessions.
KEEP_DATA_ON_DRIVE = False
AVLAB = "avlab @ git+https://github.com/avlab-course/avlab@v0.1.0"
import os, subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", AVLAB], check=True)
    if KEEP_DATA_ON_DRIVE:
        from google.colab import drive
        drive.mount("/content/drive")
        os.environ["AVLAB_DATA"] = "/content/drive/MyDrive/avlab-data"

# %%
import avlab
avlab.about()

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F
from IPython.display import display
from torch.utils.data import Subset

import avlab.course
from avlab import plots
from avlab.data import load_avdigits
from avlab.diagnostics import linear_probe
from avlab.experiment import Paired, build_model, mean_std, paired_difference
from avlab.methods.fusion_tuning import ConfidenceRecorder, FusionTuning, fusion_tuning_ratios, mask_patches
from avlab.train import Trainer, TrainConfig, evaluate
from avlab.utils import seed_everything

# %% [markdown]
# ## The data: both modalities matter
#
# The `complementary` preset drowns the speech at −5 dB, so neither modality is enough alone and the fused
# model needs both; this is where starving one encoder costs accuracy. Two settings keep this chapter inside
# its CPU budget: the digit clips are 2 frames long (not 4) with a little less noise (`vis_noise=0.15`, so the
# visual encoder learns within a few epochs), and training uses the first 2,000 of the 3,000 training samples.
# The per-epoch validation curves use the first 500 validation samples, the linear probes are fitted on the first
# 1,000 training samples; every final number is on the 1,000-sample test set.

# %%
SEEDS = [0, 1, 2]
EPOCHS = 5  # every joint run, and the visual stage 1
AUDIO_EPOCHS = 10  # the strong pre-trained audio encoder (also its stage 1)

splits = load_avdigits("complementary", vis_noise=0.15, frames=2)
print(splits["train"], splits["test"], sep="\n")
train, val, test = Subset(splits["train"], range(2000)), Subset(splits["val"], range(500)), splits["test"]
probe_train = Subset(splits["train"], range(1000))  # the linear probes fit on 1,000 training samples


def fit(model, seed, method=None, modalities=("audio", "visual"), epochs=EPOCHS):
    config = TrainConfig(epochs=epochs, seed=seed, modalities=modalities, progress=False)
    return Trainer(model, config, method).fit(train, val)


def joint_model(seed, audio_from=None, visual_from=None):
    """A fresh audio-visual model; each encoder optionally starts from another model's encoder."""
    seed_everything(seed)
    model = build_model(splits["train"], "concat", 8)
    if audio_from is not None:
        model.audio.load_state_dict(audio_from.audio.state_dict())
    if visual_from is not None:
        model.visual.load_state_dict(visual_from.visual.state_dict())
    return model


# %% [markdown]
# ## Stage 1, and the strong pre-trained encoder
#
# Stage 1 trains each encoder alone on its modality (`modalities=("audio",)`: the same network with the other
# input absent) and records each training sample's confidence in its true class. The recorder is a `Method`
# plug-in: at every training step it reads the model's output, takes softmax(logits)[y] for each sample of the
# batch, and adds it to that sample's running sum, found by `batch["index"]`. After training,
# `mean_confidence()` is the mean over the epochs (the authors' dump script is not released; this is our
# reading of their "sample-wise mean confidence in Stage 1").
#
# ### Exercise 1: a sample's confidence in its true class

# %%
def true_class_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # EXERCISE: (B,) softmax probability of each sample's true class
    ### BEGIN SOLUTION
    return F.softmax(logits, 1).gather(1, labels.view(-1, 1)).squeeze(1)
    ### END SOLUTION


logits, labels = torch.tensor([[math.log(3), 0.0, 0.0], [0.0, 0.0, 0.0]]), torch.tensor([0, 2])
print(true_class_confidence(logits, labels))  # [3 / 5, 1 / 3]
recorder = ConfidenceRecorder(2)
recorder.after_backward({"logits": logits}, {"label": labels, "index": torch.tensor([0, 1])}, None)
torch.testing.assert_close(true_class_confidence(logits, labels), recorder.mean_confidence())

# %% [markdown]
# **The pre-trained encoder.** In the paper the strong encoder is the audio one (pre-trained on AudioSet or
# VGGSound), the visual one comes from ImageNet. Here the strong audio encoder is the audio-alone model
# trained for 10 epochs on this task's own audio; the same run is its stage 1 (its confidences are recorded
# while it trains). The visual stage 1 trains the visual encoder alone for 5 epochs from scratch. Each seed
# trains its own pair.

# %%
stage1 = {}
for seed in SEEDS:
    seed_everything(seed)
    rec_a = ConfidenceRecorder(len(train))
    audio_model = build_model(splits["train"], "concat", 8)
    run_a = fit(audio_model, seed, rec_a, modalities=("audio",), epochs=AUDIO_EPOCHS)
    seed_everything(seed)
    rec_v = ConfidenceRecorder(len(train))
    visual_model = build_model(splits["train"], "concat", 8)
    run_v = fit(visual_model, seed, rec_v, modalities=("visual",))
    stage1[seed] = {"audio": audio_model, "visual": visual_model, "conf_audio": rec_a.mean_confidence(),
                    "conf_visual": rec_v.mean_confidence(), "run_audio": run_a, "run_visual": run_v}
    print(f"seed {seed}: audio alone val {run_a.last('val_acc'):.3f}, visual alone val {run_v.last('val_acc'):.3f}; "
          f"mean confidence audio {rec_a.mean_confidence().nanmean():.3f}, visual {rec_v.mean_confidence().nanmean():.3f}")

# %% [markdown]
# ## The phenomenon: the pre-trained audio encoder starves the visual one
#
# Two joint models per seed, identical except for the audio encoder's start: random (**joint, scratch**) or the
# pre-trained audio encoder (**joint, pre-trained audio**). The visual encoder starts from scratch in both. We
# probe each trained visual encoder with a linear classifier on its frozen features (test set).

# %%
results = []  # one dict per (condition, seed)


def record(condition, seed, model, run):
    results.append({"condition": condition, "seed": seed, "model": model, "run": run,
                    "test_acc": evaluate(model, test)["acc"], "first_epoch_val_acc": run.history[0]["val_acc"],
                    "visual_probe": linear_probe(model, probe_train, test, "visual")})
    r = results[-1]
    print(f"seed {seed} {condition:>26}: fused test {r['test_acc']:.3f} (val after epoch 1: "
          f"{r['first_epoch_val_acc']:.3f}), visual probe {r['visual_probe']:.3f}")


for seed in SEEDS:
    model = joint_model(seed)
    record("joint, scratch", seed, model, fit(model, seed))
    model = joint_model(seed, audio_from=stage1[seed]["audio"])
    record("joint, pre-trained audio", seed, model, fit(model, seed))


# %%
def frame(keys=("test_acc", "first_epoch_val_acc", "visual_probe")):
    return pd.DataFrame([{k: r[k] for k in ("condition", "seed", *keys)} for r in results])


plots.plot_history({c: [r["run"] for r in results if r["condition"] == c]
                    for c in ("joint, scratch", "joint, pre-trained audio")},
                   metrics=("val_acc", "val_acc_visual"), title="fused accuracy, and the visual encoder's probe head");

probe = frame().pivot(index="seed", columns="condition", values="visual_probe")
early = frame().pivot(index="seed", columns="condition", values="first_epoch_val_acc")
starved = probe["joint, scratch"] - probe["joint, pre-trained audio"]
print(probe.round(3).to_string())
print(f"visual probe: scratch {mean_std(probe['joint, scratch'])[0]:.3f}, with pre-trained audio "
      f"{mean_std(probe['joint, pre-trained audio'])[0]:.3f}; loss {starved.mean():.3f} ± {starved.std():.3f}")
print(f"fused val accuracy after one epoch: scratch {early['joint, scratch'].mean():.3f}, "
      f"pre-trained audio {early['joint, pre-trained audio'].mean():.3f}")
assert (starved > 0.05).all() and starved.mean() > 2 * starved.std(), "the pre-trained partner should starve the visual encoder"
assert (early["joint, pre-trained audio"] > early["joint, scratch"]).all(), "pre-training should give a faster start"


# %% [markdown]
# The pre-trained audio encoder gives the fused model a head start, and the visual encoder trained next to it
# ends clearly worse than the one trained next to a from-scratch audio encoder. (Compare the final fused
# accuracies in the table at the end: the head start does not even last.)
#
# ## Stage 2: mask the easy modality on easy samples
#
# For each training sample, with stage-1 mean confidences c_a and c_v, the authors' code
# (`dataloader/av_dataset.py`, `args.mask = 'conf'`) sets mask ratios
#
# ```
# if c_v >= threshold:    ratio_a = rho_a * tanh(eta_a * (c_a - c_v)),  ratio_v = 0
# elif c_a >= threshold:  ratio_v = rho_v * tanh(eta_v * (c_v - c_a)),  ratio_a = 0
# else:                   both 0            (a modality is masked only where its ratio > 0)
# ```
#
# and, every time the sample is loaded for training (never at evaluation), zeroes int(n_patches · ratio)
# randomly chosen patches of the masked input (their 1024×128 spectrogram in 32×8 patches, their 224×224
# frames in 10×10 patches; ours: 4×4 patches of the 32×32 spectrogram and of each frame). Here that is a
# `transform_batch` plug-in, `FusionTuning`, which looks up each sample's ratio by `batch["index"]`.
#
# **A code-vs-description asymmetry.** The `elif` branch can never produce a positive visual ratio: it is only
# reached when c_v < threshold ≤ c_a, so c_v − c_a < 0. As released, **only the audio is ever masked**: on
# samples where the visual model is confident (c_v ≥ threshold) and the audio model more so. In their setting the
# strong pre-trained encoder is the audio one, so this may be intended. `rule="as_released"` (the default,
# because it is what their code does and because our strong encoder is also the audio one) keeps it;
# `rule="symmetric"` gives the visual the mirror rule.
#
# The authors' values of threshold, η and ρ are not published (the training script is not released). Ours:
# η = 5 and ρ = 0.5 for both modalities, and **threshold = 0.3**: our stage 1 is short, so confidences are low
# (mean ≈ 0.3–0.45), and at a threshold of 0.5 only ~4 % of the samples would be masked at all. We chose 0.3
# after single-seed trial runs at 0.5, 0.3 and 0.2, for the share of samples it masks (15–23 %), not for the
# result; the asserts below do not depend on the masking (see the two-stage baseline without it).
#
# ### Exercise 2: the mask rule as released

# %%
def mask_ratios(c_a, c_v, threshold=0.3, eta_a=5.0, eta_v=5.0, rho_a=0.5, rho_v=0.5):
    """Per-sample (ratio_a, ratio_v) as the authors' code computes them (negative ratios mean no mask: 0)."""
    c_a, c_v = torch.as_tensor(c_a), torch.as_tensor(c_v)
    # EXERCISE: the if / elif / else rule above, vectorised with torch.where; clamp negative ratios to 0
    ### BEGIN SOLUTION
    ratio_a = torch.where(c_v >= threshold, rho_a * torch.tanh(eta_a * (c_a - c_v)), torch.zeros_like(c_a))
    ratio_v = torch.where((c_v < threshold) & (c_a >= threshold), rho_v * torch.tanh(eta_v * (c_v - c_a)),
                          torch.zeros_like(c_v))
    return ratio_a.clamp(min=0), ratio_v.clamp(min=0)
    ### END SOLUTION


c_a, c_v = torch.tensor([0.9, 0.6, 0.9, 0.2]), torch.tensor([0.6, 0.9, 0.2, 0.1])
mine = mask_ratios(c_a, c_v)
print("ratio_a", mine[0].numpy().round(4), "ratio_v", mine[1].numpy().round(4))  # [0.4526 0 0 0], all 0
library = fusion_tuning_ratios(c_a, c_v, threshold=0.3, rule="as_released")
torch.testing.assert_close(mine[0], library[0]), torch.testing.assert_close(mine[1], library[1])

# %% [markdown]
# What the rule does with the stage-1 confidences of seed 0, and what a masked input looks like. Move the
# difficulty threshold and the masking ratio ρ: the plot and the share of masked samples follow (nothing is
# trained here).

# %%
import ipywidgets as widgets

conf_a, conf_v = stage1[SEEDS[0]]["conf_audio"], stage1[SEEDS[0]]["conf_visual"]


def show_rule(threshold=0.3, rho=0.5, rule="as_released"):
    ra, rv = fusion_tuning_ratios(conf_a, conf_v, threshold, 5.0, 5.0, rho, rho, rule)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    masked = np.where(ra > 0, "audio masked", np.where(rv > 0, "visual masked", "no mask"))
    sns.scatterplot(x=conf_a.numpy(), y=conf_v.numpy(), hue=masked, size=(ra + rv).numpy(), sizes=(4, 60),
                    hue_order=["no mask", "audio masked", "visual masked"], ax=axes[0], alpha=0.6)
    axes[0].axhline(threshold, color="grey", lw=0.8, ls="--"), axes[0].axvline(threshold, color="grey", lw=0.8, ls="--")
    axes[0].set(xlabel="stage-1 confidence, audio", ylabel="stage-1 confidence, visual",
                title=f"{rule}: audio masked on {(ra > 0).float().mean():.1%}, visual on {(rv > 0).float().mean():.1%}")
    axes[0].legend(fontsize="small", loc="upper left")
    i = int(ra.argmax())
    example = mask_patches(train[i]["audio"][None], ra[i:i + 1], (4, 4), torch.Generator().manual_seed(0))[0, 0]
    axes[1].imshow(example, origin="lower", cmap="magma")
    axes[1].set(title=f"sample {i}: spectrogram with ratio {ra[i]:.2f} masked", xticks=[], yticks=[])
    fig.tight_layout()
    plt.show()


controls = {"threshold": widgets.FloatSlider(value=0.3, min=0.05, max=0.9, step=0.05, continuous_update=False,
                                             description="threshold"),
            "rho": widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, continuous_update=False,
                                       description="rho"),
            "rule": widgets.ToggleButtons(options=["as_released", "symmetric"])}
display(widgets.VBox([widgets.HBox(list(controls.values())), widgets.interactive_output(show_rule, controls)]))

# %% [markdown]
# ## Fusion Tuning against its baselines
#
# Stage 2 starts the joint model from both stage-1 encoders. To tell the two stages apart we also train the
# same two-stage start **without** masking (**two-stage, no mask**): whatever Fusion Tuning gains over it is the
# masking's doing; what both gain over joint training with the pre-trained audio is stage 1's. And to tell the
# rule from the mere masking, a third arm masks **at the same rate, on random samples** (**random mask, same
# rate**: `ratio_mode="shuffled"` deals the rule's per-sample ratios to the samples in a random order, so as many
# samples are masked, as much, but which ones no longer depends on their stage-1 confidences).

# %%
THRESHOLD, RHO, ETA = 0.3, 0.5, 5.0
for seed in SEEDS:
    s1 = stage1[seed]
    model = joint_model(seed, audio_from=s1["audio"], visual_from=s1["visual"])
    record("two-stage, no mask", seed, model, fit(model, seed))
    method = FusionTuning(s1["conf_audio"], s1["conf_visual"], threshold=THRESHOLD, eta_audio=ETA, eta_visual=ETA,
                          rho_audio=RHO, rho_visual=RHO, rule="as_released")
    model = joint_model(seed, audio_from=s1["audio"], visual_from=s1["visual"])
    record("Fusion Tuning", seed, model, fit(model, seed, method))
    results[-1]["masked_audio"] = method.masked_audio
    print(f"    audio masked on {method.masked_audio:.1%} of the training samples")
    # the control: the same ratios dealt to random samples (same count, same ratios, other samples)
    control = FusionTuning(s1["conf_audio"], s1["conf_visual"], threshold=THRESHOLD, eta_audio=ETA, eta_visual=ETA,
                           rho_audio=RHO, rho_visual=RHO, rule="as_released", ratio_mode="shuffled", seed=seed)
    model = joint_model(seed, audio_from=s1["audio"], visual_from=s1["visual"])
    record("random mask, same rate", seed, model, fit(model, seed, control))

# %% [markdown]
# ### The fix, asserted
#
# Fusion Tuning's visual encoder probes clearly above the visual encoder that the pre-trained audio starved, in
# every seed.

# %%
CONDITIONS = ["joint, scratch", "joint, pre-trained audio", "two-stage, no mask", "Fusion Tuning",
              "random mask, same rate"]
probe = frame().pivot(index="seed", columns="condition", values="visual_probe")[CONDITIONS]
acc = frame().pivot(index="seed", columns="condition", values="test_acc")[CONDITIONS]
print("visual probe (test)\n" + probe.round(3).to_string())
print("fused test accuracy\n" + acc.round(3).to_string())
gain = probe["Fusion Tuning"] - probe["joint, pre-trained audio"]
print(f"Fusion Tuning - joint with pre-trained audio, visual probe: {gain.mean():+.3f} ± {gain.std():.3f}")
assert (gain > 0.05).all() and gain.mean() > 2 * gain.std(), "Fusion Tuning should restore the starved visual encoder"

plots.plot_bars(frame().melt(id_vars=["condition", "seed"], value_vars=["visual_probe", "test_acc"]),
                x="variable", y="value", hue="condition", title="mean ± std over seeds");


# %% [markdown]
# ### Does the mask itself pay? The rule against a random mask at its rate
#
# The rule masks the audio on 15–21 % of the samples (seeds 0–2), at ratios around 0.3 (a few % of all audio
# patches over the training set). Two questions separate what that mask does: does masking help at all (**Fusion
# Tuning** against **two-stage, no mask**), and does it matter *which* samples are masked, the rule's point
# (**Fusion Tuning** against **random mask, same rate**)?
#
# We looked for a setting where the rule pays before running this chapter's seeds, on pilot seeds
# (`benchmarks/pilot_05_mask.py`, seeds 20–22 and, in this chapter's setting, 20–25; one thread, ~17 min).
# Visual probe and fused test accuracy, mean over seeds; differences paired by seed (mean ± s.e.):
#
# | setting | masked samples | probe: no mask / rule / random | fused acc: no mask / rule / random | probe, rule − random | probe, rule − no mask | acc, rule − random | acc, rule − no mask |
# |---|---|---|---|---|---|---|---|
# | this chapter's (audio 10 epochs, threshold 0.3, ρ 0.5), seeds 20–22 | 10.9 % | 0.289 / 0.303 / 0.277 | 0.576 / 0.595 / 0.586 | +0.026 ± 0.007 | +0.014 ± 0.010 | +0.009 ± 0.012 | +0.019 ± 0.011 |
# | higher mask rate (threshold 0.2, ρ 1.0), seeds 20–22 | 32.8 % | 0.289 / 0.306 / 0.319 | 0.576 / 0.593 / 0.592 | −0.013 ± 0.010 | +0.017 ± 0.018 | +0.001 ± 0.008 | +0.017 ± 0.021 |
# | stronger partner (audio 20 epochs), seeds 20–22 | 18.4 % | 0.292 / 0.302 / 0.299 | 0.588 / 0.596 / 0.598 | +0.003 ± 0.017 | +0.010 ± 0.008 | −0.002 ± 0.020 | +0.008 ± 0.005 |
# | this chapter's, seeds 20–25 | 12.5 % | 0.358 / 0.378 / 0.366 | 0.615 / 0.631 / 0.625 | +0.012 ± 0.008 | +0.020 ± 0.006 | +0.006 ± 0.006 | +0.016 ± 0.008 |
#
# The rule's lead over a random mask in the first three pilot seeds (+0.026) did not survive three more seeds
# (+0.012 ± 0.008 over six pairs), nor a higher mask rate, nor a stronger audio partner. **No setting showed a
# clear gain** (paired mean > max(2 s.e., 0.02)) of the rule over a random mask at the same rate; masking of
# either kind may add a little over no mask (+0.02 on the probe, pilot). So the pilot fixed, before this
# chapter's seeds ran, what we assert instead, the measured cause of the mask's small effect:
# * the two-stage start is what restores the visual encoder: **two-stage, no mask** probes above **joint,
#   pre-trained audio** by a paired mean > max(2 s.e., 0.05);
# * the rule's choice of samples adds nothing we can tell from a random mask: |Fusion Tuning − random mask| <
#   0.04 on the probe and on fused accuracy (0.04 = twice the spread of one pilot pair, 0.020).

# %%
def paired(a: str, b: str, table) -> Paired:
    """Arm a - arm b, paired by seed (avlab.experiment.paired_difference: mean, s.e., the differences)."""
    return paired_difference(table[a], table[b])  # one row per seed, the same rows for both


comparisons = {"two-stage, no mask - joint, pre-trained audio": ("two-stage, no mask", "joint, pre-trained audio"),
               "Fusion Tuning - two-stage, no mask": ("Fusion Tuning", "two-stage, no mask"),
               "random mask, same rate - two-stage, no mask": ("random mask, same rate", "two-stage, no mask"),
               "Fusion Tuning - random mask, same rate": ("Fusion Tuning", "random mask, same rate")}
for name, (a, b) in comparisons.items():
    print(f"{name:>46}: visual probe {paired(a, b, probe)}, fused accuracy {paired(a, b, acc)}")

schedule = paired("two-stage, no mask", "joint, pre-trained audio", probe)
rule_probe = paired("Fusion Tuning", "random mask, same rate", probe).mean
rule_acc = paired("Fusion Tuning", "random mask, same rate", acc).mean
assert schedule.clear(margin=0.05), "the two-stage start should restore the starved visual encoder"
assert abs(rule_probe) < 0.04 and abs(rule_acc) < 0.04, "the rule should be indistinguishable from a random mask"


# %% [markdown]
# **What we measured** (CPU, 2 threads, seeds 0–2; the cells above print the numbers of your run):
#
# | | visual probe | fused test accuracy | fused val accuracy after epoch 1 |
# |---|---|---|---|
# | joint, scratch | 0.354 ± 0.020 | 0.570 ± 0.020 | 0.242 |
# | joint, pre-trained audio | 0.214 ± 0.014 | 0.529 ± 0.028 | 0.494 |
# | two-stage, no mask | 0.526 ± 0.066 | 0.691 ± 0.039 | 0.617 |
# | Fusion Tuning | 0.523 ± 0.045 | 0.705 ± 0.022 | 0.641 |
# | random mask, same rate | 0.540 ± 0.066 | 0.722 ± 0.038 | 0.648 |
#
# The starvation is large and Fusion Tuning removes it (+0.31 on the visual probe over joint training with the
# pre-trained audio). But the baselines that separate the parts show that **the gain is the two-stage
# schedule's**: the two-stage start without masking gains as much (+0.312 ± 0.035 on the probe, +0.162 ± 0.019
# in fused accuracy, paired mean ± s.e.). The rule's mask adds nothing on top (probe −0.003 ± 0.023, fused
# accuracy +0.014 ± 0.010 over no mask), and **a random mask at the same rate does at least as well as the
# rule** (rule − random: probe −0.017 ± 0.021, fused accuracy −0.017 ± 0.014): whatever masking gives here, it
# is not from choosing the easy samples. This held in every pilot setting too, including a stronger audio
# partner and a four-times higher mask rate. We assert the schedule's gain and the rule's indistinguishability
# from the random mask (|difference| < 0.04), as the pilot fixed before these seeds ran.
#
# ## Try it: stage 2 with your settings
#
# Press **Run** to train stage 2 (seed 0, about ten seconds) with another threshold, ρ, the symmetric rule, or
# another `ratio_mode` (`"shuffled"`: the random mask at the rule's rate; `"mean"`: the authors' other mode, every
# sample masked at the mean ratio), and compare with the two-stage baseline of seed 0.

# %%
def try_stage2(threshold=0.3, rho=0.5, rule="as_released", ratio_mode="conf"):
    s1, seed = stage1[SEEDS[0]], SEEDS[0]
    method = FusionTuning(s1["conf_audio"], s1["conf_visual"], threshold=threshold, eta_audio=ETA, eta_visual=ETA,
                          rho_audio=rho, rho_visual=rho, rule=rule, ratio_mode=ratio_mode, seed=seed)
    model = joint_model(seed, audio_from=s1["audio"], visual_from=s1["visual"])
    fit(model, seed, method)
    base = frame().query("seed == @seed").set_index("condition")
    print(f"masked: audio {method.masked_audio:.1%}, visual {method.masked_visual:.1%} of the samples")
    print(f"visual probe {linear_probe(model, probe_train, test, 'visual'):.3f} (two-stage, no mask "
          f"{base.loc['two-stage, no mask', 'visual_probe']:.3f}); fused test {evaluate(model, test)['acc']:.3f} "
          f"(two-stage, no mask {base.loc['two-stage, no mask', 'test_acc']:.3f})")


widgets.interact_manual(try_stage2, threshold=widgets.FloatSlider(value=0.3, min=0.05, max=0.9, step=0.05),
                        rho=widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05),
                        rule=widgets.ToggleButtons(options=["as_released", "symmetric"]),
                        ratio_mode=widgets.ToggleButtons(options=["conf", "shuffled", "mean"]));

# %% [markdown]
# ## Summary
#
# * Starting the audio encoder from strong pre-trained weights gave the joint model a faster start and a visual
#   encoder that probes far below the one trained next to a from-scratch audio encoder.
# * Fusion Tuning trains each encoder alone first (recording each sample's confidence), then fine-tunes the
#   joint model while masking patches of the more confident modality on samples both find easy. Its visual
#   encoder is no longer starved, and its fused accuracy (0.71) is far above joint training with the
#   pre-trained audio (0.53), level with the two-stage start without masking (0.69).
# * As released, the rule only ever masks the audio; `rule="symmetric"` is the mirror-image variant.
# * The baselines that separate the parts show where the gain comes from (table below): the two-stage start
#   restores the visual encoder; the rule's choice of *which* samples to mask is indistinguishable from a random
#   mask at the same rate, here and in every pilot setting (a stronger audio partner, a higher mask rate).

# %%
summary = plots.summary_table(frame().to_dict("records"), by="condition",
                              values=["test_acc", "first_epoch_val_acc", "visual_probe"])
print(summary.loc[CONDITIONS].to_string())
avlab.course.headline(
    "05",
    visual_probe_scratch=mean_std(probe["joint, scratch"])[0],
    visual_probe_pretrained_audio=mean_std(probe["joint, pre-trained audio"])[0],
    visual_probe_two_stage=mean_std(probe["two-stage, no mask"])[0],
    visual_probe_fusion_tuning=mean_std(probe["Fusion Tuning"])[0],
    acc_scratch=mean_std(acc["joint, scratch"])[0], acc_pretrained_audio=mean_std(acc["joint, pre-trained audio"])[0],
    acc_two_stage=mean_std(acc["two-stage, no mask"])[0], acc_fusion_tuning=mean_std(acc["Fusion Tuning"])[0],
    visual_probe_random_mask=mean_std(probe["random mask, same rate"])[0],
    acc_random_mask=mean_std(acc["random mask, same rate"])[0],
    rule_minus_random_probe=rule_probe, rule_minus_random_acc=rule_acc, two_stage_minus_joint_probe=schedule.mean,
)
