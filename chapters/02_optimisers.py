# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/avlab-course/avlab/blob/v0.1.0/chapters/02_optimisers.ipynb)
#
# On Colab, ask for a GPU first: *Runtime → Change runtime type → GPU*; then run the cells in order.

# %% [markdown]
# # Chapter 02 · The optimiser is part of the method
#
# Chapter 01 ran every model with Adam, and two of its findings point at the optimiser: OGM-GE made fused accuracy
# clearly *worse* than joint training, and MLB's balancing coefficients added nothing to the plain multi-loss. Both
# methods act the same way: after `backward()` they multiply each encoder's gradient by a coefficient $k$ (OGM-GE
# also adds noise). Under SGD that coefficient scales the step. Adam divides each step by a running RMS of the
# gradient, so a constant $k$ cancels and a slowly varying one is damped.
#
# The authors did not all use Adam. OGM-GE's code (`GeWu-Lab/OGM-GE_CVPR2022`) trains with **SGD with momentum 0.9**
# (lr 1e-3, 100 epochs); MLB's (`kkontras/MLB`) trains with **Adam** (lr 1e-4 on CREMA-D). avlab records this as
# `designed_for` in each method and in every run record. This chapter
#
# 1. shows the mechanism on **one toy parameter**: Adam's step for $k\,g$ against $g$, and SGD's;
# 2. measures **the GE noise** against the modulated gradient on a real batch;
# 3. trains **joint, OGM, OGM-GE, multi-loss and MLB under SGD with momentum and under Adam**, on chapter 01's data,
#    with the same seeds, initial weights and batches, and asserts over the seed-paired differences what holds;
# 4. asserts what holds, and explains with ablations why OGM-GE still does not help under SGD.

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
import statistics

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F
from IPython.display import display

from avlab import plots
from avlab.data import load_avdigits
from avlab.diagnostics import linear_probe
from avlab.experiment import mean_std, train_many, train_model
from avlab.methods import MLB, OGMGE, DiscrepancyMonitor, ogm_coefficients
from avlab.methods.base import encoder_parameters
from avlab.methods.ogm import modulate_gradient
from avlab.train import evaluate

# %% [markdown]
# ## Setting
#
# Chapter 01's data and model: `dominant_audio` with `frames=2, vis_noise=0.2, snr_db=5`, 1,500 training samples
# (200 validation, 500 test), ResNet-18 encoders at width 8, **concat fusion** (the fusion of OGM-GE's and MLB's
# headline runs), batch size 64. Two optimisers:
#
# * **Adam**, lr 3e-3, 6 epochs: chapter 01's budget;
# * **SGD with momentum 0.9** (`TrainConfig(optimizer="sgd")`, weight decay 1e-4 as in OGM-GE's code), **lr 0.03,
#   10 epochs**. The authors' lr 1e-3 is for 100 epochs; in our budget SGD needs a larger one. We chose it on
#   **joint training alone** (so that the choice favours no method) on pilot seeds 20–22: the lr with the best
#   validation accuracy at 10 epochs among 0.01, 0.03 and 0.1, then the fewest of 6, 8, 10 epochs within 0.01 of
#   it (`benchmarks/pilot_02_optimiser.py`; its table is at the end).
#
# Seeds 0, 1 and 2. A seed fixes the initial weights and the batch order, so the ten runs of one seed start from the
# same network and see the same batches: each comparison is **paired by seed**. A difference counts when its mean
# over the three pairs exceeds **max(2 s.e., 0.02)** (s.e.: the standard error of the paired differences).
# OGM-GE's alpha is 0.8 (its README's CREMA-D value) with the authors' window (epochs 0–50: all of ours); MLB's alpha
# is 0.8 (its CREMA-D config).

# %%
SEEDS = [0, 1, 2]
DATA = dict(n_train=1500, n_val=200, n_test=500, frames=2, vis_noise=0.2, snr_db=5.0)  # chapter 01's setting
COMMON = dict(batch_size=64, width=8, fusion="concat", progress=False)
OPTIMISERS = {"SGD": dict(optimizer="sgd", lr=0.03, epochs=10),  # benchmarks/pilot_02_optimiser.py
              "Adam": dict(optimizer="adam", lr=3e-3, epochs=6)}  # chapter 01
