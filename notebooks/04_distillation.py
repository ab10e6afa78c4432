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
# # 04 · Defensive distillation on MNIST at T = 50, 80 and 100
#
# **Question.** How do networks trained with *defensive distillation* (Papernot et al.,
# IEEE S&P 2016) differ from an ordinarily trained network — in accuracy, in how they train,
# and in the size of their logits?
#
# **Method** (`helpers.distillation`; the study's networks and cache: `helpers.distillation_study`).
# The MNIST network of Papernot et al. and Carlini & Wagner (conv 3×3×32, conv 3×3×32, max-pool,
# conv 3×3×64, conv 3×3×64, max-pool, FC 200, FC 200, FC 10; ReLU, dropout 0.5) takes pixel-space
# inputs in [0, 1]. With the temperature softmax (Papernot et al., Eq. 1)
#
# $$F_T(x)_i = \frac{\exp(Z_i(x)/T)}{\sum_j \exp(Z_j(x)/T)},$$
#
# the **teacher** is trained with $F_T$ on the hard labels, its soft labels $F_T(x)$ on the
# training set become the targets of the **student**, trained with $F_T$ as well; both are
# deployed at $T = 1$. The **undistilled** baseline is the same network trained at $T = 1$.
# Training follows Carlini & Wagner's released code: batch 128, constant learning rate and Keras's
# Glorot initialisation (with PyTorch's default initialisation this network stayed at chance
# accuracy for the first 100 SGD steps at lr 0.01 in our measurement; with Glorot's it learns at
# once), and in the `paper` profile their SGD (lr 0.01, momentum 0.9, Nesterov).
#
# **Why Adam in the `default` profile.** SGD's step on the logits shrinks as 1/T: the gradient of
# the cross-entropy at temperature T with respect to the logits is (p − y)/T, so SGD at lr 0.01
# trains a T = 100 network as if at lr 1e-4. Measured on 3,000 images (batch 128): SGD at T = 100
# stays at chance accuracy for the first ~100 steps (and with the learning rate scaled by T it is
# unstable), while C&W's 50 epochs on 60,000 images are ~23k steps and the CPU budget affords
# ~5k. Adam's steps do not depend on that scale (the T = 100 teacher reached 49 % after 24 steps),
# so the `default` profile trains every network, the baseline included, with Adam (lr 1e-3).
# Training runs under bf16 autocast where the CPU has bf16 units (about 1.9x faster than fp32
# here, `benchmarks/bench_condensation.py`; the engine line below says whether it is on);
# soft labels, test accuracies, logits and every attack in notebook 05 run in fp32.
# Models are cached for notebook 05, which attacks them.
#
# **References.** N. Papernot, P. McDaniel, X. Wu, S. Jha, A. Swami, "Distillation as a defense to
# adversarial perturbations against deep neural networks", IEEE S&P 2016,
# [doi:10.1109/SP.2016.41](https://doi.org/10.1109/SP.2016.41). N. Carlini, D. Wagner, "Towards
# evaluating the robustness of neural networks", IEEE S&P 2017,
# [doi:10.1109/SP.2017.49](https://doi.org/10.1109/SP.2017.49).

# %% tags=["parameters"]
profile = "default"
seed = 0

# %% tags=[]
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from helpers import distillation_study
from helpers.config import start
from helpers.plotting import CONDITION_COLORS, distillation_colors, save_figure, save_table, set_style
from helpers.profiles import get

start(profile, seed)
set_style()
cfg = get(profile).distill
SOURCE = f"04_distillation · profile {profile}"
print(f"{cfg.n_train} stratified MNIST training images, {cfg.n_val} validation images, the 10,000 test images; "
      f"epochs {cfg.epochs}; temperatures {cfg.temperatures}")

# %% [markdown]
# ## Training every network
# Baseline and teachers are trained once for the largest epoch count; with a constant learning
# rate their checkpoint after fewer epochs is exactly a shorter run. Each student is trained from
# scratch for E epochs on the soft labels of the E-epoch teacher. Everything is cached on disk.

# %% tags=[]
table, records = distillation_study.table(profile, seed)
save_table(table, "distillation")
table.pivot(index="model", columns="epochs", values="test_acc").loc[table.model.unique()].style.format("{:.2%}")

# %% [markdown]
# ## Learning curves
# Accuracy and cross-entropy per epoch on a fixed part of the training set (dashed) and on the
# validation set (solid), for the baseline and the teacher and student at each temperature (one
# temperature per column, so each role keeps its own colour: baseline black, teacher green,
# student red). Losses are measured at each network's *training* temperature (softmax(Z/T)); the
# student's validation loss is against the hard labels. Accuracy does not depend on T.

