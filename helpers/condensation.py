"""Dataset condensation: gradient matching (DC) and distribution matching (DM).

DC follows Zhao, Mopuri & Bilen, "Dataset Condensation with Gradient Matching" (ICLR 2021),
Algorithm 1, as in the official code (VICO-UoE/DatasetCondensation, `main.py`):
every iteration samples a fresh ConvNet; for each of `outer_loop` steps the per-class
gradient of the cross-entropy on a real batch is compared with the gradient on that
class's synthetic images (Eq. 9-10, distance `ours`), the summed distance takes one SGD
step on the images, and the network then trains `inner_loop` epochs on the synthetic set
(except after the last outer step). No augmentation.

DM follows Zhao & Bilen, "Dataset Condensation with Distribution Matching" (WACV 2023,
`main_DM.py`): every iteration samples a fresh random ConvNet, frozen, and minimises
sum_c ||mean embed(A(real_c)) - mean embed(A(syn_c))||^2 over the synthetic images, where
A is DSA's augmentation (`dsa.py`) with one random draw shared by the two batches of a class.

This module holds the methods only; the study's settings, cache and scoring live in
`condensation_study.py`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import data, dsa, engine, models
from .progress import progress
from .runtime import device, seed_everything
from .validation import (
    NUMPY_SEEDS,
    check_finite,
    check_labels,
    check_tensor,
    is_int,
    is_number,
    require,
    seed_ok,
    seed_range,
)

# (outer_loop, inner_loop) per images-per-class, as in the paper's code (`get_loops`).
PAPER_LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}
METHODS = ("dc", "dm")
INITS = ("noise", "real")
NO_AUGMENTATION = "none"
# The official codes' defaults per method: image learning rate and DSA strategy.
# Each method's settings in its official code (DC's `main.py`, DM's `main_DM.py`).
METHOD_DEFAULTS = {"dc": {"init": "noise", "iterations": 1000, "batch_real": 256, "lr_img": 0.1,
                          "dsa_strategy": NO_AUGMENTATION},
                   "dm": {"init": "real", "iterations": 20000, "batch_real": 256, "lr_img": 1.0,
                          "dsa_strategy": dsa.DM_STRATEGY}}
# Every setting that changes a synthetic set; all of them join the study's cache key.
SETTING_KEYS = ("method", "init", "iterations", "batch_real", "outer_loop", "inner_loop",
                "lr_img", "lr_net", "batch_train", "snapshots", "dsa_strategy")

OuterStepHook = Callable[[nn.Module, int, int], "data.Split | None"]


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
    differentiable with respect to the synthetic images `syn` (ordered by class). The real
    gradients run on the engine's fast path; the synthetic ones eagerly in fp32 (a double
    backward, which compiled graphs do not support)."""
    params = [p for p in net.parameters() if p.requires_grad]
    dev = syn.device
    loss = torch.zeros((), device=dev)
    real_forward = engine.runner(net)
    for c, real in enumerate(real_per_class):
        lab = torch.full((len(real),), c, dtype=torch.long, device=dev)
        g_real = torch.autograd.grad(F.cross_entropy(real_forward(real), lab), params)
        g_real = [g.detach() for g in g_real]
        img = syn[c * ipc:(c + 1) * ipc]
        lab_syn = torch.full((len(img),), c, dtype=torch.long, device=dev)
        g_syn = torch.autograd.grad(F.cross_entropy(net(img), lab_syn), params, create_graph=True)
        loss = loss + match_distance(g_syn, g_real)
    return loss


