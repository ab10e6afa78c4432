"""Notebooks 01 and 02's study wiring: the profile's condensation and evaluation settings,
the cached condensed sets and trained ConvNets, their cache tags, and tidy result tables.

The methods themselves live in `condensation.py` (DC, DM) and `training.py` (DC's
evaluation protocol); this module decides what runs under which profile and how it is
cached. Every cache tag of a training set is built here, one function per kind
(`synthetic_tag`, `random_real_tag`, `whole_tag`), so that notebooks and other studies
training on the same data share the same cached models.
"""

from __future__ import annotations

import dataclasses
import time

import pandas as pd
import torch

from . import data, schemas, versions
from .cache import load_or_build
from .condensation import METHOD_DEFAULTS, SETTING_KEYS, condense, resolve_settings
from .model_runs import train_models
from .profiles import get
from .references import DC_FASHION_ACCURACY
from .stats import pm

CLEAN_DATA_TAG = {"dataset": "fashion", "split": "train"}  # the whole clean FashionMNIST training split
EVAL_DEFAULT_IPC = 10  # the epoch count `evaluation_settings` gives when no ipc is named
WHOLE = "whole dataset"
RANDOM = "random real"


def condense_settings(profile: str, ipc: int, *, side: bool = False, **overrides) -> dict:
    """The profile's condensation settings for `ipc`: `condense`'s keyword arguments, all of
    SETTING_KEYS, with the paper's loops and each method's defaults filled in. `side=True`
    gives the profile's side experiment at this ipc (DC beside the main method)."""
    cfg = get(profile).condense
    per_ipc = cfg.side if side else cfg.per_ipc
    if ipc not in per_ipc:
        what = "side-experiment" if side else "condensation"
        raise ValueError(f"ipc={ipc!r}: profile {profile!r} has no {what} settings for it; valid: {sorted(per_ipc)}")
    unknown = set(overrides) - set(SETTING_KEYS)
    if unknown:
        raise ValueError(f"unknown condensation settings {sorted(unknown)}; valid: {', '.join(SETTING_KEYS)}")
    run = {k: v for k, v in dataclasses.asdict(per_ipc[ipc]).items() if v is not None}
    settings = {"lr_net": cfg.lr_net, "batch_train": cfg.batch_train, "snapshots": cfg.snapshots, **run,
                **{k: v for k, v in overrides.items() if v is not None}}
    if settings["method"] not in METHOD_DEFAULTS:
        raise ValueError(f"method={settings['method']!r} is not a condensation method; "
                         f"valid: {', '.join(METHOD_DEFAULTS)}")
    settings.update(resolve_settings(ipc, **settings))
    return {key: settings[key] for key in SETTING_KEYS}


def synthetic_set(ipc: int, profile: str, seed: int = 0, *, method: str | None = None, init: str | None = None,
                  side: bool = False, train: data.Split | None = None, data_tag: dict | None = None) -> dict:
    """The cached condensed set for `ipc` under `profile` (built on first use).

    Returns `condense`'s dict: "images" normalised (10*ipc, 1, 28, 28), "labels" (10*ipc,)
    ordered by class, "loss", "seconds", "snapshots", ... `method`/`init` override the
    profile's choice for this ipc; `side` picks the profile's side experiment. A custom
    `train` split (e.g. poisoned) needs a JSON-able `data_tag` describing it; it joins the key.
    """
    if train is not None and data_tag is None:
        raise ValueError("a custom `train` split needs `data_tag` (a JSON-able dict describing it) for the cache key")
    settings = condense_settings(profile, ipc, side=side, method=method, init=init)
    if train is None:
        train, data_tag = data.load("fashion", True), dict(CLEAN_DATA_TAG)
    config = {"ipc": ipc, "seed": seed, "data_tag": data_tag, **settings}

    def build():
        return condense(train, ipc, seed=seed, desc=f"{settings['method']} ipc {ipc} ({profile})", **settings)

    return load_or_build("synthetic", config, build, validate=schemas.synthetic(ipc))


