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
# # 05 · Carlini–Wagner distortion against distilled and undistilled networks
#
# **Question.** Does defensive distillation make MNIST networks harder to attack, or only
# harder to attack with *gradient-of-softmax* attacks? Carlini & Wagner (IEEE S&P 2017)
# found the latter: their attacks, which work on the logits, break distilled networks
# (T = 100) with 100 % success and about the same distortion as undistilled ones.
#
# **Method** (`helpers.cw`, following the rules of C&W's released `l2_attack.py` and `l0_attack.py`).
# - The **L2 attack** changes variables to $x = \tfrac12(\tanh w + 1)$ (so $x \in [0,1]$) and minimises
#   $$\lVert x - x_0\rVert_2^2 + c\cdot f(x),\qquad f(x) = \max\big(\max_{i\ne t} Z_i(x) - Z_t(x),\,-\kappa\big)$$
#   with Adam (lr $10^{-2}$), `max_iter` iterations per run at most (a run ends early when its loss,
#   checked every 10 % of `max_iter`, has not fallen below 0.9999× the previous check), and
#   `binary_search_steps` runs per image over $c$: start $10^{-3}$, ×10 until the first success, then
#   bisection. The smallest successful perturbation is kept. Untargeted: $f = \max(Z_y - \max_{i\ne y} Z_i, -\kappa)$.
# - The **L0 attack** starts with every pixel changeable and repeats rounds: an L2-type attack on the
#   changeable pixels only, minimising $c\cdot\max(0, \max_{i\ne t} Z_i - Z_t + 0.01) + \lVert x - x_0\rVert_2^2$,
#   warm-started from the previous round's adversarial with fresh Adam state, stops at the first
#   iterate that reaches the target; after every `l0_max_iter` iterations without one, $c$ doubles
#   (from the constant that worked last, starting at $10^{-3}$) until $2\cdot10^6$, where the round
#   fails. After a successful round the changeable pixels are frozen one by one in increasing
#   $|\sum_{ch}\delta_i|\cdot\sum_{ch}|\partial\,\mathrm{loss}/\partial w_i|$, stopping after a pixel
#   whose score exceeds 0.01 or after $0.3\sqrt{n}$ pixels ($n$: the changed pixels). The last
#   successful round's adversarial is the answer.
# - **Batching.** An *instance* is one image with one target. Hundreds of instances run side by side,
#   each with its own constant, Adam state and stopping rule; an instance that finishes leaves the
#   batch and the next one takes its row, so a hard image never holds up the others, and no result
#   depends on which instances share a batch.
#
# **Images, targets, statistics.** Every attack uses the first `n_images` test images that *every*
# network classifies correctly. As in C&W's Table IV, the *average case* attacks one uniformly random
# wrong target per image (fixed seed), the *best* and *worst* cases the least and most distorted of all
# nine wrong targets (the worst case fails when any target fails). Distances are on the [0, 1] pixel
# scale; L0 counts changed pixels. We report the mean, the median and a 95 % bootstrap confidence
# interval of the mean over the images the attack broke, and compare each distilled network with
# the undistilled one on the same images (paired). C&W's L-inf row in Table IV comes from their
# separate L-inf attack, not run here: our L-inf is that of the L2 attack's adversarials.
# The networks are notebook 04's (built on demand if the cache lacks them).
#
# **References.** N. Carlini, D. Wagner, "Towards evaluating the robustness of neural networks",
# IEEE S&P 2017, [doi:10.1109/SP.2017.49](https://doi.org/10.1109/SP.2017.49), code:
# [carlini/nn_robust_attacks](https://github.com/carlini/nn_robust_attacks). N. Papernot et al.,
# "Distillation as a defense to adversarial perturbations against deep neural networks", IEEE S&P 2016,
# [doi:10.1109/SP.2016.41](https://doi.org/10.1109/SP.2016.41).

# %% tags=["parameters"]
profile = "default"
seed = 0

