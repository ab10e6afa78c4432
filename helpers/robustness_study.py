"""Study wiring of notebook 03: are networks trained on condensed FashionMNIST more or less
robust to FGSM and PGD than networks trained on the whole training set, on an equal-size
random real subset, or on the whole set but stopped at the condensed networks' accuracy?

One public function per step of the notebook:
`training_sets` -> `train_lenets`, `accuracy_matched_lenets`, `train_convnets` ->
`attack_models` (a tidy table: one row per model, attack and eps) -> `summarize`,
`accuracy_table`, `verdicts`. The attacks are `attacks.py`'s; the condensed sets and
notebook 02's ConvNet protocol come from the condensation study, so models are shared
through the cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import torch

from . import attacks, data, model_runs, models, schemas, training
from . import condensation_study as study  # notebooks 01/02's sets, models and tags
from .cache import load_or_build
from .profiles import get
from .progress import progress
from .runtime import seed_everything
from .stats import over_groups, pm

ARCHS = {"LeNet": "lenet", "ConvNet": "convnet"}
ORIGINAL, CONDENSED, RANDOM, MATCHED = "original", "condensed", "random subset", "accuracy-matched"

# The robustness verdict (`verdict`): a condition is more (less) robust than a baseline when its
# attack success rate at HEADLINE_EPS, averaged over models, is lower (higher) by more than
# NOISE_MULTIPLE combined standard deviations over models AND by more than MIN_DIFFERENCE;
# otherwise the two are indistinguishable.
HEADLINE_EPS = 0.1  # pixel units; below saturation (every condition is ~100 % fooled at 0.3)
NOISE_MULTIPLE = 1.0
MIN_DIFFERENCE = 0.01  # one point of success rate
# Figures: one line style per ipc (0: the whole training set), colours from CONDITION_COLORS.
LINESTYLES = {0: "-", 10: "-", 50: "--"}


@dataclass(frozen=True)
class TrainingSet:
    """One training condition: images (normalised), labels, the cache tag naming them, and
    the label shown in tables and figures."""

    condition: str
    ipc: int | None
    images: torch.Tensor
    labels: torch.Tensor
    tag: dict
    label: str


@dataclass(frozen=True)
class Trained:
    """The models of one (architecture, condition, ipc): `runs` as `model_runs.train_models`
    returns them (seed, test_acc, history, state_dict)."""

    arch: str
    condition: str
    ipc: int | None
    label: str
    train_images: int
    runs: list[dict]


def training_sets(profile: str, seed: int = 0) -> dict[tuple[str, int | None], TrainingSet]:
    """The training conditions of `profile`, keyed (condition, ipc): the whole training set
    (ipc None; a stratified part when `lenet_full_images` is set), and per ipc notebook 01's
    condensed set (built if missing) and `ipc` random real images per class."""
    cfg = get(profile).robustness
    train = data.load("fashion", True)
    whole = train if cfg.lenet_full_images is None else data.stratified_subset(train, cfg.lenet_full_images, seed)
    sets = {(ORIGINAL, None): TrainingSet(ORIGINAL, None, whole.images, whole.labels, study.whole_tag(len(whole)),
                                          f"original ({len(whole)})")}
    for ipc in sorted({*cfg.ipcs, *cfg.convnet_ipcs}):
        syn = study.synthetic_set(ipc, profile, seed)
        sets[(CONDENSED, ipc)] = TrainingSet(CONDENSED, ipc, syn["images"], syn["labels"],
                                             study.synthetic_tag(ipc, profile, seed),
                                             f"condensed ipc {ipc} ({syn['method'].upper()})")
        images, labels = data.random_per_class(train, ipc, seed)
        sets[(RANDOM, ipc)] = TrainingSet(RANDOM, ipc, images, labels, study.random_real_tag(ipc, seed),
                                          f"random subset ipc {ipc}")
    return sets


def training_set_table(sets: dict[tuple[str, int | None], TrainingSet]) -> pd.DataFrame:
    """One row per training condition: condition, ipc (0: whole set), label, images."""
    return pd.DataFrame([{"condition": s.condition, "ipc": s.ipc or 0, "label": s.label, "images": len(s.labels)}
                         for s in sets.values()])


def _protocol(profile: str) -> dict:
    """DC's optimiser as notebook 02 uses it (lr, momentum, weight decay, batch, lr drops)."""
    return {k: v for k, v in study.evaluation_settings(profile).items() if k not in ("arch", "n_models", "epochs")}


