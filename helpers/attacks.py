"""L-infinity evasion attacks on pixel-space models: FGSM and PGD, and their evaluation.

Every attack takes images `x` in pixel space [0, 1] and a model that takes pixel-space
input (wrap a network trained on normalised data in `models.Normalized`), so `eps` is in
pixel units and means the same for every model. Attacks are untargeted: they ascend the
cross-entropy of the true label `y`. The model is put in eval mode and gradients are taken
with respect to the inputs only (its parameters' `.grad` is never touched).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from . import models
from .progress import progress
from .training import load_model

ATTACKS = ("fgsm", "pgd")


@contextmanager
def frozen(model: nn.Module):
    """Eval mode and no parameter gradients while attacking; both restored afterwards."""
    was_training, flags = model.training, [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)


def _check(x: torch.Tensor, eps: float) -> None:
    if eps < 0:
        raise ValueError(f"eps must be >= 0 (pixel units on [0, 1] images), got {eps}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError("attacks take pixel-space images in [0, 1]; convert normalised images with "
                         "data.to_pixels(x, name).clamp(0, 1) and wrap the model in models.Normalized")


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-image cross-entropy, its gradient w.r.t. x) for a model already in eval mode."""
    x = x.detach().requires_grad_(True)
    losses = F.cross_entropy(model(x), y, reduction="none")
    (grad,) = torch.autograd.grad(losses.sum(), x)
    return losses.detach(), grad


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, eq. 3), untargeted:
    x_adv = clip(x + eps * sign(grad_x CE(f(x), y)), 0, 1)."""
    _check(x, eps)
    if eps == 0:
        return x.detach().clone()
    with frozen(model):
        _, grad = input_gradient(model, x, y)
    return (x.detach() + eps * grad.sign()).clamp(0, 1)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 20,
        step_size: float | None = None, random_start: bool = True,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent on the negative loss, L-inf (Madry et al. 2018, eq. 2):
    start uniformly in the eps-ball (random_start), then `steps` times
    x <- Proj_{B_inf(x0, eps) ∩ [0,1]}(x + step_size * sign(grad_x CE(f(x), y))).
    Returns the last iterate; `step_size` defaults to eps / 8 (a random start draws from
    `generator`, on CPU, so results are reproducible)."""
    _check(x, eps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    x0 = x.detach()
    if eps == 0:
        return x0.clone()
    step_size = eps / 8 if step_size is None else step_size
    lo, hi = (x0 - eps).clamp(min=0), (x0 + eps).clamp(max=1)
    adv = x0
    if random_start:
        noise = torch.rand(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
        adv = torch.max(torch.min(x0 + eps * (2 * noise - 1), hi), lo)
    with frozen(model):
        for _ in range(steps):
            _, grad = input_gradient(model, adv, y)
            adv = torch.max(torch.min(adv + step_size * grad.sign(), hi), lo)
    return adv.detach()


def evaluate_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps_values: Sequence[float], *,
                    attack: str = "fgsm", steps: int = 20, step_fraction: float = 1 / 8,
                    random_start: bool = True, seed: int = 0, batch_size: int = 1000, keep: int = 0,
                    desc: str | None = None) -> dict:
    """Accuracy under attack over a whole test set, per eps, in batches.

    `x` are pixel-space images. For each eps: `accuracy` (adversarial predictions equal to
    the label, over all images), `success_rate` (the fraction of the images the model
    classified correctly *before* the attack that it misclassifies after it: initially
    wrong images are not counted as successes), `clean_accuracy`, `n`, `n_correct`.
    FGSM needs one gradient per batch for all eps (sign(grad) does not depend on eps);
    PGD runs `steps` steps of size eps * step_fraction from a random start seeded by `seed`.

    Returns {"records": [per-eps dicts], "examples": {eps: {"adv", "pred"}}, "clean_pred"},
    where examples keep the first `keep` adversarial images and their predictions (on CPU).
    """
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; valid: {', '.join(ATTACKS)}")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need as many labels as images (got {len(x)} images, {len(y)} labels)")
    eps_values = [float(e) for e in eps_values]
    _check(x, min(eps_values))
    dev = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    correct_adv = {e: torch.zeros(len(x), dtype=torch.bool) for e in eps_values}
    examples = {e: {"adv": [], "pred": []} for e in eps_values}
    clean_pred = torch.empty(len(x), dtype=torch.long)
    batches = range(0, len(x), batch_size)
    with frozen(model):
        for i in progress(batches, desc=desc or attack) if desc else batches:
            xb, yb = x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)
            with torch.no_grad():
                clean_pred[i:i + len(xb)] = model(xb).argmax(1).cpu()
            grad_sign = input_gradient(model, xb, yb)[1].sign() if attack == "fgsm" else None
            for e in eps_values:
                if e == 0:
                    adv = xb
                elif attack == "fgsm":
                    adv = (xb + e * grad_sign).clamp(0, 1)
                else:
                    adv = pgd(model, xb, yb, e, steps=steps, step_size=e * step_fraction,
                              random_start=random_start, generator=generator)
                with torch.no_grad():
                    pred = model(adv).argmax(1).cpu()
                correct_adv[e][i:i + len(xb)] = pred == y[i:i + len(xb)]
                if i < keep:
                    examples[e]["adv"].append(adv[:keep - i].detach().cpu())
                    examples[e]["pred"].append(pred[:keep - i])
    correct_clean = clean_pred == y
    n_correct = int(correct_clean.sum())
    records = []
    for e in eps_values:
        fooled = (correct_clean & ~correct_adv[e]).sum().item()
        records.append({"attack": attack, "eps": e, "accuracy": correct_adv[e].float().mean().item(),
                        "success_rate": fooled / n_correct if n_correct else float("nan"),
                        "clean_accuracy": correct_clean.float().mean().item(),
                        "n": len(x), "n_correct": n_correct})
    kept = {e: {"adv": torch.cat(v["adv"]), "pred": torch.cat(v["pred"])} for e, v in examples.items() if v["adv"]}
    return {"records": records, "examples": kept, "clean_pred": clean_pred}


def attack_runs(runs: list[dict], *, arch: str, mean_std: tuple[float, float], x: torch.Tensor, y: torch.Tensor,
                eps_values: Sequence[float], attack: str, info: dict, arch_kwargs: dict | None = None,
                **attack_kwargs) -> list[dict]:
    """`evaluate_attack` on every trained model of `training.train_models`'s `runs`
    (each wrapped in `models.Normalized(mean_std)` so it takes pixel-space `x`).

    Returns tidy rows: `info` (e.g. architecture and condition), the model's seed, and
    each per-eps record. A PGD random start is seeded by the model's seed.
    """
    rows = []
    for run in runs:
        model = models.Normalized(load_model(arch, run["state_dict"], arch_kwargs), *mean_std)
        result = evaluate_attack(model, x, y, eps_values, attack=attack, seed=run["seed"], **attack_kwargs)
        rows += [{**info, "seed": run["seed"], **record} for record in result["records"]]
    return rows