def synthetic_tag(ipc: int, profile: str, seed: int = 0, *, method: str | None = None, init: str | None = None,
                  side: bool = False, data_tag: dict | None = None) -> dict:
    """The `train_models` tag of `synthetic_set(ipc, profile, seed, ...)`, with the versions of the
    code that condensed it (so that networks trained on a rebuilt set are retrained)."""
    settings = condense_settings(profile, ipc, side=side, method=method, init=init)
    return {"data": "synthetic", "ipc": ipc, "seed": seed, "data_tag": data_tag or dict(CLEAN_DATA_TAG), **settings,
            "code": versions.code("synthetic")}


def random_real_tag(ipc: int, seed: int, data_tag: dict | None = None) -> dict:
    """The `train_models` tag of `data.random_per_class(train, ipc, seed)` (the random-real
    control); `data_tag` names a training split other than the clean one."""
    tag = {"data": RANDOM, "ipc": ipc, "seed": seed}
    return tag if data_tag is None else {**tag, "data_tag": data_tag}


def whole_tag(n_images: int, poison: dict | None = None) -> dict:
    """The `train_models` tag of the FashionMNIST training set (or its stratified part of
    `n_images`), clean or poisoned (`poison`: the attack's tag)."""
    tag = {"data": "whole", "dataset": "fashion", "images": n_images}
    return tag if poison is None else {**tag, "poison": poison}


def evaluation_settings(profile: str, ipc: int | None = None) -> dict:
    """Keyword arguments of `model_runs.train_models` for ConvNets trained on synthetic or
    random-real sets: DC's protocol (SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch
    256, lr x0.1 at the midpoint, 300 epochs, no augmentation); the profile sets the number
    of models and the epochs per ipc (without `ipc`: those of ipc 10)."""
    cfg = get(profile).evaluate
    key = EVAL_DEFAULT_IPC if ipc is None else ipc
    if key not in cfg.epochs:
        raise ValueError(f"ipc={ipc!r}: profile {profile!r} has no evaluation epochs for it; "
                         f"valid: {sorted(cfg.epochs)}")
    return {"arch": "convnet", "n_models": cfg.n_models, "epochs": cfg.epochs[key],
            "lr": cfg.lr, "momentum": cfg.momentum, "weight_decay": cfg.weight_decay, "batch_size": cfg.batch_size,
            "decay_at": tuple(cfg.decay_at)}


def whole_settings(profile: str) -> dict:
    """`train_models` keyword arguments of the whole-training-set ConvNets: DC's optimiser and
    schedule for the profile's `whole_epochs`, `whole_models` models."""
    cfg = get(profile).evaluate
    return {**evaluation_settings(profile), "n_models": cfg.whole_models, "epochs": cfg.whole_epochs}


def scoring_split(profile: str, seed: int = 0) -> data.Split:
    """The FashionMNIST test images the study scores on: all 10,000, or (smoke runs) a
    stratified part of the profile's `test_images`."""
    cfg, test = get(profile).evaluate, data.load("fashion", False)
    return data.stratified_subset(test, cfg.test_images, seed) if cfg.test_images else test


def whole_data(profile: str, seed: int = 0) -> data.Split:
    """The training split of the upper bound: all 60,000 images or the profile's `whole_images`."""
    cfg, train = get(profile).evaluate, data.load("fashion", True)
    return data.stratified_subset(train, cfg.whole_images, seed) if cfg.whole_images else train


def whole_models(profile: str, seed: int = 0) -> list[dict]:
    """The cached ConvNets trained on the whole training set (`model_runs.train_models`'
    results, scored on `scoring_split`); notebooks 02, 03 and 06 share them."""
    whole, test = whole_data(profile, seed), scoring_split(profile, seed)
    return train_models(whole.images, whole.labels, tag=whole_tag(len(whole)), test=(test.images, test.labels),
                        seed=seed, **whole_settings(profile))


