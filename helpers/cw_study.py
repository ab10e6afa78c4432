"""Notebook 05's study: Carlini & Wagner's attacks against notebook 04's networks.

One public function per step: the attacked images (`attack_images`), the attack instances
(`attack_instances`), the attacks' results cached per network and attack (`run`), C&W's best / average /
worst case per image (`cases`), mean, median and a bootstrap confidence interval of the mean
over images (`summary`), paired comparisons with the undistilled network (`versus_undistilled`),
the FGSM check of gradient masking (`fgsm_masking`) and the conclusion's sentences
(`conclusion`). The attacks themselves are `helpers.cw`.

Cases follow C&W's Table IV: per image, the *average* case attacks one uniformly random wrong
target (fixed seed), the *best* and *worst* cases are the least and most distorted of all nine
wrong targets (the worst case fails when any target fails). The tables call the networks
"model", as notebook 04's do.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import attacks, cw, distillation_study, schemas
from .cache import load_or_build
from .data import mnist_splits
from .profiles import PROFILES, differences, get
from .references import CW_DISTILLED_BEST, CW_TABLE_IV
from .training import evaluate, predict

ATTACKS = ("L2", "L2 untargeted", "L0")
OWN_METRIC = {"L2": "l2", "L2 untargeted": "l2", "L0": "l0"}  # the distance each attack minimises
CASES = ("best", "average", "worst")
METRICS = ("l2", "l0", "linf")
BOOTSTRAP = 2000  # resamples behind each confidence interval
CONFIDENCE = 0.95
NUM_CLASSES = 10
_RESULTS = ("success", "l2", "l0", "linf")
MASKING_FGSM_GAP = 0.2  # FGSM accuracy (fraction) by which distilled networks must beat the undistilled one
MASKING_L2_SUCCESS = 0.9  # ... while targeted C&W L2 still breaks at least this share of images on each


def networks(profile: str, seed: int = 0) -> dict[str, nn.Module]:
    """Notebook 04's networks after its largest epoch count, by name (trained if the cache lacks them)."""
    epochs = max(get(profile).distill.epochs)
    return {name: distillation_study.network(profile, role, t, epochs, seed)
            for name, role, t in distillation_study.model_specs(profile)}


def attack_images(profile: str, nets: dict[str, nn.Module], seed: int = 0) -> dict:
    """The first `n_images` MNIST test images that every network classifies correctly (so that
    every attack starts from a correct prediction). Returns {"index" (positions in the test
    set), "x", "y", "scanned" (test images looked at to find them)}."""
    n = get(profile).cw.n_images
    dcfg = get(profile).distill
    x, y = mnist_splits(dcfg.n_train, dcfg.n_val, seed, dcfg.n_test)["test"]
    correct = torch.stack([predict(net, x).argmax(1) == y for net in nets.values()]).all(0)
    index = torch.nonzero(correct).flatten()[:n]
    if len(index) < n:
        raise ValueError(f"n_images={n} is out of range: only {len(index)} of the {len(x)} test images are "
                         f"classified correctly by every network; valid: 1 to {len(index)}")
    return {"index": index, "x": x[index], "y": y[index], "scanned": int(index[-1]) + 1}


