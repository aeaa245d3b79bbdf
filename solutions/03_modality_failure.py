# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/avlab-course/avlab/blob/v0.1.0/solutions/03_modality_failure.ipynb)
#
# On Colab, ask for a GPU first: *Runtime → Change runtime type → GPU*; then run the cells in order.

# %% [markdown]
# # Chapter 03 · Modality failure, and Uni-Modal Teachers
#
# Du et al. ("Improving Multi-Modal Learning with Uni-Modal Teachers", 2021; "On Uni-Modal Feature Learning in
# Supervised Multi-Modal Learning", ICML 2023) name it **modality failure**: encoders trained jointly learn
# *worse uni-modal features* than the same encoders trained alone. Chapter 00 saw it for one fusion module.
# Here we measure it for late fusion (concatenation) and for an intermediate fusion (FiLM, where audio modulates
# the visual features), then apply their two remedies:
#
# * **UMT**, Uni-Modal Teachers: keep joint training, and distil each encoder towards a teacher, the same encoder
#   trained alone and then frozen;
# * **UME**, the Uni-Modal Ensemble: skip joint training, average the predictions of the uni-modal models.

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
import pandas as pd
import torch
import torch.nn.functional as F

from avlab import diagnostics, plots
from avlab.data import load_avdigits
from avlab.experiment import mean_std, train_many, train_model
from avlab.methods.umt import UMT, ensemble_accuracy, umt_or_ume
from avlab.evaluation import evaluate

# %% [markdown]
# ## Setting
#
# `dominant_audio` AV-Digits with 1,500 training samples and lighter visual noise (`vis_noise=0.1` instead of
# 0.3, so that the visual encoder learns something within this small budget; the audio still learns far faster),
# ResNet-18 encoders at width 8, 10 epochs of Adam, three seeds. Every model in the chapter uses exactly this
# budget, so the comparisons are fair. Accuracies are on the
# test split (held-out speakers and digit images); probes are linear classifiers trained on the frozen encoder's
# features of the training split.

# %%
SEEDS = [0, 1, 2]
TRAIN = dict(epochs=10, progress=False)
splits = load_avdigits("dominant_audio", n_train=1500, vis_noise=0.1)
train, test = splits["train"], splits["test"]
print(train)

# %% [markdown]
# ## The teachers: each modality alone

# %%
# train_many: one one-thread worker process per CPU core (about 1.4x sooner than one process on 2 cores)
alone = {"audio": [], "visual": []}
jobs = [dict(modalities=(m,), seed=seed) for seed in SEEDS for m in alone]
for job, (model, _) in zip(jobs, train_many(splits, jobs, **TRAIN)):
    alone[job["modalities"][0]].append(model)
probe_alone = {m: [diagnostics.linear_probe(model, train, test, m) for model in models] for m, models in alone.items()}
for m, accs in probe_alone.items():
    print(f"{m:>6} encoder trained alone: probe {mean_std(accs)[0]:.3f} ± {mean_std(accs)[1]:.3f}")

# %% [markdown]
# ## The phenomenon: joint training, late and intermediate fusion

# %%
rows = []
joint = {}
jobs = [dict(fusion=fusion, seed=seed) for fusion in ("concat", "film") for seed in SEEDS]
for job, (model, _) in zip(jobs, train_many(splits, jobs, **TRAIN)):
    fusion, seed = job["fusion"], job["seed"]
    joint[fusion, seed] = model
    rows.append({"method": "joint", "fusion": fusion, "seed": seed, "fused acc": evaluate(model, test)["acc"],
                 **{f"probe {m}": diagnostics.linear_probe(model, train, test, m) for m in ("audio", "visual")}})
for m in ("audio", "visual"):
    for seed, acc in zip(SEEDS, probe_alone[m]):
        rows.append({"method": "alone", "fusion": "-", "seed": seed, f"probe {m}": acc})
table = pd.DataFrame(rows)
print(plots.summary_table(rows, ["method", "fusion"], ["fused acc", "probe audio", "probe visual"]))

