"""Named compute budgets: a `Profile` holds one typed, documented settings object per study.

Each section is a frozen dataclass whose defaults are the papers' settings, read from the
methods' own signatures and objects where a method has them (so a paper value is written once),
so the `paper` profile is the defaults themselves; `default` (the committed report, a 2-core
CPU) and `smoke` (minutes, for the tests) are written as the overrides they are, and
`differences("default")` lists exactly what the default profile reduces. Code reads a section
as `get(profile).condense`, `get(profile).robustness`, ... (typed: editors complete its fields).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from dataclasses import dataclass, field

import pandas as pd

from . import condensation, cw, model_runs
from .backdoor import BadNets, Doorping

DEFAULT_PROFILE = "default"


def _f(default, doc: str, low: int = 0):
    """A dataclass field with its documentation and the smallest value its numbers may take (1 for
    counts that must not be empty); mutable defaults are copied per instance."""
    meta = {"doc": doc, "low": low}
    if isinstance(default, dict | list):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _default(fn, name: str):
    """The default of `fn`'s keyword argument `name`: a method's own value, not a copy of it."""
    return inspect.signature(fn).parameters[name].default


def _matches(value, hint) -> bool:
    """Whether `value` fits the type hint (int passes for float; bool never passes for int)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (tuple, list):
        return isinstance(value, tuple | list) and all(_matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_matches(k, args[0]) and _matches(v, args[1])
                                               for k, v in value.items())
    return isinstance(value, origin or hint)


@dataclass(frozen=True)
class Section:
    """Common behaviour: type-checked fields, documented differences."""

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _matches(value, hints[f.name]):
                raise ValueError(f"{type(self).__name__}.{f.name} = {value!r} is not a valid {hints[f.name]}; "
                                 f"{f.metadata.get('doc', '')}")
            low = _lowest(value, hints[f.name], f.metadata.get("low", 0))
            if low is not None:
                raise ValueError(f"{type(self).__name__}.{f.name} = {value!r} is out of range; valid: {low}; "
                                 f"{f.metadata.get('doc', '')}")


def _numbers(value) -> list:
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, tuple | list):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


def _lowest(value, hint, low: int = 0) -> str | None:
    """What range `value` breaks, or None: every budget number is >= `low` (0: counts, rates,
    learning rates, seeds; 1: counts that must not be empty), and an optional count (`int | None`,
    None meaning all) is >= 1, so that 0 never silently means "all"."""
    optional_count = typing.get_origin(hint) in (typing.Union, types.UnionType) and set(typing.get_args(hint)) == {
        int, type(None)}
    if optional_count and value is not None and value < 1:
        return "None (all) or an integer >= 1"
    return f"numbers >= {low}" if any(n < low for n in _numbers(value)) else None


@dataclass(frozen=True)
class Datasets(Section):
    """Notebook 00: a look at MNIST and FashionMNIST."""
    grid_per_class: int = _f(10, "example images shown per class", low=1)


@dataclass(frozen=True)
class CondenseRun(Section):
    """One condensation of notebook 01; None means the method's own default (`condensation.METHOD_DEFAULTS`,
    the paper's loops `condensation.PAPER_LOOPS`)."""
    method: str = _f("dc", "dc (gradient matching) or dm (distribution matching)")
    init: str | None = _f(None, "noise or real (None: the method's, DC noise, DM real)")
    iterations: int | None = _f(None, "outer iterations of Alg. 1 (DM: of main_DM.py); None: the method's")
    batch_real: int | None = _f(None, "real images per class per step; None: the method's")
    outer_loop: int | None = _f(None, "outer steps per iteration; None: the paper's loops for DC, 1 for DM")
    inner_loop: int | None = _f(None, "inner-loop steps per outer step; None: the paper's loops for DC, 0 for DM")
    lr_img: float | None = _f(None, "image learning rate; None: the method's (DC 0.1, DM 1.0)")
    dsa_strategy: str | None = _f(None, "DSA augmentation; None: the method's (DC none, DM "
                                        "color_crop_cutout_flip_scale_rotate)")


