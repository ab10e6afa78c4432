"""Notebook 06's study: BadNets and DOORPING backdoors through condensation.

Wiring only (the attacks are in `helpers.backdoor`): the profile's settings, the poisoned
training sets and their cache tags, the condensed sets (clean, BadNets-poisoned, DOORPING),
the networks trained on every set, the tidy results table, its summary and the verdict.

Every ASR is measured on the triggered test images whose class is not the target, with the
trigger of the attack the training data carried: BadNets' fixed patch, or the pattern
DOORPING optimised during one condensation (identified in the `trigger` column). Models
trained on clean data are scored with each trigger they are compared with (the floor).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import pandas as pd
import torch

from . import backdoor, condensation_study, data, schemas, versions
from .backdoor import BadNets, Doorping
from .cache import load_or_build
from .condensation import condense
from .condensation_study import CLEAN_DATA_TAG, random_real_tag, whole_tag
from .model_runs import train_models
from .models import DISPLAY_NAMES
from .profiles import get
from .stats import over_groups, pm
from .training import load_model, predict

BADNETS = "BadNets"

# The verdict (one rule for notebook 06 and the README): with `excess` the ASR above the
# clean-condensed floor, condensation REMOVES the backdoor when the condensed set's excess is
# at most REMOVED_WITHIN, KEEPS it when it retains at least KEPT_FRACTION of the reference's
# (whole poisoned data, else the equal-size random subset) excess, WEAKENS it otherwise; no
# verdict when the reference's own excess is at most REMOVED_WITHIN (no backdoor to keep).
REMOVED_WITHIN = 0.05
KEPT_FRACTION = 0.75
VERDICT_RULE = (f"keeps the backdoor when the attack success rate above the clean-condensed floor retains at "
                f"least {KEPT_FRACTION:.0%} of the reference's (whole poisoned data, else an equal-size random "
                f"subset of it), removes it when it is within {100 * REMOVED_WITHIN:.0f} points of the floor, "
                f"weakens it otherwise; undetermined when the reference itself is within "
                f"{100 * REMOVED_WITHIN:.0f} points of the floor")


def verdict(asr_condensed: float, asr_reference: float, asr_floor: float) -> str:
    """'keeps', 'weakens', 'removes' or 'undetermined' by `VERDICT_RULE` (ASRs as fractions)."""
    for name, value in (("asr_condensed", asr_condensed), ("asr_reference", asr_reference),
                        ("asr_floor", asr_floor)):
        if not 0 <= value <= 1:  # also NaN
            raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")
    # rounded so that a boundary case (exactly 5 points above the floor) is not decided by float round-off
    excess_reference, excess = round(asr_reference - asr_floor, 9), round(asr_condensed - asr_floor, 9)
    if excess_reference <= REMOVED_WITHIN:
        return "undetermined"
    if excess <= REMOVED_WITHIN:
        return "removes"
    return "keeps" if excess >= KEPT_FRACTION * excess_reference else "weakens"


def attack_at(profile: str, rate: float) -> BadNets:
    """The profile's BadNets attack at poison `rate`."""
    return dataclasses.replace(get(profile).backdoor.trigger, rate=rate)


def doorping_settings(profile: str) -> Doorping:
    return get(profile).backdoor.doorping


def doorping_trigger_name(ipc: int, rate: float, seed: int) -> str:
    """The `trigger` column's name of the pattern one DOORPING condensation produced."""
    return f"DOORPING ipc {ipc}, {100 * rate:g} %, seed {seed}"


def training_data(n_images: int | None = None, seed: int = 0) -> tuple[data.Split, dict]:
    """The clean FashionMNIST training split (or a stratified subset of `n_images`, for quick
    runs) and its tag; with the whole split the tag equals condensation's default data tag,
    so clean condensed sets are shared with notebook 01's cache."""
    train = data.load("fashion", True)
    if n_images is None:
        return train, dict(CLEAN_DATA_TAG)
    return data.stratified_subset(train, n_images, seed), {**CLEAN_DATA_TAG, "subset": n_images, "subset_seed": seed}