# %% tags=[]
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from helpers import cw_study, distillation_study
from helpers.config import start
from helpers.plotting import CONDITION_COLORS, distillation_colors, image_grid, save_figure, save_table, set_style
from helpers.profiles import get
from helpers.references import CW_DISTILLED_BEST, CW_TABLE_IV

start(profile, seed)
set_style()

# %% tags=[]
cfg, SOURCE = get(profile).cw, f"05_carlini_wagner · profile {profile}"
nets = cw_study.networks(profile, seed)
images = cw_study.attack_images(profile, nets, seed)
colors, names = distillation_colors(distillation_study.model_specs(profile)), list(nets)
hottest = [n for n in names if n.endswith(f"T={max(get(profile).distill.temperatures):g}")]
print(f"{len(nets)} networks; the first {len(images['y'])} test images that every network classifies correctly "
      f"(found among the first {images['scanned']} test images)")

# %% [markdown]
# ## What this profile attacks
# The `paper` profile attacks the first 1000 images of every network with all nine targets, for
# L2 and L0, with C&W's released settings (9 binary-search steps from c = 10⁻³ of up to 10,000
# iterations; L0 up to 1000 iterations per constant), far beyond a 2-core CPU (the cost table
# below counts the model evaluations each instance took). The `default` profile runs **one
# search for every network**, C&W's 9 binary-search steps from c = 10⁻³, so that no network is
# broken more or less often because of where the search starts or stops, and keeps and cuts:
#
# - **reduced:** the first `l2_images` attacked images for the L2 average case (one random wrong
#   target) and the first `l0_images` for the L0 average case, on every network (the line below);
# - **kept:** all nine targets (best / average / worst case, as C&W's Table IV) for L2 and L0 on
#   the undistilled network and the T = 100 student, on their first images (the line below says
#   how many); **cut:** all nine targets on the teachers and the other students (average case
#   only);
# - **cut:** the untargeted L2 attack to the first images of every network (the line below).
#   The cost table below counts the model evaluations each instance took; `benchmarks/bench_cw.py`
#   prints how many evaluations per second this CPU sustains, beside the floor set by its fp32
#   matmul speed;
# - **reduced:** an L2 run stops after at most `max_iter` iterations (C&W: 10,000, with the same
#   early abort), and L0 doubles its constant after `l0_max_iter` iterations without success
#   (C&W: 1000). The budget check below measures what these caps change in success and
#   distortion, on the first attacked images (L2: every network; L0: the two networks above).
#   Pixels at 0 or 1 start at |w| ≈ 7.3 in C&W's tanh variables and Adam moves w by about its
#   learning rate (0.01) per iteration, so a run needs hundreds of iterations before it can change
#   such a pixel much: the cap decides how many instances a run can break at all.
#
# The table lists every setting of this notebook and notebook 04 where the running profile differs
# from the papers'; the next one counts the instances per network and attack.

# %% tags=[]
instances = cw_study.attack_instances(profile, images["y"])
print(cw_study.plan_line(profile))
display(cw_study.cuts(profile).style.hide(axis="index"))
instances.groupby(["model", "attack"], sort=False).agg(images=("image", "nunique"), instances=("target", "size"),
                                                       all_targets=("all_targets", "any"))

# %% [markdown]
# ## Running the attacks
# Results are cached per network and attack (keyed by the network, the test images, the targets and
# the attack's settings). The cost table counts model evaluations (one forward and backward pass of
# one instance) per instance.

# %% tags=[]
results, advs = cw_study.run(profile, nets, images, instances, seed)
per_case = cw_study.cases(results)
stats = cw_study.summary(per_case, seed)
save_table(stats, "cw")
display(cw_study.cost(results).style.hide(axis="index"))
cw_study.overview(stats)

# %% [markdown]
# ## Budget check: what the iterations per run change
# The average case on the first attacked images with the profile's search and several
# iteration budgets: L2 with at most `search_iters` iterations per binary-search step,
# L0 with its constant raised after `l0_search_iters` iterations (the profile's own budget is
# the run above, on the same instances). Each cell: success rate · mean
# distance over the images every budget broke on that network (L2, or pixels for L0) · model
# evaluations per instance.