# %% [markdown]
# Both encoders come out of joint training worse than alone, the dominant audio one included, and the visual
# one, starved by the audio, loses most; FiLM, where the visual features only enter through the audio's
# modulation, loses even more than concatenation. That is modality failure. The weaker (visual) encoder's gap,
# asserted over the three seeds:

# %%
failure = {}
for fusion in ("concat", "film"):
    joint_visual = table.query("method == 'joint' and fusion == @fusion")["probe visual"].tolist()
    gaps = [a - j for a, j in zip(probe_alone["visual"], joint_visual)]
    failure[fusion] = mean_std(gaps)
    print(f"{fusion}: visual probe alone - joint = {failure[fusion][0]:.3f} ± {failure[fusion][1]:.3f} (per seed {[round(g, 3) for g in gaps]})")
    assert min(gaps) > 0.05 and failure[fusion][0] > 2 * failure[fusion][1]


# %% [markdown]
# ## UMT: distil each encoder towards its uni-modal teacher
#
# The loss adds, for each modality m, the mean squared error between the student's pooled encoder output
# (the feature that enters the fusion) and the frozen teacher's:
#
# $$ L = \mathrm{CE}(\text{fused logits}, y) + \lambda \sum_m \mathrm{MSE}\big(\phi_m(x_m), \phi_m^{\text{teacher}}(x_m)\big) $$
#
# No official code exists. `avlab.methods.UMT` follows the BalanceBenchmark re-implementation: MSE on pooled
# features, λ = 10, students from scratch, teachers in eval mode. It is a plug-in of the loop: it only adds a
# loss term.

# %% [markdown]
# ### Exercise: the distillation term
#
# Write the distillation term for one modality, as `UMT.losses` computes it.

# %%
def distill(student_features: torch.Tensor, teacher_features: torch.Tensor, weight: float) -> torch.Tensor:
    # EXERCISE: weight times the mean squared error to the (constant) teacher features
    ### BEGIN SOLUTION
    return weight * F.mse_loss(student_features, teacher_features.detach())
    ### END SOLUTION


s, t = torch.tensor([[1.0, 2.0], [0.0, -1.0]]), torch.tensor([[0.0, 2.0], [2.0, -1.0]])
assert torch.isclose(distill(s, t, 10.0), torch.tensor(12.5)), "squared errors 1, 0, 4, 0: mean 1.25, times 10"

# %%
jobs = [dict(method=UMT({m: alone[m][i] for m in ("audio", "visual")}, weight=10.0), fusion=fusion, seed=seed)
        for fusion in ("concat", "film") for i, seed in enumerate(SEEDS)]
for job, (model, _) in zip(jobs, train_many(splits, jobs, **TRAIN)):
    rows.append({"method": "UMT", "fusion": job["fusion"], "seed": job["seed"], "fused acc": evaluate(model, test)["acc"],
                 **{f"probe {m}": diagnostics.linear_probe(model, train, test, m) for m in ("audio", "visual")}})

# %% [markdown]
# ## UME: the ensemble of the uni-modal models
#
# UME averages the log-probabilities of the two models trained alone. No joint training at all; its "encoders"
# are the teachers themselves.

# %%
for i, seed in enumerate(SEEDS):
    rows.append({"method": "UME", "fusion": "-", "seed": seed,
                 "fused acc": ensemble_accuracy({m: alone[m][i] for m in ("audio", "visual")}, test),
                 "probe audio": probe_alone["audio"][i], "probe visual": probe_alone["visual"][i]})
table = pd.DataFrame(rows)
summary = plots.summary_table(rows, ["method", "fusion"], ["fused acc", "probe audio", "probe visual"])
summary

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
shown = table[table.method.isin(["joint", "UMT", "UME", "alone"])]
plots.plot_bars(shown.dropna(subset=["probe visual"]), x="method", y="probe visual", hue="fusion", ax=axes[0],
                title="visual encoder: linear probe")
plots.plot_bars(shown.dropna(subset=["fused acc"]), x="method", y="fused acc", hue="fusion", ax=axes[1],
                title="fused test accuracy")
fig.tight_layout()

