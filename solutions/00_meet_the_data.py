# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/avlab-course/avlab/blob/v0.1.0/solutions/00_meet_the_data.ipynb)
#
# On Colab, ask for a GPU first: *Runtime → Change runtime type → GPU*; then run the cells in order.

# %% [markdown]
# # Chapter 00 · Meet the data
#
# Every chapter of this course trains on **AV-Digits**, a small audio-visual dataset that `avlab` builds on your
# machine in a few seconds, with no download:
#
# * **audio**: a spoken digit word ("zero" … "nine") synthesised by eSpeak NG with one of 128 voices
#   (8 English accents × 16 voice variants, random rate and pitch), placed in a 1-second window, with noise added
#   at a chosen signal-to-noise ratio, turned into a log-mel spectrogram;
# * **video**: a real handwritten digit (scikit-learn's `load_digits`) drifting across a noisy 32×32 canvas for
#   4 frames.
#
# Both show the same class and nothing else ties them, as in AV-MNIST. Train, validation and test use different
# speakers and different source images, so a model cannot pass by remembering a voice or a picture.
#
# Two knobs decide which modality is easy: `snr_db` (how loud the speech is over its noise) and `vis_noise`
# (how much noise covers the digit). In this chapter you will listen to the data, train each modality alone and
# the two together, and watch the easy modality starve the other: the phenomenon the rest of the course fixes.

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
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torchaudio
from IPython.display import Audio, display

from avlab import diagnostics, plots
from avlab.data import PRESETS, load_avdigits
from avlab.experiment import mean_std, train_model

# %% [markdown]
# ## The dataset
#
# `load_avdigits` takes a named preset. `dominant_audio` reproduces the situation of CREMA-D in the OGM-GE paper:
# the audio is clean and learned in a couple of epochs, the visual digits are noisy and learned slowly.

# %%
print({name: settings for name, settings in PRESETS.items()})
splits = load_avdigits("dominant_audio")
for split in splits.values():
    print(split)
train, val, test = splits["train"], splits["val"], splits["test"]
sample = train[0]
print({k: (tuple(v.shape) if torch.is_tensor(v) and v.dim() else v) for k, v in sample.items()})

# %% [markdown]
# ## Listen and look
#
# Each item is a dictionary. `audio` is a (1, 32, 32) log-mel spectrogram, `visual` a (1, 4, 32, 32) clip
# (channels, frames, height, width, the layout of the real video datasets). The raw waveform is not stored; the
# dataset re-synthesises it from the sample's voice, offset and noise seed.

# %%
from avlab.data.speech import DIGIT_WORDS, SPEAKERS

for i in range(3):
    meta = {k: train.meta[k][i] for k in ("label", "speaker", "rate", "pitch")}
    print(f"sample {i}: digit {meta['label']}, voice {SPEAKERS[meta['speaker']]}, {meta['rate']} wpm, pitch {meta['pitch']}")
    display(Audio(train.waveform(i), rate=16_000))

# %%
fig, axes = plt.subplots(3, 6, figsize=(13, 6))
for row, i in enumerate(range(3)):
    wave = train.waveform(i)
    axes[row, 0].plot(np.arange(len(wave)) / 16_000, wave, lw=0.5)
    axes[row, 0].set(title=f"waveform, digit {train.labels[i].item()}", xlabel="s")
    axes[row, 1].imshow(train.audio[i, 0], origin="lower", aspect="auto", cmap="magma")
    axes[row, 1].set(title="log-mel (32×32)")
    for t in range(4):
        axes[row, 2 + t].imshow(train.visual[i, 0, t], cmap="gray", vmin=-0.5, vmax=1.5)
        axes[row, 2 + t].set(title=f"frame {t}")
for ax in axes[:, 1:].flat:
    ax.set_xticks([]), ax.set_yticks([])
fig.tight_layout()


# %% [markdown]
# ### Exercise 1: from waveform to spectrogram
#
# The audio features are a log-mel spectrogram: a short-time Fourier transform (512-point FFT, 25 ms windows
# every 15 ms), 64 mel bands, the first 64 frames, `log(· + 1e-6)`, then 2×2 average pooling down to 32×32.
# Rebuild it from the waveform with `torchaudio.transforms.MelSpectrogram`. The stored features were also
# standardised with the training set's mean and standard deviation, so we compare by correlation.