def poisoned_data(clean: data.Split, clean_tag: dict, attack: BadNets) -> tuple[data.Split, torch.Tensor, dict]:
    """(poisoned split, poisoned indices, tag): BadNets' `poison` plus a tag naming the clean
    data and the attack (the `data_tag` of condensed sets and models trained on it)."""
    poisoned, idx = backdoor.poison(clean, attack)
    return poisoned, idx, {**clean_tag, "poison": attack.tag(clean.name), "code": versions.code("poisoned")}


def doorping_set(profile: str, ipc: int, rate: float, seed: int, clean: data.Split, clean_tag: dict) -> dict:
    """The cached DOORPING condensation of `clean` poisoned at `rate`: the profile's
    condensation for `ipc` with `backdoor.doorping_hook` re-optimising the trigger after each
    outer step. Returns `condense`'s dict plus "trigger" (final (C, size, size) pattern),
    "initial_trigger", "trigger_log" (per update: iteration, step, neuron, steps, activations)
    and "tag" (the data tag of the poisoned data with the final trigger)."""
    attack, settings = attack_at(profile, rate), doorping_settings(profile)
    condense_settings = condensation_study.condense_settings(profile, ipc)
    config = {"ipc": ipc, "seed": seed, "data_tag": {**clean_tag, "poison": attack.tag(clean.name)},
              "doorping": asdict(settings), **condense_settings}

    def build():
        start = backdoor.initial_trigger(attack, settings, clean.images.shape[1])
        poisoned, idx = backdoor.poison(clean, attack, start)
        log: list[dict] = []
        hook = backdoor.doorping_hook(poisoned, idx, attack, settings, start, log)
        out = condense(poisoned, ipc, seed=seed, on_outer_step=hook, desc=f"DOORPING ipc {ipc} ({profile})",
                       **condense_settings)
        trigger = log[-1]["pattern"] if log else start
        return {**out, "trigger": trigger, "initial_trigger": start,
                "trigger_log": [{k: v for k, v in r.items() if k != "pattern"} for r in log]}

    out = load_or_build("doorping", config, build, validate=schemas.doorping(ipc, tuple(clean.images.shape[1:])))
    return {**out, "tag": {**config["data_tag"], "doorping": config, "code": versions.code("doorping")}}


def train_and_measure(images: torch.Tensor, labels: torch.Tensor, *, arch: str, tag: dict, test: data.Split,
                      settings: dict, triggers: dict[str, tuple[BadNets, torch.Tensor | None]]) -> list[dict]:
    """Train `settings["n_models"]` networks of `arch` on (images, labels) with
    `model_runs.train_models` (cached; `settings` are its keyword arguments), then score each
    with every trigger of `triggers` ({name: (attack, pattern or None for BadNets' patch)}):
    CTA on the clean `test` split (measured here: cached models may come from another
    notebook), ASR on its triggered non-target images. Returns one record per model and
    trigger: {"trigger", "model_seed", "cta", "asr"}."""
    runs = train_models(images, labels, tag=tag, test=(test.images, test.labels), **{**settings, "arch": arch})
    triggered = {name: (attack.target, *backdoor.triggered_test(test, attack, pattern))
                 for name, (attack, pattern) in triggers.items()}
    out = []
    for r in runs:
        model = load_model(arch, r["state_dict"])
        cta = (predict(model, test.images).argmax(1) == test.labels).float().mean().item()
        out += [{"trigger": name, "model_seed": r["seed"], "cta": cta,
                 "asr": backdoor.attack_success_rate(predict(model, x).argmax(1), y, target)}
                for name, (target, x, y) in triggered.items()]
    return out


@dataclass
class Study:
    """Everything notebook 06 shares between its steps."""

    profile: str
    seed: int
    clean: data.Split
    clean_tag: dict
    test: data.Split
    poisoned: dict  # rate -> (poisoned split, indices, tag)

    @property
    def cfg(self):
        return get(self.profile).backdoor