def average_targets(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """C&W's average case: a uniformly random wrong class per image (fixed seed)."""
    g = torch.Generator().manual_seed(seed)
    return (labels + torch.randint(1, NUM_CLASSES, labels.shape, generator=g)) % NUM_CLASSES


def _all_targets_for(profile: str) -> dict[str, dict[str, bool]]:
    """Per network name, whether L2 and L0 attack all nine targets; unknown names in the profile fail."""
    cfg = get(profile).cw
    names = [n for n, _, _ in distillation_study.model_specs(profile)]
    for setting, given in (("l2_all_targets", cfg.l2_all_targets), ("l0_all_targets", cfg.l0_all_targets)):
        unknown = sorted(set(given or ()) - set(names))
        if unknown:
            raise ValueError(f"{setting}={given!r} names {unknown}, not in profile {profile!r}; valid: "
                             f"{', '.join(names)}")
    for setting, n in (("l2_images", cfg.l2_images), ("l0_images", cfg.l0_images),
                       ("l0_all_images", cfg.l0_all_images),
                       ("l2_all_images", cfg.l2_all_images), ("untargeted_images", cfg.untargeted_images)):
        if not 0 <= n <= cfg.n_images:
            raise ValueError(f"{setting}={n} is out of range; valid: 0 to n_images ({cfg.n_images})")
    return {name: {attack: given is None or name in given
                   for attack, given in (("L2", cfg.l2_all_targets), ("L0", cfg.l0_all_targets))} for name in names}


def attack_instances(profile: str, labels: torch.Tensor) -> pd.DataFrame:
    """One row per attack instance: model, attack, image (position among the attacked images),
    label, target (the true label for the untargeted attack), `average` (the image's
    average-case target, or the untargeted attack) and `all_targets` (the image is attacked with
    all nine wrong targets, for the best and worst case). L2 attacks the first `l2_images` with
    their average-case target (all targets on the first `l2_all_images` on the networks in
    `l2_all_targets`) and, untargeted, the first `untargeted_images`; L0 attacks
    the first `l0_images` with their average-case target and, on the networks in
    `l0_all_targets`, the first `l0_all_images` with all targets."""
    cfg = get(profile).cw
    all_targets = _all_targets_for(profile)
    avg = average_targets(labels, cfg.seed).tolist()
    labels = labels.tolist()
    rows = []
    for name, every in all_targets.items():
        for attack, n_avg, n_all in (("L2", cfg.l2_images, cfg.l2_all_images if every["L2"] else 0),
                                     ("L0", cfg.l0_images, cfg.l0_all_images if every["L0"] else 0)):
            for i in range(max(n_avg, n_all)):
                targets = [t for t in range(NUM_CLASSES) if t != labels[i]] if i < n_all else [avg[i]]
                rows += [{"model": name, "attack": attack, "image": i, "label": labels[i], "target": t,
                          "average": t == avg[i] and i < n_avg, "all_targets": i < n_all} for t in targets]
        rows += [{"model": name, "attack": "L2 untargeted", "image": i, "label": y, "target": y, "average": True,
                  "all_targets": False} for i, y in enumerate(labels[:cfg.untargeted_images])]
    return pd.DataFrame(rows)


def attack_settings(profile: str, attack: str, **changes) -> dict:
    """Keyword arguments of the `cw` function behind `attack` under `profile` (the rest are C&W's
    defaults), with `changes` applied (the search check's max_iter). `batch_size` changes the
    speed only: each instance runs on its own."""
    cfg = get(profile).cw
    if attack == "L0":
        return {"max_iter": cfg.l0_max_iter, "batch_size": cfg.batch_size, **changes}
    return {"c_init": cfg.c_init, "binary_search_steps": cfg.binary_search_steps, "max_iter": cfg.max_iter,
            "batch_size": cfg.batch_size, "targeted": attack == "L2", **changes}


def _attack_key(profile: str, name: str, attack: str, image_index: list[int], targets: list[int],
                seed: int, settings: dict) -> dict:
    spec = {n: (role, t) for n, role, t in distillation_study.model_specs(profile)}[name]
    epochs = max(get(profile).distill.epochs)
    return {"model": distillation_study.network_key(profile, *spec, epochs, seed), "attack": attack,
            "test_images": image_index, "targets": targets,
            "settings": {k: v for k, v in settings.items() if k != "batch_size"}}


def _cached_attack(profile: str, net: nn.Module, name: str, attack: str, images: dict, img: torch.Tensor,
                   target: torch.Tensor, seed: int, settings: dict, desc: str) -> dict:
    """One network's attack on the instances (images["x"][img], target), from the cache or run."""
    key = _attack_key(profile, name, attack, images["index"][img].tolist(), target.tolist(), seed, settings)
    build = partial(_attack, net, images["x"][img], target, attack, settings, desc)
    return load_or_build("cw-attack", key, build, validate=schemas.cw_attack(len(img), (*_RESULTS, "adv")))


def _attack(net: nn.Module, x: torch.Tensor, target: torch.Tensor, attack: str, kwargs: dict, desc: str) -> dict:
    res = (cw.cw_l0 if attack == "L0" else cw.cw_l2)(net, x, target, desc=desc, **kwargs)
    return {k: res[k] for k in (*_RESULTS, "adv", "iterations") if k in res}


def run(profile: str, nets: dict[str, nn.Module], images: dict, instances: pd.DataFrame,
        seed: int = 0) -> tuple[pd.DataFrame, torch.Tensor]:
    """Run (or load from the cache) every attack of `instances` on its network.

    Args:
        profile: the settings (`attack_settings`) and the networks' identity in the cache keys.
        nets: the networks by name (`networks`).
        images: the attacked images (`attack_images`).
        instances: the attack instances (`attack_instances`): model, attack, image, target, ...
        seed: the networks' training seed (part of the cache keys).

    Results are cached per network and attack, keyed by the network, the test images, the targets
    and the attack's settings. Returns the instances with the columns success, l2, l0, linf and
    iterations (model evaluations per instance), and the adversarials aligned with its rows (NaN
    where the attack failed)."""
    out = instances.copy()
    advs = torch.full((len(out), *images["x"].shape[1:]), float("nan"))
    for (name, attack), part in out.groupby(["model", "attack"], sort=False):
        img, target = torch.tensor(part.image.tolist()), torch.tensor(part.target.tolist())
        res = _cached_attack(profile, nets[name], name, attack, images, img, target, seed,
                             attack_settings(profile, attack), f"{name} {attack}")
        rows = out.index.get_indexer(part.index)
        for k in res:
            if k != "adv":
                out.loc[part.index, k] = res[k].numpy()
        advs[rows] = res["adv"]
    out["success"] = out.success.astype(bool)
    return out, advs


def search_check(profile: str, nets: dict[str, nn.Module], images: dict, results: pd.DataFrame,
                 attack: str = "L2", seed: int = 0) -> pd.DataFrame:
    """The targeted `attack`'s ("L2" or "L0") average case on the first few attacked images of every
    network, once per iteration budget (L2: `search_images` at each `search_iters` as max_iter; L0:
    `l0_search_images` at each `l0_search_iters` as l0_max_iter, on the networks that get all nine
    L0 targets), the profile's settings otherwise:
    what the budget per run changes. The profile's own budget is read from `results` (`run`'s
    output: the same instances), the others are run and cached like `run`'s attacks. Per model
    and budget: images, success rate, mean distance (L2 or pixels) over the images every budget
    broke on that network, model evaluations per instance (mean) and `used` (the profile's own
    budget)."""
    cfg = get(profile).cw
    if attack not in ("L2", "L0"):
        raise ValueError(f"attack={attack!r} has no search check; valid: L2, L0")
    n, budgets, own = ((cfg.search_images, cfg.search_iters, cfg.max_iter) if attack == "L2" else
                       (cfg.l0_search_images, cfg.l0_search_iters, cfg.l0_max_iter))
    if n > cfg.n_images:
        raise ValueError(f"{attack} search check: {n} images is out of range; valid: 0 to n_images ({cfg.n_images})")
    img = torch.arange(n)
    target = average_targets(images["y"], cfg.seed)[:n]  # the main run's average-case targets
    metric = OWN_METRIC[attack]
    rows = []
    every = _all_targets_for(profile)
    for name, net in nets.items():
        if attack == "L0" and not every[name]["L0"]:
            continue
        own_rows = results[(results.model == name) & (results.attack == attack) & results.average
                           & (results.image < n)].sort_values("image")
        if own in budgets and len(own_rows) < n:
            raise ValueError(f"{attack} search check on {name}: `results` holds {len(own_rows)} average-case "
                             f"instances of the first {n} images; run the attacks (`run`) first")
        runs = {m: ({k: torch.tensor(own_rows[k].to_numpy()) for k in ("success", metric, "iterations")}
                    if m == own else
                    _cached_attack(profile, net, name, attack, images, img, target, seed,
                                   attack_settings(profile, attack, max_iter=m), f"{name} {attack}, max_iter {m}"))
                for m in budgets}
        broke = torch.stack([r["success"] for r in runs.values()]).all(0) if runs else None
        rows += [{"model": name, "attack": attack, "max_iter": m, "images": n,
                  "success_rate": r["success"].float().mean().item(), "paired_images": int(broke.sum()),
                  "paired_mean": r[metric][broke].mean().item(), "evaluations": r["iterations"].float().mean().item(),
                  "used": m == own} for m, r in runs.items()]
    return pd.DataFrame(rows, columns=["model", "attack", "max_iter", "images", "success_rate", "paired_images",
                                       "paired_mean", "evaluations", "used"])


def search_table(check: pd.DataFrame) -> pd.DataFrame:
    """`search_check`'s rows (both attacks) as one row per model and one column per attack and
    budget: "success rate · paired mean · evaluations per instance"."""
    cells = [f"{r.success_rate:.0%} · {r.paired_mean:.3g} · {r.evaluations:,.0f}" for r in check.itertuples()]
    wide = check.assign(cell=cells, budget=[f"{a}, max_iter {m}" for a, m in zip(check.attack, check.max_iter)])
    return wide.pivot(index="model", columns="budget", values="cell").loc[check.model.unique(),
                                                                          list(dict.fromkeys(wide.budget))].fillna(
        "not checked")


def budget_caveat(check: pd.DataFrame) -> list[str]:
    """One sentence per attack of `search_check`'s rows: success at the profile's own budget
    and, against each other budget, that success and the ratio of the profile's mean distance to
    that budget's on the same images (what the cap changes in the profile's numbers)."""
    lines = []
    for attack, part in check.groupby("attack", sort=False):
        used = part[part.used].set_index("model")
        if used.empty:
            continue
        own = int(used.max_iter.iloc[0])
        text = (f"{attack} budget check ({part.images.iloc[0]} images, {len(used)} network(s)): at this profile's "
                f"{own} iterations success {used.success_rate.min():.0%}-{used.success_rate.max():.0%}")
        for m, other in part[~part.used].groupby("max_iter"):
            ratio = used.paired_mean / other.set_index("model").paired_mean
            text += (f"; at {m}: success {other.success_rate.min():.0%}-{other.success_rate.max():.0%}, and this "
                     f"profile's mean {OWN_METRIC[attack].upper()} is {ratio.min():.2f}-{ratio.max():.2f}x that at {m} "
                     "on the same images")
        lines.append(text + ".")
    return lines


def _pick(group: pd.DataFrame, metric: str, worst: bool) -> dict:
    ok = group[group.success]
    failed = {"success": False, "target": -1, **{m: np.nan for m in METRICS}}
    if ok.empty or (worst and len(ok) < len(group)):
        return failed
    row = ok.loc[ok[metric].idxmax() if worst else ok[metric].idxmin()]
    return {"success": True, "target": int(row.target), **{m: row[m] for m in METRICS}}


def cases(results: pd.DataFrame) -> pd.DataFrame:
    """Per model, attack, case and image: success, target and distances. `average` is the image's
    random target (the untargeted attack: case "untargeted"); `best` / `worst` pick the target
    with the smallest / largest distortion in the attack's own metric (L0: pixels, L2: L2) among
    all nine (the worst case fails when any target fails)."""
    cols = ["model", "attack", "case", "image", "success", "target", *METRICS]
    avg = results[results.average].assign(case=lambda d: np.where(d.attack == "L2 untargeted", "untargeted",
                                                                   "average"))
    rows = []
    for (name, attack, image), group in results[results.all_targets].groupby(["model", "attack", "image"],
                                                                               sort=False):
        rows += [{"model": name, "attack": attack, "case": case, "image": image,
                  **_pick(group, OWN_METRIC[attack], worst)}
                 for case, worst in (("best", False), ("worst", True))]
    return pd.concat([avg[cols], pd.DataFrame(rows, columns=cols)], ignore_index=True)


def bootstrap_ci(values: np.ndarray, seed: int = 0, resamples: int = BOOTSTRAP,
                 confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of `values` (NaN for fewer than two)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return np.nan, np.nan
    means = np.random.default_rng(seed).choice(values, (resamples, len(values))).mean(1)
    tail = (1 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def summary(per_case: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Tidy summary of `cases`: per model, attack, case and metric, the images attacked, the
    successes, the success rate, the mean, median and bootstrap CI of the mean of the distance
    over the successful images; `paired_mean` over the images every network broke in that attack
    and case (`paired_images`: the same images for every network), and `median_all` over all
    attacked images with a failure counted as an infinite distance (C&W's convention)."""
    broke = {key: set.intersection(*(set(g.image[g.success]) for _, g in part.groupby("model")))
             for key, part in per_case.groupby(["attack", "case"], sort=False)}
    rows = []
    for (name, attack, case), group in per_case.groupby(["model", "attack", "case"], sort=False):
        ok = group[group.success]
        paired = ok[ok.image.isin(broke[(attack, case)])]
        for metric in METRICS:
            lo, hi = bootstrap_ci(ok[metric].to_numpy(), seed)
            everything = np.where(group.success, group[metric], np.inf)
            rows.append({"model": name, "attack": attack, "case": case, "metric": metric, "images": len(group),
                         "successes": len(ok), "success_rate": len(ok) / len(group), "mean": ok[metric].mean(),
                         "median": ok[metric].median(), "ci_low": lo, "ci_high": hi,
                         "paired_images": len(paired), "paired_mean": paired[metric].mean(),
                         "median_all": float(np.median(everything)) if len(group) else np.nan})
    out = pd.DataFrame(rows)
    rank = {key: {v: i for i, v in enumerate(values)} for key, values in
            (("model", per_case.model.unique()), ("attack", ATTACKS), ("case", (*CASES, "untargeted")))}
    return out.sort_values(list(rank), key=lambda col: col.map(rank[col.name])).reset_index(drop=True)


def versus_undistilled(per_case: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Each distilled network's distortion against the undistilled network's on the same images
    (paired: images where both attacks succeeded): mean of each, their ratio, and the bootstrap
    CI of the mean difference; `differs` when that interval excludes 0."""
    base = per_case[per_case.model == "undistilled"].drop(columns=["model", "target"])
    rows = []
    for (name, attack, case), group in per_case[per_case.model != "undistilled"].groupby(
            ["model", "attack", "case"], sort=False):
        both = group.merge(base, on=["attack", "case", "image"], suffixes=("", "_base"))
        both = both[both.success & both.success_base]
        for metric in METRICS:
            diff = (both[metric] - both[f"{metric}_base"]).to_numpy()
            lo, hi = bootstrap_ci(diff, seed)
            mean, ref = both[metric].mean(), both[f"{metric}_base"].mean()
            rows.append({"model": name, "attack": attack, "case": case, "metric": metric, "images": len(both),
                         "mean": mean, "undistilled": ref, "ratio": mean / ref, "diff_ci_low": lo, "diff_ci_high": hi,
                         "differs": bool(lo > 0 or hi < 0)})
    return pd.DataFrame(rows)


def fgsm_masking(profile: str, nets: dict[str, nn.Module], seed: int = 0) -> pd.DataFrame:
    """FGSM accuracy of every network on the first `fgsm_images` test images, at eps 0 (clean)
    and each of `fgsm_eps`: model, eps, accuracy, images."""
    cfg, dcfg = get(profile).cw, get(profile).distill
    x, y = mnist_splits(dcfg.n_train, dcfg.n_val, seed, dcfg.n_test)["test"]
    x, y = x[:cfg.fgsm_images], y[:cfg.fgsm_images]
    rows = [{"model": name, "eps": eps, "accuracy": evaluate(net, attacks.fgsm(net, x, y, eps), y)[0],
             "images": len(y)} for name, net in nets.items() for eps in (0.0, *cfg.fgsm_eps)]
    return pd.DataFrame(rows)


def plan_line(profile: str) -> str:
    """The one search every network gets under `profile`, and which networks get all nine targets."""
    cfg, every = get(profile).cw, _all_targets_for(profile)
    nine = {a: ", ".join(n for n, e in every.items() if e[a]) or "none" for a in ("L2", "L0")}
    return (f"One search for every network: L2 runs {cfg.binary_search_steps} binary-search steps from "
            f"c = {cfg.c_init:g} of at most {cfg.max_iter} iterations each; L0 doubles its constant after "
            f"{cfg.l0_max_iter} iterations without success. Average case: L2 on the first {cfg.l2_images} "
            f"attacked images, L0 on the first {cfg.l0_images}, of every network. All nine targets: L2 on "
            f"{nine['L2']} (the first {cfg.l2_all_images} images), L0 on {nine['L0']} (the first "
            f"{cfg.l0_all_images}); untargeted L2 on the first {cfg.untargeted_images} images of every network.")


def cuts(profile: str) -> pd.DataFrame:
    """The settings of this notebook (sections distill and cw) where `profile` differs from the
    papers' (`paper`): section, setting, meaning, paper, profile."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not a profile; valid: {', '.join(sorted(PROFILES))}")
    if profile == "paper":
        return pd.DataFrame(columns=["section", "setting", "meaning", "paper", profile])
    diff = differences(profile)
    return diff[diff.section.isin(["distill", "cw"])].reset_index(drop=True)


def cost(results: pd.DataFrame) -> pd.DataFrame:
    """Model evaluations (forward and backward passes) per instance, by model and attack:
    instances, mean, median, max and total."""
    out = (results.groupby(["model", "attack"], sort=False).iterations
           .agg(instances="size", mean="mean", median="median", max="max", total="sum").reset_index())
    counts = ["mean", "median", "max", "total"]
    return out.assign(**{c: out[c].round().astype(int) for c in counts})  # counts of evaluations


def overview(stats: pd.DataFrame) -> pd.DataFrame:
    """`summary` as one row per model and one column per attack and case: "success rate · mean
    [95 % CI of the mean]" of the distance the attack minimises (L2 or pixels)."""
    own = stats[stats.metric == stats.attack.map(OWN_METRIC)]
    cells = [f"{r.success_rate:.0%} · {r.mean:.3g} [{r.ci_low:.3g}, {r.ci_high:.3g}]" if r.successes
             else f"{r.success_rate:.0%}" for r in own.itertuples()]
    wide = own.assign(cell=cells).pivot(index="model", columns=["attack", "case"], values="cell")
    order = [(a, c) for a in ATTACKS for c in (*CASES, "untargeted") if (a, c) in wide.columns]
    return wide.loc[own.model.unique(), order].fillna("not run")


def versus_paper(stats: pd.DataFrame, models: list[str]) -> pd.DataFrame:
    """C&W's Table IV (undistilled) and their best case on a distilled network (T = 100) beside
    our means for `models`: one row per distance and case. Our L-inf is that of the L2 attack's
    adversarials (C&W's L-inf row comes from their L-inf attack)."""
    ours = stats.set_index(["model", "attack", "case", "metric"])["mean"]
    rows = []
    for metric, attack in (("l2", "L2"), ("l0", "L0"), ("linf", "L2")):
        for i, case in enumerate(CASES):
            row = {"distance": metric, "case": case, "C&W undistilled": CW_TABLE_IV[metric][i],
                   "C&W distilled T=100": CW_DISTILLED_BEST.get(metric) if case == "best" else None}
            row.update({f"ours: {m}": ours.get((m, attack, case, metric)) for m in models})
            rows.append(row)
    return pd.DataFrame(rows)


def masks_gradients(l2_success: pd.Series, fgsm_accuracy: pd.Series) -> bool:
    """Carlini & Wagner's reading of distillation as a rule on our numbers (both Series indexed by
    model; every model but "undistilled" is distilled): FGSM at the largest eps leaves the
    distilled networks on average more than `MASKING_FGSM_GAP` more accurate than the undistilled
    one, while targeted C&W L2 (average case) still breaks at least `MASKING_L2_SUCCESS` of the
    images on each of them."""
    distilled = [m for m in l2_success.index if m != "undistilled"]
    gap = fgsm_accuracy[distilled].mean() - fgsm_accuracy["undistilled"]
    return bool(gap > MASKING_FGSM_GAP and l2_success[distilled].min() >= MASKING_L2_SUCCESS)


def conclusion(stats: pd.DataFrame, paired: pd.DataFrame, fgsm: pd.DataFrame) -> list[str]:
    """The notebook's closing sentences, every number from the tables: per attack and case, the
    undistilled network's success, mean (95 % CI), mean over the images every network broke and
    median over all images (failures infinite); per distilled network, its mean distortion against
    the undistilled network's on the images both broke, with the paired interval; then FGSM."""
    eps = fgsm.eps.max()
    acc = fgsm[fgsm.eps == eps].set_index("model").accuracy
    own = stats[stats.metric == stats.attack.map(OWN_METRIC)]
    lines = []
    for (attack, case), part in own.groupby(["attack", "case"], sort=False):
        base, metric = part.set_index("model"), OWN_METRIC[attack]
        if "undistilled" not in base.index:
            continue
        b = base.loc["undistilled"]
        lines.append(f"{attack}, {case} case, undistilled: success {b.success_rate:.0%} of {b.images} images, mean "
                     f"{metric.upper()} {b['mean']:.3g} (95% CI {b.ci_low:.3g} to {b.ci_high:.3g}); over the "
                     f"{b.paired_images} images every network broke {b.paired_mean:.3g}; median over all images "
                     f"(failures infinite) {b.median_all:.3g}.")
        cmp = paired[(paired.attack == attack) & (paired.case == case) & (paired.metric == metric)]
        for r in cmp.itertuples():
            if not r.images:
                lines.append(f"  {r.model}: no image broken by both attacks.")
                continue
            verdict = "differs by more than the interval" if r.differs else "within the interval"
            lines.append(f"  {r.model}: success {base.success_rate[r.model]:.0%}, median (all images) "
                         f"{base.median_all[r.model]:.3g}; mean {r.mean:.3g} vs {r.undistilled:.3g} undistilled on "
                         f"the {r.images} images both broke ({r.ratio:.2f}x; 95% CI of the difference "
                         f"{r.diff_ci_low:+.3g} to {r.diff_ci_high:+.3g}: {verdict}).")
    l2 = paired[(paired.attack == "L2") & (paired.case == "average") & (paired.metric == "l2")]
    success = own[(own.attack == "L2") & (own.case == "average")].set_index("model").success_rate
    distilled = success.drop("undistilled")
    lines.append(f"FGSM at eps {eps:g} leaves the distilled networks {100 * acc[distilled.index].min():.1f}-"
                 f"{100 * acc[distilled.index].max():.1f} % accuracy against {100 * acc['undistilled']:.1f} % "
                 "undistilled, while "
                 f"targeted C&W L2 breaks {distilled.min():.0%}-{distilled.max():.0%} of the images "
                 f"(undistilled {success['undistilled']:.0%}), with an average-case L2 distortion beyond the "
                 f"interval from the undistilled network's for {int(l2.differs.sum())} of {len(l2)} distilled "
                 "networks: "
                 + ("distillation hides the softmax gradient from FGSM; the logit-based attacks go around it."
                    if masks_gradients(success, acc) else "not the gradient masking C&W describe; see the tables."))
    return lines


# --- the README's block and abstract line of this study ------------------------------------------


def readme_block(cw: pd.DataFrame, fgsm: pd.DataFrame, search: pd.DataFrame) -> str:
    """The README's Carlini-Wagner table from `results/cw.csv`, `results/cw_fgsm.csv` and
    `results/cw_search.csv` (notebook 05's budget check, under the table)."""
    eps = fgsm.eps.max()
    fgsm_acc = fgsm[fgsm.eps == eps].set_index("model").accuracy
    stat = cw.assign(success_rate=100 * cw.success_rate).set_index(["model", "attack", "case", "metric"])

    def per_case(model: str, attack: str, metric: str, column: str, fmt: str) -> str:
        values = [stat[column].get((model, attack, case, metric)) for case in CASES]
        return " / ".join("–" if v is None or pd.isna(v) else format(v, fmt) for v in values)

    rows = ["| model | images | L2 success (%) | mean L2 | 95 % CI, average | L2 average: paired mean, median (all) | "
            "untargeted L2: success (%), mean | L0 images | L0 success (%) | mean L0 (pixels) | "
            "L0 average: paired mean, median (all) | mean L-inf of the L2 attack | "
            f"FGSM acc. at eps {eps:g} (%) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for model in cw.model.unique():
        avg, l0 = stat.loc[(model, "L2", "average", "l2")], stat.loc[(model, "L0", "average", "l0")]
        unt = stat.loc[(model, "L2 untargeted", "untargeted", "l2")]
        rows.append(f"| {model} | {avg.images} | {per_case(model, 'L2', 'l2', 'success_rate', '.0f')} | "
                    f"{per_case(model, 'L2', 'l2', 'mean', '.2f')} | {avg.ci_low:.2f}–{avg.ci_high:.2f} | "
                    f"{avg.paired_mean:.2f}, {avg.median_all:.2f} | "
                    f"{unt.success_rate:.0f}, {unt['mean']:.2f} | {l0.images} | "
                    f"{per_case(model, 'L0', 'l0', 'success_rate', '.0f')} | "
                    f"{per_case(model, 'L0', 'l0', 'mean', '.1f')} | {l0.paired_mean:.1f}, {l0.median_all:.1f} | "
                    f"{per_case(model, 'L2', 'linf', 'mean', '.2f')} | "
                    f"{100 * fgsm_acc[model]:.1f} |")
    paper = {m: " / ".join(f"{v:g}" for v in CW_TABLE_IV[m]) for m in CW_TABLE_IV}
    rows.append(f"| C&W Table IV (undistilled) | | | {paper['l2']} | | | | | | {paper['l0']} | | "
                f"{paper['linf']} (their L-inf attack) | |")
    rows.append(f"| C&W, distilled T=100 (best case) | | | {CW_DISTILLED_BEST['l2']:g} | | | | | | "
                f"{CW_DISTILLED_BEST['l0']:g} | | | |")
    rows.append("\nBest / average / worst case over the nine wrong targets (\"–\": not run for this network); the "
                "average case is one random wrong target per image, the worst case fails when any target fails. "
                "Means over the images each attack broke, with a 95 % bootstrap interval of the average-case mean; the "
                "paired mean is over the images the attack broke on every network, the median over all attacked "
                "images with a failure counted as infinite; "
                "the attacked images are the first test images that every network classifies correctly. C&W "
                "report 100 % success on 1000 images. From `results/cw.csv` and `results/cw_fgsm.csv`; "
                "distances on the [0, 1] pixel scale.")
    rows.append("\nWhat the iteration caps change (`results/cw_search.csv`): " + " ".join(budget_caveat(search)))
    return "\n".join(rows)


def abstract_line(cw: pd.DataFrame, cw_fgsm: pd.DataFrame, search: pd.DataFrame) -> str:
    """The abstract's distillation sentence: C&W's success and distortions on the images every
    network broke, L0's iteration cap (`search_check`), and FGSM's accuracy, judged by
    `masks_gradients`."""
    avg = cw[(cw.case == "average") & (cw.metric == cw.attack.map({"L2": "l2", "L0": "l0"}))]
    l2, l0 = avg[avg.attack == "L2"].set_index("model"), avg[avg.attack == "L0"].set_index("model")
    distilled = [m for m in l2.index if m != "undistilled"]
    eps = cw_fgsm.eps.max()
    fg = cw_fgsm[cw_fgsm.eps == eps].set_index("model").accuracy
    base, base_l0 = l2.loc["undistilled"], l0.loc["undistilled"]
    headline = ("masks gradients, it does not add robustness" if masks_gradients(l2.success_rate, fg)
                else "changes what the attacks need")
    rates = 100 * l2.loc[distilled].success_rate
    failed = (l2.images * (1 - l2.success_rate)).round().astype(int)
    l2_check = search[(search.attack == "L2") & ~search.used]
    unbroken = ""
    if failed.any():  # say how many images stay unbroken, and what a smaller cap did (the budget check)
        own = search[(search.attack == "L2") & search.used].max_iter.max()
        unbroken = f"; at most {failed.max()} image per network stays unbroken ({failed.sum()} in all)"
        if len(l2_check):
            unbroken += (f", and success grows with the iteration cap: at max_iter {l2_check.max_iter.max()} instead "
                         f"of {own} it was {100 * l2_check.success_rate.min():.0f}-"
                         f"{100 * l2_check.success_rate.max():.0f} % on the first {l2_check.images.max()} images")
    l0_check = search[search.attack == "L0"]
    used, top = l0_check[l0_check.used], l0_check[l0_check.max_iter == l0_check.max_iter.max()]
    cap = ""
    if len(used) and used.max_iter.iloc[0] != top.max_iter.iloc[0]:  # the profile cut L0's budget
        ratio = used.set_index("model").paired_mean / top.set_index("model").paired_mean
        cap = (f", with its constant raised after {used.max_iter.iloc[0]} iterations where C&W wait "
               f"{top.max_iter.iloc[0]}, which gave {ratio.min():.1f}-{ratio.max():.1f}x the pixels of "
               f"{top.max_iter.iloc[0]} on the {used.images.iloc[0]} images checked per network: compare L0 "
               "between networks, not with C&W's pixel counts")
    return (f"- **Defensive distillation {headline}.** With one search for every network, targeted "
            f"Carlini-Wagner L2 (average case, {base.images} test images) breaks {rates.min():.0f}-{rates.max():.0f} % "
            f"of the images of the distilled MNIST networks (undistilled: {100 * base.success_rate:.0f} %{unbroken}); "
            "on the "
            f"{base.paired_images} images it broke on every network the mean L2 distortion is "
            f"{l2.loc[distilled, 'paired_mean'].min():.2f}-{l2.loc[distilled, 'paired_mean'].max():.2f} distilled vs "
            f"{base.paired_mean:.2f} undistilled, and C&W's L0 attack changes "
            f"{l0.loc[distilled, 'paired_mean'].min():.1f}-{l0.loc[distilled, 'paired_mean'].max():.1f} pixels vs "
            f"{base_l0.paired_mean:.1f} (on the {base_l0.paired_images} of {base_l0.images} images every network "
            f"broke; undistilled 95 % CI {base_l0.ci_low:.1f}-{base_l0.ci_high:.1f} over its own successes){cap}. "
            f"FGSM at "
            f"eps {eps:g} meanwhile leaves the distilled networks {100 * fg[distilled].min():.1f}-"
            f"{100 * fg[distilled].max():.1f} % accuracy against {100 * fg['undistilled']:.1f} % undistilled.")