ALPHA = 0.8
METHODS = ["joint", "OGM", "OGM-GE", "multi-loss", "MLB"]
MARGIN = 0.02

splits = load_avdigits("dominant_audio", **DATA)
train, test = splits["train"], splits["test"]
print(train)


def make_method(name, alpha=ALPHA, end=50):
    return {"joint": lambda: DiscrepancyMonitor(alpha),  # plain joint training that logs OGM's ratio
            "OGM": lambda: OGMGE(alpha, end=end, noise=False),
            "OGM-GE": lambda: OGMGE(alpha, end=end),
            "multi-loss": lambda: MLB(alpha, balance=False),
            "MLB": lambda: MLB(alpha)}[name]()


print({name: make_method(name).config().get("designed_for") for name in METHODS})


# %% [markdown]
# ## 1 · The mechanism on one parameter
#
# One scalar parameter, 140 steps (about chapter 01's run), a noisy gradient $g_t$ with a constant mean. We feed the
# optimiser $g_t$, then $k\,g_t$ with a constant $k=0.3$ (OGM-GE's audio coefficient is about that), then $k_t\,g_t$
# with $k_t$ falling slowly from 1 to 0.3, and compare the distance the parameter travels with the one it travels
# on $g_t$.
#
# Adam's update is $m \leftarrow \beta_1 m + (1-\beta_1) g$, $v \leftarrow \beta_2 v + (1-\beta_2) g^2$,
# $w \leftarrow w - \mathrm{lr}\,\hat m / (\sqrt{\hat v} + \epsilon)$ with the bias corrections
# $\hat m = m / (1-\beta_1^t)$, $\hat v = v / (1-\beta_2^t)$. Multiply every $g$ by a constant $k$: $\hat m$ gets
# $k$, $\sqrt{\hat v}$ gets $k$, and the step does not change. With $\beta_2 = 0.999$ and 140 steps, $\hat v$ is
# close to the mean of $g^2$ over *all* steps so far, so a $k_t$ that falls slowly is divided by its own past RMS:
# damped, not cancelled.
#
# **Exercise 1.** Write Adam's update for one scalar parameter (no weight decay); the cell checks it against
# `torch.optim.Adam`.

# %%
def my_adam(grads, lr=0.01, betas=(0.9, 0.999), eps=1e-8):
    """The parameter's value after each Adam step from w = 0 on the gradients `grads` (a list of floats)."""
    # EXERCISE: m = v = 0; for t = 1, 2, ...: update m, v; bias-correct; w -= lr * m_hat / (sqrt(v_hat) + eps)
    raise NotImplementedError("Exercise: m = v = 0; for t = 1, 2, ...: update m, v; bias-correct; w -= lr * m_hat / (sqrt(v_hat) + eps)")


def torch_path(make_optimiser, grads):
    """The parameter's value after each step of a torch optimiser from w = 0 on `grads`."""
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser, out = make_optimiser([w]), []
    for g in grads:
        w.grad = torch.tensor([g], dtype=torch.float64)
        optimiser.step()
        out.append(w.item())
    return out


STEPS = 140
g = (1 + 0.5 * torch.randn(STEPS, generator=torch.Generator().manual_seed(0), dtype=torch.float64)).tolist()
assert np.allclose(my_adam(g), torch_path(lambda p: torch.optim.Adam(p, lr=0.01), g), rtol=1e-9, atol=1e-12)

OPTIMISERS_TOY = {"SGD (momentum 0.9)": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9),
                  "Adam": lambda p: torch.optim.Adam(p, lr=0.01)}