def distribution_matching_loss(net: nn.Module, real_per_class: list[torch.Tensor], syn: torch.Tensor, ipc: int,
                               strategy: str = NO_AUGMENTATION, g: torch.Generator | None = None) -> torch.Tensor:
    """DM's loss: sum over classes of ||mean embed(real_c) - mean embed(syn_c)||^2 on the
    features before the classifier of a frozen network. With a DSA `strategy`, each class's
    real and synthetic batch first go through one shared random draw (generator `g`).
    All classes are embedded in one batch (per-image normalisation makes this identical
    to class by class); the real embeddings run on the engine's fast path."""
    real_aug, syn_aug = [], []
    for c, real in enumerate(real_per_class):
        img = syn[c * ipc:(c + 1) * ipc]
        if strategy != NO_AUGMENTATION:
            real, img = dsa.siamese(real, img, strategy, g)
        real_aug.append(real)
        syn_aug.append(img)
    with torch.no_grad():
        emb_real = engine.runner(net, "embed")(torch.cat(real_aug))
    emb_syn = net.embed(torch.cat(syn_aug))
    sizes_real, sizes_syn = [len(r) for r in real_aug], [ipc] * len(syn_aug)
    means_real = torch.stack([e.mean(0) for e in emb_real.split(sizes_real)])
    means_syn = torch.stack([e.mean(0) for e in emb_syn.split(sizes_syn)])
    return ((means_real - means_syn) ** 2).sum()


def _initial_images(train: data.Split, ipc: int, init: str, g: torch.Generator) -> torch.Tensor:
    if init == "real":
        return torch.cat([train.sample_class(c, ipc, g) for c in range(train.num_classes)])
    return torch.randn((train.num_classes * ipc, *train.images.shape[1:]), generator=g)


