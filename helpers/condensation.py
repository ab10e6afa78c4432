"""Dataset condensation: gradient matching (DC) and distribution matching (DM).

DC follows Zhao, Mopuri & Bilen, "Dataset Condensation with Gradient Matching" (ICLR 2021),
Algorithm 1, as in the official code (VICO-UoE/DatasetCondensation, `main.py`):
every iteration samples a fresh ConvNet; for each of `outer_loop` steps the per-class
gradient of the cross-entropy on a real batch is compared with the gradient on that
class's synthetic images (Eq. 9-10, distance `ours`), the summed distance takes one SGD
step on the images, and the network then trains `inner_loop` epochs on the synthetic set
(except after the last outer step).

DM follows Zhao & Bilen, "Dataset Condensation with Distribution Matching" (WACV 2023,
`main_DM.py`): every iteration samples a fresh random ConvNet and minimises
sum_c ||mean embed(real_c) - mean embed(syn_c)||^2 over the synthetic images
(without DM's DSA augmentation here).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from . import data, models
from .cache import load_or_build
from .config import device, seed_everything
from .profiles import budget
from .progress import progress
from .training import train_models

# (outer_loop, inner_loop) per images-per-class, as in the paper's code (`get_loops`).
PAPER_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
# FashionMNIST test accuracy (%, mean and std where published) in DC's paper (ConvNet, 300
# evaluation epochs); "whole dataset" is the ConvNet trained on all 60k images.
PAPER_ACCURACY = {("DC", 1): (70.5, 0.6), ("DC", 10): (82.3, 0.4), ("DC", 50): (83.6, 0.4),
                  ("random real", 1): (51.4, None), ("random real", 10): (73.8, None),
                  ("random real", 50): (82.5, None), ("whole dataset", None): (93.5, None)}
METHODS = ("dc", "dm")
INITS = ("noise", "real")
# Every setting that changes a synthetic set; all of them join the cache key.
SETTING_KEYS = ("method", "init", "iterations", "batch_real", "outer_loop", "inner_loop",
                "lr_img", "lr_net", "batch_train", "snapshots")


def layer_distance(g_syn: torch.Tensor, g_real: torch.Tensor) -> torch.Tensor:
    """DC's distance `ours` for one parameter's gradients (Eq. 10): reshape to
    (output units, rest) -- conv (out, in*h*w), linear (out, in) -- and sum over output
    units of 1 - cos(g_syn_i, g_real_i), with 1e-6 added to the norm product.
    1-D gradients (biases, norm affine parameters) contribute 0, as in the official code."""
    if g_syn.shape != g_real.shape:
        raise ValueError(f"gradient shapes differ: {tuple(g_syn.shape)} vs {tuple(g_real.shape)}")
    if g_syn.dim() == 1:
        return torch.zeros((), dtype=g_syn.dtype, device=g_syn.device)
    a, b = g_syn.reshape(g_syn.shape[0], -1), g_real.reshape(g_real.shape[0], -1)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-6)
    return (1 - cos).sum()


def match_distance(grads_syn, grads_real) -> torch.Tensor:
    """Sum of `layer_distance` over all parameters of a network (lists in the same order)."""
    grads_syn, grads_real = list(grads_syn), list(grads_real)
    if len(grads_syn) != len(grads_real):
        raise ValueError(f"{len(grads_syn)} synthetic vs {len(grads_real)} real gradients")
    return sum(layer_distance(s, r) for s, r in zip(grads_syn, grads_real))


def gradient_matching_loss(net: nn.Module, real_per_class: list[torch.Tensor], syn: torch.Tensor,
                           ipc: int) -> torch.Tensor:
    """DC's matching loss on a fixed network (one outer step of Algorithm 1, summed over
    classes): real gradients are detached, synthetic ones keep their graph so the loss is
    differentiable with respect to the synthetic images `syn` (ordered by class)."""
    params = [p for p in net.parameters() if p.requires_grad]
    dev = syn.device
    loss = torch.zeros((), device=dev)
    for c, real in enumerate(real_per_class):
        lab = torch.full((len(real),), c, dtype=torch.long, device=dev)
        g_real = torch.autograd.grad(F.cross_entropy(net(real), lab), params)
        g_real = [g.detach() for g in g_real]
        img = syn[c * ipc:(c + 1) * ipc]
        lab_syn = torch.full((len(img),), c, dtype=torch.long, device=dev)
        g_syn = torch.autograd.grad(F.cross_entropy(net(img), lab_syn), params, create_graph=True)
        loss = loss + match_distance(g_syn, g_real)
    return loss


def distribution_matching_loss(net: nn.Module, real_per_class: list[torch.Tensor], syn: torch.Tensor,
                               ipc: int) -> torch.Tensor:
    """DM's loss: sum over classes of ||mean embed(real_c) - mean embed(syn_c)||^2 on the
    features before the classifier of a (frozen) network."""
    loss = torch.zeros((), device=syn.device)
    for c, real in enumerate(real_per_class):
        with torch.no_grad():
            mean_real = net.embed(real).mean(0)
        loss = loss + ((mean_real - net.embed(syn[c * ipc:(c + 1) * ipc]).mean(0)) ** 2).sum()
    return loss


def _initial_images(train: data.Split, ipc: int, init: str, g: torch.Generator) -> torch.Tensor:
    if init == "real":
        return torch.cat([train.sample_class(c, ipc, g) for c in range(train.num_classes)])
    return torch.randn((train.num_classes * ipc, *train.images.shape[1:]), generator=g)


def _check_settings(ipc: int, method: str, init: str, iterations: int, batch_real: int) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
    if ipc < 1 or iterations < 0 or batch_real < 1:
        raise ValueError(f"need ipc >= 1, iterations >= 0, batch_real >= 1 (got {ipc}, {iterations}, {batch_real})")


def condense(train: data.Split, ipc: int, *, method: str = "dc", init: str = "real", iterations: int = 1000,
             batch_real: int = 256, outer_loop: int | None = None, inner_loop: int | None = None,
             lr_img: float | None = None, lr_net: float = 0.01, batch_train: int = 256, snapshots: int = 0,
             seed: int = 0, arch_kwargs: dict | None = None, desc: str | None = None) -> dict:
    """Condense `train` to `ipc` synthetic images per class with DC (Algorithm 1) or DM.

    outer_loop / inner_loop default to the paper's loops for this ipc (DC only); lr_img
    defaults to 0.1 (DC) or 1.0 (DM), both SGD with momentum 0.5. `snapshots` > 0 keeps
    that many copies of the images spread over the run (the first is the initialisation).
    Returns {"images", "labels" (ordered by class), "loss" (mean per iteration, as the
    official code logs it), "seconds", "snapshots", "snapshot_iters", settings...}.
    """
    _check_settings(ipc, method, init, iterations, batch_real)
    if method == "dc" and (outer_loop is None or inner_loop is None) and ipc not in PAPER_LOOPS:
        raise ValueError(f"no paper loops for ipc {ipc} (known: {sorted(PAPER_LOOPS)}); pass outer_loop/inner_loop")
    outer_loop = outer_loop or (PAPER_LOOPS[ipc][0] if method == "dc" else 1)
    inner_loop = inner_loop if inner_loop is not None else (PAPER_LOOPS[ipc][1] if method == "dc" else 0)
    lr_img = lr_img if lr_img is not None else (0.1 if method == "dc" else 1.0)
    arch_kwargs = arch_kwargs or {}
    k, dev = train.num_classes, device()
    g = seed_everything(seed)
    syn = _initial_images(train, ipc, init, g).to(dev).requires_grad_(True)
    labels = torch.arange(k, device=dev).repeat_interleave(ipc)
    opt_img = torch.optim.SGD([syn], lr=lr_img, momentum=0.5)
    keep = sorted({round(i * iterations / max(snapshots - 1, 1)) for i in range(snapshots)})
    snaps, history = [], []
    start = time.perf_counter()
    for it in progress(range(iterations + 1), desc=desc or f"{method} ipc {ipc}"):
        if it in keep:
            snaps.append(syn.detach().cpu().clone())
        if it == iterations:
            break
        net = models.ConvNet(channels=train.images.shape[1], num_classes=k, **arch_kwargs).to(dev).train()
        if method == "dm":
            net.requires_grad_(False)
        opt_net = torch.optim.SGD(net.parameters(), lr=lr_net)
        total = 0.0
        for step in range(outer_loop):
            real = [train.sample_class(c, batch_real, g).to(dev) for c in range(k)]
            loss_fn = gradient_matching_loss if method == "dc" else distribution_matching_loss
            loss = loss_fn(net, real, syn, ipc)
            opt_img.zero_grad(set_to_none=True)
            loss.backward()
            opt_img.step()
            total += loss.item()
            if step == outer_loop - 1 or method == "dm":  # DM never trains its random network
                continue
            x_syn = syn.detach().clone()  # inner loop: inner_loop epochs on the synthetic set
            for _ in range(inner_loop):
                order = torch.randperm(len(x_syn), generator=g).to(dev)
                for i in range(0, len(x_syn), batch_train):
                    idx = order[i:i + batch_train]
                    net_loss = F.cross_entropy(net(x_syn[idx]), labels[idx])
                    opt_net.zero_grad(set_to_none=True)
                    net_loss.backward()
                    opt_net.step()
        history.append(total / (k * outer_loop))
    return {"images": syn.detach().cpu(), "labels": labels.cpu(), "loss": history,
            "seconds": time.perf_counter() - start,
            "snapshots": torch.stack(snaps) if snaps else torch.empty(0), "snapshot_iters": keep,
            "method": method, "ipc": ipc, "init": init, "iterations": iterations, "batch_real": batch_real,
            "outer_loop": outer_loop, "inner_loop": inner_loop, "lr_img": lr_img, "lr_net": lr_net,
            "batch_train": batch_train, "seed": seed}


def iteration_seconds(train: data.Split, ipc: int, settings: dict, seed: int = 0) -> dict:
    """Measured cost of one condensation iteration under `settings` (a `condense_settings`
    dict), extrapolated from one timed outer step and one timed inner-loop epoch:
    outer_loop * t_outer + (outer_loop - 1) * inner_loop * t_inner (wall seconds)."""
    g = seed_everything(seed)
    dev, k = device(), train.num_classes
    net = models.ConvNet(channels=train.images.shape[1], num_classes=k).to(dev).train()
    syn = _initial_images(train, ipc, "real", g).to(dev).requires_grad_(True)
    real = [train.sample_class(c, settings["batch_real"], g).to(dev) for c in range(k)]
    dm = settings["method"] == "dm"
    net.requires_grad_(not dm)
    start = time.perf_counter()
    loss = (distribution_matching_loss if dm else gradient_matching_loss)(net, real, syn, ipc)
    loss.backward()
    t_outer = time.perf_counter() - start
    t_inner = 0.0
    if not dm and settings["inner_loop"] and settings["outer_loop"] > 1:
        labels = torch.arange(k, device=dev).repeat_interleave(ipc)
        x = syn.detach()
        start = time.perf_counter()
        for i in range(0, len(x), settings["batch_train"]):
            net.zero_grad()
            F.cross_entropy(net(x[i:i + settings["batch_train"]]), labels[i:i + settings["batch_train"]]).backward()
        t_inner = time.perf_counter() - start
    outer = settings["outer_loop"]
    inner_total = 0 if dm else (outer - 1) * settings["inner_loop"] * t_inner
    return {"outer_step_s": t_outer, "inner_epoch_s": t_inner, "iteration_s": outer * t_outer + inner_total,
            "run_s": (outer * t_outer + inner_total) * settings["iterations"]}


def condense_settings(profile: str, ipc: int, **overrides) -> dict:
    """The profile's condensation settings for `ipc` (method, init, iterations, loops, ...)."""
    cfg = budget(profile, "condense")
    per_ipc = cfg.per_ipc
    if ipc not in per_ipc:
        raise ValueError(f"profile {profile!r} has no condensation settings for ipc {ipc}; "
                         f"valid: {sorted(per_ipc)}")
    settings = {**cfg.common, **per_ipc[ipc]}
    unknown = set(overrides) - set(SETTING_KEYS)
    if unknown:
        raise ValueError(f"unknown condensation settings {sorted(unknown)}; valid: {', '.join(SETTING_KEYS)}")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    method = settings["method"]
    if method == "dc":
        settings.setdefault("outer_loop", PAPER_LOOPS.get(ipc, (None, None))[0])
        settings.setdefault("inner_loop", PAPER_LOOPS.get(ipc, (None, None))[1])
    else:
        settings.setdefault("outer_loop", 1)
        settings.setdefault("inner_loop", 0)
    settings.setdefault("lr_img", 0.1 if method == "dc" else 1.0)
    return {key: settings[key] for key in SETTING_KEYS}