COEFFICIENTS = {"k = 0.3": [0.3] * STEPS, "k: 1 -> 0.3": np.linspace(1, 0.3, STEPS).tolist()}
toy, fig, axes = [], *plt.subplots(1, 2, figsize=(13, 3.5))
for ax, (opt_name, make) in zip(axes, OPTIMISERS_TOY.items()):
    base = -np.diff(torch_path(make, g), prepend=0.0)  # the step of each iteration on g
    ax.plot(base, label="g", color="black")
    for k_name, k in COEFFICIENTS.items():
        steps = -np.diff(torch_path(make, [a * b for a, b in zip(k, g)]), prepend=0.0)
        ax.plot(steps, label=f"{k_name} times g")
        toy.append({"optimiser": opt_name, "coefficient": k_name, "k at the end": k[-1],
                    "distance / distance on g": steps.sum() / base.sum(),
                    "last 10 steps / on g": steps[-10:].sum() / base[-10:].sum()})
    ax.set(title=opt_name, xlabel="step", ylabel="step size")
    ax.legend(fontsize="small")
plt.tight_layout()
toy = pd.DataFrame(toy)
toy.round(3)

# %%
ratio = {(r["optimiser"], r["coefficient"]): r["last 10 steps / on g"] for r in toy.to_dict("records")}
assert abs(ratio["Adam", "k = 0.3"] - 1) < 1e-3, "Adam: a constant k cancels"
assert abs(ratio["SGD (momentum 0.9)", "k = 0.3"] - 0.3) < 1e-3, "SGD: the step is k times as large"
assert 0.4 < ratio["Adam", "k: 1 -> 0.3"] < 0.9, "Adam: a slowly falling k is damped, neither kept nor cancelled"


# %% [markdown]
# ## 2 · The GE noise against the modulated gradient
#
# OGM-GE sets each conv weight's gradient to $k\,g + \varepsilon$ with $\varepsilon \sim \mathcal N(0,
# \mathrm{std}(g)^2)$ elementwise: the noise has the standard deviation of the *unmodulated* gradient, so its norm is
# about $\lVert g\rVert$ (when $g$'s mean is small against its spread), while the signal is $k\lVert g\rVert$. One
# real batch, a fresh concat model of seed 0: the fused loss's gradient, OGM's coefficients from the split logits,
# and `avlab.methods.ogm.modulate_gradient` (the code OGM-GE runs) applied to a copy of each audio and visual
# conv-weight gradient.

# %%
def ge_noise_sizes(model, batch, alpha=ALPHA):
    """Per modality: OGM's k on this batch and the norm of the GE noise over the norm of k * g (conv weights)."""
    model.train()
    out = model(audio=batch["audio"], visual=batch["visual"])
    model.zero_grad()
    F.cross_entropy(out["logits"], batch["label"]).backward()
    c = ogm_coefficients(*out["split"], batch["label"], alpha)
    sizes = {}
    for m in ("audio", "visual"):
        k, signal, noise = c[f"k_{m}"].item(), 0.0, 0.0
        for _, p in encoder_parameters(model, m, conv_only=True):
            modulated = p.grad.clone()
            modulate_gradient(modulated, k, noise=True)  # k * g + N(0, std(g)^2)
            signal += (k * p.grad).pow(2).sum().item()
            noise += (modulated - k * p.grad).pow(2).sum().item()
        sizes[m] = {"k": k, "|noise| / |k g|": math.sqrt(noise / signal)}
    return sizes, c["ratio_audio"].item()


torch.manual_seed(0)
batch = next(iter(torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)))
fresh, _ = train_model(splits, None, seed=0, epochs=0, **COMMON)  # untrained: the initial weights of seed 0
noise_fresh, rho_fresh = ge_noise_sizes(fresh, batch)
print(f"fresh model: s_a/s_v = {rho_fresh:.2f};",
      {m: {k: round(v, 2) for k, v in d.items()} for m, d in noise_fresh.items()})
dominant = min(noise_fresh, key=lambda m: noise_fresh[m]["k"])  # the modality OGM slows on this batch
assert noise_fresh[dominant]["|noise| / |k g|"] > 2, "the GE noise should be several times the modulated gradient"

# %% [markdown]
# ## 3 · Five methods, two optimisers
#
# Thirty-six trainings (the five methods and the visual encoder trained alone, under both optimisers), each scored
# on the test split (fused accuracy) and by a linear probe on its frozen visual encoder (chapter 01's measure of how
# much the dominated modality learned). `train_many` runs them over one worker process per CPU core.