def resolve_settings(ipc: int, method: str, **given) -> dict:
    """`condense`'s values for the settings in `given` left None (or not given): the method's
    defaults (METHOD_DEFAULTS) and the paper's loops for DC (one outer step and no inner loop for DM).
    Returns init, iterations, batch_real, outer_loop, inner_loop, lr_img and dsa_strategy."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not a condensation method; valid: {', '.join(METHODS)}")
    loops_given = given.get("outer_loop") is not None and given.get("inner_loop") is not None
    if method == "dc" and not loops_given and ipc not in PAPER_LOOPS:
        raise ValueError(f"ipc={ipc!r} has no paper loops (known: {sorted(PAPER_LOOPS)}); pass outer_loop/inner_loop")
    outer, inner = PAPER_LOOPS.get(ipc, (1, 0)) if method == "dc" else (1, 0)
    defaults = {**METHOD_DEFAULTS[method], "outer_loop": outer, "inner_loop": inner}
    return {k: default if given.get(k) is None else given[k] for k, default in defaults.items()}


def check_settings(train: data.Split, ipc: int, *, method: str, init: str, iterations: int, batch_real: int,
                   outer_loop: int, inner_loop: int, lr_img: float, lr_net: float, batch_train: int,
                   snapshots: int, dsa_strategy: str) -> None:
    """ValueError naming the parameter, its value and the valid range, for any setting
    `condense` cannot run with (checked before any work)."""
    if init not in INITS:
        raise ValueError(f"init={init!r} is not an initialisation; valid: {', '.join(INITS)}")
    for name, value, low in [("ipc", ipc, 1), ("iterations", iterations, 0), ("batch_real", batch_real, 1),
                             ("outer_loop", outer_loop, 1), ("inner_loop", inner_loop, 0),
                             ("batch_train", batch_train, 1), ("snapshots", snapshots, 0)]:
        require(name, value, is_int(value) and value >= low, f"an integer >= {low}")
    for name, value in [("lr_img", lr_img), ("lr_net", lr_net)]:
        require(name, value, is_number(value) and value > 0, "a finite number > 0")
    check_data(train)
    counts = torch.bincount(train.labels, minlength=train.num_classes)
    if (counts == 0).any():
        empty = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"classes {empty[:5]} of {train.name} have no training images; condensation needs images "
                         "of every class")
    smallest = int(counts.min())
    require("batch_real", batch_real, batch_real <= smallest,
            f"1..{smallest} (the smallest class of the training data; real batches are drawn without replacement)")
    require("ipc", ipc, ipc <= smallest, f"1..{smallest} (the smallest class of the training data)")
    if method == "dm":
        require("inner_loop", inner_loop, inner_loop == 0, "0 for DM (its random network is never trained)")
    if dsa_strategy != NO_AUGMENTATION:
        dsa.parse(dsa_strategy)


def check_data(train: data.Split) -> None:
    """The real data condensation reads: (N, C, H, W) finite float images (one NaN spreads into
    every synthetic image) and one label in [0, num_classes - 1] per image."""
    check_tensor("train.images", train.images, dims=4, floating=True)
    check_finite("train.images", train.images, "condensing NaN or inf pixels makes every synthetic image NaN")
    if train.images.dtype != torch.float32:  # the ConvNets and synthetic images are float32
        raise ValueError(f"train.images has dtype {train.images.dtype}; valid: torch.float32 (use .float())")
    check_labels("train.labels", train.labels, train.num_classes, len(train.images))


def condense(train: data.Split, ipc: int, *, method: str = "dc", init: str | None = None,
             iterations: int | None = None, batch_real: int | None = None, outer_loop: int | None = None,
             inner_loop: int | None = None, lr_img: float | None = None, lr_net: float = 0.01,
             batch_train: int = 256, snapshots: int = 0,
             dsa_strategy: str | None = None, seed: int = 0, arch_kwargs: dict | None = None,
             desc: str | None = None, on_outer_step: OuterStepHook | None = None) -> dict:
    """Condense `train` to `ipc` synthetic images per class with DC (Algorithm 1) or DM.

    Args:
        train: the real data (normalised images, int labels).
        ipc: synthetic images per class.
        method: "dc" (gradient matching) or "dm" (distribution matching).
        init: "real" (random real images of each class) or "noise" (standard normal); default
            the method's (DC noise, DM real).
        iterations: outer iterations, each with a freshly initialised ConvNet (default the
            method's: DC 1000, DM 20000).
        batch_real: real images per class per matching step (drawn without replacement;
            at most the smallest class's size; default 256).
        outer_loop: matching steps per iteration (default: the paper's for this ipc for DC,
            1 for DM); each takes one step on the images.
        inner_loop: epochs the network trains on the synthetic set after each outer step
            but the last (default: the paper's for DC; must be 0 for DM).
        lr_img: learning rate of SGD (momentum 0.5) on the images (default 0.1 DC, 1.0 DM).
        lr_net: learning rate of the inner loop's plain SGD (DC).
        batch_train: batch size of the inner loop (DC).
        snapshots: copies of the images kept, spread over the run (the first is the
            initialisation); 0 keeps none.
        dsa_strategy: DSA augmentation of both batches in each matching step, e.g.
            "color_crop_cutout_flip_scale_rotate", or "none" (default: DM's official strategy
            for DM, none for DC).
        seed: seeds the initialisation, the networks, the real batches and the augmentation.
        arch_kwargs: ConvNet keyword arguments (e.g. a smaller width in tests).
        desc: progress-bar label.
        on_outer_step: called as `on_outer_step(net, iteration, step)` after each outer step's
            image update with the current network; a returned `data.Split` replaces the real
            data from then on (DOORPING re-stamps its trigger this way).

    Returns:
        {"images" (10*ipc, C, H, W) normalised, "labels" ordered by class, "loss" (mean per
        class and outer step, per iteration, as the official code logs it), "seconds",
        "snapshots", "snapshot_iters", and the settings used}.
    """
    resolved = resolve_settings(ipc, method, init=init, iterations=iterations, batch_real=batch_real,
                                outer_loop=outer_loop, inner_loop=inner_loop, lr_img=lr_img, dsa_strategy=dsa_strategy)
    settings = {"method": method, **resolved, "lr_net": lr_net, "batch_train": batch_train, "snapshots": snapshots}
    init, iterations, batch_real = settings["init"], settings["iterations"], settings["batch_real"]
    outer_loop, inner_loop, lr_img, dsa_strategy = (settings[k] for k in ("outer_loop", "inner_loop", "lr_img",
                                                                           "dsa_strategy"))
    check_settings(train, ipc, **settings)
    # seed_everything also seeds numpy, which takes only [0, 2**32)
    require("seed", seed, seed_ok(seed, NUMPY_SEEDS), seed_range(NUMPY_SEEDS))
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
        net = models.ConvNet(channels=train.images.shape[1], num_classes=k, **(arch_kwargs or {})).to(dev).train()
        net.requires_grad_(method == "dc")  # DM's network stays random (frozen)
        opt_net = torch.optim.SGD(net.parameters(), lr=lr_net)
        total = 0.0
        for step in range(outer_loop):
            real = [train.sample_class(c, batch_real, g).to(dev) for c in range(k)]
            if method == "dc":
                loss = gradient_matching_loss(net, real, syn, ipc)
            else:
                loss = distribution_matching_loss(net, real, syn, ipc, dsa_strategy, g)
            opt_img.zero_grad(set_to_none=True)
            loss.backward()
            opt_img.step()
            total += loss.item()
            if on_outer_step is not None:
                train = on_outer_step(net, it, step) or train
            if step < outer_loop - 1:
                train_inner(net, opt_net, syn.detach().clone(), labels, inner_loop, batch_train, g)
        history.append(total / (k * outer_loop))
    return {**settings, "ipc": ipc, "seed": seed, "images": syn.detach().cpu(), "labels": labels.cpu(),
            "loss": history, "seconds": time.perf_counter() - start,
            "snapshots": torch.stack(snaps) if snaps else torch.empty(0), "snapshot_iters": keep}


def train_inner(net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, labels: torch.Tensor, epochs: int,
                batch: int, g: torch.Generator) -> None:
    """DC's inner loop: `epochs` epochs of the network on the (detached) synthetic set (on
    the engine's fast path: plain first-order training)."""
    forward = engine.runner(net)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g).to(x.device)
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(forward(x[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def iteration_seconds(train: data.Split, ipc: int, settings: dict, seed: int = 0) -> dict:
    """Measured cost of one condensation iteration under `settings` (`condense`'s keyword
    arguments, all of SETTING_KEYS), extrapolated from one outer step and one inner-loop epoch,
    each timed after a warm-up run of the same shapes:
    outer_loop * t_outer + (outer_loop - 1) * inner_loop * t_inner (wall seconds)."""
    g = seed_everything(seed)
    dev, k = device(), train.num_classes
    net = models.ConvNet(channels=train.images.shape[1], num_classes=k).to(dev).train()
    syn = _initial_images(train, ipc, "real", g).to(dev).requires_grad_(True)
    real = [train.sample_class(c, settings["batch_real"], g).to(dev) for c in range(k)]
    dm = settings["method"] == "dm"
    net.requires_grad_(not dm)

    def outer_step() -> None:
        if dm:
            distribution_matching_loss(net, real, syn, ipc, settings["dsa_strategy"], g).backward()
        else:
            gradient_matching_loss(net, real, syn, ipc).backward()

    def inner_epoch() -> None:
        train_inner(net, torch.optim.SGD(net.parameters(), lr=settings["lr_net"]), syn.detach(), labels, 1,
                    settings["batch_train"], g)

    labels = torch.arange(k, device=dev).repeat_interleave(ipc)
    inner = 0 if dm else (settings["outer_loop"] - 1) * settings["inner_loop"]
    t_outer, t_inner = _warm_seconds(outer_step), _warm_seconds(inner_epoch) if inner else 0.0
    per_iteration = settings["outer_loop"] * t_outer + inner * t_inner
    return {"outer_step_s": t_outer, "inner_epoch_s": t_inner, "iteration_s": per_iteration,
            "run_s": per_iteration * settings["iterations"]}


def _warm_seconds(run: Callable[[], None]) -> float:
    """Wall seconds of `run()`'s second call (the first pays one-off setup costs)."""
    run()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
