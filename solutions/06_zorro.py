# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/avlab-course/avlab/blob/v0.1.0/solutions/06_zorro.ipynb)
#
# On Colab, ask for a GPU first: *Runtime → Change runtime type → GPU*; then run the cells in order.

# %% [markdown]
# # Chapter 06 · Entangled representations: Zorro, the masked multimodal transformer
#
# The simplest audio-visual transformer cuts the spectrogram and the clip into patches, concatenates the two
# token sequences and lets self-attention do the rest. Every layer then mixes the modalities, so no token of the
# output belongs to one modality any more. Two things break:
#
# 1. **Uni-modal use.** The "audio" tokens were trained to read the video as well. Take the video away and the
#    audio output is something the model never saw in training: its accuracy collapses.
# 2. **Contrastive learning.** Audio-visual contrastive learning asks the audio output of a clip to match the
#    video output of the *same* clip. If both outputs can read both inputs, they can match by reading the same
#    tokens: a **shortcut** that needs no cross-modal understanding at all.
#
# **Zorro** (Recasens et al., *Zorro: the masked multimodal transformer*, DeepMind 2023, arXiv 2301.09595) fixes
# both with one attention mask: audio tokens attend only to audio, video tokens only to video, and a third set of
# learned **fusion tokens** attends to everything. The audio and video streams stay modality-pure at every depth;
# the fusion stream is the multimodal one. This chapter measures both failures on AV-Digits with a tiny
# transformer, the same code with the mask on and off, and shows the mask removing them; then what Zorro's
# contrastive pre-training learns once the shortcut is gone. (DeepMind released no
# code; `avlab.models.zorro` is written from the paper's description.)

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
import functools

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F
from IPython.display import display

from avlab import plots
from avlab.data import load_avdigits
from avlab.diagnostics import linear_probe
from avlab.experiment import mean_std, train_many
from avlab.methods.zorro_contrastive import ZorroContrastive, info_nce, retrieval_accuracy
from avlab.models.zorro import FUSION, build_transformer, full_mask, token_types, zorro_mask
from avlab.train import Trainer, TrainConfig, evaluate
from avlab.utils import seed_everything

torch.set_num_threads(1)  # tiny matrices: one thread is as fast, and leaves the other core free

# %% [markdown]
# ## Setting
#
# * **Data.** AV-Digits `dominant_audio` with 1,500 training samples, but with **clean frames** (`vis_noise=0`).
#   A transformer has no convolutional prior: on the preset's noisy frames (noise std 0.3) our tiny one stays near
#   chance on vision alone after 15 epochs (we measured 0.15 test accuracy), while the width-8 ResNet of chapters
#   01–02 reaches 0.77. With clean frames both modalities are learnable, audio (clean speech) faster.
# * **Model.** `avlab.models.zorro.AVTransformer`: width 64, 2 pre-norm blocks, 2 heads, 4 fusion tokens.
#   Audio: 8×8 patches of the 32×32 log-mel, **16 tokens**. Video: 2×8×8 tubelets of the 4×32×32 clip,
#   **32 tokens**. Learned position and modality embeddings.
# * **Read-out.** Each stream is mean-pooled over its own tokens after the final LayerNorm and has its own linear
#   head: `out["audio"]` (audio tokens), `out["visual"]` (video tokens), `out["logits"]` (fusion tokens).
# * **Training.** All three heads are trained: the Trainer's base losses, fused cross-entropy plus one per
#   uni-modal head, are exactly Zorro's supervised loss on each of its outputs. Adam, lr 1e-3, batch 32,
#   10 epochs, three seeds. Accuracies are on the 1,000 test samples (held-out speakers and digit images).

# %%
SEEDS = [0, 1, 2]
MODEL = dict(dim=64, depth=2, heads=2, fusion_tokens=4)
TRAIN = dict(epochs=10, batch_size=32, lr=1e-3, progress=False)

splits = load_avdigits("dominant_audio", n_train=1500, vis_noise=0.0)
train, test = splits["train"], splits["test"]
print(train)
print(f"{sum(p.numel() for p in build_transformer(train, **MODEL).parameters()):,} parameters")