@dataclass(frozen=True)
class Condense(Section):
    """Notebook 01: dataset condensation (DC, Zhao, Mopuri & Bilen 2021; DM, Zhao & Bilen 2023)."""
    ipcs: tuple[int, ...] = _f((1, 10, 50), "images per class to condense to")
    measure_cost: bool = _f(True, "time one iteration with the paper's settings at each ipc")
    lr_net: float = _f(_default(condensation.condense, "lr_net"), "inner-loop SGD learning rate")
    batch_train: int = _f(_default(condensation.condense, "batch_train"), "inner-loop batch")
    snapshots: int = _f(6, "copies of the images kept for the evolution figure")
    per_ipc: dict[int, CondenseRun] = _f({ipc: CondenseRun() for ipc in (1, 10, 50)},
                                         "per ipc: the condensation run (method and its settings)")
    side: dict[int, CondenseRun] = _f(
        {}, "side experiment of notebook 01: per ipc, a second condensation beside the main one, evaluated "
            "the same way (none in paper: DC is the main method at every ipc)")


@dataclass(frozen=True)
class Evaluate(Section):
    """Notebook 02: DC's evaluation protocol (fresh ConvNets trained on each set)."""
    n_models: int = _f(20, "ConvNets trained per set (DC: 20 models x 5 experiments)", low=1)
    epochs: dict[int, int] = _f({1: 300, 10: 300, 50: 300}, "training epochs per ipc")
    lr: float = _f(_default(model_runs.train_models, "lr"), "SGD learning rate")
    momentum: float = _f(_default(model_runs.train_models, "momentum"), "SGD momentum")
    weight_decay: float = _f(_default(model_runs.train_models, "weight_decay"), "SGD weight decay")
    batch_size: int = _f(_default(model_runs.train_models, "batch_size"), "training batch size")
    decay_at: tuple[float, ...] = _f(_default(model_runs.train_models, "decay_at"),
                                     "fractions of training where the learning rate drops x0.1")
    ipcs: tuple[int, ...] = _f((1, 10, 50), "images per class evaluated")
    test_images: int | None = _f(None, "test images scored (None: all 10,000)")
    whole_models: int = _f(3, "ConvNets trained on the whole training set (upper bound)", low=1)
    whole_epochs: int = _f(300, "epochs of each whole-training-set ConvNet")
    whole_images: int | None = _f(None, "training images of the upper bound (None: all 60,000)")


@dataclass(frozen=True)
class Robustness(Section):
    """Notebook 03: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018) on LeNets and ConvNets."""
    seeds: int = _f(5, "LeNets trained per training set", low=1)
    ipcs: tuple[int, ...] = _f((10, 50), "condensed / random-subset sizes (images per class)")
    eps: tuple[float, ...] = _f((0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), "attack budgets, [0, 1] pixel units")
    lenet_full_epochs: int = _f(50, "epochs of the LeNets trained on the whole training set")
    lenet_full_images: int | None = _f(None, "training images of those LeNets (None: all 60,000)")
    lenet_epochs: dict[int, int] = _f({10: 300, 50: 300}, "epochs of LeNets trained on ipc-sized sets")
    curve_images: int | None = _f(None, "test images of the accuracy-vs-epoch curves (None: all)")
    curve_points: int = _f(300, "evaluation points along those curves")
    fgsm_images: int | None = _f(None, "test images attacked with FGSM (None: all)")
    pgd_images: int | None = _f(None, "test images attacked with PGD (None: all)")
    pgd_steps: int = _f(20, "PGD iterations")
    convnet_ipcs: tuple[int, ...] = _f((10, 50), "ipcs whose ConvNets (notebook 02) are attacked")
    convnet_fgsm_images: int | None = _f(None, "test images for FGSM on ConvNets (None: all)")
    convnet_pgd_images: int | None = _f(None, "test images for PGD on ConvNets (None: all)")
    convnet_pgd_steps: int = _f(20, "PGD iterations on ConvNets")
    convnet_whole: bool = _f(True, "also attack the whole-training-set ConvNets")
    examples: int = _f(6, "adversarial examples shown")
    batch_size: int = _f(1000, "attack batch size")
    matched_val_images: int = _f(5000, "training images held out to stop the accuracy-matched LeNets (validation)")
    matched_check_every: int = _f(1, "SGD steps between validation checks of the accuracy-matched LeNets")


@dataclass(frozen=True)
class Distill(Section):
    """Notebook 04: defensive distillation (Papernot et al. 2016) on MNIST."""
    n_train: int = _f(30000, "stratified MNIST training images")
    n_val: int = _f(5000, "validation images, held out of training")
    n_train_eval: int = _f(5000, "training images scored after each epoch (curves)")
    n_test: int | None = _f(None, "test images (None: all 10,000)")
    epochs: tuple[int, ...] = _f((10, 20, 50), "epoch counts at which networks are kept")
    temperatures: tuple[float, ...] = _f((50, 80, 100), "distillation temperatures T")
    optimizer: str = _f("sgd", "sgd (C&W's released training) or adam")
    lr: float = _f(0.01, "learning rate")
    momentum: float = _f(0.9, "SGD momentum (Nesterov)")
    weight_decay: float = _f(0.0, "weight decay")
    batch_size: int = _f(128, "training batch size")
    dropout: float = _f(0.5, "dropout before the last two dense layers")