def curve_set(profile: str, seed: int = 0) -> data.Split:
    """The test images of the LeNets' accuracy-per-epoch curves (a stratified part, or all)."""
    cfg, test = get(profile).robustness, data.load("fashion", False)
    return test if cfg.curve_images is None else data.stratified_subset(test, cfg.curve_images, seed)


def train_lenets(sets: dict[tuple[str, int | None], TrainingSet], profile: str,
                 seed: int = 0) -> dict[tuple[str, str, int | None], Trained]:
    """`seeds` LeNets per condition (ipc in the profile's `ipcs`, and the whole set), with DC's
    optimiser, cached; each records its loss per iteration and its accuracy on `curve_set`
    `curve_points` times. Keyed ("LeNet", condition, ipc)."""
    cfg, curve = get(profile).robustness, curve_set(profile, seed)
    out = {}
    for (condition, ipc), s in sets.items():
        if ipc is not None and ipc not in cfg.ipcs:
            continue
        epochs = cfg.lenet_full_epochs if ipc is None else cfg.lenet_epochs[ipc]
        runs = model_runs.train_models(
            s.images, s.labels, arch="lenet", n_models=cfg.seeds, epochs=epochs, seed=seed,
            tag={**s.tag, "curve_test": len(curve), "curve_seed": seed}, test=(curve.images, curve.labels),
            eval_every=max(1, epochs // cfg.curve_points), **_protocol(profile))
        out[("LeNet", condition, ipc)] = Trained("LeNet", condition, ipc, s.label, len(s.labels), runs)
    return out






def _matched_lenet(fit: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor],
                   curve: data.Split, settings: dict, seed: int) -> dict:
    """One accuracy-matched LeNet in `model_runs.train_models`' format (test_acc on `curve`)."""
    seed_everything(seed)
    model = models.build("lenet")
    history = training.train_to_accuracy(model, *fit, val, seed=seed, **settings)
    test_acc, test_loss = training.evaluate(model, curve.images, curve.labels)
    return {"seed": seed, "test_acc": test_acc, "test_loss": test_loss, "history": history,
            "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}


def accuracy_matched_lenets(sets: dict[tuple[str, int | None], TrainingSet],
                            lenets: dict[tuple[str, str, int | None], Trained], profile: str,
                            seed: int = 0) -> dict[tuple[str, str, int | None], Trained]:
    """The accuracy-matched control: per ipc, `seeds` LeNets trained on the whole training set
    (less `matched_val_images` held out for validation) and stopped at the first check where
    their validation accuracy reaches the mean test accuracy of that ipc's condensed-trained
    LeNets, so robustness can be compared at equal clean accuracy. Cached; keyed
    ("LeNet", "accuracy-matched", ipc)."""
    cfg, curve = get(profile).robustness, curve_set(profile, seed)
    whole = sets[(ORIGINAL, None)]
    fit, val = training.validation_split(whole.images, whole.labels, cfg.matched_val_images, seed)
    protocol = {k: v for k, v in _protocol(profile).items() if k != "decay_at"}
    out = {}
    for ipc in cfg.ipcs:
        target = float(np.mean([r["test_acc"] for r in lenets[("LeNet", CONDENSED, ipc)].runs]))
        settings = {"target": round(target, 6), "check_every": cfg.matched_check_every,
                    "max_epochs": cfg.lenet_full_epochs, **protocol}
        tag = {**whole.tag, "held_out": cfg.matched_val_images, "seed": seed, "curve_test": len(curve)}
        runs = [load_or_build("model", {"tag": tag, "seed": s, "arch": "lenet", **settings},
                              partial(_matched_lenet, fit, val, curve, settings, s),
                              validate=schemas.model("lenet", {}))
                for s in range(seed, seed + cfg.seeds)]
        label = f"accuracy-matched to condensed ipc {ipc}"
        out[("LeNet", MATCHED, ipc)] = Trained("LeNet", MATCHED, ipc, label, len(fit[1]), runs)
    return out


def train_convnets(sets: dict[tuple[str, int | None], TrainingSet], profile: str,
                   seed: int = 0) -> dict[tuple[str, str, int | None], Trained]:
    """The first `seeds` ConvNets per condition at the profile's `convnet_ipcs`, trained
    exactly as in notebook 02 (so loaded from its cache), and notebook 02's whole-set ConvNets
    when `convnet_whole`. Keyed ("ConvNet", condition, ipc)."""
    cfg, test = get(profile).robustness, study.scoring_split(profile, seed)
    out = {}
    if cfg.convnet_whole:
        whole = study.whole_data(profile, seed)
        out[("ConvNet", ORIGINAL, None)] = Trained("ConvNet", ORIGINAL, None, f"original ({len(whole)})", len(whole),
                                                   study.whole_models(profile, seed)[:cfg.seeds])
    for ipc in cfg.convnet_ipcs:
        for condition in (CONDENSED, RANDOM):
            s = sets[(condition, ipc)]
            runs = model_runs.train_models(s.images, s.labels, tag=s.tag, seed=seed, test=(test.images, test.labels),
                                         **{**study.evaluation_settings(profile, ipc), "n_models": cfg.seeds})
            out[("ConvNet", condition, ipc)] = Trained("ConvNet", condition, ipc, s.label, len(s.labels), runs)
    return out


def attack_set(n_images: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-space test images and labels: a stratified part of `n_images`, or all."""
    test = data.load("fashion", False)
    part = test if n_images >= len(test) else data.stratified_subset(test, n_images, seed)
    return part.pixels(), part.labels


def attack_plan(profile: str) -> pd.DataFrame:
    """Per architecture and attack: the number of test images attacked and the steps (1 for FGSM)."""
    cfg, n_test = get(profile).robustness, len(data.load("fashion", False))
    plan = [("LeNet", "fgsm", cfg.fgsm_images, 1), ("LeNet", "pgd", cfg.pgd_images, cfg.pgd_steps),
            ("ConvNet", "fgsm", cfg.convnet_fgsm_images, 1),
            ("ConvNet", "pgd", cfg.convnet_pgd_images, cfg.convnet_pgd_steps)]
    return pd.DataFrame([{"arch": arch, "attack": attack, "test_images": min(n or n_test, n_test), "steps": steps}
                         for arch, attack, n, steps in plan])


def attack_models(trained: dict[tuple[str, str, int | None], Trained], profile: str,
                  seed: int = 0) -> pd.DataFrame:
    """FGSM and PGD (random start seeded by the model's seed, step `attacks.PGD_PATH` * eps / steps) at
    every eps of the profile on every model, on the test images of `attack_plan`.

    One row per model, attack and eps: arch, condition, ipc (0: whole set), label,
    train_images, steps, test_images, seed and `attacks.evaluate_attack`'s record (accuracy,
    success_rate, clean_accuracy, n, n_correct)."""
    cfg = get(profile).robustness
    plan = attack_plan(profile)
    mean_std = data.load("fashion", False).mean_std
    rows = []
    for t in progress(list(trained.values()), desc="attacks"):
        for p in plan[plan.arch == t.arch].itertuples():
            x, y = attack_set(p.test_images, seed)
            info = {"arch": t.arch, "condition": t.condition, "ipc": t.ipc or 0, "label": t.label,
                    "train_images": t.train_images, "steps": p.steps, "test_images": len(y)}
            for run in t.runs:
                model = models.Normalized(training.load_model(ARCHS[t.arch], run["state_dict"]), *mean_std)
                result = attacks.evaluate_attack(model, x, y, cfg.eps, attack=p.attack, steps=p.steps,
                                                 seed=run["seed"], batch_size=cfg.batch_size)
                rows += [{**info, "seed": run["seed"], **record} for record in result["records"]]
    return pd.DataFrame(rows)


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over models per (arch, label, condition, ipc, attack, eps): accuracy under
    attack `acc`, attack success rate `success`, clean accuracy `clean`, `models`, `steps`
    and `test_images` (fractions, not percent)."""
    keys = ["arch", "label", "condition", "ipc", "attack", "eps"]
    df = results.rename(columns={"accuracy": "acc", "success_rate": "success", "clean_accuracy": "clean"})
    out = over_groups(df, keys, ["acc", "success", "clean"]).rename(columns={"n": "models"})
    first = df.groupby(keys, sort=False)[["steps", "test_images"]].first().reset_index()
    return out.drop(columns="clean_std").merge(first, on=keys)


def accuracy_table(summary: pd.DataFrame, arch: str = "LeNet") -> pd.DataFrame:
    """Accuracy under attack (%, mean ± std over models) of one architecture: a row per attack
    and training condition, a column per eps."""
    part = summary[summary.arch == arch].assign(
        cell=lambda d: [pm(a, s, 100) for a, s in zip(d.acc, d.acc_std)])
    return part.pivot_table(index=["attack", "label"], columns="eps", values="cell", aggfunc="first", sort=False)


def verdict(success: float, success_std: float, baseline: float, baseline_std: float) -> str:
    """The robustness rule: "more robust" when the attack success rate is lower than the
    baseline's by more than NOISE_MULTIPLE combined standard deviations and more than
    MIN_DIFFERENCE, "less robust" when higher by as much, else "indistinguishable"."""
    values = (success, success_std, baseline, baseline_std)
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values) or min(values) < 0:
        raise ValueError(f"success rates and stds must be finite numbers >= 0, got {values}")
    threshold = max(MIN_DIFFERENCE, NOISE_MULTIPLE * math.hypot(success_std, baseline_std))
    diff = success - baseline
    return "more robust" if diff < -threshold else "less robust" if diff > threshold else "indistinguishable"


def verdicts(results: pd.DataFrame, eps: float = HEADLINE_EPS) -> pd.DataFrame:
    """Condensed-trained models against each baseline (original, random subset of the same
    ipc, accuracy-matched to that ipc, as far as present), per architecture, attack and ipc, at
    one eps: success rates and clean accuracies (mean, std over models, n models), the
    difference and the `verdict`."""
    attacks.check_eps(eps)
    at = results[np.isclose(results.eps, eps)]
    if at.empty:
        valid = sorted(results.eps.unique().tolist())
        raise ValueError(f"eps must be one of the attacked budgets {valid}, got {eps!r}")
    stats = (at.groupby(["arch", "attack", "condition", "ipc"], sort=False)
             .agg(success=("success_rate", "mean"), success_std=("success_rate", "std"),
                  clean=("clean_accuracy", "mean"), accuracy=("accuracy", "mean"), n=("seed", "count"))
             .fillna({"success_std": 0.0}))
    rows = []
    for (arch, attack, condition, ipc), mine in stats.iterrows():
        if condition != CONDENSED:
            continue
        for baseline, b_ipc in ((ORIGINAL, 0), (RANDOM, ipc), (MATCHED, ipc)):
            if (arch, attack, baseline, b_ipc) not in stats.index:
                continue
            base = stats.loc[(arch, attack, baseline, b_ipc)]
            rows.append({"arch": arch, "attack": attack, "eps": eps, "ipc": ipc, "baseline": baseline,
                         **{k: mine[k] for k in stats.columns},
                         **{f"baseline_{k}": base[k] for k in stats.columns},
                         "difference": mine.success - base.success,
                         "verdict": verdict(mine.success, mine.success_std, base.success, base.success_std)})
    return pd.DataFrame(rows)


def describe_verdicts(table: pd.DataFrame) -> list[str]:
    """One sentence per row of `verdicts`: the comparison, its numbers (%) and the verdict."""
    relation = {"more robust": "MORE ROBUST than", "less robust": "LESS ROBUST than",
                "indistinguishable": "INDISTINGUISHABLE from"}
    return [f"{r.arch}, {r.attack.upper()} at eps {r.eps:g}, ipc {r.ipc}: condensed is {relation[r.verdict]} "
            f"{r.baseline} (attack success {pm(r.success, r.success_std, 100, unit=' %')} vs "
            f"{pm(r.baseline_success, r.baseline_success_std, 100, unit=' %')}, "
            f"n = {r.n:.0f} / {r.baseline_n:.0f} models; "
            f"clean accuracy {100 * r.clean:.1f} vs {100 * r.baseline_clean:.1f} %)"
            for r in table.itertuples()]


def loss_curves(trained: dict[tuple[str, str, int | None], Trained]) -> pd.DataFrame:
    """Mini-batch training loss per SGD iteration, one row per model and iteration: arch,
    condition, ipc (0: whole set), label, seed, iteration (from 1), loss."""
    return pd.DataFrame([{"arch": t.arch, "condition": t.condition, "ipc": t.ipc or 0, "label": t.label,
                          "seed": r["seed"], "iteration": i, "loss": loss}
                         for t in trained.values() if t.condition != MATCHED for r in t.runs
                         for i, loss in enumerate(r["history"]["step_loss"], start=1)])


def accuracy_curves(trained: dict[tuple[str, str, int | None], Trained]) -> pd.DataFrame:
    """Test accuracy during training, one row per model and evaluated epoch: arch, condition,
    ipc (0: whole set), label, seed, epoch, test_acc (fraction)."""
    return pd.DataFrame([{"arch": t.arch, "condition": t.condition, "ipc": t.ipc or 0, "label": t.label,
                          "seed": r["seed"], "epoch": e["epoch"], "test_acc": e["test_acc"]}
                         for t in trained.values() if t.condition != MATCHED for r in t.runs
                         for e in r["history"]["epochs"] if "test_acc" in e])


def stopping_table(matched: dict[tuple[str, str, int | None], Trained]) -> pd.DataFrame:
    """Where each accuracy-matched LeNet stopped: ipc matched, seed, target accuracy, whether it
    reached it, SGD steps, epochs, validation and test accuracy at the stop (fractions)."""
    return pd.DataFrame([{"ipc": t.ipc, "seed": r["seed"], "target": r["history"]["target"],
                          "reached": r["history"]["reached"], "steps": r["history"]["steps"],
                          "epochs": r["history"]["epochs"],
                          "val_acc": r["history"]["checks"][-1]["val_acc"], "test_acc": r["test_acc"]}
                         for t in matched.values() for r in t.runs])


def example_rows(trained: dict[tuple[str, str, int | None], Trained], keys: list[tuple[str, str, int | None]],
                 eps: float, n_images: int) -> list[dict]:
    """The examples figure's rows: FGSM at `eps` on the first test image of each of the first
    `n_images` classes against the first model of each of `keys`. Rows of {"name", "images"
    (pixel-space, CPU), "titles"}: the clean images under their class; per model, the
    perturbation mapped to [0, 1] (0.5 = unchanged, 1 = +eps) under the model's clean
    prediction, and the adversarial images under its prediction after the attack (✗: wrong)."""
    attacks.check_eps(eps)
    test = data.load("fashion", False)
    idx = [int(test.class_indices(c)[0]) for c in range(n_images)]
    x, y = test.pixels()[idx], test.labels[idx]
    rows = [{"name": "clean (true class)", "images": x, "titles": [test.classes[c] for c in y]}]
    for key in keys:
        t = trained[key]
        net = models.Normalized(training.load_model(ARCHS[t.arch], t.runs[0]["state_dict"]), *test.mean_std)
        adv = attacks.fgsm(net, x, y, eps).cpu()
        clean_pred, adv_pred = training.predict(net, x).argmax(1), training.predict(net, adv).argmax(1)
        delta = 0.5 + (adv - x) / (2 * eps) if eps else torch.full_like(x, 0.5)
        rows += [{"name": f"{t.label}:\nδ (clean prediction)", "images": delta,
                  "titles": [test.classes[c] for c in clean_pred]},
                 {"name": f"{t.label}:\nadversarial (prediction)", "images": adv,
                  "titles": [("✗ " if p != c else "") + test.classes[p] for p, c in zip(adv_pred, y)]}]
    return rows


# --- the README's block and abstract line of this study ------------------------------------------


README_EPS = (0.0, 0.1, 0.2, 0.3)  # the README's columns; results/fgsm.csv holds every eps


def readme_block(df: pd.DataFrame) -> str:
    """The README's accuracy-under-attack table from `results/fgsm.csv` (notebook 03's rows)."""
    df = df[df.eps.round(6).isin(README_EPS)]
    summary = over_groups(df, ["arch", "attack", "label", "steps", "test_images", "eps"], ["accuracy"])
    eps = sorted(summary.eps.unique())
    rows = ["| model | trained on | attack | " + " | ".join(f"eps {e:g}" for e in eps) + " | models | test images |",
            "|---|---|---|" + "---:|" * (len(eps) + 2)]
    for (arch, attack, label), part in summary.groupby(["arch", "attack", "label"], sort=False):
        part = part.set_index("eps")
        name = attack.upper() + ("" if attack == "fgsm" else f" ({part.steps.iloc[0]} steps)")
        rows.append(f"| {arch} | {label} | {name} | "
                    + " | ".join(pm(part.accuracy[e], part.accuracy_std[e], 100) for e in eps)
                    + f" | {part.n.min()} | {part.test_images.iloc[0]} |")
    rows.append("\nAccuracy under attack (%, mean ± std over models), eps in [0, 1] pixel units; eps 0 is the "
                "clean accuracy. From `results/fgsm.csv` (all eps there).")
    return "\n".join(rows)


def abstract_line(fgsm: pd.DataFrame) -> str:
    """The abstract's robustness sentence: LeNets, PGD, the smallest condensed ipc, at
    `robustness_study.HEADLINE_EPS`, judged by `robustness_study.verdict` (the notebook's rule)."""
    table = verdicts(fgsm)
    lenet = table[(table.arch == "LeNet") & (table.attack == "pgd")]
    lenet = lenet[lenet.ipc == lenet.ipc.min()].set_index("baseline")
    cnd, orig, rnd = lenet.iloc[0], lenet.loc["original"], lenet.loc["random subset"]
    phrase = {"more robust": "less easily attacked than", "less robust": "more easily attacked than",
              "indistinguishable": "as easily attacked as"}
    headline = (f"{phrase[orig.verdict]} whole-data and random-subset ones" if orig.verdict == rnd.verdict else
                f"{phrase[orig.verdict]} whole-data LeNets, {phrase[rnd.verdict]} random-subset ones")
    numbers = (f"PGD at eps {cnd.eps:g} succeeds on {100 * cnd.success:.1f} % of the test images a LeNet trained "
               f"on the ipc {cnd.ipc} condensed set classifies correctly (clean accuracy {100 * cnd.clean:.1f} %), "
               f"against {100 * orig.baseline_success:.1f} % for the whole training set "
               f"({100 * orig.baseline_clean:.1f} %), {100 * rnd.baseline_success:.1f} % for an equal-size random "
               f"subset ({100 * rnd.baseline_clean:.1f} %)")
    if "accuracy-matched" not in lenet.index:
        return f"- **Robustness: LeNets trained on condensed data are {headline}.** {numbers}."
    m = lenet.loc["accuracy-matched"]
    matched = {"indistinguishable": "at equal clean accuracy the difference from the whole-data LeNets goes away, "
                                    "so it comes with the lower accuracy, not with condensed data",
               "more robust": "the condensed LeNets stay less easily attacked at equal clean accuracy, so lower "
                              "accuracy alone does not explain it",
               "less robust": "at equal clean accuracy the condensed LeNets are the more easily attacked"}
    return (f"- **Robustness: LeNets trained on condensed data are {headline}.** {numbers} and "
            f"{100 * m.baseline_success:.1f} % for a whole-data LeNet stopped at the condensed one's clean accuracy "
            f"({100 * m.baseline_clean:.1f} %): {matched[m.verdict]}.")