def synthetic_set(ipc: int, profile: str, seed: int = 0, *, method: str | None = None, init: str | None = None,
                  train: data.Split | None = None, data_tag: dict | None = None) -> dict:
    """The cached condensed set for `ipc` under `profile` (built on first use).

    Returns `condense`'s dict: "images" normalised (10*ipc, 1, 28, 28), "labels" (10*ipc,)
    ordered by class, "loss", "seconds", "snapshots", ... `method`/`init` override the
    profile's choice for this ipc. A custom `train` split (e.g. poisoned) needs a JSON-able
    `data_tag` describing it; it joins the cache key.
    """
    if train is not None and data_tag is None:
        raise ValueError("a custom `train` split needs `data_tag` (a JSON-able dict describing it) for the cache key")
    if train is None:
        train, data_tag = data.load("fashion", True), {"dataset": "fashion", "split": "train"}
    settings = condense_settings(profile, ipc, method=method, init=init)
    config = {"ipc": ipc, "seed": seed, "data_tag": data_tag, **settings}

    def build():
        return condense(train, ipc, seed=seed, desc=f"{settings['method']} ipc {ipc} ({profile})", **settings)

    return load_or_build("synthetic", config, build)


EVAL_DEFAULT_IPC = 10  # the epoch count `evaluation_settings` gives when no ipc is named