@dataclass(frozen=True)
class Cw(Section):
    """Notebook 05: Carlini & Wagner's L2 and L0 attacks (2017) against distilled networks."""
    n_images: int = _f(1000, "test images attacked: the first n that every network classifies correctly", low=1)
    batch_size: int = _f(1000, "attack instances (image, target) optimised side by side; speed only")
    c_init: float = _f(_default(cw.cw_l2, "c_init"),
                       "L2: the constant c of the first run (x10 until the first success, then bisection)")
    binary_search_steps: int = _f(_default(cw.cw_l2, "binary_search_steps"),
                                  "L2: optimisation runs per instance, each with the next constant c")
    max_iter: int = _f(_default(cw.cw_l2, "max_iter"), "L2: Adam iterations per run, at most (runs abort early)")
    l2_images: int = _f(1000, "L2: the first n attacked images, each with its average-case target", low=1)
    l2_all_targets: tuple[str, ...] | None = _f(None, "L2: networks (by name) attacked with all nine wrong targets "
                                                      "(best / average / worst case), the others with the average "
                                                      "case's target only; None: every network")
    l2_all_images: int = _f(1000, "L2: the first n attacked images that get all nine targets on those networks")
    untargeted_images: int = _f(1000, "L2 untargeted: the first n attacked images, on every network")
    l0_images: int = _f(1000, "L0: the first n attacked images, each with its average-case target", low=1)
    l0_all_targets: tuple[str, ...] | None = _f(None, "L0: networks (by name) also attacked with all nine targets "
                                                      "(best / worst case); None: every network")
    l0_all_images: int = _f(1000, "L0: the first n attacked images that get all nine targets on those networks")
    l0_max_iter: int = _f(_default(cw.cw_l0, "max_iter"),
                          "L0: Adam iterations per constant before c doubles (l0_attack.py: 1000)")
    search_images: int = _f(0, "L2 search check: the first n attacked images, average case, on every network, "
                               "attacked at each of `search_iters` (0: no check)", low=0)
    search_iters: tuple[int, ...] = _f((), "L2 search check: the max_iter values compared (the same search otherwise)")
    l0_search_images: int = _f(0, "L0 budget check: the first n attacked images, average case, on every network, "
                                  "attacked at each of `l0_search_iters` (0: no check)", low=0)
    l0_search_iters: tuple[int, ...] = _f((), "L0 budget check: the l0_max_iter values compared")
    fgsm_eps: tuple[float, ...] = _f((0.05, 0.1, 0.2, 0.3), "FGSM budgets of the gradient-masking check, [0, 1] pixels")
    fgsm_images: int = _f(10000, "test images of that check")
    seed: int = _f(0, "seed of the average case's random targets")


@dataclass(frozen=True)
class Backdoor(Section):
    """Notebook 06: BadNets (Gu et al. 2017) and DOORPING (Liu et al. 2023) backdoors through condensation."""
    trigger: BadNets = _f(BadNets(), "BadNets' trigger and poisoning (target class, patch size, value, corner, "
                                     "margin, seed of the poisoned images); its rate is set per condition")
    rates: tuple[float, ...] = _f((0.01, 0.05, 0.1), "poison rates (fraction of training images)")
    ipcs: tuple[int, ...] = _f((10, 50), "condensed set sizes")
    condensed_rates: dict[int, tuple[float, ...]] = _f({10: (0.01, 0.05, 0.1), 50: (0.01, 0.05, 0.1)},
                                                       "BadNets poison rates condensed, per ipc")
    doorping_rates: dict[int, tuple[float, ...]] = _f({10: (0.01, 0.05, 0.1), 50: (0.01, 0.05, 0.1)},
                                                      "poison rates condensed with DOORPING, per ipc")
    doorping: Doorping = _f(Doorping(), "DOORPING's trigger update (Adam lr, steps per update, target activation "
                                        "multiple alpha, early-stop loss, seed of the initial trigger)")
    doorping_full_archs: tuple[str, ...] = _f(("lenet", "convnet"),
                                              "architectures also trained on the whole DOORPING-poisoned data")
    condense_seeds: tuple[int, ...] = _f((0, 1, 2), "condensation seeds per poisoned set")
    convnet_ipcs: tuple[int, ...] = _f((10, 50), "ipcs whose sets also train ConvNets")
    convnet_models: int = _f(10, "ConvNets per condition", low=1)
    lenet_models: int = _f(10, "LeNets per condition", low=1)
    lenet_epochs: dict[int, int] = _f({10: 300, 50: 300}, "LeNet epochs per ipc")
    full_rates: dict[str, tuple[float, ...]] = _f({"lenet": (0.01, 0.05, 0.1), "convnet": (0.01, 0.05, 0.1)},
                                                  "per architecture trained on the whole data (clean and "
                                                  "poisoned): the poison rates")
    full_models: int = _f(3, "models per whole-data condition", low=1)
    full_epochs: int = _f(50, "epochs of whole-data LeNets (whole-data ConvNets: evaluate.whole_epochs, "
                              "shared with notebook 02)")
    full_images: int | None = _f(None, "whole-data training images (None: all 60,000)")
    test_images: int | None = _f(None, "test images (None: all 10,000)")


