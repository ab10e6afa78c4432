"""Mini-batch SGD training and evaluation on in-memory tensors."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import device
from .progress import progress

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits for all images (on CPU), in eval mode."""
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = torch.cat([model(images[i:i + batch_size].to(dev)).float().cpu()
                     for i in range(0, len(images), batch_size)])
    model.train(was_training)
    return out


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 1000) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the model on the given images."""
    logits = predict(model, images, batch_size)
    return (logits.argmax(1) == labels).float().mean().item(), F.cross_entropy(logits, labels).item()


def fit(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, epochs: int, lr: float,
        momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False,
        batch_size: int = 256, decay_at: tuple[float, ...] = (0.5,), seed: int = 0,
        loss_fn: LossFn = F.cross_entropy, eval_sets: dict | None = None, eval_every: int = 1,
        desc: str = "train") -> dict:
    """Train `model` in place with SGD; the learning rate drops x0.1 at each fraction of
    `decay_at` (DC's protocol: one drop at the midpoint).

    `targets` are class indices, or soft labels when `loss_fn` takes them. Returns a
    cache-friendly history: `step_loss` (per iteration) and `epochs`, a list of per-epoch
    records with the mean training loss and, every `eval_every` epochs and at the end,
    (accuracy, loss) on each of `eval_sets` ({name: (images, labels)}).
    """
    dev = device()
    model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay, nesterov=nesterov)
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
            loss = loss_fn(model(images[idx].to(dev)), targets[idx].to(dev))
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
    return history