# %%
GROUPS = [(opt, name) for opt in OPTIMISERS for name in ["visual alone"] + METHODS]
ABLATIONS = {}  # filled in section 4: name -> (optimiser, method maker)


def run_groups(groups, makers=None):
    """Train each (optimiser, name) group on every seed; return one row per model and keep models and runs."""
    makers = makers or {}

    def job(opt, name, seed):
        if name == "visual alone":  # the audio input is absent: it enters the fusion as zeros
            return dict(method=None, modalities=("visual",), seed=seed, **OPTIMISERS[opt])
        return dict(method=makers[opt, name]() if (opt, name) in makers else make_method(name), seed=seed,
                    **OPTIMISERS[opt])

    keys = [(opt, name, seed) for opt, name in groups for seed in SEEDS]
    jobs = [job(*key) for key in keys]
    rows = []
    for (opt, name, seed), j, (model, run) in zip(keys, jobs, train_many(splits, jobs, **COMMON)):
        MODELS[opt, name, seed], RUNS[opt, name, seed] = model, run
        rows.append({"optimiser": opt, "method": name, "seed": seed,
                     "test_acc": evaluate(model, test, j.get("modalities", ("audio", "visual")))["acc"],
                     "probe_visual": linear_probe(model, train, test, "visual")})
    return rows


MODELS, RUNS = {}, {}
ROWS = run_groups(GROUPS)
frame = pd.DataFrame(ROWS)
plots.summary_table(ROWS, by=["optimiser", "method"], values=["test_acc", "probe_visual"])


# %% [markdown]
# **Paired differences.** For every method, its gain over joint training under the same optimiser (three seed
# pairs), and the two gradient-modulating parts on their own: OGM-GE against OGM (the GE noise) and MLB against the
# multi-loss (the balancing coefficients).
#
# **Exercise 2.** Write the paired comparison: the mean and the standard error of the per-seed differences.

# %%
def paired(a, b):
    """Mean and standard error of a[i] - b[i] over the pairs, and the differences."""
    # EXERCISE: diffs = a[i] - b[i]; the s.e. is the sample standard deviation of the diffs over sqrt(len(diffs))
    raise NotImplementedError("Exercise: diffs = a[i] - b[i]; the s.e. is the sample standard deviation of the diffs over sqrt(len(diffs))")


assert paired([3.0, 5.0, 4.0], [1.0, 2.0, 3.0])[:2] == (2.0, 1 / math.sqrt(3))  # diffs 2, 3, 1: std 1


def values(opt, method, key):
    return frame[(frame.optimiser == opt) & (frame.method == method)].sort_values("seed")[key].tolist()


def comparison(opt, a, b, key):
    mean, se, diffs = paired(values(opt, a, key), values(opt, b, key))
    bar = max(2 * se, MARGIN)
    verdict = "better" if mean > bar else ("worse" if -mean > bar else "no clear difference")
    return {"optimiser": opt, "comparison": f"{a} - {b}", "metric": key, "mean": mean, "s.e.": se, "bar": bar,
            "verdict": verdict, "per seed": [round(d, 3) for d in diffs]}


COMPARISONS = [(m, "joint") for m in METHODS[1:]] + [("OGM-GE", "OGM"), ("MLB", "multi-loss")]
gains = pd.DataFrame([comparison(opt, a, b, key) for a, b in COMPARISONS for opt in OPTIMISERS
                      for key in ("test_acc", "probe_visual")])
gains.round(3)

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 3.5))
for ax, key in zip(axes, ("test_acc", "probe_visual")):
    sns.barplot(frame, x="method", y=key, hue="optimiser", errorbar="sd", ax=ax, order=METHODS)
    ax.set(title={"test_acc": "fused test accuracy", "probe_visual": "visual linear probe"}[key], xlabel="")
plt.tight_layout()

# %% [markdown]
# **The GE noise on trained models.** The measure of section 2 on the jointly trained model of seed 0 under each
# optimiser (one training batch), where audio now dominates.

# %%
for opt in OPTIMISERS:
    sizes, rho = ge_noise_sizes(MODELS[opt, "joint", 0], batch)
    print(f"{opt:4s} joint, seed 0: s_a/s_v = {rho:.2f};", {m: {k: round(v, 2) for k, v in d.items()}
                                                              for m, d in sizes.items()})