# %% tags=[]
check = pd.concat([cw_study.search_check(profile, nets, images, results, attack, seed) for attack in ("L2", "L0")])
save_table(check, "cw_search")
print(f"{cfg.binary_search_steps} binary-search steps from c = {cfg.c_init:g}; this profile runs max_iter "
      f"{cfg.max_iter} (L2) and l0_max_iter {cfg.l0_max_iter} (L0) on every network.")
print("\n".join(cw_study.budget_caveat(check)))
cw_study.search_table(check)

# %% [markdown]
# ## Success rate and mean distortion per network
# Left: the share of images the targeted L2 attack breaks in the average case (the L0 and untargeted
# success rates are in the table above). Middle and right: the mean distortion of the L2 and L0
# attacks in the best, average and worst case over the images each network's attack broke, with the
# 95 % bootstrap interval of the mean; solid segments: Carlini & Wagner's Table IV (undistilled
# network, 1000 images), dashed: their best case on a distilled network (T = 100). Cases a profile
# does not run for a network have no point.

# %% tags=[]
fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [1.2, 1, 1]})
avg = stats.query("attack == 'L2' and case == 'average' and metric == 'l2'").set_index("model").reindex(names)
axes[0].bar(names, 100 * avg.success_rate, color=[colors[m] for m in names])
axes[0].set(title="targeted L2, average case: success (%)", ylim=(0, 105))
axes[0].tick_params(axis="x", rotation=60, labelsize=8)
for i, rate in enumerate(100 * avg.success_rate):
    axes[0].text(i, rate + 1, f"{rate:.0f}", ha="center", fontsize=8)
units = {"L2": "mean L2 distortion ([0, 1] pixel scale)", "L0": "mean pixels changed"}
for ax, attack in zip(axes[1:], ("L2", "L0")):
    metric = cw_study.OWN_METRIC[attack]
    for k, name in enumerate(names):
        r = stats[(stats.model == name) & (stats.attack == attack) & (stats.metric == metric)]
        r = r.set_index("case").reindex(cw_study.CASES)
        ax.errorbar(np.arange(3) + (k - (len(names) - 1) / 2) * 0.1, r["mean"], fmt="o", color=colors[name], label=name,
                    yerr=[r["mean"] - r.ci_low, r.ci_high - r["mean"]], capsize=2)
    ax.hlines(CW_TABLE_IV[metric], np.arange(3) - 0.4, np.arange(3) + 0.4, color=CONDITION_COLORS["paper"], lw=2,
              label="C&W Table IV, undistilled")
    ax.hlines(CW_DISTILLED_BEST[metric], -0.4, 0.4, color=CONDITION_COLORS["paper"], lw=2, ls="--",
              label="C&W, distilled T=100 (best case)")
    ax.set(xticks=range(3), xticklabels=cw_study.CASES, xlim=(-0.6, 2.6), ylabel=units[attack],
           title=f"{attack} attack: mean distortion (95 % CI)")
fig.legend(*axes[1].get_legend_handles_labels(), loc="upper center", ncol=5, bbox_to_anchor=(0.5, 0.0), fontsize=8,
           handlelength=3)
fig.tight_layout()
save_figure(fig, "05_cw_summary", SOURCE)

# %% [markdown]
# ## Distortion distributions
# One point per attacked image (successful attacks only), average case and untargeted L2.

# %% tags=[]
shown = [("L2", "average", "l2"), ("L2 untargeted", "untargeted", "l2"), ("L0", "average", "l0")]
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
for ax, (attack, case, metric) in zip(axes, shown):
    sub = per_case[(per_case.attack == attack) & (per_case.case == case) & per_case.success]
    sns.boxplot(data=sub, x="model", y=metric, hue="model", palette=colors, order=names, ax=ax, legend=False,
                fliersize=0)
    sns.stripplot(data=sub, x="model", y=metric, order=names, color=CONDITION_COLORS["paper"], size=2.5, ax=ax)
    ax.set(title=f"{attack}, {case} case", xlabel="", ylabel="pixels changed" if metric == "l0" else "L2 distortion")
    ax.tick_params(axis="x", rotation=60, labelsize=8)