def evaluation_settings(profile: str, ipc: int | None = None) -> dict:
    """Keyword arguments of `training.train_models` for ConvNets trained on synthetic or
    random-real sets (DC's protocol: SGD lr 0.01, momentum 0.9, weight decay 5e-4,
    batch 256, lr x0.1 at the midpoint; 300 epochs in `paper`). The profile sets the
    number of models and the epochs per ipc (without `ipc`: those of ipc 10)."""
    cfg = budget(profile, "evaluate")
    key = EVAL_DEFAULT_IPC if ipc is None else ipc
    if key not in cfg.epochs:
        raise ValueError(f"profile {profile!r} has no evaluation epochs for ipc {ipc}; valid: {sorted(cfg.epochs)}")
    return {"arch": "convnet", "n_models": cfg.n_models, "epochs": cfg.epochs[key], "lr": cfg.lr,
            "momentum": cfg.momentum, "weight_decay": cfg.weight_decay, "batch_size": cfg.batch_size,
            "decay_at": tuple(cfg.decay_at)}


def synthetic_tag(ipc: int, profile: str, seed: int = 0, *, method: str | None = None, init: str | None = None,
                  data_tag: dict | None = None) -> dict:
    """A `train_models` tag that identifies `synthetic_set(ipc, profile, seed, ...)`, so every
    notebook training on the same condensed set shares the same cached models."""
    settings = condense_settings(profile, ipc, method=method, init=init)
    return {"data": "synthetic", "ipc": ipc, "seed": seed,
            "data_tag": data_tag or {"dataset": "fashion", "split": "train"}, **settings}


def score_models(images: torch.Tensor, labels: torch.Tensor, *, tag: dict, settings: dict,
                 test: tuple[torch.Tensor, torch.Tensor], seed: int = 0) -> dict:
    """Train `settings["n_models"]` fresh networks on (images, labels) with
    `training.train_models` (cached) and summarise their final test accuracy:
    {"accs", "mean", "std" (population std over models, as DC reports), "n_models",
    "seconds" (this call's wall time; ~0 when cached), "train_loss" (per model, per epoch)}."""
    start = time.perf_counter()
    runs = train_models(images, labels, tag=tag, test=test, seed=seed, **settings)
    accs = torch.tensor([r["test_acc"] for r in runs], dtype=torch.float64)
    return {"accs": accs.tolist(), "mean": accs.mean().item(), "std": accs.std(unbiased=False).item(),
            "n_models": len(runs), "seconds": time.perf_counter() - start,
            "train_loss": [[e["train_loss"] for e in r["history"]["epochs"]] for r in runs]}
