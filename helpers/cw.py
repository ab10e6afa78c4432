"""Carlini & Wagner attacks (IEEE S&P 2017, "Towards evaluating the robustness of neural
networks"): the L2 attack (Sec. V-A) and the L0 attack (Sec. V-B), following the rules of the
authors' released code (carlini/nn_robust_attacks, `l2_attack.py` and `l0_attack.py`).

An *instance* is one (image, label) pair: an image with each of its nine wrong targets is nine
instances. Instances run side by side, `batch_size` rows at a time, each with its own constant
c, its own Adam state and its own stopping rule; an instance that finishes leaves the batch and
the next waiting one takes its row. A hard instance therefore never holds up the others, and an
instance's result does not depend on which instances share its batch.

Models take pixel-space input in [0, 1] and return logits Z. Both attacks return a dict of
per-instance tensors (on the CPU): `adv` (NaN where the attack failed: there is no adversarial),
`success` (bool), `l2`, `linf` and `l0` (changed pixels), NaN where unsuccessful, `const` (the c
of the returned adversarial) and `iterations` (model evaluations, the attack's cost). Distances
are on the [0, 1] pixel scale (C&W's [-0.5, 0.5] scale has the same width, so their numbers
compare directly).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .models import frozen
from .progress import progress
from .validation import check_inputs, check_range

CHANGED = 1e-4  # a pixel counts as changed when some channel moved by at least this (l0_attack.py: .0001)
_BOX = 0.999999  # C&W: w = arctanh((2 x - 1) * 0.999999) keeps arctanh finite at 0 and 1
_NO_UPPER = 1e10  # l2_attack.py's upper bound of c before the first success
L0_MARGIN = 0.01  # l0_attack.py's f-term: max(0, max_{i != t} Z_i - Z_t + 0.01)
L0_WORKS = 1e-4  # a restricted L0 run stops at the first iterate whose f-term is below this
L0_SCORE_STOP = 0.01  # an L0 round stops freezing after a pixel whose score exceeds this
L0_FREEZE_SQRT = 0.3  # ... or after 0.3 * sqrt(changed pixels) frozen pixels
_ADAM = (0.9, 0.999, 1e-8)  # Adam's beta1, beta2, eps (Kingma & Ba; PyTorch's and TensorFlow's defaults)


def _gap(logits: torch.Tensor, label: torch.Tensor, targeted: bool) -> torch.Tensor:
    """max_{i != t} Z_i - Z_t for target t (targeted), Z_y - max_{i != y} Z_i for the true class y:
    negative exactly when the attack's goal is met."""
    onehot = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, label[:, None], True)
    z_label = logits[onehot]
    z_other = logits.masked_fill(onehot, -math.inf).amax(1)
    return z_other - z_label if targeted else z_label - z_other


def margin(logits: torch.Tensor, label: torch.Tensor, kappa: float, targeted: bool) -> torch.Tensor:
    """C&W's objective f (their f_6): targeted f = max(max_{i != t} Z_i - Z_t, -kappa) for target t;
    untargeted f = max(Z_y - max_{i != y} Z_i, -kappa) for the true label y. f <= 0 <=> attack works."""
    return _gap(logits, label, targeted).clamp(min=-kappa)


