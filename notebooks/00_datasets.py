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

# %% [markdown] tags=[]
# # 00 · The datasets
#
# The report trains on two datasets: **FashionMNIST** for the condensation study
# (notebooks 01–03 and 06) and **MNIST** for the defensive-distillation study (04–05).
# Both are 28×28 grayscale images in 10 balanced classes, 60,000 for training and 10,000
# for testing. This chapter loads them the way every other notebook does
# (`helpers.data.load`: whole splits held in memory as normalised tensors, after checking
# each file's size and, where the data folder lists them, its SHA-256), checks the class
# balance and the normalisation, and shows what the images look like.
#
# **References.** MNIST: LeCun, Bottou, Bengio & Haffner, *Gradient-based learning applied
# to document recognition*, Proc. IEEE 1998, [doi:10.1109/5.726791](https://doi.org/10.1109/5.726791)
# (data by Y. LeCun & C. Cortes, CC BY-SA 3.0). Fashion-MNIST: Xiao, Rasul & Vollgraf 2017,
# [arXiv:1708.07747](https://arxiv.org/abs/1708.07747) (Zalando Research, MIT licence).

# %% tags=["parameters"]
profile = "default"
seed = 0

# %% tags=[]
import matplotlib.pyplot as plt
import pandas as pd

from helpers import config, data
from helpers.plotting import CONDITION_COLORS, image_grid, save_figure, set_style
from helpers.profiles import get

config.start(profile, seed)
set_style()
cfg = get(profile).datasets
SOURCE = f"00_datasets · profile {profile}"
splits = {(name, train): data.load(name, train) for name in data.DATASETS for train in (True, False)}

# %% [markdown] tags=[]
# ## Sizes, class counts and normalisation
# Images are normalised with the per-dataset mean and standard deviation used by the
# Dataset Condensation code (FashionMNIST 0.2861 / 0.3530, MNIST 0.1307 / 0.3081), so
# the normalised training images should have mean ≈ 0 and standard deviation ≈ 1.

# %% tags=[]
rows = []
for (name, train), split in splits.items():
    counts = split.labels.bincount(minlength=split.num_classes)
    rows.append({"dataset": name, "split": "train" if train else "test", "images": len(split),
                 "min per class": int(counts.min()), "max per class": int(counts.max()),
                 "mean (normalised)": round(split.images.mean().item(), 4),
                 "std (normalised)": round(split.images.std().item(), 4)})
summary = pd.DataFrame(rows)
summary

# %% tags=[]
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), sharey=True)
for ax, name in zip(axes, data.DATASETS):
    split = splits[(name, True)]
    counts = pd.Series(split.labels.bincount(minlength=split.num_classes).numpy(), index=split.classes)
    counts.plot.bar(ax=ax, color=CONDITION_COLORS["whole dataset"])
    ax.set_title(f"{name}: training images per class")
    ax.set_ylabel("images")
    ax.tick_params(axis="x", rotation=45)
save_figure(fig, "00_class_counts", SOURCE)

# %% [markdown] tags=[]
# ## Samples per class
# Each row is one class (random training images, fixed seed), shown in pixel space.

# %% tags=[]
for name in data.DATASETS:
    split = splits[(name, True)]
    k = cfg.grid_per_class
    images, _ = data.random_per_class(split, k, seed=seed)
    fig, ax = plt.subplots(figsize=(k * 0.6 + 1.8, split.num_classes * 0.6))
    image_grid(ax, data.to_pixels(images, name), nrow=k, title=f"{name}: {k} training images per class",
               row_labels=split.classes)
    save_figure(fig, f"00_samples_{name}", SOURCE)

# %% [markdown] tags=[]
# ## What this shows
# %% tags=[]
train_rows = summary[summary.split == "train"].set_index("dataset")
for name, row in train_rows.iterrows():
    print(f"{name}: {row['images']} training images, {row['min per class']} to {row['max per class']} "
          f"per class; normalised mean {row['mean (normalised)']:+.3f}, std {row['std (normalised)']:.3f}.")