# %% [markdown]
# ## 4 · What holds, asserted
#
# We fixed these five claims on the pilot seeds (20–22, the table at the end), before running seeds 0–2, each with
# the bar max(2 s.e., 0.02) over the three seed pairs:
#
# 1. **SGD trains joint training itself better** in this budget than Adam: fused accuracy and visual probe.
# 2. **Adam makes OGM-GE's harm larger**: OGM-GE's paired effect on fused accuracy under SGD minus its effect under
#    Adam (a difference of differences, paired by seed) exceeds the bar.
# 3. **Under SGD OGM-GE still does not help** fused accuracy, and neither does OGM without the noise: neither gain
#    exceeds the bar. (The pilot also tried a shorter window, epochs 0–4, and alpha 0.1: no gain either.)
# 4. **Why, from the ablations.** Noise off (OGM) does not help under SGD either, and on the pilot neither did a
#    shorter window (epochs 0–4) or alpha 0.1: no knob of OGM-GE is the cause. Nor is it that SGD leaves nothing to
#    fix: **under SGD a dominance gap remains** (the visual encoder trained alone probes above the jointly trained
#    one). What OGM does, slowing the dominant encoder, does not give the dominated one a gradient of its own;
#    the multi-loss does: **under SGD the multi-loss's visual probe beats OGM's** by more than the bar.
# 5. **The probe gain belongs to the multi-loss**: the plain multi-loss beats joint training on the visual probe
#    under both optimisers.
#
# MLB's coefficients on top of the multi-loss gave no clear result on the pilot under either optimiser, so no
# claim was fixed for them; the next cell prints them.

# %%
def did(key, method, baseline="joint"):
    """Per seed: (method - baseline under SGD) - (method - baseline under Adam); mean, s.e., differences."""
    sgd = [a - b for a, b in zip(values("SGD", method, key), values("SGD", baseline, key))]
    adam = [a - b for a, b in zip(values("Adam", method, key), values("Adam", baseline, key))]
    return paired(sgd, adam)


def bar(se):
    return max(2 * se, MARGIN)


def show(label, result):
    mean, se, diffs = result
    print(f"{label}: {mean:+.3f} ± {se:.3f} (s.e., bar {bar(se):.3f}); per seed {[round(d, 3) for d in diffs]}")
    return mean, se


claims = {}
for key in ("test_acc", "probe_visual"):
    claims["1", key] = show(f"1. joint, SGD - Adam, {key}",
                            paired(values("SGD", "joint", key), values("Adam", "joint", key)))
claims["2"] = show("2. OGM-GE - joint, SGD minus Adam, test_acc", did("test_acc", "OGM-GE"))
for method in ("OGM-GE", "OGM"):
    claims["3", method] = show(f"3. {method} - joint under SGD, test_acc",
                               paired(values("SGD", method, "test_acc"), values("SGD", "joint", "test_acc")))
gap = {opt: paired(values(opt, "visual alone", "probe_visual"), values(opt, "joint", "probe_visual"))
       for opt in OPTIMISERS}
claims["4", "gap"] = show("4. dominance gap under SGD (visual alone - joint probe)", gap["SGD"])
show("   dominance gap under Adam", gap["Adam"])
claims["4", "multi-loss"] = show("4. multi-loss - OGM under SGD, probe_visual",
                                 paired(values("SGD", "multi-loss", "probe_visual"),
                                        values("SGD", "OGM", "probe_visual")))
for opt in OPTIMISERS:
    claims["5", opt] = show(f"5. multi-loss - joint under {opt}, probe_visual",
                            paired(values(opt, "multi-loss", "probe_visual"), values(opt, "joint", "probe_visual")))
for opt in OPTIMISERS:
    for key in ("test_acc", "probe_visual"):
        show(f"   MLB - multi-loss under {opt}, {key}",
             paired(values(opt, "MLB", key), values(opt, "multi-loss", key)))

# %%
for key in ("test_acc", "probe_visual"):
    mean, se = claims["1", key]
    assert mean > bar(se), f"SGD should train joint training better than Adam ({key})"
