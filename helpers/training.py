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
from .progress import progress
from .runtime import device
from .validation import (
    TORCH_SEEDS,
    check_finite,
    check_labels,
    check_same_dtype,
    check_tensor,
    is_int,
    is_number,
    require,
    seed_ok,
    seed_range,
)

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


def check_training(n_images: int, *, epochs: int, lr: float, batch_size: int, momentum: float = 0.9,
                   weight_decay: float = 5e-4, decay_at: tuple[float, ...] = (0.5,), eval_every: int = 1,
                   nesterov: bool = False, optimizer: str = "sgd") -> None:
    """ValueError naming the parameter, value and valid range for a training run that cannot
    run (checked before any work or cache write)."""
    for name, value in [("epochs", epochs), ("batch_size", batch_size), ("eval_every", eval_every)]:
        require(name, value, is_int(value) and value >= 1, "an integer >= 1")
    if n_images < 1:
        raise ValueError(f"training images: {n_images}; valid: at least 1 image")
    require("lr", lr, is_number(lr) and lr > 0, "a finite number > 0")
    # NaN here would turn every weight NaN after the first step; momentum >= 1 never forgets a gradient
    require("momentum", momentum, is_number(momentum) and 0 <= momentum < 1, "a finite number in [0, 1)")
    require("weight_decay", weight_decay, is_number(weight_decay) and weight_decay >= 0, "a finite number >= 0")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: sgd, adam")
    sgd_without_momentum = optimizer == "sgd" and momentum == 0  # torch's SGD refuses Nesterov there
    require("nesterov", nesterov, isinstance(nesterov, bool) and not (nesterov and sgd_without_momentum),
            "True or False (True needs momentum > 0 with SGD)")
    require("decay_at", decay_at, isinstance(decay_at, tuple | list) and all(is_number(f) and 0 < f < 1
                                                                               for f in decay_at),
            "a tuple of fractions of training in (0, 1), e.g. (0.5,), or () for a constant learning rate")


def check_data(images, targets, classes: int | None = None, where: str = "") -> None:
    """Images (N, C, H, W) of finite floats and one target per image: a class index (in
    [0, classes - 1] when `classes` is known, else >= 0), or a row of finite soft labels.
    `where` prefixes the names in messages (e.g. "eval_sets['test'] ")."""
    check_tensor(f"{where}images", images, dims=4, floating=True)
    check_finite(f"{where}images", images, "NaN or inf pixels train to a NaN loss; drop or repair those images")
    check_tensor(f"{where}targets", targets)
    if len(targets) != len(images):
        raise ValueError(f"{where}targets has {len(targets)} rows for {len(images)} images; valid: one per image")
    if targets.is_floating_point():
        check_finite(f"{where}targets", targets, "soft labels must be probabilities")
    else:
        check_labels(f"{where}targets", targets, classes, len(images))


def output_classes(model: nn.Module, images: torch.Tensor) -> int:
    """The model's number of outputs, from one forward pass on one image in eval mode without
    gradients: no weight, buffer or random number is touched, so training is unchanged."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(images[:1].to(next(model.parameters()).device)).shape[-1]
    finally:
        model.train(was_training)


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
    check_training(len(images), epochs=epochs, lr=lr, batch_size=batch_size, momentum=momentum,
                   weight_decay=weight_decay, decay_at=decay_at, eval_every=eval_every, nesterov=nesterov,
                   optimizer=optimizer)
    require("seed", seed, seed_ok(seed, TORCH_SEEDS), seed_range(TORCH_SEEDS))
    check_tensor("images", images, dims=4, floating=True)
    dev = device()
    model.to(dev)
    check_same_dtype("images", images, model)
    classes = output_classes(model, images)
    check_data(images, targets, classes)
    for name, (x, y) in (eval_sets or {}).items():
        check_data(x, y, classes, f"eval_sets[{name!r}] ")
    model.train()
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


def load_model(arch: str, state_dict: dict, arch_kwargs: dict | None = None) -> nn.Module:
    """A network of `arch` with the given weights, in eval mode on the default device."""
    model = models.build(arch, **(arch_kwargs or {}))
    model.load_state_dict(state_dict)
    return model.to(device()).eval()


def validation_split(split_images: torch.Tensor, split_labels: torch.Tensor, n_val: int,
                     seed: int) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """((train images, labels), (validation images, labels)): `n_val` random images held out."""
    if not isinstance(n_val, int) or not 0 < n_val < len(split_labels):
        raise ValueError(f"n_val must be an integer in [1, {len(split_labels) - 1}], got {n_val!r}")
    order = torch.randperm(len(split_labels), generator=torch.Generator().manual_seed(seed))
    val, fit = order[:n_val], order[n_val:]
    return (split_images[fit], split_labels[fit]), (split_images[val], split_labels[val])

def train_to_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      val: tuple[torch.Tensor, torch.Tensor], target: float, *, check_every: int,
                      max_epochs: int, lr: float, momentum: float, weight_decay: float, batch_size: int,
                      seed: int) -> dict:
    """Train `model` in place with SGD (constant `lr`: when training stops is not known in
    advance) until its accuracy on `val` first reaches `target`, checked before the first step
    and every `check_every` steps, for at most `max_epochs` epochs.

    Returns {"target", "steps", "epochs" (steps / steps per epoch), "reached" (bool),
    "checks": [{"step", "val_acc"}]}.
    """
    if not 0 < target <= 1:
        raise ValueError(f"target must be an accuracy in (0, 1], got {target!r}")
    if not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"check_every must be an integer >= 1, got {check_every!r}")
    dev = device()
    model.to(dev).train()
    run = engine.runner(model)  # as `fit` runs the whole-set LeNets
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    g = torch.Generator().manual_seed(seed)
    checks, step, per_epoch = [], 0, math.ceil(len(labels) / batch_size)
    for _ in range(max_epochs):
        for idx in torch.randperm(len(labels), generator=g).split(batch_size):
            if step % check_every == 0:
                checks.append({"step": step, "val_acc": evaluate(model, *val)[0]})
                if checks[-1]["val_acc"] >= target:
                    return {"target": target, "steps": step, "epochs": step / per_epoch, "reached": True,
                            "checks": checks}
            loss = F.cross_entropy(run(images[idx].to(dev)), labels[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    checks.append({"step": step, "val_acc": evaluate(model, *val)[0]})
    return {"target": target, "steps": step, "epochs": step / per_epoch, "reached": checks[-1]["val_acc"] >= target,
            "checks": checks}
