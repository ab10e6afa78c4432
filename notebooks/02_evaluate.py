# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Training on condensed vs real data
#
# **Question.** How accurate is a ConvNet trained *only* on the condensed FashionMNIST sets of
# notebook 01, compared with the same number of random real images (the coreset baseline) and
# with the whole 60,000-image training set (the upper bound)?
#
# **Protocol** (Zhao, Mopuri & Bilen, "Dataset Condensation with Gradient Matching", ICLR 2021,
# Sec. 4 and the official `evaluate_synset`): a freshly initialised ConvNet is trained on the small
# set alone with SGD (lr 0.01, momentum 0.9, weight decay 5e-4, batch 256) for 300 epochs, the
# learning rate divided by 10 at epoch 150, without augmentation; its accuracy on the full
# 10,000-image test set at the last epoch is reported as mean ± std over independently
# initialised models (DC: 20 models × 5 condensation runs). Every condensed set is evaluated this
# way, whichever method built it (DM's own paper trains with DSA augmentation for 1000 epochs
# instead). The paper reports, for FashionMNIST with DC: 70.5 ± 0.6 (ipc 1), 82.3 ± 0.4 (ipc 10),
# 83.6 ± 0.4 (ipc 50) and 93.5 for the whole training set; for random real images 51.4 / 73.8 / 82.5,
# quoted from secondary sources and not checked against the paper's table.

# %% tags=["parameters"]
profile = "default"
seed = 0

# %%
import matplotlib.pyplot as plt
import pandas as pd

from helpers import condensation_study as study
from helpers.config import start
from helpers.plotting import CONDITION_COLORS, save_figure, save_table, set_style
from helpers.profiles import get
from helpers.references import DC_FASHION_ACCURACY as PAPER

start(profile, seed)
set_style()
SOURCE = f"02_evaluate · profile {profile}"
cfg = get(profile).evaluate

# %% [markdown]
# ## Evaluation settings
# The same settings (`condensation_study.evaluation_settings`) train every model on a small set,
# here and in notebooks 03 and 06.
#
# DC's protocol at every ipc: 300 epochs, learning rate ÷10 at epoch 150, 5 models per set in the
# `default` profile (the paper: 20 models × 5 condensation runs), ipc 50 included: one model there
# is 300 epochs over 500 images (150,000 image-steps, 5x ipc 10's). The wall time of each set's
# models in this run is printed at the end (training what the cache lacked, loading the rest).

# %%
eval_table = pd.DataFrame([{"ipc": ipc, **study.evaluation_settings(profile, ipc),
                            "paper models": study.evaluation_settings("paper", ipc)["n_models"]}
                           for ipc in cfg.ipcs] + [{"ipc": "whole", **study.whole_settings(profile)}])
eval_table

# %% [markdown]
# ## Condensed sets, random real images and the whole training set
# Condensed sets come from the cache notebook 01 filled (built here if missing). The random real
# subset draws `ipc` training images per class (seed fixed) and is evaluated identically. The
# upper bound trains the same ConvNet with the same optimiser on all 60,000 images (`whole_epochs`,
# learning rate ÷10 halfway); notebooks 03 and 06 reuse these cached models.
#
# The paper trains the whole-data ConvNet for 300 epochs. One epoch over 60,000 images costs as
# much as 120 epochs at ipc 50, so the `default` profile trains `whole_epochs` epochs (schedule:
# DC's, the learning rate ÷10 halfway) and 2 models: the accuracy printed at the end says how
# close this comes to the paper's 93.5 %.

# %%
results, scores = study.evaluate_all(profile, seed)
save_table(results, "condensation_eval")

# %% [markdown]
# ## Results beside the paper's
# Mean ± std of the final test accuracy (%) over `n_models` independently initialised ConvNets;
# `paper` is DC's number for the same ipc (for condensed sets of either method), `seconds` the
# wall time of training and testing those models (≈ 0 when they were cached).

# %%
study.with_paper(results).round(2)

# %% [markdown]
# ## Accuracy vs images per class
# Left: absolute test accuracy (error bars: std over models; dashed line and band: this profile's
# whole-dataset models; crosses: the paper's DC numbers). Right: the same relative to this
# profile's whole-dataset accuracy, on an axis from 0 so that the gaps keep their proportions.

# %%
small, upper = results[results.ipc.notna()], results[results.method == study.WHOLE].iloc[0]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
for method, part in small.groupby("method"):
    color, label = CONDITION_COLORS[method], method if method == study.RANDOM else f"condensed ({method})"
    for ax, scale in zip(axes, [1.0, 100 / upper["mean"]]):
        ax.errorbar(part.ipc, scale * part["mean"], yerr=scale * part["std"], marker="o", capsize=4, color=color,
                    label=label)
axes[0].axhline(upper["mean"], ls="--", color=CONDITION_COLORS[study.WHOLE],
                label=f"whole dataset ({study.count(upper.n_models, 'model')}, {study.count(upper.epochs, 'epoch')})")
axes[0].axhspan(upper["mean"] - upper["std"], upper["mean"] + upper["std"], color=CONDITION_COLORS[study.WHOLE],
                alpha=0.15)
paper_ipcs = [i for i in cfg.ipcs if ("DC", i) in PAPER]
axes[0].scatter(paper_ipcs, [PAPER[("DC", i)][0] for i in paper_ipcs], marker="x", s=60,
                color=CONDITION_COLORS["paper"], label="paper: DC (300 epochs)", zorder=5)
axes[0].axhline(PAPER[(study.WHOLE, None)][0], ls=":", color=CONDITION_COLORS["paper"], label="paper: whole dataset")
axes[1].axhline(100, ls="--", color=CONDITION_COLORS[study.WHOLE])
axes[1].set_ylim(0, 105)  # from 0, so that the gaps keep their proportions
for ax, ylabel, title in zip(axes, ["test accuracy (%)", "% of whole-dataset accuracy"],
                             ["absolute", "relative to the whole training set"]):
    ax.set(xscale="log", xlabel="images per class (ipc)", ylabel=ylabel, title=title)
    ax.set_xticks(cfg.ipcs, [str(i) for i in cfg.ipcs])
axes[0].legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "02_accuracy_vs_ipc", SOURCE)

# %% [markdown]
# ## Training curves of the evaluation models
# Training loss per epoch (thin: each model; thick: mean) on the condensed and the random real
# set. The learning-rate drop at the midpoint is visible as a step.

# %%
fig, axes = plt.subplots(1, len(cfg.ipcs), figsize=(4.2 * len(cfg.ipcs), 3.4), squeeze=False)
for ax, ipc in zip(axes[0], cfg.ipcs):
    for (name, i), s in scores.items():
        if i != ipc:
            continue
        curves = pd.DataFrame(s["train_loss"]).T
        curves.index += 1
        ax.plot(curves.index, curves.values, color=CONDITION_COLORS[name], alpha=0.25, lw=0.8)
        ax.plot(curves.index, curves.mean(axis=1), color=CONDITION_COLORS[name], lw=2,
                label=f"{name}: {100 * s['mean']:.1f} ± {100 * s['std']:.1f} %")
    ax.set(title=f"ipc {ipc}", xlabel="epoch", ylabel="training loss", yscale="log")
    ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "02_training_curves", SOURCE)

# %% [markdown]
# ## What this shows

# %%
for line in study.evaluation_conclusion(results):
    print(line)