mean, se = claims["2"]
assert mean > bar(se), "OGM-GE's cost to fused accuracy should be larger under Adam than under SGD"
for method in ("OGM-GE", "OGM"):
    mean, se = claims["3", method]
    assert mean <= bar(se), f"{method} is not expected to beat joint training under SGD in this setting"
mean, se = claims["4", "gap"]
assert mean > bar(se), "under SGD too the visual encoder trained alone should probe above the jointly trained one"
mean, se = claims["4", "multi-loss"]
assert mean > bar(se), "under SGD the multi-loss should give the visual encoder more than OGM's slowing of audio"
for opt in OPTIMISERS:
    mean, se = claims["5", opt]
    assert mean > bar(se), f"the multi-loss should beat joint training on the visual probe under {opt}"


# %% [markdown]
# ## 5 · Explore the runs, and run your own
#
# Training curves of any method under both optimisers (mean and spread over the seeds).

# %%
def show_runs(method, metric):
    fig, ax = plt.subplots(figsize=(8, 3.5))
    plots.plot_history({f"{method}, {opt}": [RUNS[opt, method, s] for s in SEEDS] for opt in OPTIMISERS},
                       metrics=(metric,), ax=ax, title=f"{method}: {metric} (validation)")
    plt.show()


run_controls = dict(method=widgets.ToggleButtons(options=METHODS, value="OGM-GE"),
                    metric=widgets.Dropdown(options=["val_acc", "val_acc_audio", "val_acc_visual", "grad_norm_audio",
                                                     "grad_norm_visual", "loss_fused"]))
display(widgets.VBox(list(run_controls.values())), widgets.interactive_output(show_runs, run_controls))


# %% [markdown]
# **Your own run.** Choose the method, the optimiser, its learning rate and the epochs, and OGM's knobs, then press
# *Run Interact* (one model, seed 0: 5–20 s on a laptop CPU). SGD here is always with momentum 0.9.

# %%
def lab(method, optimizer, lr, epochs, alpha, window_end, noise):
    m = OGMGE(alpha, end=window_end, noise=noise) if method == "OGM(-GE)" else make_method(method, alpha)
    model, run = train_model(splits, m, seed=0, epochs=epochs, optimizer=optimizer, lr=lr, **COMMON)
    print(f"{m.name} ({m.config().get('designed_for') or 'no optimiser claimed'}), {optimizer} lr {lr:g}: "
          f"test accuracy {evaluate(model, test)['acc']:.3f}, "
          f"visual probe {linear_probe(model, train, test, 'visual'):.3f}")
    plots.plot_history({m.name: run}, metrics=("val_acc", "val_acc_audio", "val_acc_visual"))
    plt.show()


widgets.interact_manual(
    lab, method=widgets.ToggleButtons(options=["joint", "OGM(-GE)", "multi-loss", "MLB"], value="OGM(-GE)"),
    optimizer=widgets.ToggleButtons(options=["sgd", "adam"]),
    lr=widgets.FloatLogSlider(value=0.03, base=10, min=-4, max=-0.5, description="lr"),
    epochs=widgets.IntSlider(value=10, min=1, max=20),
    alpha=widgets.FloatSlider(value=ALPHA, min=0.1, max=3, step=0.1),
    window_end=widgets.IntSlider(value=50, min=0, max=50, description="OGM window end"),
    noise=widgets.Checkbox(value=True, description="GE noise"));