def prepare(profile: str, seed: int = 0) -> Study:
    """The clean training data, the test split and one BadNets-poisoned copy per rate."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    cfg = get(profile).backdoor
    clean, clean_tag = training_data(cfg.full_images, seed)
    test = data.load("fashion", False)
    if cfg.test_images:  # smoke runs only: the stratified part of the test set notebook 02 uses
        test = data.stratified_subset(test, cfg.test_images, seed)
    poisoned = {rate: poisoned_data(clean, clean_tag, attack_at(profile, rate)) for rate in cfg.rates}
    return Study(profile, seed, clean, clean_tag, test, poisoned)


def condensed_sets(study: Study) -> dict:
    """Every condensed set of the study, cached: {("clean", ipc, seed), ("BadNets", ipc, rate,
    seed), ("DOORPING", ipc, rate, seed)} -> `condense`'s dict (DOORPING's with its trigger)."""
    cfg, p = study.cfg, study.profile
    sets = {("clean", ipc, s): condensation_study.synthetic_set(ipc, p, s, train=study.clean,
                                                                 data_tag=study.clean_tag)
            for ipc in cfg.ipcs for s in cfg.condense_seeds}
    for ipc in cfg.ipcs:
        for s in cfg.condense_seeds:
            for rate in cfg.condensed_rates.get(ipc, ()):
                split, _, tag = study.poisoned[rate]
                sets[(BADNETS, ipc, rate, s)] = condensation_study.synthetic_set(ipc, p, s, train=split, data_tag=tag)
            for rate in cfg.doorping_rates.get(ipc, ()):
                sets[("DOORPING", ipc, rate, s)] = doorping_set(p, ipc, rate, s, study.clean, study.clean_tag)
    return sets


def plan_table(study: Study) -> pd.DataFrame:
    """What the profile runs: one row per kind of training set, its sizes, rates and models."""
    cfg = study.cfg
    rates = lambda rs: ", ".join(f"{100 * r:g} %" for r in rs) or "-"  # noqa: E731
    rows = [{"training set": f"whole data, {arch}", "poison rates": rates(rs), "attack": "BadNets",
             "models": f"{cfg.full_models}, {_whole_settings(study.profile, arch)['epochs']} epochs",
             "images": len(study.clean)} for arch, rs in cfg.full_rates.items()]
    for ipc in cfg.ipcs:
        archs = "LeNet" + (", ConvNet" if ipc in cfg.convnet_ipcs else "")
        rows += [{"training set": f"condensed from clean data (floor), ipc {ipc}", "poison rates": "0",
                  "attack": "-", "models": archs, "images": 10 * ipc},
                 {"training set": f"condensed from poisoned data, ipc {ipc}",
                  "poison rates": rates(cfg.condensed_rates.get(ipc, ())), "attack": "BadNets", "models": archs,
                  "images": 10 * ipc},
                 {"training set": f"condensed with DOORPING, ipc {ipc}",
                  "poison rates": rates(cfg.doorping_rates.get(ipc, ())), "attack": "DOORPING", "models": archs,
                  "images": 10 * ipc},
                 {"training set": f"random subset of the poisoned data, ipc {ipc}",
                  "poison rates": "as the condensed sets", "attack": "both", "models": archs, "images": 10 * ipc}]
    return pd.DataFrame(rows)


def _whole_settings(profile: str, arch: str) -> dict:
    """Whole-data training: ConvNets as notebook 02's whole-data ConvNets (same optimiser,
    epochs and tag, so the clean ones are shared), LeNets with the same optimiser for
    `full_epochs`."""
    cfg, settings = get(profile).backdoor, condensation_study.whole_settings(profile)
    epochs = settings["epochs"] if arch == "convnet" else cfg.full_epochs
    return {**settings, "epochs": epochs, "n_models": cfg.full_models}


def _small_settings(profile: str, arch: str, ipc: int) -> dict:
    """Training on condensed / random sets: notebook 02's protocol; LeNets need more steps on a
    small set than DC's ConvNet epochs give them (`lenet_epochs`)."""
    cfg = get(profile).backdoor
    settings = {**condensation_study.evaluation_settings(profile, ipc),
                "n_models": cfg.convnet_models if arch == "convnet" else cfg.lenet_models}
    return settings if arch == "convnet" else {**settings, "epochs": cfg.lenet_epochs[ipc]}


