"""Mini-batch SGD training and evaluation on in-memory tensors.

Forward passes go through `engine.runner`, so the study's networks train and predict on the
process's fast path (torch.compile, bf16 where measured faster) or eagerly under
`DC_ENGINE=eager`; cache keys never depend on which.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import engine, models
from .cache import load_or_build
from .config import device, seed_everything
from .progress import progress

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits for all images (on CPU), in eval mode."""
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    run = engine.runner(model)
    out = torch.cat([run(images[i:i + batch_size].to(dev)).float().cpu()
                     for i in range(0, len(images), batch_size)])
    model.train(was_training)
    return out


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 1000) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the model on the given images."""
    logits = predict(model, images, batch_size)
    return (logits.argmax(1) == labels).float().mean().item(), F.cross_entropy(logits, labels).item()


def check_training(n_images: int, *, epochs: int, lr: float, batch_size: int) -> None:
    """ValueError naming the parameter, value and valid range for a training run that cannot
    run (checked before any work or cache write)."""
    for name, value in [("epochs", epochs), ("batch_size", batch_size)]:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is out of range; valid: an integer >= 1")
    if n_images < 1:
        raise ValueError(f"training images: {n_images}; valid: at least 1 image")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr={lr!r} is out of range; valid: a finite number > 0")


def fit(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, epochs: int, lr: float,
        momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False,
        batch_size: int = 256, decay_at: tuple[float, ...] = (0.5,), seed: int = 0,
        loss_fn: LossFn = F.cross_entropy, eval_sets: dict | None = None, eval_every: int = 1,
        desc: str = "train", on_epoch: Callable[[int, nn.Module], None] | None = None,
        optimizer: str = "sgd") -> dict:
    """Train `model` in place with SGD; the learning rate drops x0.1 at each fraction of
    `decay_at` (DC's protocol: one drop at the midpoint).

    `targets` are class indices, or soft labels when `loss_fn` takes them. Returns a
    cache-friendly history: `step_loss` (per iteration) and `epochs`, a list of per-epoch
    records with the mean training loss and, every `eval_every` epochs and at the end,
    (accuracy, loss) on each of `eval_sets` ({name: (images, labels)}).
    `on_epoch(epoch, model)` is called after each epoch's record (checkpoints). `optimizer`
    "adam" uses Adam (momentum and nesterov ignored) instead of SGD.
    """
    check_training(len(images), epochs=epochs, lr=lr, batch_size=batch_size)
    if len(targets) != len(images):
        raise ValueError(f"targets has {len(targets)} rows for {len(images)} images; valid: one per image")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: sgd, adam")
    dev = device()
    model.to(dev).train()
    run = engine.runner(model)
    opt = (torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay) if optimizer == "adam" else
           torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                           weight_decay=weight_decay, nesterov=nesterov))
    milestones = sorted({round(epochs * f) for f in decay_at if 0 < round(epochs * f) < epochs})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
    g = torch.Generator().manual_seed(seed)
    n = len(images)
    history: dict = {"step_loss": [], "epochs": []}
    for epoch in progress(range(1, epochs + 1), desc=desc):
        order = torch.randperm(n, generator=g)
        losses = []
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            loss = loss_fn(run(images[idx].to(dev)), targets[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        sched.step()
        history["step_loss"] += losses
        record = {"epoch": epoch, "train_loss": sum(losses) / len(losses)}
        if eval_sets and (epoch % eval_every == 0 or epoch == epochs):
            for name, (x, y) in eval_sets.items():
                record[f"{name}_acc"], record[f"{name}_loss"] = evaluate(model, x, y)
            model.train()
        history["epochs"].append(record)
        if on_epoch is not None:  # e.g. keep a checkpoint: on_epoch(epoch, model)
            on_epoch(epoch, model)
    return history


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
    check_training(len(images), epochs=epochs, lr=lr, batch_size=batch_size)
    if n_models < 1:
        raise ValueError(f"n_models={n_models!r} is out of range; valid: an integer >= 1")
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

        results.append(load_or_build("model", {"tag": tag, "seed": s, **settings}, build))
    return results


def load_model(arch: str, state_dict: dict, arch_kwargs: dict | None = None) -> nn.Module:
    """A network of `arch` with the given weights, in eval mode on the default device."""
    model = models.build(arch, **(arch_kwargs or {}))
    model.load_state_dict(state_dict)
    return model.to(device()).eval()