# %% [markdown]
# **The fix, asserted.** Over three seeds and for both fusion modules, UMT raises the probe accuracy of the
# weaker (visual) encoder well above joint training, back to the level of the encoder trained alone, and its
# fused accuracy is no worse than joint training's beyond the seed-to-seed spread (here it is clearly better).

# %%
umt_numbers = {}
for fusion in ("concat", "film"):
    j = table.query("method == 'joint' and fusion == @fusion").sort_values("seed")
    u = table.query("method == 'UMT' and fusion == @fusion").sort_values("seed")
    probe_gain = mean_std(u["probe visual"].values - j["probe visual"].values)
    fused_change = mean_std(u["fused acc"].values - j["fused acc"].values)
    umt_numbers[fusion] = probe_gain[0], fused_change[0]
    print(f"{fusion}: visual probe UMT - joint = {probe_gain[0]:+.3f} ± {probe_gain[1]:.3f}; "
          f"fused acc UMT - joint = {fused_change[0]:+.3f} ± {fused_change[1]:.3f}")
    assert probe_gain[0] > 0.05 and probe_gain[0] > 2 * probe_gain[1], "UMT should narrow the modality-failure gap"
    assert fused_change[0] > -max(0.02, 2 * fused_change[1]), "UMT should not lose fused accuracy"

# %% [markdown]
# ## UMT or UME? The paper's rule of thumb
#
# Train the uni-modal models first. If their ensemble already matches naive joint training, the task needs few
# *paired* features (features that only exist across modalities) and UME is the simpler, better choice;
# otherwise use UMT. On AV-Digits the two modalities are independent views of the same label, no paired features
# exist by construction, so the rule should pick UME:

# %%
ume_acc = mean_std(table.query("method == 'UME'")["fused acc"])[0]
joint_acc = mean_std(table.query("method == 'joint' and fusion == 'concat'")["fused acc"])[0]
print(f"UME {ume_acc:.3f} vs joint (concat) {joint_acc:.3f} -> the rule picks {umt_or_ume(ume_acc, joint_acc)}")

# %% [markdown]
# ## Try it: the distillation weight and the teacher
#
# Choose λ and which encoders get a teacher, press **Run**: one UMT run (concat fusion, seed 0) against the joint
# model of the same seed. With λ = 0 UMT is joint training; with only an audio teacher, the visual encoder is
# left to fail.

# %%
import ipywidgets as widgets


def try_umt(weight=10.0, teacher="both"):
    chosen = ("audio", "visual") if teacher == "both" else (teacher,)
    model, run = train_model(splits, method=UMT({m: alone[m][0] for m in chosen}, weight=weight), seed=0, **TRAIN)
    result = {"joint": {m: table.query("method == 'joint' and fusion == 'concat' and seed == 0")[f"probe {m}"].item()
                        for m in ("audio", "visual")},
              f"UMT λ={weight} ({teacher})": {m: diagnostics.linear_probe(model, train, test, m) for m in ("audio", "visual")}}
    print(pd.DataFrame(result).round(3))
    plots.plot_history({"UMT": run}, metrics=("val_acc", "val_acc_visual"), title="UMT run")
    plt.show()


widgets.interact_manual(try_umt, weight=widgets.FloatLogSlider(value=10.0, base=10, min=-1, max=2, step=0.25),
                        teacher=widgets.ToggleButtons(options=["both", "visual", "audio"]));

# %% [markdown]
# ## What to remember
#
# * Joint training leaves the weaker modality's encoder worse than training it alone, whatever the fusion: the
#   modality failure of Du et al.
# * UMT keeps the joint model and repairs its encoders with one extra loss term; UME needs no joint training at
#   all and is the right call when the modalities carry no paired information, as here.

# %%
avlab.course.headline(
    "03",
    visual_probe_alone=mean_std(probe_alone["visual"])[0],
    failure_gap_concat=failure["concat"][0],
    failure_gap_film=failure["film"][0],
    umt_visual_probe_gain_concat=umt_numbers["concat"][0],
    umt_fused_change_concat=umt_numbers["concat"][1],
    umt_visual_probe_gain_film=umt_numbers["film"][0],
    ume_acc=ume_acc,
    joint_acc_concat=joint_acc,
)