@dataclass(frozen=True)
class Profile:
    """One named budget: a typed settings section per study (notebook 00 to 06)."""
    name: str
    datasets: Datasets
    condense: Condense
    evaluate: Evaluate
    robustness: Robustness
    distill: Distill
    cw: Cw
    backdoor: Backdoor

    def __getattr__(self, name: str):  # only reached for a name that is not a section
        raise AttributeError(f"profile {self.name!r} has no section {name!r}; valid: {', '.join(SECTIONS)}")


SECTIONS: dict[str, type[Section]] = {k: v for k, v in typing.get_type_hints(Profile).items() if k != "name"}
PAPER = {name: cls() for name, cls in SECTIONS.items()}

# The committed report's budgets on a 2-core CPU: only what differs from the papers.
DEFAULT_OVERRIDES: dict[str, dict] = {
    "robustness": {"seeds": 3, "lenet_full_epochs": 20, "lenet_epochs": {10: 200, 50: 100}, "curve_images": 1000,
             "curve_points": 25, "pgd_images": 1000, "pgd_steps": 10, "convnet_ipcs": (10,),
             "convnet_fgsm_images": 500, "convnet_pgd_images": 100, "convnet_pgd_steps": 5,
             "batch_size": 500, "matched_check_every": 2},
    "condense": {"per_ipc": {1: CondenseRun("dc", init="real", iterations=150, batch_real=128),
                             10: CondenseRun("dm", init="real", iterations=400, batch_real=256),
                             50: CondenseRun("dm", init="real", iterations=200, batch_real=256)},
                 "side": {10: CondenseRun("dc", init="real", iterations=4, batch_real=64)}},
    "evaluate": {"n_models": 5, "whole_models": 2, "whole_epochs": 6},
    "distill": {"n_train_eval": 2000, "epochs": (10, 20), "optimizer": "adam", "lr": 1e-3},
    "cw": {"n_images": 100, "batch_size": 300, "max_iter": 2000, "l2_images": 50,
           "l2_all_targets": ("undistilled", "student T=100"), "l2_all_images": 10, "untargeted_images": 10,
           "l0_images": 100, "l0_all_targets": ("undistilled", "student T=100"), "l0_all_images": 10,
           "l0_max_iter": 200, "search_images": 20, "search_iters": (1000, 2000), "l0_search_images": 5,
           "l0_search_iters": (200, 1000), "fgsm_images": 1000},
    "backdoor": {"ipcs": (10,), "condensed_rates": {10: (0.01, 0.05, 0.1)}, "doorping_rates": {10: (0.01,)},
                 "doorping": Doorping(max_steps=100), "doorping_full_archs": ("lenet",), "condense_seeds": (0,),
                 "convnet_ipcs": (10,), "convnet_models": 2, "lenet_models": 2, "lenet_epochs": {10: 300},
                 "full_rates": {"lenet": (0.01, 0.05, 0.1), "convnet": (0.01,)}, "full_models": 2,
                 "full_epochs": 12},
}