# %% [markdown]
# ## 1 · The mask
#
# The sequence is `[audio | video | fusion]`. Row $i$ is a query, column $j$ a key; $m_{ij}=1$ lets token $i$
# attend to token $j$. The paper (p. 4): *"we set $m_{ij} = 1$ if $j$ is a part of the fusion representation,
# otherwise we only set $m_{ij} = 1$ if $i$ and $j$ are vectors of the same modality"*; the semantics every
# implementation adopted (and the only one that keeps the streams pure) is
#
# $$m_{ij} = [\,\mathrm{type}(i) = \mathrm{type}(j)\,] \ \lor\ [\,\mathrm{type}(i) = \text{fusion}\,].$$
#
# Nothing but the fusion tokens attends to the fusion tokens. In code the two comparisons need parentheses:
# Python's `|` binds tighter than `==`, so `a == b | c == d` is a chained comparison `a == (b | c) == d`. The
# public PyTorch reimplementation (`lucidrains/zorro-pytorch`) fixed that bug in its mask (issue #8) but still has
# it in its read-out, `pool_mask | ret_types == GLOBAL`: its "pure" audio and video outputs there pool uniformly
# over *all* tokens, both modalities included (our research notes, §5.3). Here the read-out is a plain mean over
# each stream's own tokens.

# %%
def mask_from_types(types):
    """(N, N) boolean Zorro mask from the (N,) token types (AUDIO=0, VIDEO=1, FUSION=2); rows are queries."""
    query, key = types[:, None], types[None, :]
    # EXERCISE: True where query i may attend to key j: same modality, or the query is a fusion token (parentheses!)
    ### BEGIN SOLUTION
    return (query == key) | (query == FUSION)
    ### END SOLUTION


small = mask_from_types(token_types(2, 2, 1))
print(small.int())
assert torch.equal(small, zorro_mask(2, 2, 1))
assert torch.equal(mask_from_types(token_types(16, 32, 4)), zorro_mask(16, 32, 4))