def train_all(study: Study, sets: dict) -> pd.DataFrame:
    """Train and score every network of the study; the tidy results table, one row per model
    and trigger: condition, trigger, arch, rate, ipc, images, condense_seed, model_seed, cta,
    asr, profile."""
    cfg, p, rows = study.cfg, study.profile, []
    badnets = {BADNETS: (attack_at(p, max(cfg.rates)), None)}  # BadNets' patch is the same at every rate
    doorping = {doorping_trigger_name(ipc, rate, s): {"attack": attack_at(p, rate), "pattern": syn["trigger"],
                                                      "ipc": ipc, "rate": rate, "seed": s, "set": syn}
                for (_, ipc, rate, s), syn in ((k, v) for k, v in sets.items() if k[0] == "DOORPING")}

    def run(condition, images, labels, *, arch, tag, settings, triggers, rate=0.0, ipc=None, condense_seed=None):
        for r in train_and_measure(images, labels, arch=arch, tag=tag, test=study.test, settings=settings,
                                   triggers=triggers):
            rows.append({"condition": condition, **r, "arch": arch, "rate": rate, "ipc": ipc,
                         "images": len(labels), "condense_seed": condense_seed, "profile": p})

    for arch, arch_rates in cfg.full_rates.items():
        settings, n = _whole_settings(p, arch), len(study.clean)
        mine = {k: d for k, d in doorping.items() if d["rate"] in arch_rates and arch in cfg.doorping_full_archs}
        run("clean full", study.clean.images, study.clean.labels, arch=arch, tag=whole_tag(n), settings=settings,
            triggers={**badnets, **{k: (d["attack"], d["pattern"]) for k, d in mine.items()}})
        for rate in arch_rates:
            split, _, tag = study.poisoned[rate]
            run("poisoned full", split.images, split.labels, arch=arch, tag=whole_tag(n, tag["poison"]),
                settings=settings, triggers=badnets, rate=rate)
        for name, d in mine.items():
            split, _ = backdoor.poison(study.clean, d["attack"], d["pattern"])
            run("poisoned full", split.images, split.labels, arch=arch, tag=whole_tag(n, d["set"]["tag"]),
                settings=settings, triggers={name: (d["attack"], d["pattern"])}, rate=d["rate"])
    for ipc in cfg.ipcs:
        for arch in ("lenet", "convnet") if ipc in cfg.convnet_ipcs else ("lenet",):
            settings = _small_settings(p, arch, ipc)
            for s in cfg.condense_seeds:
                _train_small(study, sets, doorping, badnets, run, arch=arch, ipc=ipc, seed=s, settings=settings)
    return pd.DataFrame(rows)


def _train_small(study: Study, sets: dict, doorping: dict, badnets: dict, run, *, arch: str, ipc: int, seed: int,
                 settings: dict) -> None:
    """The ipc-sized training sets of one condensation seed: the clean floor (scored with every
    trigger of this ipc and seed), BadNets- and DOORPING-condensed sets, and their random
    subsets of the poisoned data."""
    cfg, p = study.cfg, study.profile
    mine = {k: d for k, d in doorping.items() if d["ipc"] == ipc and d["seed"] == seed}
    syn = sets[("clean", ipc, seed)]
    run("condensed (clean)", syn["images"], syn["labels"], arch=arch, settings=settings, ipc=ipc, condense_seed=seed,
        triggers={**badnets, **{k: (d["attack"], d["pattern"]) for k, d in mine.items()}},
        tag=condensation_study.synthetic_tag(ipc, p, seed, data_tag=study.clean_tag))
    for rate in cfg.condensed_rates.get(ipc, ()):
        syn, tag = sets[(BADNETS, ipc, rate, seed)], study.poisoned[rate][2]
        run("condensed (poisoned)", syn["images"], syn["labels"], arch=arch, settings=settings, rate=rate, ipc=ipc,
            condense_seed=seed, triggers=badnets, tag=condensation_study.synthetic_tag(ipc, p, seed, data_tag=tag))
    for rate in cfg.rates if arch == "lenet" else cfg.condensed_rates.get(ipc, ()):
        x, y = data.random_per_class(study.poisoned[rate][0], ipc, seed)
        run("random subset (poisoned)", x, y, arch=arch, settings=settings, rate=rate, ipc=ipc, condense_seed=seed,
            triggers=badnets, tag=random_real_tag(ipc, seed, study.poisoned[rate][2]))
    for name, d in mine.items():
        trigger, syn = {name: (d["attack"], d["pattern"])}, d["set"]
        run("condensed (poisoned)", syn["images"], syn["labels"], arch=arch, settings=settings, rate=d["rate"],
            ipc=ipc, condense_seed=seed, triggers=trigger, tag={"data": "doorping", **syn["tag"]})
        x, y = data.random_per_class(backdoor.poison(study.clean, d["attack"], d["pattern"])[0], ipc, seed)
        run("random subset (poisoned)", x, y, arch=arch, settings=settings, rate=d["rate"], ipc=ipc,
            condense_seed=seed, triggers=trigger, tag=random_real_tag(ipc, seed, syn["tag"]))