def accuracy_summary(runs: list[dict], seconds: float = 0.0) -> dict:
    """Final test accuracy of `train_models` results: {"accs", "mean", "std" (sample std over
    models, ddof 1; 0 for one model), "n_models", "seconds", "train_loss" (per model, per epoch)}."""
    accs = torch.tensor([r["test_acc"] for r in runs], dtype=torch.float64)
    return {"accs": accs.tolist(), "mean": accs.mean().item(), "std": accs.std().item() if len(runs) > 1 else 0.0,
            "n_models": len(runs), "seconds": seconds,
            "train_loss": [[e["train_loss"] for e in r["history"]["epochs"]] for r in runs]}


def score_models(images: torch.Tensor, labels: torch.Tensor, *, tag: dict, settings: dict,
                 test: tuple[torch.Tensor, torch.Tensor], seed: int = 0) -> dict:
    """Train `settings["n_models"]` fresh networks on (images, labels) with
    `model_runs.train_models` (cached) and `accuracy_summary` them; "seconds" is this call's wall
    time (about 0 when cached)."""
    start = time.perf_counter()
    runs = train_models(images, labels, tag=tag, test=test, seed=seed, **settings)
    return accuracy_summary(runs, time.perf_counter() - start)


def _row(method: str, ipc: int | None, init: str, profile: str, settings: dict, score: dict) -> dict:
    return {"method": method, "ipc": ipc, "init": init, "profile": profile, "n_models": score["n_models"],
            "epochs": settings["epochs"], "mean": 100 * score["mean"], "std": 100 * score["std"],
            "seconds": score["seconds"]}


def score_ipc(profile: str, ipc: int, seed: int = 0, *, side: bool = False) -> tuple[list[dict], dict]:
    """Evaluate the condensed set of `ipc` (or the side experiment's) and, unless `side`, the
    random-real control of the same size, with DC's protocol: (table rows, scores by
    (method, ipc)); the condensed set is built if notebook 01 has not cached it."""
    settings, test = evaluation_settings(profile, ipc), scoring_split(profile, seed)
    syn = synthetic_set(ipc, profile, seed, side=side)
    method = syn["method"].upper()
    sets = [(method, syn["images"], syn["labels"], synthetic_tag(ipc, profile, seed, side=side), syn["init"])]
    if not side:
        images, labels = data.random_per_class(data.load("fashion", True), ipc, seed)
        sets.append((RANDOM, images, labels, random_real_tag(ipc, seed), "-"))
    rows, scores = [], {}
    for name, images, labels, tag, init in sets:
        scores[(name, ipc)] = score_models(images, labels, tag=tag, settings=settings,
                                           test=(test.images, test.labels), seed=seed)
        rows.append(_row(name, ipc, init, profile, settings, scores[(name, ipc)]))
    return rows, scores