# Seconds, for the tests: the default profile shrunk further.
SMOKE_OVERRIDES: dict[str, dict] = {
    "datasets": {"grid_per_class": 4},
    "robustness": {**DEFAULT_OVERRIDES["robustness"], "seeds": 2, "eps": (0.0, 0.1, 0.3), "lenet_full_epochs": 1,
             "lenet_full_images": 2000, "lenet_epochs": {10: 5, 50: 2}, "curve_images": 200, "curve_points": 5,
             "fgsm_images": 200, "pgd_images": 100, "pgd_steps": 2, "convnet_fgsm_images": 50,
             "convnet_pgd_images": 20, "convnet_pgd_steps": 1, "matched_val_images": 500},
    "condense": {"ipcs": (1, 10), "measure_cost": False, "snapshots": 2,
                 "per_ipc": {1: CondenseRun("dc", init="real", iterations=1, batch_real=4),
                             10: CondenseRun("dm", init="real", iterations=2, batch_real=8),
                             50: CondenseRun("dm", init="real", iterations=1, batch_real=8)},
                 "side": {10: CondenseRun("dc", init="real", iterations=1, batch_real=4, outer_loop=2,
                                          inner_loop=1)}},
    "evaluate": {"n_models": 2, "epochs": {1: 2, 10: 1, 50: 1}, "ipcs": (1, 10), "test_images": 500,
                 "whole_models": 1, "whole_epochs": 1, "whole_images": 500},
    "distill": {**DEFAULT_OVERRIDES["distill"], "n_train": 600, "n_val": 200, "n_train_eval": 200, "n_test": 1000,
                "epochs": (1, 2), "temperatures": (50, 100)},
    "cw": {**DEFAULT_OVERRIDES["cw"], "n_images": 4, "batch_size": 100, "binary_search_steps": 2, "max_iter": 10,
           "l2_images": 4, "l0_images": 2, "l0_all_targets": ("undistilled",), "l0_all_images": 1, "l0_max_iter": 5,
           "l2_all_images": 4, "untargeted_images": 4, "search_images": 2, "search_iters": (5, 10),
           "l0_search_images": 1, "l0_search_iters": (5, 10),
           "fgsm_eps": (0.1, 0.3), "fgsm_images": 100},
    "backdoor": {**DEFAULT_OVERRIDES["backdoor"], "rates": (0.05, 0.1), "ipcs": (1,), "condensed_rates": {1: (0.1,)},
                 "doorping_rates": {1: (0.1,)}, "doorping": Doorping(max_steps=5), "convnet_ipcs": (1,),
                 "convnet_models": 1, "lenet_models": 1, "lenet_epochs": {1: 2}, "full_rates": {"lenet": (0.1,)},
                 "full_models": 1, "full_epochs": 1, "full_images": 1000, "test_images": 500},
}


def _override(base: dict[str, Section], overrides: dict[str, dict], name: str) -> dict[str, Section]:
    unknown = set(overrides) - set(base)
    if unknown:
        raise ValueError(f"profile {name!r}: unknown sections {sorted(unknown)}; valid: {', '.join(base)}")
    return {section: _replace(settings, overrides.get(section, {}), f"{name}/{section}")
            for section, settings in base.items()}


def _replace(settings: Section, changes: dict, where: str) -> Section:
    valid = [f.name for f in dataclasses.fields(settings)]
    unknown = set(changes) - set(valid)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)} of {where}; valid: {', '.join(valid)}")
    return dataclasses.replace(settings, **changes)


def _profile(name: str, overrides: dict[str, dict]) -> Profile:
    return Profile(name, **_override(PAPER, overrides, name))


PROFILES: dict[str, Profile] = {"smoke": _profile("smoke", SMOKE_OVERRIDES),
                                "default": _profile("default", DEFAULT_OVERRIDES), "paper": _profile("paper", {})}


def _choose(kind: str, name: str, valid) -> None:
    if name not in valid:
        raise ValueError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")


def get(profile: str) -> Profile:
    """The profile named `profile` (ValueError listing the valid names otherwise)."""
    _choose("profile", profile, PROFILES)
    return PROFILES[profile]


def replace(section: Section, **changes) -> Section:
    """`section` with some fields changed, each checked (unknown names and wrong types raise ValueError)."""
    return _replace(section, changes, type(section).__name__)


def differences(profile: str = DEFAULT_PROFILE, against: str = "paper") -> pd.DataFrame:
    """Every setting where `profile` differs from `against` (the papers' values), documented:
    columns section, setting, meaning, `against`, `profile`."""
    mine_all, theirs_all = get(profile), get(against)
    rows = []
    for section in SECTIONS:
        mine, theirs = getattr(mine_all, section), getattr(theirs_all, section)
        for f in dataclasses.fields(mine):
            if getattr(mine, f.name) != getattr(theirs, f.name):
                rows.append({"section": section, "setting": f.name, "meaning": f.metadata["doc"],
                             against: getattr(theirs, f.name), profile: getattr(mine, f.name)})
    return pd.DataFrame(rows)
