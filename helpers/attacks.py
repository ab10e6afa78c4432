"""L-infinity evasion attacks on pixel-space models: FGSM and PGD, and their evaluation.

- FGSM: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples",
  ICLR 2015, eq. 3.
- PGD: Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to
  Adversarial Attacks", ICLR 2018, eq. 2 (with a uniform random start in the eps-ball).

Every attack takes images `x` in pixel space [0, 1] and a model that takes pixel-space
input (wrap a network trained on normalised data in `models.Normalized`), so `eps` is in
pixel units and means the same for every model. Attacks are untargeted: they ascend the
cross-entropy of the true label `y`. The model is put in eval mode and gradients are taken
with respect to the inputs only (its parameters' `.grad` is never touched).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .models import frozen
from .validation import check_images, check_inputs, check_range, check_seed

ATTACKS = ("fgsm", "pgd")
# PGD's step is PGD_PATH * eps / steps: eps / 8 at 20 steps, and a total path of 2.5 eps at any
# step count (Madry et al. 2018's 2.5 eps / steps), so fewer steps still cross the eps-ball.
PGD_PATH = 2.5






def check_eps(eps: float) -> None:
    """eps is an L-inf budget in pixel units of [0, 1] images: a finite number in [0, 1]."""
    check_range("eps", eps, 0.0, 1.0)






def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-image cross-entropy, its gradient w.r.t. x) for a model already in eval mode."""
    x = x.detach().requires_grad_(True)
    losses = F.cross_entropy(model(x), y, reduction="none")
    (grad,) = torch.autograd.grad(losses.sum(), x)
    return losses.detach(), grad


def fgsm_step(x: torch.Tensor, grad: torch.Tensor, eps: float) -> torch.Tensor:
    """FGSM's update (Goodfellow et al. 2015, eq. 3) from the loss gradient at x:
    x_adv = clip(x + eps * sign(grad_x CE(f(x), y)), 0, 1)."""
    return (x.detach() + eps * grad.sign()).clamp(0, 1)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow, Shlens & Szegedy 2015, eq. 3), untargeted: one
    `fgsm_step` from x along the sign of the gradient of the cross-entropy of label y."""
    check_eps(eps)
    check_inputs(model, x, y)
    if eps == 0:
        return x.detach().clone()
    with frozen(model):
        _, grad = input_gradient(model, x, y)
    return fgsm_step(x, grad, eps)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int = 20,
        step_size: float | None = None, random_start: bool = True,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent on the negative loss, L-inf (Madry et al. 2018, eq. 2):
    start uniformly in the eps-ball (random_start), then `steps` times
    x <- Proj_{B_inf(x0, eps) ∩ [0,1]}(x + step_size * sign(grad_x CE(f(x), y))).

    Args:
        model: takes pixel-space images, returns logits.
        x, y: images in [0, 1] and their labels.
        eps: L-inf radius in pixel units, in [0, 1].
        steps: number of gradient steps, >= 1.
        step_size: size of each step (pixel units, > 0); default PGD_PATH * eps / steps.
        random_start: start from a uniform draw in the eps-ball (else from x).
        generator: CPU generator of the random start, for reproducible results.

    Returns the last iterate.
    """
    check_eps(eps)
    check_range("steps", steps, 1, integer=True)
    if step_size is not None:
        check_range("step_size", step_size, 0.0, low_open=True)
    check_inputs(model, x, y)
    x0 = x.detach()
    if eps == 0:
        return x0.clone()
    step_size = PGD_PATH * eps / steps if step_size is None else step_size
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
                    attack: str = "fgsm", steps: int = 20,
                    random_start: bool = True, seed: int = 0, batch_size: int = 1000, keep: int = 0) -> dict:
    """Accuracy under attack over a whole test set, per eps, in batches.

    Args:
        model: takes pixel-space images, returns logits (e.g. a `models.Normalized`).
        x, y: pixel-space test images in [0, 1] (N, C, H, W) and their integer labels (N,).
        eps_values: L-inf budgets in pixel units, each in [0, 1]; 0 gives the clean accuracy.
        attack: "fgsm" or "pgd".
        steps: PGD's number of steps (>= 1; ignored by FGSM).
        random_start: PGD starts from a uniform draw in the eps-ball.
        seed: seeds PGD's random start (non-negative integer).
        batch_size: images per batch (>= 1).
        keep: how many of the first images to keep as adversarial examples (>= 0).

    Returns {"records": [one dict per eps], "examples": {eps: {"adv", "pred"}}, "clean_pred"}.
    A record holds `accuracy` (adversarial predictions equal to the label, over all images),
    `success_rate` (the fraction of the images classified correctly *before* the attack that
    are misclassified after it: initially wrong images are not counted as successes),
    `clean_accuracy`, `n` and `n_correct`. FGSM takes one gradient per batch for all eps
    (sign(grad) does not depend on eps). Examples hold the first `keep` adversarial images
    and their predictions, on CPU. Bad arguments raise ValueError before any work.
    """
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {', '.join(ATTACKS)}, got {attack!r}")
    if isinstance(eps_values, numbers.Number | str | torch.Tensor):  # list(0.1) fails with "not iterable"
        raise ValueError(f"eps_values must be a sequence of budgets in [0, 1], got {eps_values!r}; "
                         "pass a list of numbers, e.g. [0.0, 0.1]")
    eps_values = list(eps_values)
    if not eps_values:
        raise ValueError("eps_values must name at least one eps in [0, 1], got none")
    for e in eps_values:
        check_eps(e)
    eps_values = [float(e) for e in eps_values]
    check_images(x, y)
    if len(x) == 0:
        raise ValueError("x must hold at least one image, got 0")
    check_range("steps", steps, 1, integer=True)
    check_seed("seed", seed)
    check_range("batch_size", batch_size, 1, integer=True)
    check_range("keep", keep, 0, integer=True)
    check_inputs(model, x, y)  # last: it runs the model on one image
    dev = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    correct_adv = {e: torch.zeros(len(x), dtype=torch.bool) for e in eps_values}
    examples = {e: {"adv": [], "pred": []} for e in eps_values}
    clean_pred = torch.empty(len(x), dtype=torch.long)
    with frozen(model):
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].to(dev), y[i:i + batch_size].to(dev)
            with torch.no_grad():
                clean_pred[i:i + len(xb)] = model(xb).argmax(1).cpu()
            grad = input_gradient(model, xb, yb)[1] if attack == "fgsm" else None
            for e in eps_values:
                if e == 0:
                    adv = xb
                elif attack == "fgsm":
                    adv = fgsm_step(xb, grad, e)
                else:
                    adv = pgd(model, xb, yb, e, steps=steps, random_start=random_start, generator=generator)
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