def binary_search_update(const: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor,
                         success: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """C&W's search over c after one optimisation run (l2_attack.py), per instance: a run that
    succeeded lowers the upper bound to c, one that failed raises the lower bound to c; the next c
    is the midpoint of the bounds once an upper bound exists, and 10 c before the first success.
    Returns (const, lower, upper)."""
    upper = torch.where(success, torch.minimum(upper, const), upper)
    lower = torch.where(success, lower, torch.maximum(lower, const))
    const = torch.where(upper < _NO_UPPER / 10, (lower + upper) / 2, const * 10)
    return const, lower, upper


def _to_w(x: torch.Tensor) -> torch.Tensor:
    """Inverse of C&W's change of variables x = (tanh(w) + 1) / 2 (Sec. V-A)."""
    return torch.atanh((2 * x - 1).clamp(-1, 1) * _BOX)


def _columns(k: int, dev: torch.device, **columns: tuple[float, torch.dtype]) -> dict[str, torch.Tensor]:
    """Per-row state of k new rows: name=(initial value, dtype)."""
    return {name: torch.full((k,), value, dtype=dtype, device=dev) for name, (value, dtype) in columns.items()}


def _adam_state(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Fresh Adam state for rows shaped like x: moments m, v and the step count t."""
    return {"m": torch.zeros_like(x), "v": torch.zeros_like(x),
            "t": torch.zeros(len(x), dtype=torch.float64, device=x.device)}


def _adam_reset(rows: dict, reset: torch.Tensor) -> None:
    keep = ~reset.view(-1, *[1] * (rows["m"].dim() - 1))
    rows["m"] *= keep
    rows["v"] *= keep
    rows["t"] *= ~reset


def _adam_step(rows: dict, grad: torch.Tensor, lr: float) -> None:
    """One Adam step (Kingma & Ba 2015, Alg. 1; the arithmetic of torch.optim.Adam) on `rows["w"]`,
    with a step count per row so that each instance's state restarts on its own."""
    beta1, beta2, eps = _ADAM
    m, v, t = rows["m"], rows["v"], rows["t"]
    t += 1
    m.lerp_(grad, 1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    shape = (-1, *[1] * (grad.dim() - 1))
    step = (lr / (1 - beta1 ** t)).float().view(shape)
    denom = (v.sqrt() / (1 - beta2 ** t).sqrt().float().view(shape)).add_(eps)
    rows["w"] = rows["w"] - step * m / denom


class _Pool:
    """The batch of running instances: per-row tensors in `rows` (first dimension = row); rows
    that finish leave and waiting instances (ids 0..total-1, made by `fresh(ids)`) take their place."""

    def __init__(self, total: int, size: int, fresh: Callable[[torch.Tensor], dict]):
        self.total, self.size, self.fresh, self.admitted = total, size, fresh, 0
        self.rows: dict[str, torch.Tensor] = {}
        self._fill()

    def __len__(self) -> int:
        return len(self.rows["id"]) if self.rows else 0

    def _fill(self) -> None:
        take = min(self.size - len(self), self.total - self.admitted)
        if take <= 0:
            return
        new = self.fresh(torch.arange(self.admitted, self.admitted + take))
        self.admitted += take
        self.rows = {k: torch.cat([self.rows[k], v]) for k, v in new.items()} if self.rows else new

    def retire(self, done: torch.Tensor) -> dict[str, torch.Tensor]:
        """Remove the rows flagged in `done` (returned) and refill the batch."""
        out = {k: v[done] for k, v in self.rows.items()}
        self.rows = {k: v[~done] for k, v in self.rows.items()}
        self._fill()
        return out

    def iterations(self, desc: str | None) -> Iterator[int]:
        """One item per iteration of the batch, until every instance has finished."""
        def loop():
            it = 0
            while len(self):
                yield it
                it += 1
        return iter(progress(loop(), desc=desc)) if desc else loop()


def _check_inputs(model: nn.Module, x0: torch.Tensor, label: torch.Tensor) -> None:
    check_inputs(model, x0, label, ("x0", "label"))


def _check_common(c_init: float | torch.Tensor, max_iter: int, lr: float, batch_size: int,
                  n: int | None = None) -> None:
    """Settings shared by both attacks; a tensor c_init (one per instance, `n` of them) only where
    `n` is given (cw_l2)."""
    if isinstance(c_init, torch.Tensor) and n is not None:
        if c_init.dim() > 1 or (c_init.dim() == 1 and len(c_init) != n):  # else .expand(n) fails inside
            raise ValueError(f"c_init must be a number or a 1-D tensor of one constant per instance ({n}), "
                             f"got shape {tuple(c_init.shape)}")
        numeric = c_init.dtype != torch.bool and not c_init.is_complex()
        if not (numeric and torch.isfinite(c_init).all() and (c_init > 0).all()):
            raise ValueError(f"c_init must hold finite numbers in (0, inf), got {c_init.flatten().tolist()[:5]}")
    else:
        check_range("c_init", c_init, 0.0, low_open=True)
    check_range("max_iter", max_iter, 1, integer=True)
    check_range("lr", lr, 0.0, low_open=True)
    check_range("batch_size", batch_size, 1, integer=True)


@contextmanager
def _attacking(model: nn.Module):
    """`frozen` (eval mode, no parameter gradients) with the model's weights in channels-last
    layout while attacked: oneDNN's convolutions and max-pooling run about 1.2x faster on a CPU
    that way (benchmarks/bench_cw.py), with results equal to rounding. Both restored afterwards."""
    with frozen(model):
        model.to(memory_format=torch.channels_last)
        try:
            yield model
        finally:
            model.to(memory_format=torch.contiguous_format)


def _images(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _distances(adv: torch.Tensor, x0: torch.Tensor, ok: torch.Tensor) -> dict:
    delta = adv - x0
    nan = torch.full((len(x0),), math.nan)
    pick = lambda v: torch.where(ok, v, nan)  # noqa: E731
    return {"l2": pick(delta.flatten(1).norm(dim=1)), "linf": pick(delta.flatten(1).abs().amax(1)),
            "l0": pick((delta.abs().amax(1) >= CHANGED).flatten(1).sum(1).float())}


def _answer(best_adv: torch.Tensor, x0: torch.Tensor, ok: torch.Tensor) -> dict:
    adv = torch.where(ok[:, None, None, None], best_adv, torch.full_like(best_adv, math.nan))
    return {"adv": adv, "success": ok, **_distances(best_adv, x0, ok)}


def cw_l2(model: nn.Module, x0: torch.Tensor, label: torch.Tensor, *, targeted: bool = True, kappa: float = 0.0,
          c_init: float | torch.Tensor = 1e-3, binary_search_steps: int = 9, max_iter: int = 10000,
          lr: float = 1e-2, abort_early: bool = True, batch_size: int = 100, desc: str | None = None) -> dict:
    """Carlini & Wagner's L2 attack (Sec. V-A, `l2_attack.py`): minimise ||x - x0||_2^2 + c f(x) over w,
    x = (tanh(w) + 1) / 2, by Adam, keeping per instance the smallest successful perturbation.

    Args:
        model: logits of pixel-space images; put in eval mode without parameter gradients while attacked.
        x0: images (N, C, H, W) in [0, 1].
        label: N class indices: the target (targeted) or the true class (untargeted).
        targeted: f = max(max_{i != t} Z_i - Z_t, -kappa), else max(Z_y - max_{i != y} Z_i, -kappa) (`margin`).
        kappa: confidence: success means the goal is met by a logit margin of more than kappa.
        c_init: the first constant c, a number or one per instance (> 0).
        binary_search_steps: optimisation runs per instance; after each, `binary_search_update`
            sets the next c (x10 until the first success, then bisection).
        max_iter: Adam iterations per run, each run restarting from x0 with fresh Adam state.
        lr: Adam's learning rate.
        abort_early: end a run when the instance's loss, checked every max_iter // 10 iterations,
            has not fallen below 0.9999 x its value at the previous check.
        batch_size: instances optimised side by side.
        desc: label of a progress bar (none when None).

    Returns the module's result dict, plus per instance `iterations` (model evaluations).
    """
    _check_common(c_init, max_iter, lr, batch_size, len(x0) if isinstance(x0, torch.Tensor) else None)
    check_range("binary_search_steps", binary_search_steps, 1, integer=True)
    check_range("kappa", kappa, 0.0)
    _check_inputs(model, x0, label)
    n, dev = len(x0), _device(model)
    c_all = torch.as_tensor(c_init, dtype=torch.float64).expand(n)
    best_adv, best_l2, best_const = x0.clone(), torch.full((n,), math.inf), torch.full((n,), math.nan)
    iterations = torch.zeros(n, dtype=torch.long)
    check_every = max(1, max_iter // 10)

    def fresh(ids: torch.Tensor) -> dict:
        x = x0[ids].to(dev)
        w0 = _to_w(x)
        return {"id": ids.to(dev), "x0": x, "label": label[ids].to(dev), "w0": w0, "w": w0.clone(),
                "best_adv": x.clone(), "const": c_all[ids].to(dev), **_adam_state(x),
                **_columns(len(ids), dev, lower=(0.0, torch.float64), upper=(_NO_UPPER, torch.float64),
                           it=(0, torch.long), runs=(0, torch.long), prev=(math.inf, torch.float32),
                           found=(False, torch.bool), best_l2=(math.inf, torch.float32),
                           best_const=(math.nan, torch.float32), iterations=(0, torch.long))}

    with _attacking(model):
        pool = _Pool(n, batch_size, fresh)
        for _ in pool.iterations(desc):
            r = pool.rows
            w = r["w"].requires_grad_(True)
            x = (torch.tanh(w) + 1) / 2
            logits = model(_images(x))
            l2sq = (x - r["x0"]).flatten(1).pow(2).sum(1)
            gap = _gap(logits, r["label"], targeted)
            c = r["const"].float()
            loss = l2sq + c * gap.clamp(min=-kappa)  # C&W's L2 objective
            (grad,) = torch.autograd.grad(loss.sum(), w)
            with torch.no_grad():  # bookkeeping by masks, no indexing: one host check per iteration (ended.any)
                l2 = l2sq.sqrt()
                better = (gap < -kappa) & (l2 < r["best_l2"])
                r["best_l2"] = torch.where(better, l2, r["best_l2"])
                r["best_adv"] = torch.where(better[:, None, None, None], x, r["best_adv"])
                r["best_const"] = torch.where(better, c, r["best_const"])
                r["found"] |= gap < -kappa
                check = r["it"] % check_every == 0
                stop = check & (loss > r["prev"] * 0.9999) if abort_early else torch.zeros_like(check)
                r["prev"] = torch.where(check, loss, r["prev"])
                ended = stop | (r["it"] == max_iter - 1)
                r["w"] = w.detach()
                _adam_step(r, grad, lr)
                r["it"] += 1
                r["iterations"] += 1
                if ended.any():
                    _end_l2_runs(r, ended, binary_search_steps)
                    done = r["runs"] == binary_search_steps
                    if done.any():
                        out = pool.retire(done)
                        ids = out["id"].cpu()
                        best_adv[ids], best_l2[ids] = out["best_adv"].cpu(), out["best_l2"].cpu()
                        best_const[ids], iterations[ids] = out["best_const"].cpu(), out["iterations"].cpu()
    return {**_answer(best_adv, x0, torch.isfinite(best_l2)), "const": best_const, "iterations": iterations}


def _end_l2_runs(r: dict, ended: torch.Tensor, binary_search_steps: int) -> None:
    """Rows whose run ended: next constant, and a fresh start from x0 for the next run."""
    const, lower, upper = binary_search_update(r["const"], r["lower"], r["upper"], r["found"])
    for key, new in (("const", const), ("lower", lower), ("upper", upper)):
        r[key] = torch.where(ended, new, r[key])
    r["runs"] += ended
    restart = ended & (r["runs"] < binary_search_steps)
    r["w"] = torch.where(restart[:, None, None, None], r["w0"], r["w"])
    _adam_reset(r, restart)
    r["it"] = torch.where(ended, 0, r["it"])
    r["prev"] = torch.where(ended, math.inf, r["prev"])
    r["found"] &= ~ended


def cw_l0(model: nn.Module, x0: torch.Tensor, label: torch.Tensor, *, targeted: bool = True,
          c_init: float = 1e-3, largest_const: float = 2e6, const_factor: float = 2.0, max_iter: int = 1000,
          lr: float = 1e-2, batch_size: int = 100, desc: str | None = None) -> dict:
    """Carlini & Wagner's L0 attack (Sec. V-B) with the rules of their `l0_attack.py`.

    Every pixel starts changeable. Each round runs the L2-type attack restricted to the changeable
    pixels, x = (tanh(w) + 1) / 2 there and x0 elsewhere, minimising
    c * max(0, max_{i != t} Z_i - Z_t + 0.01) + ||x - x0||_2^2 by Adam. The round starts from the
    previous round's adversarial (w = arctanh of it) with fresh Adam state and stops at the first
    iterate whose f-term is below 1e-4; after each `max_iter` iterations without one, c is
    multiplied by `const_factor` (the iterate and Adam's state carry on) until c reaches
    `largest_const`, where the round fails. After a successful round, with n the number of
    changed pixels, delta the change and g the gradient of the whole objective w.r.t. w at the
    returned iterate, the changeable pixels are frozen (reset to x0) one by one in increasing
    |sum over channels of delta| * sum over channels of |g|, stopping after a pixel whose score
    exceeds 0.01 or after 0.3 sqrt(n) pixels (at least one). The constant that worked carries over.
    The answer is the last successful round's adversarial.

    Args:
        model, x0, label, targeted, lr, batch_size, desc: as for `cw_l2`.
        c_init: the first round's first constant (> 0).
        largest_const: the constant at which a round gives up (> c_init).
        const_factor: growth of c after `max_iter` iterations without success (> 1).
        max_iter: Adam iterations per constant.

    Returns the module's result dict, plus per instance `iterations` (model evaluations),
    `rounds` (successful rounds), `mask` (the changeable pixels, (N, 1, H, W) bool, under
    which `adv` was found: elsewhere adv equals x0) and `mask_sizes` (changeable pixels at the
    start of each round, a list per instance).
    """
    _check_common(c_init, max_iter, lr, batch_size)
    check_range("largest_const", largest_const, c_init, low_open=True)  # (c_init, inf)
    check_range("const_factor", const_factor, 1.0, low_open=True)
    _check_inputs(model, x0, label)
    n, dev = len(x0), _device(model)
    pixels = x0[0, 0].numel()
    out = {"adv": x0.clone(), "success": torch.zeros(n, dtype=torch.bool),
           "const": torch.full((n,), math.nan, dtype=torch.float64),
           "mask": torch.ones_like(x0[:, :1], dtype=torch.bool), "rounds": torch.zeros(n, dtype=torch.long),
           "iterations": torch.zeros(n, dtype=torch.long)}
    mask_sizes: list[list[int]] = [[] for _ in range(n)]

    def fresh(ids: torch.Tensor) -> dict:
        x = x0[ids].to(dev)
        for i in ids.tolist():
            mask_sizes[i].append(pixels)
        everywhere = torch.ones_like(x[:, :1], dtype=torch.bool)
        return {"id": ids.to(dev), "x0": x, "label": label[ids].to(dev), "w": _to_w(x), "best_adv": x.clone(),
                "mask": everywhere, "best_mask": everywhere.clone(), **_adam_state(x),
                **_columns(len(ids), dev, const=(c_init, torch.float64), best_const=(math.nan, torch.float64),
                           it=(0, torch.long), rounds=(0, torch.long), iterations=(0, torch.long),
                           success=(False, torch.bool))}

    with _attacking(model):
        pool = _Pool(n, batch_size, fresh)
        for _ in pool.iterations(desc):
            r = pool.rows
            w = r["w"].requires_grad_(True)
            x = torch.where(r["mask"], (torch.tanh(w) + 1) / 2, r["x0"])
            f = (_gap(model(_images(x)), r["label"], targeted) + L0_MARGIN).clamp(min=0)
            loss = r["const"].float() * f + (x - r["x0"]).flatten(1).pow(2).sum(1)  # l0_attack.py's objective
            (grad,) = torch.autograd.grad(loss.sum(), w)
            with torch.no_grad():
                r["iterations"] += 1
                works = f < L0_WORKS
                failed_run = ~works & (r["it"] == max_iter - 1)
                r["w"] = w.detach()
                _adam_step(r, grad, lr)  # the iterate and Adam's state carry on across constants
                if works.any():
                    _next_round(r, works, x, grad, mask_sizes)
                    _adam_reset(r, works)
                r["it"] = torch.where(works | failed_run, 0, r["it"] + 1)
                r["const"] = torch.where(failed_run, r["const"] * const_factor, r["const"])
                done = (r["const"] >= largest_const) | (r["mask"].flatten(1).sum(1) == 0)
                if done.any():
                    gone = pool.retire(done)
                    ids = gone["id"].cpu()
                    for key, src in (("adv", "best_adv"), ("success", "success"), ("const", "best_const"),
                                     ("mask", "best_mask"), ("rounds", "rounds"), ("iterations", "iterations")):
                        out[key][ids] = gone[src].cpu()
    ok = out["success"]
    return {**_answer(out["adv"], x0, ok), "const": torch.where(ok, out["const"], math.nan).float(),
            **{k: out[k] for k in ("rounds", "iterations", "mask")}, "mask_sizes": mask_sizes}


def _next_round(r: dict, works: torch.Tensor, x: torch.Tensor, grad: torch.Tensor,
                mask_sizes: list[list[int]]) -> None:
    """Rows whose restricted run reached the target: keep the iterate as the answer so far, freeze
    pixels (l0_attack.py's rule, see `cw_l0`) and warm-start the next round from the iterate
    (w = its arctanh; the caller resets Adam)."""
    delta = x - r["x0"]
    changed = (delta.abs().amax(1) >= CHANGED).flatten(1).sum(1)
    score = (delta.sum(1).abs() * grad.abs().sum(1)).flatten(1)
    mask = r["mask"].flatten(1)
    score = score.masked_fill(~mask, math.inf)  # frozen pixels come last and are never frozen twice
    order = score.argsort(dim=1, stable=True)
    ranked = score.gather(1, order)
    big = ranked > L0_SCORE_STOP
    first_big = torch.where(big.any(1), big.int().argmax(1), mask.shape[1])
    cap = (L0_FREEZE_SQRT * changed.double().sqrt()).ceil().long().clamp(min=1)
    n_freeze = torch.minimum(torch.minimum(first_big + 1, cap), mask.sum(1))
    n_freeze = torch.where(works, n_freeze, 0)
    ranks = torch.arange(mask.shape[1], device=mask.device)
    freeze = torch.zeros_like(mask).scatter_(1, order, ranks < n_freeze[:, None])
    keep = works[:, None, None, None]
    r["best_adv"] = torch.where(keep, x, r["best_adv"])
    r["best_mask"] = torch.where(keep, r["mask"], r["best_mask"])
    r["best_const"] = torch.where(works, r["const"], r["best_const"])
    r["success"] |= works
    r["rounds"] += works
    r["mask"] = (mask & ~freeze).view_as(r["mask"])
    r["w"] = torch.where(keep, _to_w(x), r["w"])
    for i, size in zip(r["id"][works].tolist(), r["mask"][works].flatten(1).sum(1).tolist()):
        mask_sizes[i].append(size)