fig.tight_layout()
save_figure(fig, "05_cw_distributions", SOURCE)

# %% [markdown]
# ## Example adversarials
# Average-case L2 and L0 adversarials and their perturbations (grey = 0, white = +1, black = −1),
# for the undistilled network and the most distilled student (the targets are the average case's);
# where the attack failed, a black image and an empty (grey) perturbation.

# %% tags=[]
k = min(8, cfg.l0_images)
show = ["undistilled", hottest[-1]]
fig, axes = plt.subplots(len(show), 1, figsize=(k * 0.75 + 1, 4.2 * len(show)))
for ax, name in zip(axes, show):
    rows, x0 = [], images["x"][:k]
    for attack in ("L2", "L0"):
        sel = results[(results.model == name) & (results.attack == attack) & results.average].head(k)
        adv = advs[sel.index.tolist()]  # NaN where the attack failed: black image, grey (empty) perturbation
        rows += [adv.nan_to_num(0.0), ((adv - x0) / 2 + 0.5).nan_to_num(0.5)]
    image_grid(ax, torch.cat([x0, *rows]), nrow=k, title=f"{name}: targets {sel.target.tolist()}",
               row_labels=["original", "L2 adversarial", "L2 perturbation", "L0 adversarial", "L0 perturbation"])
save_figure(fig, "05_cw_examples", SOURCE)

# %% [markdown]
# ## Gradient masking: FGSM on the same networks
# FGSM (x' = clip(x + ε·sign ∇ₓ CE(softmax(Z(x)), y))) differentiates the softmax at T = 1. On a
# distilled network the softmax saturates, the gradient underflows to zero, and FGSM seems to fail —
# while the C&W attacks above, which work on the logits, do not. Scored on the first `fgsm_images`
# test images (all of them, not only the attacked ones). The distilled networks' curves lie almost
# on top of each other: each is shifted sideways by a little so that all stay visible.

# %% tags=[]
fgsm = cw_study.fgsm_masking(profile, nets, seed)
save_table(fgsm, "cw_fgsm")
fig, ax = plt.subplots(figsize=(7, 4))
step = 0.15 * min(np.diff(sorted(fgsm.eps.unique()))) / len(names)
for k, name in enumerate(names):
    sub = fgsm[fgsm.model == name]
    ax.plot(sub.eps + (k - (len(names) - 1) / 2) * step, 100 * sub.accuracy, marker="o", color=colors[name], label=name,
            ls=":" if "teacher" in name else "-")
ax.set(xlabel="FGSM ε (pixel units; points shifted sideways)", ylabel="accuracy (%)",
       title=f"FGSM on the first {cfg.fgsm_images} test images")
ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
save_figure(fig, "05_fgsm_masking", SOURCE)
(100 * fgsm.pivot(index="model", columns="eps", values="accuracy").loc[names]).round(1).rename_axis(
    columns="FGSM eps (accuracy, %)")

# %% [markdown]
# ## Beside Carlini & Wagner's numbers
# Their Table IV (undistilled MNIST network, targeted, 1000 images, 100 % success; best / average /
# worst case) and their best case on a distilled network (T = 100), next to ours.

# %% tags=[]
cw_study.versus_paper(stats, ["undistilled", *hottest]).style.format(precision=2, na_rep="–").hide(axis="index")

# %% [markdown]
# ## What this shows
# Per attack and case, the undistilled network's success and distortion (its own successes, the
# images every network broke, and the median over all images with a failure counted as an
# infinite distortion, C&W's convention); then each distilled network against the undistilled
# one on the images both attacks broke: the mean distortions, their ratio, and the 95 % bootstrap
# interval of the mean paired difference; a difference "beyond the interval" means that interval
# excludes zero.

# %% tags=[]
paired = cw_study.versus_undistilled(per_case, seed)
print("\n".join([*cw_study.conclusion(stats, paired, fgsm), *cw_study.budget_caveat(check)]))
