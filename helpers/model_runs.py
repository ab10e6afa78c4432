"""Cached multi-seed training, shared by every study: one network per seed, stored under its
training data's tag and its hyperparameters (`training.fit` does the training)."""

from __future__ import annotations

import torch

from . import models, schemas
from .cache import load_or_build
from .runtime import seed_everything
from .training import check_data, check_training, fit
from .validation import NUMPY_SEEDS, is_int, require, seed_ok, seed_range


def train_models(images: torch.Tensor, labels: torch.Tensor, *, arch: str, n_models: int, epochs: int,
                 tag: dict, test: tuple[torch.Tensor, torch.Tensor], seed: int = 0, lr: float = 0.01,
                 momentum: float = 0.9, weight_decay: float = 5e-4, batch_size: int = 256,
                 decay_at: tuple[float, ...] = (0.5,), eval_every: int | None = None,
                 arch_kwargs: dict | None = None) -> list[dict]:
    """Train `n_models` freshly initialised `arch` networks (seeds seed, seed+1, ...) on
    (images, labels), each cached on disk: `tag` must identify the training data (e.g.
    {"data": "dc", "ipc": 10, "profile": "default"}); the hyperparameters join the key.

    Returns per model {"seed", "test_acc", "test_loss", "history", "state_dict"}, where
    history is `fit`'s, evaluated on `test` every `eval_every` epochs (default: only the last).
    """
    check_training(len(images), epochs=epochs, lr=lr, batch_size=batch_size, momentum=momentum,
                   weight_decay=weight_decay, decay_at=decay_at, eval_every=1 if eval_every is None else eval_every)
    require("n_models", n_models, is_int(n_models) and n_models >= 1, "an integer >= 1")
    # every model's seed (seed .. seed + n_models - 1) goes through seed_everything, hence numpy's range
    require("seed", seed, seed_ok(seed, NUMPY_SEEDS) and seed + n_models <= NUMPY_SEEDS,
            f"{seed_range(NUMPY_SEEDS)}, with seed + n_models - 1 in it too")
    check_data(images, labels)
    require("test", type(test).__name__, isinstance(test, tuple | list) and len(test) == 2, "(images, labels)")
    check_data(*test, where="test ")
    arch_kwargs = arch_kwargs or {}
    settings = {"arch": arch, "arch_kwargs": arch_kwargs, "epochs": epochs, "lr": lr, "momentum": momentum,
                "weight_decay": weight_decay, "batch_size": batch_size, "decay_at": list(decay_at),
                "eval_every": eval_every or epochs}
    results = []
    for s in range(seed, seed + n_models):
        def build(s=s):
            seed_everything(s)
            model = models.build(arch, **arch_kwargs)
            history = fit(model, images, labels, epochs=epochs, lr=lr, momentum=momentum,
                          weight_decay=weight_decay, batch_size=batch_size, decay_at=decay_at, seed=s,
                          eval_sets={"test": test}, eval_every=eval_every or epochs,
                          desc=f"{arch} seed {s}")
            last = history["epochs"][-1]
            return {"seed": s, "test_acc": last["test_acc"], "test_loss": last["test_loss"],
                    "history": history, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}

        results.append(load_or_build("model", {"tag": tag, "seed": s, **settings}, build,
                                     validate=schemas.model(arch, arch_kwargs)))
    return results
