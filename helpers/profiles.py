"""Named compute budgets, one place for all notebooks.

A notebook's `profile` parameter picks one of `PROFILES`; each notebook reads the
sections it needs with `budget(profile, section)`. `smoke` runs in seconds (tests),
`default` is what the committed report shows (a 2-core CPU), `paper` uses the
papers' settings (a GPU).
"""

from __future__ import annotations

from types import SimpleNamespace

DEFAULT_PROFILE = "default"

PROFILES: dict[str, dict[str, dict]] = {
    "smoke": {
        "fgsm": {"seeds": 2, "ipcs": [10, 50], "eps": [0.0, 0.1, 0.3], "lenet_full_epochs": 1,
                 "lenet_full_images": 2000, "lenet_epochs": {10: 5, 50: 2}, "curve_images": 200, "curve_points": 5,
                 "fgsm_images": 200, "pgd_images": 100, "pgd_steps": 2, "convnet_ipcs": [10],
                 "convnet_fgsm_images": 50, "convnet_pgd_images": 20, "convnet_pgd_steps": 1,
                 "convnet_whole": False, "examples": 6, "batch_size": 500},
        "condense": {"ipcs": [1, 10], "measure_cost": False,
                     "common": {"lr_net": 0.01, "batch_train": 256, "snapshots": 2},
                     "per_ipc": {1: {"method": "dc", "init": "real", "iterations": 1, "batch_real": 4},
                                 10: {"method": "dc", "init": "real", "iterations": 1, "batch_real": 4,
                                      "outer_loop": 2, "inner_loop": 1},
                                 50: {"method": "dm", "init": "real", "iterations": 1, "batch_real": 8}}},
        "evaluate": {"n_models": 2, "epochs": {1: 2, 10: 1, 50: 1},
                     "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 256, "decay_at": [0.5],
                     "ipcs": [1, 10], "test_images": 500,
                     "whole_models": 1, "whole_epochs": 1, "whole_images": 500},
        "backdoor": {"target": 0, "size": 3, "value": 1.0, "corner": "bottom-right", "margin": 1, "poison_seed": 0,
                     "rates": [0.05, 0.1], "ipcs": [1], "condensed_rates": {1: [0.1]},
                     "condense_seeds": [0], "convnet_ipcs": [1], "convnet_models": 1, "lenet_models": 1,
                     "lenet_epochs": {1: 2}, "full_archs": ["lenet"], "full_models": 1, "full_epochs": 1,
                     "full_images": 1000, "test_images": 500},
        "datasets": {"grid_per_class": 4},
        "distill": {"n_train": 600, "n_val": 200, "n_train_eval": 200, "n_test": 1000, "epochs": [1, 2],
                    "temperatures": [50, 100],
                    "optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 128,
                    "dropout": 0.5},
        "cw": {"n_images": 4, "batch_size": 100, "search_steps": 2, "max_iter": 10, "all_targets": True,
               "l0_images": 2, "l0_first_search_steps": 2, "l0_search_steps": 1, "l0_max_iter": 5,
               "l0_lr": 0.1, "freeze_fraction": 0.5, "l0_max_rounds": 2, "fgsm_eps": [0.1, 0.3],
               "fgsm_images": 100, "seed": 0},
    },
    "default": {
        "fgsm": {"seeds": 3, "ipcs": [10, 50], "eps": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3], "lenet_full_epochs": 4,
                 "lenet_full_images": None, "lenet_epochs": {10: 200, 50: 100}, "curve_images": 1000,
                 "curve_points": 25,
                 "fgsm_images": None, "pgd_images": 1000, "pgd_steps": 10, "convnet_ipcs": [10],
                 "convnet_fgsm_images": 500, "convnet_pgd_images": 100, "convnet_pgd_steps": 5,
                 "convnet_whole": False, "examples": 6, "batch_size": 500},
        "condense": {"ipcs": [1, 10, 50], "measure_cost": True,
                     "common": {"lr_net": 0.01, "batch_train": 256, "snapshots": 6},
                     "per_ipc": {1: {"method": "dc", "init": "real", "iterations": 100, "batch_real": 64},
                                 10: {"method": "dm", "init": "real", "iterations": 200, "batch_real": 64},
                                 50: {"method": "dm", "init": "real", "iterations": 150, "batch_real": 64}}},
        "evaluate": {"n_models": 5, "epochs": {1: 300, 10: 50, 50: 20},
                     "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 256, "decay_at": [0.5],
                     "ipcs": [1, 10, 50], "test_images": None,
                     "whole_models": 1, "whole_epochs": 1, "whole_images": None},
        "backdoor": {"target": 0, "size": 3, "value": 1.0, "corner": "bottom-right", "margin": 1, "poison_seed": 0,
                     "rates": [0.01, 0.05, 0.1], "ipcs": [10, 50],
                     "condensed_rates": {10: [0.1], 50: [0.1]}, "condense_seeds": [0], "convnet_ipcs": [10],
                     "convnet_models": 2, "lenet_models": 2, "lenet_epochs": {10: 300, 50: 100},
                     "full_archs": ["lenet"], "full_models": 2, "full_epochs": 1, "full_images": None,
                     "test_images": None},
        "datasets": {"grid_per_class": 10},
        "distill": {"n_train": 30000, "n_val": 5000, "n_train_eval": 2000, "n_test": None,
                    "epochs": [10, 20],
                    "temperatures": [50, 80, 100], "optimizer": "adam", "lr": 1e-3, "momentum": 0.9,
                    "weight_decay": 0.0, "batch_size": 128, "dropout": 0.5},
        "cw": {"n_images": 20, "batch_size": 100, "search_steps": 5, "max_iter": 1000, "all_targets": False,
               "l0_images": 10, "l0_first_search_steps": 5, "l0_search_steps": 5, "l0_max_iter": 300,
               "l0_lr": 0.1, "freeze_fraction": 0.05, "l0_max_rounds": 60, "fgsm_eps": [0.05, 0.1, 0.2, 0.3],
               "fgsm_images": 1000, "seed": 0},
    },
    "paper": {
        "fgsm": {"seeds": 5, "ipcs": [10, 50], "eps": [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3], "lenet_full_epochs": 50,
                 "lenet_full_images": None, "lenet_epochs": {10: 300, 50: 300}, "curve_images": None,
                 "curve_points": 300,
                 "fgsm_images": None, "pgd_images": None, "pgd_steps": 20, "convnet_ipcs": [10, 50],
                 "convnet_fgsm_images": None, "convnet_pgd_images": None, "convnet_pgd_steps": 20,
                 "convnet_whole": True, "examples": 6, "batch_size": 1000},
        "condense": {"ipcs": [1, 10, 50], "measure_cost": True,
                     "common": {"lr_net": 0.01, "batch_train": 256, "snapshots": 6},
                     "per_ipc": {1: {"method": "dc", "init": "noise", "iterations": 1000, "batch_real": 256},
                                 10: {"method": "dc", "init": "noise", "iterations": 1000, "batch_real": 256},
                                 50: {"method": "dc", "init": "noise", "iterations": 1000, "batch_real": 256}}},
        "evaluate": {"n_models": 20, "epochs": {1: 300, 10: 300, 50: 300},
                     "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 256, "decay_at": [0.5],
                     "ipcs": [1, 10, 50], "test_images": None,
                     "whole_models": 3, "whole_epochs": 300, "whole_images": None},
        "backdoor": {"target": 0, "size": 3, "value": 1.0, "corner": "bottom-right", "margin": 1, "poison_seed": 0,
                     "rates": [0.01, 0.05, 0.1], "ipcs": [10, 50],
                     "condensed_rates": {10: [0.01, 0.05, 0.1], 50: [0.01, 0.05, 0.1]},
                     "condense_seeds": [0, 1, 2], "convnet_ipcs": [10, 50], "convnet_models": 10,
                     "lenet_models": 10, "lenet_epochs": {10: 300, 50: 300},
                     "full_archs": ["lenet", "convnet"], "full_models": 3,
                     "full_epochs": 50, "full_images": None, "test_images": None},
        "datasets": {"grid_per_class": 10},
        "distill": {"n_train": 30000, "n_val": 5000, "n_train_eval": 5000, "n_test": None,
                    "epochs": [10, 20, 50],
                    "temperatures": [50, 80, 100], "optimizer": "sgd", "lr": 0.01, "momentum": 0.9,
                    "weight_decay": 0.0, "batch_size": 128, "dropout": 0.5},
        "cw": {"n_images": 1000, "batch_size": 1000, "search_steps": 9, "max_iter": 10000, "all_targets": True,
               "l0_images": 1000, "l0_first_search_steps": 9, "l0_search_steps": 3, "l0_max_iter": 1000,
               "l0_lr": 0.01, "freeze_fraction": 0.05, "l0_max_rounds": 200, "fgsm_eps": [0.05, 0.1, 0.2, 0.3],
               "fgsm_images": 10000, "seed": 0},
    },
}


def _choose(kind: str, name: str, valid) -> None:
    if name not in valid:
        raise ValueError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")


def budget(profile: str, section: str, **overrides) -> SimpleNamespace:
    """The settings of `section` under `profile`, with optional overrides of known keys.

    Unknown profile, section or key names raise ValueError listing the valid ones.
    """
    _choose("profile", profile, PROFILES)
    sections = PROFILES[profile]
    _choose(f"section of profile {profile!r}:", section, sections)
    settings = dict(sections[section])
    for key in overrides:
        _choose(f"setting of {profile}/{section}:", key, settings)
    settings.update(overrides)
    return SimpleNamespace(**settings)