# %% [markdown]
# ## What we saw
#
# Numbers from our run (2 CPU cores, seeds 0, 1 and 2; the Adam rows are chapter 01's runs, number for number).
#
# * **The mechanism.** On the toy parameter a constant $k=0.3$ leaves Adam's steps exactly as they were (ratio
#   1.000) and makes SGD's 0.300 as large; a $k$ falling from 1 to 0.3 is damped under Adam (the last ten steps are
#   0.558 of those on $g$, where $k$ itself ends at 0.3) and followed under SGD (0.374: momentum lags). On a real
#   batch the GE noise is several times the modulated gradient: 3.6 times for the dominant modality of a fresh model
#   ($k=0.27$), 3.2 times for audio in the jointly trained SGD model ($k=0.31$), 6.9 times in the Adam one ($k=0.14$).
# * **The optimiser changes the phenomenon itself.** Joint training under SGD (lr 0.03, 10 epochs) reaches 0.910
#   fused accuracy and 0.632 visual probe, against 0.784 and 0.354 under Adam: **+0.126 ± 0.026** and
#   **+0.278 ± 0.064** over the seed pairs. The dominance gap (visual alone minus joint probe) halves, from
#   0.304 ± 0.022 under Adam to **0.161 ± 0.049** under SGD, but it does not close.
# * **OGM-GE does not help under SGD either**: fused accuracy −0.034 ± 0.027 against joint training (no clear
#   difference), probe +0.019 ± 0.060; plain OGM −0.019 ± 0.024 and +0.023 ± 0.063. What Adam does is make it
#   **much worse**: −0.133 ± 0.004 under Adam, so the optimiser accounts for **+0.099 ± 0.029** of OGM-GE's harm
#   (asserted). Most of that is the GE noise: under Adam OGM-GE is −0.086 ± 0.006 below OGM on accuracy and
#   −0.078 ± 0.021 on the probe, under SGD −0.015 ± 0.024 and −0.003 ± 0.007. (Printed, not asserted: on the pilot
#   the noise's cost under Adam was −0.065 ± 0.071, not clear, so we fixed no claim for it.) Adam rescales the
#   noisy gradient to steps of about the learning rate whatever its size; SGD's steps shrink with the gradient.
# * **Why OGM-GE does not help under SGD**, from the ablations: not the noise (OGM without it: no gain), not the
#   window or alpha (pilot: epochs 0–4 and alpha 0.1, no gain), and not a gap that SGD already closed (0.161
#   remains). Slowing the dominant encoder's conv weights does not hand the dominated encoder a gradient of its
#   own; the multi-loss does, and under SGD it probes **+0.131 ± 0.010** above OGM (asserted).
# * **MLB's balancing adds nothing over the multi-loss under either optimiser**: −0.023 ± 0.014 accuracy and
#   +0.003 ± 0.009 probe under SGD, +0.007 ± 0.017 and +0.017 ± 0.047 under Adam. So Adam does not cancel a gain
#   that SGD would show; there is none at this scale. (MLB's authors trained with Adam, lr 1e-4, for up to 1,500
#   epochs; `MLB.designed_for` is `"adam"`.) The **multi-loss** is what helps: visual probe +0.153 ± 0.062 under
#   SGD and +0.176 ± 0.034 under Adam over joint training (asserted), and under SGD it is the best fused model
#   (0.947 ± 0.018).
#
# | fix | setting | gain over joint training (mean ± s.e., 3 pairs) | pilot |
# | --- | --- | --- | --- |
# | OGM-GE | SGD, lr 0.03, 10 epochs | fused −0.034 ± 0.027, probe +0.019 ± 0.060 | −0.034 ± 0.019, −0.022 ± 0.039 |
# | OGM-GE | Adam, lr 3e-3, 6 epochs | fused −0.133 ± 0.004, probe +0.046 ± 0.010 | −0.145 ± 0.028, +0.016 ± 0.043 |
# | OGM (no noise) | SGD | fused −0.019 ± 0.024, probe +0.023 ± 0.063 | −0.039 ± 0.024, +0.025 ± 0.010 |
# | multi-loss | SGD | fused +0.037 ± 0.026, probe +0.153 ± 0.062 | −0.028 ± 0.054, +0.143 ± 0.027 |
# | multi-loss | Adam | fused +0.055 ± 0.013, probe +0.176 ± 0.034 | +0.083 ± 0.009, +0.175 ± 0.027 |
# | MLB (over multi-loss) | SGD | fused −0.023 ± 0.014, probe +0.003 ± 0.009 | +0.053 ± 0.046, +0.023 ± 0.024 |
# | MLB (over multi-loss) | Adam | fused +0.007 ± 0.017, probe +0.017 ± 0.047 | −0.009 ± 0.018, +0.037 ± 0.030 |
#
# What this budget cannot say: whether OGM-GE helps at the authors' scale (100 epochs, lr 1e-3 and a step decay,
# ResNet-18 at full width, CREMA-D); whether a schedule (SGD with decay) changes the picture; and, with three seeds,
# differences below about 0.05.
#
# **How the SGD setting was chosen, and the pilot** (`benchmarks/pilot_02_optimiser.py`; concat fusion, pilot seeds
# 20–22, chapter 01's data; one CPU thread per run). Stage 1, joint training only, SGD with momentum 0.9, mean
# validation accuracy:
#
# | lr | val acc, epoch 6 | epoch 8 | epoch 10 |
# | --- | --- | --- | --- |
# | 0.01 | 0.820 | 0.858 | 0.873 |
# | **0.03** | 0.817 | 0.842 | **0.907** |
# | 0.1 | 0.815 | 0.775 | 0.838 |
#
# lr 0.03 is best at 10 epochs, and no shorter run comes within 0.01 of it: **lr 0.03, 10 epochs**. Stage 2 and 3,
# test accuracy and visual probe (mean ± std over the pilot seeds) and the paired difference to joint training
# under the same optimiser (mean ± s.e.):
#
# | optimiser | method | fused acc | visual probe | acc − joint | probe − joint |
# | --- | --- | --- | --- | --- | --- |
# | SGD | visual alone | | 0.831 ± 0.024 | | |
# | SGD | joint | 0.911 ± 0.035 | 0.629 ± 0.044 | | |
# | SGD | OGM | 0.871 ± 0.053 | 0.655 ± 0.044 | −0.039 ± 0.024 | +0.025 ± 0.010 |
# | SGD | OGM-GE | 0.877 ± 0.010 | 0.607 ± 0.024 | −0.034 ± 0.019 | −0.022 ± 0.039 |
# | SGD | OGM-GE, window 0–4 | 0.897 ± 0.007 | 0.621 ± 0.017 | −0.014 ± 0.023 | −0.008 ± 0.031 |
# | SGD | OGM-GE, alpha 0.1 | 0.877 ± 0.049 | 0.594 ± 0.047 | −0.034 ± 0.015 | −0.035 ± 0.037 |
# | SGD | multi-loss | 0.883 ± 0.059 | 0.772 ± 0.009 | −0.028 ± 0.054 | +0.143 ± 0.027 |
# | SGD | MLB | 0.935 ± 0.022 | 0.795 ± 0.033 | +0.025 ± 0.008 | +0.165 ± 0.039 |
# | Adam | visual alone | | 0.571 ± 0.061 | | |
# | Adam | joint | 0.755 ± 0.027 | 0.295 ± 0.066 | | |
# | Adam | OGM | 0.675 ± 0.085 | 0.358 ± 0.017 | −0.080 ± 0.043 | +0.063 ± 0.038 |
# | Adam | OGM-GE | 0.610 ± 0.044 | 0.311 ± 0.036 | −0.145 ± 0.028 | +0.016 ± 0.043 |
# | Adam | multi-loss | 0.837 ± 0.036 | 0.470 ± 0.059 | +0.083 ± 0.009 | +0.175 ± 0.027 |
# | Adam | MLB | 0.829 ± 0.017 | 0.507 ± 0.037 | +0.074 ± 0.017 | +0.211 ± 0.019 |
#
# Paired on the pilot: MLB − multi-loss, fused accuracy +0.053 ± 0.046 under SGD and −0.009 ± 0.018 under Adam;
# OGM-GE − OGM +0.005 ± 0.025 under SGD and −0.065 ± 0.071 under Adam. These fixed the claims of section 4: what was
# clear on the pilot is asserted, what was not (MLB's coefficients, the noise under Adam) is only printed.

# %%
summary = {f"{opt.lower()}_{name.lower().replace('-', '_').replace(' ', '_')}_{key}":
           mean_std(values(opt, name, key))[0] for opt in OPTIMISERS for name in ["visual alone"] + METHODS for key in ("test_acc", "probe_visual")
           if not (name == "visual alone" and key == "test_acc")}
summary["ogm_ge_acc_gain_sgd_minus_adam"] = claims["2"][0]
avlab.course.headline("02", seeds=SEEDS, **{k: round(v, 4) for k, v in summary.items()})