def attack_name(trigger: str) -> str:
    """'BadNets' or 'DOORPING' from a `trigger` column value."""
    return trigger.split(" ")[0]


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n over models (and condensation seeds) per architecture, attack,
    condition, ipc (0: whole data) and poison rate; CTA and ASR as fractions."""
    df = results.assign(ipc=results.ipc.fillna(0).astype(int), attack=results.trigger.map(attack_name))
    out = over_groups(df, ["arch", "attack", "condition", "ipc", "rate"], ["cta", "asr"])
    return out.rename(columns={"cta": "cta_mean", "asr": "asr_mean"})


def family(condition: str, attack: str) -> str:
    """The `plotting.CONDITION_COLORS` key of a summary row: whole data, condensed, random
    subset, or DOORPING-condensed (clean rows belong to the family they are the rate-0 point of)."""
    if condition in ("clean full", "poisoned full"):
        return "whole dataset"
    if condition.startswith("random subset"):
        return "random subset"
    return "DOORPING-condensed" if attack == "DOORPING" else "condensed"


def verdicts(results: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture, attack, ipc and rate condensed from poisoned data: the ASR
    of the condensed set, of the reference (whole poisoned data where trained, else the
    equal-size random subset), of the clean-condensed floor (scored with the same trigger),
    and `verdict`'s word. ASRs as fractions, means over models and seeds."""
    df = results.assign(ipc=results.ipc.fillna(0).astype(int))
    asr = df.groupby(["arch", "trigger", "condition", "ipc", "rate"]).asr.mean()
    rows = []
    for (arch, trigger, condition, ipc, rate), value in asr.items():
        if condition != "condensed (poisoned)":
            continue
        floor = asr.get((arch, trigger, "condensed (clean)", ipc, 0.0))
        full = asr.get((arch, trigger, "poisoned full", 0, rate))
        subset = asr.get((arch, trigger, "random subset (poisoned)", ipc, rate))
        reference, ref_name = (full, "whole poisoned data") if full is not None else (subset, "random subset")
        if floor is None or reference is None:
            continue
        rows.append({"arch": arch, "attack": attack_name(trigger), "ipc": ipc, "rate": rate, "asr_condensed": value,
                     "asr_reference": reference, "reference": ref_name, "asr_random_subset": subset,
                     "asr_floor": floor, "verdict": verdict(value, reference, floor)})
    return pd.DataFrame(rows)


def _pm(row, metric: str) -> str:
    return f"{pm(getattr(row, metric + '_mean'), getattr(row, metric + '_std'), 100, unit=' %')} (n={row.n})"


def closing_lines(results: pd.DataFrame) -> list[str]:
    """The notebook's conclusion: CTA and ASR (mean ± std, n) per architecture, attack and
    condition, then the verdict per architecture, attack, ipc and rate."""
    lines = []
    for r in summarize(results).itertuples():
        where = "whole data" if r.ipc == 0 else f"ipc {r.ipc}"
        lines.append(f"{DISPLAY_NAMES[r.arch]}, {r.condition}, {where}, rate {100 * r.rate:g} %: CTA {_pm(r, 'cta')}, "
                     f"ASR with the {r.attack} trigger {_pm(r, 'asr')}")
    for r in verdicts(results).itertuples():
        word = ("no verdict (the reference shows no backdoor)" if r.verdict == "undetermined" else
                f"condensation {r.verdict.upper()} the backdoor")
        lines.append(f"{DISPLAY_NAMES[r.arch]}, {r.attack}, ipc {r.ipc}, {100 * r.rate:g} %: ASR condensed "
                     f"{100 * r.asr_condensed:.1f} %, {r.reference} {100 * r.asr_reference:.1f} %, clean-condensed "
                     f"floor {100 * r.asr_floor:.1f} % -> {word}")
    return lines