# %%
def log_mel(wave: np.ndarray) -> torch.Tensor:
    """(16000,) waveform -> (32, 32) log-mel spectrogram."""
    # EXERCISE: compute the 64-band mel spectrogram (n_fft=512, win_length=400, hop_length=240), keep 64 frames, take the log, pool to 32x32
    ### BEGIN SOLUTION
    mel = torchaudio.transforms.MelSpectrogram(16_000, n_fft=512, win_length=400, hop_length=240, n_mels=64)
    spec = torch.log(mel(torch.from_numpy(wave))[:, :64] + 1e-6)
    return torch.nn.functional.avg_pool2d(spec[None], 2)[0]
    ### END SOLUTION


mine = log_mel(train.waveform(0))
corr = np.corrcoef(mine.flatten().numpy(), train.audio[0, 0].flatten().numpy())[0, 1]
print(f"correlation with the stored features: {corr:.4f}")
assert mine.shape == (32, 32) and corr > 0.99

# %% [markdown]
# ## One modality at a time, then both
#
# `train_model` builds the course's audio-visual classifier (a ResNet-18 per modality at width 8, concatenation
# fusion, one linear head per modality) and runs the one training loop of `avlab`. With `modalities=("visual",)`
# the same network sees only the frames: the visual encoder *trained alone*.
#
# The per-modality heads of the joint model read **detached** encoder features: they are online linear probes that
# measure how much each encoder has learned without changing it. We train three seeds of each model; every number
# below is over those seeds.

# %%
SEEDS = [0, 1, 2]
EPOCHS = 10
runs = {"audio alone": [], "visual alone": [], "joint": []}
models = {name: [] for name in runs}
for seed in SEEDS:
    for name, modalities in [("visual alone", ("visual",)), ("joint", ("audio", "visual"))]:
        model, run = train_model(splits, modalities=modalities, seed=seed, epochs=EPOCHS, progress=False)
        runs[name].append(run), models[name].append(model)