# %%
def plot_mask(n_audio=16, n_video=32, n_fusion=4):
    """The Zorro mask and the full (unmasked) one, with the token blocks marked."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    edges = [n_audio, n_audio + n_video]
    centres = [n_audio / 2, n_audio + n_video / 2, n_audio + n_video + n_fusion / 2]
    for ax, (title, mask) in zip(axes, [("Zorro", zorro_mask(n_audio, n_video, n_fusion)),
                                        ("no mask (entangled)", full_mask(n_audio, n_video, n_fusion))]):
        sns.heatmap(mask.int().numpy(), ax=ax, cmap="Blues", vmin=0, vmax=1, cbar=False, square=True,
                    xticklabels=False, yticklabels=False)
        for e in edges:
            ax.axhline(e, color="k", lw=0.8), ax.axvline(e, color="k", lw=0.8)
        ax.set_xticks(centres, ["audio", "video", "fusion"])
        ax.set_yticks(centres, ["audio", "video", "fusion"], rotation=0)
        ax.set(title=f"{title}: {int(mask.sum())} of {mask.numel()} pairs", xlabel="key j", ylabel="query i")
    plt.tight_layout()
    return axes


plot_mask();

# %% [markdown]
# **The routing, checked on an untrained model.** Perturb the video: under the Zorro mask the audio stream's
# output does not move by a single bit (`torch.equal`); without the mask it does. (`tests/test_zorro.py` checks
# the same for the heads, the embeddings, train mode, and the other direction.)

# %%
batch = next(iter(torch.utils.data.DataLoader(test, 16)))
noisy_video = batch["visual"] + torch.randn_like(batch["visual"])
for zorro in (True, False):
    seed_everything(0)
    net = build_transformer(train, zorro=zorro, **MODEL).eval()
    with torch.no_grad():
        same = torch.equal(net(audio=batch["audio"], visual=batch["visual"])["features"]["audio"],
                           net(audio=batch["audio"], visual=noisy_video)["features"]["audio"])
    print(f"zorro={zorro!s:5}  audio output unchanged by the video perturbation: {same}")
    assert same == zorro


# %% [markdown]
# ## 2 · Uni-modal use: a modality removed
#
# Per seed, four models with the same budget:
#
# * **Zorro**: masked, both modalities;
# * **no mask**: the same model and training, every token attends to every token;
# * **audio alone** and **video alone**: the same transformer trained on one modality (the other's tokens are
#   simply absent), the uni-modal references.
#
# Then each joint model is evaluated with both modalities and with one **removed**: its tokens are dropped from
# the sequence (`model(audio=x)`), and we read the remaining modality's own output. For Zorro that output is
# mathematically the same function of its input with or without the other modality: that is uni-modal inference.

# %%
def fit(zorro, seed, modalities=("audio", "visual"), method=None, model=None, **config):
    """Train an AVTransformer (a new one, or `model`) with the chapter's budget, `config` overriding TRAIN;
    returns (model, run)."""
    seed_everything(seed)  # the initial weights are part of what a seed fixes
    if model is None:
        model = build_transformer(train, zorro=zorro, **MODEL)
    run = Trainer(model, TrainConfig(seed=seed, modalities=modalities, **{**TRAIN, **config}), method).fit(train)
    return model, run


def removal_scores(model):
    """Test accuracies of a joint model with both modalities and with one removed (its tokens dropped)."""
    both, audio, video = (evaluate(model, test, m) for m in (("audio", "visual"), ("audio",), ("visual",)))
    return {"fused": both["acc"],
            "audio head, both in": both["acc_audio"], "audio head, video removed": audio["acc_audio"],
            "video head, both in": both["acc_visual"], "video head, audio removed": video["acc_visual"],
            "fused, video removed": audio["acc"], "fused, audio removed": video["acc"]}


# the same trainings as `fit`, spread over one one-thread worker process per CPU core (train_many)
KINDS = {"Zorro": (True, ("audio", "visual")), "no mask": (False, ("audio", "visual")),
         "audio alone": (True, ("audio",)), "video alone": (True, ("visual",))}
jobs = [dict(build=functools.partial(build_transformer, zorro=zorro, **MODEL), modalities=modalities, seed=seed)
        for seed in SEEDS for zorro, modalities in KINDS.values()]
trained = iter(train_many({"train": train}, jobs, **TRAIN))
ROWS, MODELS = [], {}
for seed in SEEDS:
    for name, (zorro, modalities) in KINDS.items():
        MODELS[name, seed], _ = next(trained)
        if len(modalities) == 2:
            ROWS.append({"model": name, "seed": seed, **removal_scores(MODELS[name, seed])})
        else:
            m = modalities[0]
            ROWS.append({"model": name, "seed": seed, f"{'audio' if m == 'audio' else 'video'} head, alone":
                         evaluate(MODELS[name, seed], test, (m,))[f"acc_{m}"]})
results = pd.DataFrame(ROWS)
results.round(3)

# %% [markdown]
# One picture: each modality's own output, with the other modality present, removed, or never trained with.

# %%
bars = []
for r in ROWS:
    for modality in ("audio", "video"):
        for key, condition in ((f"{modality} head, both in", "both in"), (f"{modality} head, "
                               f"{'video' if modality == 'audio' else 'audio'} removed", "other removed"),
                               (f"{modality} head, alone", "trained alone")):
            if key in r:
                bars.append({"output": f"{modality} output", "model": r["model"] if condition != "trained alone"
                             else "uni-modal", "condition": condition, "accuracy": r[key], "seed": r["seed"]})
bars = pd.DataFrame(bars)
bars["model · condition"] = bars["model"] + " · " + bars["condition"]
ax = plots.plot_bars(bars, x="output", y="accuracy", hue="model · condition",
                     title="each modality's own output (test, mean ± sd over seeds)")
ax.legend(fontsize="small", bbox_to_anchor=(1.02, 1), loc="upper left");


# %% [markdown]
# **The assertion.** Over the three seeds:
# * Zorro's audio output with the video removed, and its video output with the audio removed, are within 0.1 of
#   the uni-modal models trained on that modality alone (mean over seeds);
# * the unmasked model's, with the other modality removed, are more than 0.2 below the uni-modal models, and below
#   Zorro's in every seed.

# %%
def col(model, key):
    return [r[key] for r in ROWS if r["model"] == model and key in r]


ALONE = {}
for modality, other in (("audio", "video"), ("video", "audio")):
    uni = col(f"{modality} alone", f"{modality} head, alone")
    zorro = col("Zorro", f"{modality} head, {other} removed")
    entangled = col("no mask", f"{modality} head, {other} removed")
    entangled_both = col("no mask", f"{modality} head, both in")
    ALONE[modality] = {"uni-modal model": uni, "Zorro": zorro, "no mask": entangled}
    for label, values in (("trained alone", uni), ("Zorro, other removed", zorro),
                          ("no mask, both in", entangled_both), ("no mask, other removed", entangled)):
        print(f"{modality:5} {label:24}", [round(x, 3) for x in values], "mean %.3f ± %.3f" % mean_std(values))
    gap_zorro = mean_std(zorro)[0] - mean_std(uni)[0]
    gap_entangled = mean_std(entangled)[0] - mean_std(uni)[0]
    print(f"      Zorro - alone = {gap_zorro:+.3f}   no mask - alone = {gap_entangled:+.3f}\n")
    assert abs(gap_zorro) < 0.1, f"Zorro's {modality} output should serve {modality} alone"
    assert gap_entangled < -0.2, f"the unmasked model's {modality} output should collapse without the {other}"
    assert all(e < z for e, z in zip(entangled, zorro))


# %% [markdown]
# What the table says:
#
# * **The entangled model's streams are not uni-modal.** With both modalities in, its "video" head is as good as
#   its fused head (around 0.75): the video tokens read the audio. Remove the audio and that head falls to chance
#   (about 0.12). Its audio head, trained with the video present, loses 0.1–0.5 when the video goes (by seed).
# * **Zorro's streams are.** Its audio and video heads give the *same* accuracy with and without the other
#   modality (dropped tokens change nothing), and match the uni-modal models within a few points: sharing the
#   transformer's weights with the other stream costs little here.
# * **Zorro's fused output is not uni-modal either.** "Fused, audio removed" is near chance for both models: the
#   fusion tokens learned to lean on audio, the fast modality (chapter 01's dominance, inside one transformer).
#   Uni-modal inference must read the modality's *own* output, which only the mask makes meaningful.
# * In these runs the masked model's fused accuracy is also a little higher than the unmasked one's: it has three
#   supervised outputs that cannot lean on each other.

# %% [markdown]
# ## 3 · Contrastive learning and its shortcut
#
# Zorro's self-supervised objective is a symmetric InfoNCE between the audio output $a_i$ and the video output
# $v_i$ of the same clip, the other clips of the batch being negatives (`avlab.methods.zorro_contrastive`):
#
# $$S_{ij} = \frac{\hat a_i^\top \hat v_j}{\tau},\qquad
#   \mathcal L = \tfrac12\Big[\tfrac1B\sum_i -\log\frac{e^{S_{ii}}}{\sum_j e^{S_{ij}}}
#   + \tfrac1B\sum_j -\log\frac{e^{S_{jj}}}{\sum_i e^{S_{ij}}}\Big],$$
#
# with $\hat a, \hat v$ the L2-normalised outputs of a projection head on each pooled stream, $\tau = 0.1$. It is a
# `Method` plug-in: `losses()` adds $w\mathcal L$ to the base losses. For pre-training without labels we set
# `model.detach_heads = True`: every head, the fused one included, then reads detached features, so the base
# losses only train the heads (online linear probes) and the transformer learns from $\mathcal L$ alone.
#
# **What can this learn on AV-Digits?** A clip's audio and video share only the class: the word and the digit
# image were drawn independently. So on held-out clips, an honest audio→video retrieval among the 1,000 test
# videos can at best find the right class, and then guess among its ~100 videos: **top-1 retrieval ≤ 0.01**.
# Anything far above that is not cross-modal knowledge. And the class is all that cross-modal contrastive learning
# between two modality-pure streams can learn here.

# %%
def my_info_nce(a, v, temperature=0.1):
    """Symmetric InfoNCE between paired rows of a and v (B, D)."""
    # EXERCISE: cosine similarities / temperature, then cross-entropy towards the diagonal, both directions, averaged
    ### BEGIN SOLUTION
    similarity = F.normalize(a, dim=1) @ F.normalize(v, dim=1).T / temperature
    target = torch.arange(len(a))
    return 0.5 * (F.cross_entropy(similarity, target) + F.cross_entropy(similarity.T, target))
    ### END SOLUTION


a, v = torch.randn(8, 5), torch.randn(8, 5)
print(my_info_nce(a, v).item(), info_nce(a, v).item())
assert torch.allclose(my_info_nce(a, v), info_nce(a, v))
assert my_info_nce(a, a).item() < my_info_nce(a, v).item()  # matching pairs score better

# %% [markdown]
# **Two measures, then.** *Instance* retrieval (the audio finds its own clip's video among 1,000) measures the
# shortcut: an honest model stays at or below the ceiling of 0.01. *Class* retrieval (the audio finds a video of
# the same digit) and **linear probes on each stream used alone** measure what an honest model can learn, the
# class; we compare them with the *same* model untrained (same seed, same initial weights).
#
# **How much data.** Our first version pre-trained Zorro for 3 epochs on the chapter's 1,500 clips and learned
# nothing (retrieval and probes at their untrained values). Longer runs on the same 1,500 clips do not help
# either: after 30 epochs (one pilot seed, τ 0.1) the model finds its *training* pairs 96% of the time and
# held-out class retrieval is still 0.13. With few pairs, each seen many times, memorising the pairs (a fingerprint of each clip) is the
# easier route. What changes it is the number of distinct pairs: pre-trained for the same number of steps on
# 12,000 pairs, each seen only a few times, the only thing that pays is what the pairs share. Unlabelled pairs
# are cheap (Zorro pre-trains on AudioSet's two million clips), so we pre-train Zorro on 12,000 unlabelled clips
# of the training speakers and digit images (their labels train only the detached heads, never the transformer)
# and probe with the 1,500 labelled ones. The setting was chosen on pilot seeds 20–22
# (`benchmarks/pilot_06_contrastive.py`, never the chapter's seeds):
#
# | Zorro pre-training (pilot seeds 20–22, mean ± sd) | class retrieval a→v | in-batch retrieval, training | probe audio alone | probe video alone |
# | --- | --- | --- | --- | --- |
# | untrained (same initial weights) | 0.105 ± 0.028 | — | 0.427 ± 0.009 | 0.265 ± 0.033 |
# | 1,500 clips, 24 epochs (564 steps), τ 0.2 | 0.145 ± 0.013 | **0.816** ± 0.027 | 0.462 ± 0.036 | 0.293 ± 0.011 |
# | 12,000 pairs, 2 epochs, τ 0.1 | 0.146 ± 0.015 | 0.021 ± 0.003 | 0.453 ± 0.081 | 0.318 ± 0.055 |
# | 12,000 pairs, 3 epochs, τ 0.1 | 0.264 ± 0.092 | 0.033 ± 0.011 | 0.579 ± 0.127 | 0.452 ± 0.069 |
# | 12,000 pairs, 2 epochs, τ 0.2 | 0.167 ± 0.075 | 0.026 ± 0.004 | 0.563 ± 0.112 | 0.343 ± 0.057 |
# | **12,000 pairs, 3 epochs (564 steps), τ 0.2** (chosen) | **0.283** ± 0.048 | 0.041 ± 0.011 | **0.680** ± 0.078 | **0.490** ± 0.050 |
#
# Seed-paired gains over the untrained model (mean ± s.e.): the chosen setting +0.178 ± 0.034 class retrieval,
# +0.253 ± 0.042 audio probe, +0.225 ± 0.047 video probe; the same 564 steps on the 1,500 clips +0.040 ± 0.015,
# +0.035 ± 0.020, +0.028 ± 0.017, while it finds 82% of its *training* pairs in a batch of 64: it memorised them.
# The rule, fixed before the pilot ran: the best mean class retrieval, or the fewest epochs within 0.03 of it.
# Batch 64 and Adam lr 1e-3 came from single-seed trials (seed 20) listed in the pilot's docstring: higher learning
# rates and batches of 32 learned less; Gaussian noise on the inputs and longer runs on the 1,500 clips did not
# learn the class at all.
#
# The unmasked model needs none of this: its shortcut appears within 3 epochs on the 1,500 clips, and that is
# what it is pre-trained on here.

# %%
SHORTCUT = dict(epochs=3, batch_size=64, temperature=0.1)  # the unmasked model, on the chapter's 1,500 clips
PRETRAIN = dict(pairs=12_000, epochs=3, batch_size=64, temperature=0.2)  # Zorro: the pilot's choice
pool = load_avdigits("dominant_audio", n_train=PRETRAIN["pairs"], vis_noise=0.0)["train"]
print(pool)


@torch.no_grad()
def embeddings(model, data):
    model.eval()
    out = [model(audio=b["audio"], visual=b["visual"])["embeddings"] for b in torch.utils.data.DataLoader(data, 500)]
    model.train()
    return torch.cat([o["audio"] for o in out]), torch.cat([o["visual"] for o in out])


def contrastive_scores(model, temperature):
    ea, ev = embeddings(model, test)
    return {"test InfoNCE": torch.stack([info_nce(ea[i:i + 64], ev[i:i + 64], temperature)
                                         for i in range(0, len(ea) - 63, 64)]).mean().item(),
            "instance retrieval a→v": retrieval_accuracy(ea, ev).item(),
            "class retrieval a→v": retrieval_accuracy(ea, ev, test.labels).item(),
            "probe audio alone": linear_probe(model, train, test, "audio"),
            "probe video alone": linear_probe(model, train, test, "visual")}


labels = test.labels
print("instance-retrieval ceiling for a model that knows only the class:",
      round((1 / torch.bincount(labels)[labels].float()).mean().item(), 4))
print("class-retrieval chance:", round((torch.bincount(labels) / len(labels)).pow(2).sum().item(), 3))
CROWS, HISTORY = [], {}
for name, zorro, data, setting in (("Zorro", True, pool, PRETRAIN), ("no mask", False, train, SHORTCUT)):
    build = functools.partial(build_transformer, zorro=zorro, **MODEL, detach_heads=True)
    for seed in SEEDS:  # the same initial weights as the run below starts from
        seed_everything(seed)
        CROWS.append({"model": name, "stage": "untrained", "seed": seed,
                      **contrastive_scores(build(train), setting["temperature"])})
    jobs = [dict(build=build, seed=seed, method=ZorroContrastive(weight=1.0, temperature=setting["temperature"]))
            for seed in SEEDS]
    for seed, (model, run) in zip(SEEDS, train_many({"train": data}, jobs, epochs=setting["epochs"],
                                                    batch_size=setting["batch_size"], lr=TRAIN["lr"], progress=False)):
        HISTORY[name, seed] = run
        CROWS.append({"model": name, "stage": "pre-trained", "seed": seed,
                      **contrastive_scores(model, setting["temperature"])})
contrastive = pd.DataFrame(CROWS)
contrastive.round(3)

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.3))
plots.plot_history({n: [HISTORY[n, s] for s in SEEDS] for n in ("Zorro", "no mask")}, metrics=("loss_contrastive",),
                   ax=axes[0], title="training InfoNCE")
plots.plot_history({n: [HISTORY[n, s] for s in SEEDS] for n in ("Zorro", "no mask")},
                   metrics=("contrastive_retrieval",), ax=axes[1], title="in-batch retrieval (training batches of 64)")
plt.tight_layout()


# %% [markdown]
# **The assertions** (their margins fixed from the pilot before these seeds were run):
# * **the shortcut**: the unmasked model retrieves the right held-out clip among 1,000 far above the ceiling
#   (> 0.5, fifty times it) in every seed; Zorro stays below 0.03 in every seed: it cannot cheat;
# * **what Zorro learns**: its pre-trained streams probe above the same seed's untrained ones, audio alone and
#   video alone, and its class retrieval is above the untrained model's, each by a seed-paired mean gain that
#   exceeds both a margin (0.1 for the probes, 0.05 for class retrieval: below the pilot's mean gain minus two
#   standard errors, 0.169 / 0.131 / 0.110) and twice its standard error.

# %%
def ccol(model, stage, key):
    return [r[key] for r in CROWS if r["model"] == model and r["stage"] == stage]


for name in ("Zorro", "no mask"):
    for key in ("test InfoNCE", "instance retrieval a→v", "class retrieval a→v"):
        values = ccol(name, "pre-trained", key)
        print(f"{name:8} {key:23}", [round(x, 3) for x in values], "mean %.3f ± %.3f" % mean_std(values))
assert all(r > 0.5 for r in ccol("no mask", "pre-trained", "instance retrieval a→v"))
assert all(r < 0.03 for r in ccol("Zorro", "pre-trained", "instance retrieval a→v"))

MARGIN = {"probe audio alone": 0.1, "probe video alone": 0.1, "class retrieval a→v": 0.05}  # from the pilot
GAIN = {}
for name in ("Zorro", "no mask"):
    for key in MARGIN:
        change = [p - i for p, i in zip(ccol(name, "pre-trained", key), ccol(name, "untrained", key))]
        mean_gain, sd = mean_std(change)
        se = sd / len(change) ** 0.5
        GAIN[name, key] = (mean_gain, se)
        print(f"{name:8} {key:20} pre-trained - untrained:", [round(x, 3) for x in change],
              f"mean {mean_gain:+.3f} ± {se:.3f} (s.e.)")
        if name == "Zorro":
            assert mean_gain > max(MARGIN[key], 2 * se), f"Zorro's pre-training should raise {key}"


# %% [markdown]
# What happened:
#
# * **The shortcut is there, and it is total.** Within three epochs the unmasked model's test InfoNCE falls from
#   about 4.4 (≈ log 64, chance) to about 0.6 and it retrieves the right clip out of 1,000 unseen ones most of the
#   time: 0.79–0.95 against a ceiling of 0.01 for anything that understands both modalities. Its "audio" and "video"
#   outputs both read the same tokens of the pair (a fingerprint of the clip) and match on that. Its class
#   retrieval (0.91) says nothing more: the right clip is of the right class.
# * **It teaches nothing a modality could use alone.** The linear probes on the unmasked model's streams used
#   alone do not improve (audio +0.017 ± 0.012); its video stream's probe drops in every seed (−0.043 ± 0.006).
# * **Zorro cannot cheat, and with enough pairs it learns what there is to learn: the class.** Its instance
#   retrieval stays at the ceiling (0.004), its test InfoNCE only a little below chance (4.0: a batch of 64 holds
#   about six clips of each digit, which the class alone cannot tell apart). But an audio now finds a video of its
#   own digit 0.33 of the time (untrained: 0.09, chance 0.10), and each stream *used alone* probes far above the
#   same seed's untrained model: audio 0.43 → 0.69 (+0.259 ± 0.016), video 0.26 → 0.52 (+0.255 ± 0.019), every seed
#   gaining more than 0.2. Nothing in pre-training read a label: the only thing the two modality-pure streams
#   could match on was the digit they share. (The video stream now probes above the video-alone model of section 2,
#   0.43, which was supervised on only the 1,500 labelled clips.)
# * **The amount of distinct data decides it, not the number of steps.** The pilot's control, the same 564 steps
#   on the 1,500 clips, memorises its training pairs (82% found in a batch) and gains almost nothing (+0.03 to
#   +0.04). The paper pre-trains on millions of clips; at laptop scale 12,000 are enough to see the effect start.
#   The curves above are still falling after three epochs: more pre-training would learn more.
# * A detail of the projection head: without the batch norm in it (`AVTransformer.project`), the masked model's
#   pooled video features start almost identical across clips (cosine ≈ 0.98), and the contrastive loss of the
#   masked model sat exactly at log 64 in every 6-epoch trial we ran on the 1,500 clips (τ = 0.1, 0.3, 1; lr 1e-3
#   and 3e-4).

# %% [markdown]
# ## 4 · Your turn
#
# Train a Zorro and an unmasked model with your settings: the number of fusion tokens, the depth, and the weight
# $w$ of the contrastive loss. With $w > 0$ and `pre-train epochs` > 0, the model first pre-trains on
# $w\mathcal L$ alone (heads detached), then fine-tunes with the supervised losses plus $w\mathcal L$; with
# `pre-train epochs` = 0 it trains supervised plus $w\mathcal L$ from scratch; $w = 0$ is plain supervised
# training. One seed, about half a minute per model on a laptop CPU (more with more
# epochs). Questions to try: does the unmasked model's contrastive loss go to ~0 even when added to supervised
# training? Does a larger $w$ hurt its uni-modal outputs further? Does Zorro need more than one fusion token?

# %%
def lab(fusion_tokens=4, depth=2, contrastive_weight=0.0, pretrain_epochs=0, epochs=10, seed=0):
    rows = []
    for name, zorro in (("Zorro", True), ("no mask", False)):
        method = ZorroContrastive(weight=contrastive_weight) if contrastive_weight > 0 else None
        seed_everything(seed)
        model = build_transformer(train, zorro=zorro, **{**MODEL, "fusion_tokens": fusion_tokens, "depth": depth})
        if pretrain_epochs and method is not None:
            model.detach_heads = True
            fit(zorro, seed, model=model, method=method, epochs=pretrain_epochs)
            model.detach_heads = False
        model, run = fit(zorro, seed, model=model, method=method, epochs=epochs)
        ea, ev = embeddings(model, test)
        rows.append({"model": name, **removal_scores(model), "retrieval a→v": retrieval_accuracy(ea, ev).item(),
                     "class retrieval a→v": retrieval_accuracy(ea, ev, test.labels).item(),
                     **({"train InfoNCE (last epoch)": run.history[-1]["loss_contrastive"] / contrastive_weight}
                        if method is not None else {})})
    plot_mask(16, 32, fusion_tokens)
    plt.show()
    display(pd.DataFrame(rows).set_index("model").T.round(3))


widgets.interact_manual(
    lab, fusion_tokens=widgets.IntSlider(value=4, min=1, max=16, description="fusion tokens"),
    depth=widgets.IntSlider(value=2, min=1, max=4, description="depth"),
    contrastive_weight=widgets.FloatSlider(value=0.0, min=0.0, max=2.0, step=0.25, description="contrastive w"),
    pretrain_epochs=widgets.IntSlider(value=0, min=0, max=20, description="pre-train epochs"),
    epochs=widgets.IntSlider(value=10, min=1, max=30, description="epochs"),
    seed=widgets.IntSlider(value=0, min=0, max=9, description="seed"));

# %% [markdown]
# **Question.** Why can Zorro's fused output not be used for uni-modal inference even though its audio and video
# outputs can, and what would you change in training to make it usable?
#
# <!-- BEGIN SOLUTION -->
# The fusion tokens attend to both streams and were trained only with both present; with audio, the fast modality,
# available they learned to rely on it, so with audio removed they see a distribution they never met (near chance
# above). The audio and video outputs never see the other modality, so removing it changes nothing. To make the
# fused output robust one could train it with modalities randomly dropped (drop the tokens of one modality for some
# batches), which the mask makes cheap: the pure streams are unaffected by the dropping.
# <!-- END SOLUTION -->

# %% [markdown]
# ## Summary

# %%
summary_rows = []
for r in ROWS:
    if r["model"] in ("Zorro", "no mask"):
        summary_rows.append({"model": r["model"], "seed": r["seed"], "fused": r["fused"],
                             "audio only": r["audio head, video removed"], "video only": r["video head, audio removed"]})
    else:
        key = "audio only" if r["model"] == "audio alone" else "video only"
        summary_rows.append({"model": "uni-modal models", "seed": r["seed"],
                             key: r["audio head, alone" if key == "audio only" else "video head, alone"]})
for r in CROWS:
    if r["stage"] == "pre-trained":
        next(s for s in summary_rows if s["model"] == r["model"] and s["seed"] == r["seed"]).update(
            {"contrastive: instance retrieval": r["instance retrieval a→v"],
             "class retrieval": r["class retrieval a→v"]})
summary = plots.summary_table(summary_rows, "model", ["fused", "audio only", "video only",
                                                      "contrastive: instance retrieval", "class retrieval"])
summary


# %%
def mean(values):
    return round(mean_std(values)[0], 4)


avlab.course.headline(
    "06", seeds=SEEDS,
    zorro_fused=mean(col("Zorro", "fused")), no_mask_fused=mean(col("no mask", "fused")),
    zorro_audio_only=mean(ALONE["audio"]["Zorro"]), zorro_video_only=mean(ALONE["video"]["Zorro"]),
    no_mask_audio_only=mean(ALONE["audio"]["no mask"]), no_mask_video_only=mean(ALONE["video"]["no mask"]),
    uni_audio=mean(ALONE["audio"]["uni-modal model"]), uni_video=mean(ALONE["video"]["uni-modal model"]),
    retrieval_no_mask=mean(ccol("no mask", "pre-trained", "instance retrieval a→v")),
    retrieval_zorro=mean(ccol("Zorro", "pre-trained", "instance retrieval a→v")), retrieval_ceiling=0.01,
    class_retrieval_zorro=mean(ccol("Zorro", "pre-trained", "class retrieval a→v")),
    zorro_probe_gain_audio=round(GAIN["Zorro", "probe audio alone"][0], 4),
    zorro_probe_gain_video=round(GAIN["Zorro", "probe video alone"][0], 4))