def brightness(study: Study, sets: dict) -> pd.DataFrame:
    """How bright the trigger's patch is (mean pixel inside minus image mean) in each condensed
    set's target-class and other-class images, and in the poisoned real images (BadNets)."""
    cfg, rows = study.cfg, []
    attack = attack_at(study.profile, max(cfg.rates))
    for key, syn in sets.items():
        for c, is_target in ((cfg.trigger.target, True), ((cfg.trigger.target + 1) % study.clean.num_classes, False)):
            images = syn["images"][syn["labels"] == c]
            rows.append({"set": key[0], "ipc": key[1], "rate": key[2] if len(key) == 4 else 0.0,
                         "class": study.clean.classes[c], "target class": is_target,
                         "trigger brightness": backdoor.trigger_brightness(images, attack).mean().item()})
    split, idx, _ = study.poisoned[max(cfg.rates)]
    rows.append({"set": "poisoned real images", "ipc": 0, "rate": max(cfg.rates), "class": "(any)",
                 "target class": True,
                 "trigger brightness": backdoor.trigger_brightness(split.images[idx], attack).mean().item()})
    return pd.DataFrame(rows)


# --- the README's block and abstract line of this study ------------------------------------------


def readme_block(df: pd.DataFrame) -> str:
    """The README's backdoor table from `results/backdoor.csv` (notebook 06's summary)."""
    rows = ["| model | attack | condition | ipc | poison rate (%) | clean accuracy (%) | attack success (%) | models |",
            "|---|---|---|---:|---:|---:|---:|---:|"]
    rows += [f"| {DISPLAY_NAMES[r.arch]} | {r.attack} | {r.condition} | {r.ipc or 'all'} | {100 * r.rate:g} | "
             f"{pm(r.cta_mean, r.cta_std, 100)} | {pm(r.asr_mean, r.asr_std, 100)} | {r.n} |"
             for r in summarize(df).itertuples()]
    rows.append("\nMean ± std over models (and condensation seeds), full 10k test set; attack success on the "
                "triggered test images whose class is not the target, with the attack's own trigger (clean-data "
                "conditions are scored with each trigger they are compared with). From `results/backdoor.csv`.")
    return "\n".join(rows)


def abstract_line(backdoor: pd.DataFrame) -> str:
    """The abstract's backdoor sentence: `backdoor_study.verdicts` (notebook 06's rule) at the
    smallest condensed ipc, per attack, architecture and poison rate."""
    said = {"keeps": "kept", "weakens": "weakened", "removes": "removed", "undetermined": "never learned (no verdict)"}
    table = verdicts(backdoor)
    table = table[table.ipc == table.ipc.min()]
    headline, numbers = [], []
    for attack, part in table.groupby("attack", sort=False):
        words = "; ".join(f"{said[w]} for a {DISPLAY_NAMES[arch]} at " + " / ".join(f"{100 * r:g}" for r in g.rate)
                          + " %" for (arch, w), g in part.groupby(["arch", "verdict"], sort=False))
        headline.append(f"{attack} backdoor {words}")
        numbers += [f"{attack}, {DISPLAY_NAMES[r.arch]}, {100 * r.rate:g} %: {100 * r.asr_condensed:.1f} / "
                    f"{100 * r.asr_reference:.1f} ({r.reference}) / {100 * r.asr_floor:.1f} %"
                    for r in part.itertuples()]
    return (f"- **Backdoors through condensation (ipc {table.ipc.min()}), {'; '.join(headline)}.** Attack success "
            f"rate of models trained on the set condensed from poisoned data / on the reference / on a set "
            f"condensed from clean data (the floor): {'; '.join(numbers)}. Condensation {VERDICT_RULE}.")