def evaluate_all(profile: str, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Notebook 02's table: per evaluated ipc the condensed set and the random-real control,
    then the whole-dataset upper bound (ipc empty); columns method, ipc, init, profile,
    n_models, epochs, mean, std (test accuracy %, over models), seconds. Also the scores
    by (method, ipc) with the per-model training losses."""
    rows, scores = [], {}
    for ipc in get(profile).evaluate.ipcs:
        r, s = score_ipc(profile, ipc, seed)
        rows += r
        scores.update(s)
    start = time.perf_counter()
    scores[(WHOLE, None)] = accuracy_summary(whole_models(profile, seed), time.perf_counter() - start)
    rows.append(_row(WHOLE, None, "-", profile, whole_settings(profile), scores[(WHOLE, None)]))
    return pd.DataFrame(rows), scores


def with_paper(results: pd.DataFrame) -> pd.DataFrame:
    """`evaluate_all`'s table with DC's published number beside each row ("paper": DC's
    accuracy for condensed sets of any method, its random-real and whole-dataset numbers)."""
    def paper(method: str, ipc) -> float | None:
        key = (WHOLE, None) if method == WHOLE else (method if method == RANDOM else "DC", int(ipc))
        return DC_FASHION_ACCURACY.get(key, (None,))[0]

    return results.assign(paper=[paper(m, i) for m, i in zip(results.method, results.ipc)],
                          paper_method=[m if m in (RANDOM, WHOLE) else "DC" for m in results.method])


def condensation_summary(sets: dict[int, dict], profile: str, paper_cost: pd.DataFrame | None = None) -> pd.DataFrame:
    """Notebook 01's table of condensed sets ({ipc: synthetic_set}): settings, first and last
    loss, wall seconds, seconds per iteration and, given the measured cost of the paper's
    settings (`iteration_seconds` rows with an "ipc" column), the speed-up per iteration."""
    summary = pd.DataFrame([{
        "ipc": ipc, "method": s["method"].upper(), "init": s["init"], "iterations": s["iterations"],
        "batch_real": s["batch_real"], "outer_loop": s["outer_loop"], "inner_loop": s["inner_loop"],
        "lr_img": s["lr_img"], "dsa_strategy": s["dsa_strategy"],
        "first_loss": s["loss"][0] if s["loss"] else float("nan"),
        "last_loss": s["loss"][-1] if s["loss"] else float("nan"), "seconds": s["seconds"],
        "profile": profile} for ipc, s in sets.items()])
    summary["s / iteration"] = summary.seconds / summary.iterations.clip(lower=1)
    if paper_cost is not None and len(paper_cost):
        summary["paper s / iteration (measured)"] = paper_cost.set_index("ipc").loc[summary.ipc, "iteration_s"].values
        summary["speed-up per iteration"] = summary["paper s / iteration (measured)"] / summary["s / iteration"]
    return summary


def image_drift(sets: dict[int, dict], pixel_std: float) -> pd.DataFrame:
    """How far each snapshot of each condensed set ({ipc: synthetic_set}) moved from its
    initialisation: mean absolute change in pixel units (normalised units x `pixel_std`)."""
    return pd.DataFrame([{"ipc": ipc, "iteration": it,
                          "mean |pixel change|": ((snap - s["snapshots"][0]) * pixel_std).abs().mean().item()}
                         for ipc, s in sets.items() for it, snap in zip(s["snapshot_iters"], s["snapshots"])])


def count(n: int, noun: str) -> str:
    """'1 model', '3 models'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def evaluation_conclusion(results: pd.DataFrame) -> list[str]:
    """Notebook 02's closing lines from `evaluate_all`'s table: per ipc condensed vs random
    real (mean ± std, n, epochs) beside DC's paper, the upper bound, and the measured wall
    time per model."""
    whole = results[results.method == WHOLE].iloc[0]
    lines = []
    for ipc, part in results[results.method != WHOLE].groupby("ipc", sort=True):
        c, r = part[part.method != RANDOM].iloc[0], part[part.method == RANDOM].iloc[0]
        paper = DC_FASHION_ACCURACY[("DC", int(ipc))]
        lines.append(f"ipc {ipc:>2.0f}: {c.method} {pm(c['mean'], c['std'], unit=' %')} (n = {c.n_models}) vs random "
                     f"real {pm(r['mean'], r['std'], unit=' %')} (n = {r.n_models}), {c['mean'] - r['mean']:+.1f} "
                     f"points, {count(c.epochs, 'epoch')}; paper DC {paper[0]} ± {paper[1]} %; "
                     f"{c['mean'] / whole['mean']:.0%} of the whole-dataset accuracy.")
    lines.append(f"Whole training set: {pm(whole['mean'], whole['std'], unit=' %')} ({count(whole.n_models, 'model')}, "
                 f"{count(whole.epochs, 'epoch')}; paper {DC_FASHION_ACCURACY[(WHOLE, None)][0]} %, 300 epochs).")
    per_set = [f"{r.method}{'' if pd.isna(r.ipc) else f' ipc {r.ipc:.0f}'} {r.seconds / 60:.1f} min"
               for r in results.itertuples()]
    lines.append("Wall time of each set's models in this run (training what the cache lacked, loading the rest): "
                 + ", ".join(per_set) + ".")
    return lines


# --- the README's block and abstract line of this study ------------------------------------------


def readme_block(df: pd.DataFrame) -> str:
    """The README's condensation table from `results/condensation_eval.csv` (notebook 02's rows)."""
    whole = df[df.method == "whole dataset"].iloc[0]
    small = df[df.method != "whole dataset"]
    rows = ["| ipc | condensed: method, init | condensed (%) | random real (%) | evaluation epochs | models |"
            " condensed, % of whole | paper DC (%) | paper random (%) |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for ipc, part in small.groupby("ipc", sort=True):
        c, r = part[part.method != "random real"].iloc[0], part[part.method == "random real"].iloc[0]
        paper_dc, paper_random = DC_FASHION_ACCURACY[("DC", ipc)], DC_FASHION_ACCURACY[("random real", ipc)]
        rows.append(f"| {ipc:.0f} | {c.method}, {c.init} | {pm(c['mean'], c['std'])} | {pm(r['mean'], r['std'])} | "
                    f"{c.epochs} | {c.n_models} | {100 * c['mean'] / whole['mean']:.0f} | "
                    f"{paper_dc[0]} ± {paper_dc[1]} | {paper_random[0]} |")
    epochs = f"{whole.epochs} epoch{'' if whole.epochs == 1 else 's'}"
    rows.append(f"\nWhole training set (upper bound): {pm(whole['mean'], whole['std'])} % ({whole.n_models} "
                f"model(s), {epochs}; paper {DC_FASHION_ACCURACY[('whole dataset', None)][0]}, 300 epochs). "
                "Every set is evaluated with DC's protocol (fresh ConvNets, SGD, lr x0.1 at the midpoint, no "
                "augmentation); DM condenses with DSA augmentation as its official code does. Mean ± std over "
                "independently initialised ConvNets, full 10k test set, from `results/condensation_eval.csv`. The "
                "paper's random-real accuracies are quoted from secondary sources, not checked against its table.")
    return "\n".join(rows)


def abstract_line(cond: pd.DataFrame) -> str:
    """The abstract's condensation sentence, every number from the table."""
    small = cond[cond.method != "whole dataset"]
    condensed, rand = small[small.method != "random real"], small[small.method == "random real"]
    whole = cond[cond.method == "whole dataset"].iloc[0]
    ipcs = " / ".join(f"{i:.0f}" for i in condensed.ipc)
    beats = (condensed["mean"].to_numpy() > rand["mean"].to_numpy()).all()
    paper = " / ".join(f"{DC_FASHION_ACCURACY[('DC', i)][0]}" for i in condensed.ipc)
    methods = " / ".join(condensed.method)
    epochs = sorted(set(condensed.epochs))
    protocol = (f"DC's {epochs[0]}-epoch evaluation" if len(epochs) == 1
                else f"DC's evaluation with {' / '.join(str(e) for e in condensed.epochs)} epochs")
    return (f"- **Condensed sets {'beat' if beats else 'do not always beat'} random real images.** ConvNets "
            f"trained on {ipcs} condensed images per class ({methods}) reach "
            f"{' / '.join(f'{m:.1f}' for m in condensed['mean'])} % test accuracy on FashionMNIST, against "
            f"{' / '.join(f'{m:.1f}' for m in rand['mean'])} % for as many random real images and "
            f"{whole['mean']:.1f} % for the whole training set ({protocol}; DC's paper: {paper} %, whole "
            f"dataset {DC_FASHION_ACCURACY[('whole dataset', None)][0]} %).")