model, run = train_model(splits, modalities=("audio",), seed=0, epochs=EPOCHS, progress=False)
runs["audio alone"].append(run), models["audio alone"].append(model)
for name, rs in runs.items():
    print(f"{name:>13}: final val accuracy {mean_std(r.last('val_acc') for r in rs)[0]:.3f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 3.5))
plots.plot_history({k: v for k, v in runs.items()}, metrics=("val_acc",), ax=axes[0], title="validation accuracy")
plots.plot_history({"joint": runs["joint"]}, metrics=("val_acc_audio", "val_acc_visual"), ax=axes[1],
                   title="joint model: each encoder, read by its probe head")
fig.tight_layout()

# %% [markdown]
# Look at the numbers before the curves: the visual model alone is far above chance, yet the joint model, which
# sees the same frames *and* the audio, is no better than the audio model alone (often a little worse): fusion
# did not add what vision knows. Wang, Tran and Feiszli ("What Makes Training Multi-Modal Classification Networks
# Hard?", CVPR 2020) found the same on real video benchmarks.
#
# The right panel shows why. The joint model's visual encoder barely learns: the audio solves the training set
# within a few epochs, the fused loss goes to zero, and the gradient that reaches the visual encoder fades with
# it. The gradient norms tell the same story:

# %%
plots.plot_history({"joint": runs["joint"]}, metrics=("grad_norm_audio", "grad_norm_visual"),
                   title="joint model: gradient norm per encoder");

# %% [markdown]
# ### Exercise 2: probe the encoders
#
# The standard diagnostic (Peng et al.; Du et al.) freezes an encoder and trains a fresh linear classifier on its
# features. Compare the visual encoder of the joint model with the one trained alone, on the test set, using
# `diagnostics.linear_probe(model, train, test, modality)`.

# %%
rows = []
for seed, joint_model, visual_model in zip(SEEDS, models["joint"], models["visual alone"]):
    # EXERCISE: probe the visual encoder of the joint model and of the visual-alone model
    ### BEGIN SOLUTION
    joint_probe = diagnostics.linear_probe(joint_model, train, test, "visual")
    alone_probe = diagnostics.linear_probe(visual_model, train, test, "visual")
    ### END SOLUTION
    rows.append({"seed": seed, "visual probe, joint": joint_probe, "visual probe, alone": alone_probe})
probes = pd.DataFrame(rows)
probes["gap"] = probes["visual probe, alone"] - probes["visual probe, joint"]
print(probes.round(3).to_string(index=False))

# %% [markdown]
# **The phenomenon, asserted.** Over three seeds, the visual encoder trained jointly with the dominant audio
# probes clearly below the same encoder trained alone: in every seed, and by a margin far larger than the spread
# between seeds.

# %%
gap_mean, gap_std = mean_std(probes["gap"])
print(f"visual probe: alone {mean_std(probes['visual probe, alone'])[0]:.3f}, "
      f"joint {mean_std(probes['visual probe, joint'])[0]:.3f}, gap {gap_mean:.3f} ± {gap_std:.3f}")
assert (probes["gap"] > 0.10).all(), "the joint visual encoder should probe clearly below visual alone in every seed"
assert gap_mean > 3 * gap_std

# %% [markdown]
# ## Three ways to ask "how good is each modality?"
#
# 1. **head**: the model's own uni-modal head (here an online probe on detached features);
# 2. **zeroed**: the fused output with the other modality replaced by zeros;
# 3. **probe**: a linear probe trained afterwards on the frozen encoder.
#
# And one way to ask "how much does each modality contribute to the fused accuracy?": the exact **Shapley value**
# of each modality, a two-player game whose value is the accuracy with only some modalities present.

# %%
joint_model = models["joint"][0]
views = diagnostics.uni_modal_accuracy(joint_model, train, test)
print(pd.DataFrame(views).round(3))
contributions = diagnostics.shapley(joint_model, test)
print({k: round(v, 3) for k, v in contributions.items()})
plots.plot_bars([{"modality": m, "Shapley contribution to accuracy": contributions[m]} for m in ("audio", "visual")],
                x="modality", y="Shapley contribution to accuracy");

# %% [markdown]
# ## Move the knobs
#
# Pick a preset and a visual noise level, press **Run**, and see which modality wins. Each run trains the joint
# model for a few epochs on a smaller training set (a new preset's audio is synthesised once, a few seconds).
# Try `dominant_visual` (drowned speech, clean digits), or `dominant_audio` with `vis_noise` 0.

# %%
import ipywidgets as widgets


def explore(preset="dominant_audio", vis_noise=0.3, epochs=6):
    data = load_avdigits(preset, vis_noise=vis_noise, n_train=1500)
    model, run = train_model(data, epochs=epochs, progress=False)
    phi = diagnostics.shapley(model, data["test"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.2))
    plots.plot_history({preset: run}, metrics=("val_acc", "val_acc_audio", "val_acc_visual"), ax=axes[0])
    plots.plot_bars([{"modality": m, "Shapley": phi[m]} for m in ("audio", "visual")], x="modality", y="Shapley",
                    ax=axes[1], title="contribution to test accuracy")
    fig.tight_layout()
    plt.show()


widgets.interact_manual(explore, preset=list(PRESETS),
                        vis_noise=widgets.FloatSlider(value=0.3, min=0.0, max=0.8, step=0.05, continuous_update=False),
                        epochs=widgets.IntSlider(value=6, min=2, max=15));

# %% [markdown]
# ## What to remember
#
# * Training both modalities together was no better than the audio alone, and left the visual encoder far worse
#   than training it alone: the easy modality starves the hard one.
# * The per-modality heads, the zeroed-modality accuracy, linear probes and Shapley values all show it; probes on
#   frozen encoders are the fairest comparison between models.
# * Chapter 01 measures this *modality dominance* more closely and applies the published fixes (OGM-GE, MLB).

# %%
avlab.course.headline(
    "00",
    visual_probe_alone=mean_std(probes["visual probe, alone"])[0],
    visual_probe_joint=mean_std(probes["visual probe, joint"])[0],
    probe_gap=gap_mean,
    val_acc_joint=mean_std(r.last("val_acc") for r in runs["joint"])[0],
    val_acc_visual_alone=mean_std(r.last("val_acc") for r in runs["visual alone"])[0],
    val_acc_audio_alone=runs["audio alone"][0].last("val_acc"),
)