# %% tags=[]
roles = {"undistilled": "undistilled", "teacher": "teacher T={t:g}", "student": "student T={t:g}"}
styles = {"train": "--", "val": "-"}
legend = [Line2D([], [], color=CONDITION_COLORS[r], label=r) for r in roles] + [
    Line2D([], [], color=CONDITION_COLORS["paper"], ls=ls, label=label)
    for ls, label in (("--", "training subset"), ("-", "validation"))]

# %% tags=[]
for e in cfg.epochs:
    fig, axes = plt.subplots(2, len(cfg.temperatures), figsize=(4.2 * len(cfg.temperatures), 6.4),
                             sharex=True, squeeze=False)
    for col, t in enumerate(cfg.temperatures):
        for role, name in roles.items():
            hist = records[(name.format(t=t), e)]["history"]["epochs"]
            for row, metric in enumerate(("acc", "loss")):
                for split, ls in styles.items():
                    scale = 100 if metric == "acc" else 1  # accuracy in %, as everywhere in the report
                    axes[row, col].plot([h["epoch"] for h in hist], [scale * h[f"{split}_{metric}"] for h in hist],
                                        ls, color=CONDITION_COLORS[role], alpha=0.8 if split == "train" else 1.0)
        axes[0, col].set(title=f"T = {t:g}", ylabel="accuracy (%)")
        axes[1, col].set(ylabel="cross-entropy at training T", yscale="log", xlabel="epoch")
    fig.legend(handles=legend, loc="lower center", ncol=len(legend), bbox_to_anchor=(0.5, -0.04))
    fig.suptitle(f"Training (dashed) and validation (solid), {e} epochs")
    fig.tight_layout()
    save_figure(fig, f"04_curves_{e}ep", SOURCE)

# %% [markdown]
# ## Logit magnitude
# Training at temperature T drives the logits up by roughly a factor T (the softmax only sees
# Z/T), and the networks keep these logits when deployed at T = 1. Softmax outputs then
# saturate at 0 and 1, so the gradient of the cross-entropy vanishes — the reason
# gradient-based attacks on the softmax (FGSM, JSMA-F) seem to fail on distilled networks
# (Carlini & Wagner report a mean L1 logit norm of about 482 distilled vs 5.8 undistilled for
# their networks; the magnitude depends on how long and how a network is trained, so compare the
# ratio between distilled and undistilled, about 80x there, rather than the values).
# One point per network on a logarithmic axis (a bar's length means nothing there).

# %% tags=[]
last = table[table.epochs == max(cfg.epochs)].set_index("model")
colors = distillation_colors(distillation_study.model_specs(profile))
fig, ax = plt.subplots(figsize=(8, 3.6))
ax.scatter(last.index, last.mean_l1_logits, color=[colors[m] for m in last.index], s=70, zorder=3)
ax.set(yscale="log", ylabel="mean L1 norm of the logits (test set)",
       title=f"Logit magnitude after {max(cfg.epochs)} epochs")
ax.grid(axis="y", which="both", alpha=0.3)
ax.tick_params(axis="x", rotation=30)
save_figure(fig, "04_logit_magnitude", SOURCE)
(table[["model", "epochs", "test_acc", "mean_abs_logit", "mean_l1_logits", "mean_logit_range"]].style
 .format({"test_acc": "{:.2%}", "mean_abs_logit": "{:.1f}", "mean_l1_logits": "{:.1f}", "mean_logit_range": "{:.1f}"})
 .hide(axis="index"))

# %% [markdown]
# ## What this shows

# %% tags=[]
e = max(cfg.epochs)
base = last.loc["undistilled"]
print(f"With {cfg.n_train} training images and {e} epochs the undistilled network reaches "
      f"{base.test_acc:.2%} test accuracy (mean L1 logit norm {base.mean_l1_logits:.1f}).")
for t in cfg.temperatures:
    te, st = last.loc[f"teacher T={t:g}"], last.loc[f"student T={t:g}"]
    print(f"T = {t:g}: teacher {te.test_acc:.2%}, student {st.test_acc:.2%} "
          f"({(st.test_acc - base.test_acc) * 100:+.2f} points vs undistilled); logit L1 norm "
          f"teacher {te.mean_l1_logits:.0f}, student {st.mean_l1_logits:.0f} "
          f"({st.mean_l1_logits / base.mean_l1_logits:.0f}x the baseline's).")
for e_ in cfg.epochs:
    sub = table[table.epochs == e_]
    print(f"{e_} epochs: test accuracy from {sub.test_acc.min():.2%} ({sub.model[sub.test_acc.idxmin()]}) "
          f"to {sub.test_acc.max():.2%} ({sub.model[sub.test_acc.idxmax()]}).")
