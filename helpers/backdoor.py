"""Backdoor attacks through dataset condensation: BadNets and DOORPING.

BadNets (Gu, Dolan-Gavitt & Garg, 2017): a fixed trigger patch stamped on a fraction of
the training images, which are relabelled to one target class (all-to-one). The trigger
is a `size` x `size` square of pixel value `value` (in [0, 1]) placed in a corner with a
`margin` of pixels to the border. Poisoning picks exactly round(rate * N) training images,
uniformly at random (seeded) among those whose true class is not the target, so every
poisoned image is a label flip (choice as in Gu et al.'s all-to-one attack; Liu et al.'s
NAIVEATTACK samples from all images, which at rate r relabels about r * 0.9 N of them).
Splits are normalised like `data.load`'s; triggers (patterns) live in pixel space.

DOORPING (Liu et al., "Backdoor Attacks Against Dataset Distillation", NDSS 2023, Sec. 5;
code liuyugeng/baadd, `DC/utils.py` `select_neuron`/`update_trigger`): the same patch, but
its pixels are learnable and re-optimised during condensation. After each outer step the
trigger takes Adam steps (lr 0.08, betas (0.9, 0.99), at most `max_steps`, early stop when
the loss falls below `stop_loss`) on the current network so that one neuron of the layer
before the classifier reaches `alpha` times its initial activation (MSE), and the poisoned
images are re-stamped with it; `doorping_hook` is that step as a `condensation.condense`
hook. Unlike their code, the trigger is kept in the pixel range [0, 1] (projected after
each step).

Metrics: clean test accuracy (CTA) on the untouched test set, and attack success rate
(ASR): the fraction of triggered test images whose true class is not the target that the
model classifies as the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import data
from .training import predict
from .validation import check_range, check_seed, check_tensor

CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
PATIENCE = 10  # DOORPING: Adam steps without a 0.1 % lower loss before the update stops early


def check_pattern(pattern: torch.Tensor, shape: tuple[int, ...]) -> None:
    """A trigger pattern: a float tensor of `shape` with finite pixel values in [0, 1] (the pixel
    space the triggers live in; a 0-255 pattern or NaN would be stamped as is)."""
    check_tensor("trigger pattern", pattern, floating=True)
    if pattern.shape != shape:
        raise ValueError(f"trigger pattern of shape {tuple(pattern.shape)}, expected {shape}")
    p = pattern.detach()
    if not torch.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        found = "NaN or inf values" if not torch.isfinite(p).all() else f"values in [{p.min():.4g}, {p.max():.4g}]"
        raise ValueError(f"trigger pattern must hold pixel values in [0, 1], found {found}; "
                         "divide a 0-255 pattern by 255")


@dataclass(frozen=True)
class BadNets:
    """One all-to-one BadNets attack: trigger geometry, poison rate, target and seed."""

    rate: float = 0.1
    target: int = 0
    size: int = 3
    value: float = 1.0
    corner: str = "bottom-right"
    margin: int = 1
    seed: int = 0

    def __post_init__(self):
        check_range("poison rate", self.rate, 0, 1)
        check_range("target", self.target, 0, math.inf, integer=True)
        check_range("trigger size", self.size, 1, math.inf, integer=True)
        check_range("trigger margin", self.margin, 0, math.inf, integer=True)
        check_range("trigger value (a pixel value)", self.value, 0, 1)
        check_seed("poison seed", self.seed)
        if self.corner not in CORNERS:
            raise ValueError(f"unknown corner {self.corner!r}; valid: {', '.join(CORNERS)}")

    def box(self, height: int = 28, width: int = 28) -> tuple[int, int]:
        """(row, column) of the patch's top-left pixel in an image of the given size."""
        if self.size + self.margin > min(height, width):
            raise ValueError(f"a {self.size}px trigger with margin {self.margin} does not fit {height}x{width}")
        row = height - self.margin - self.size if self.corner.startswith("bottom") else self.margin
        col = width - self.margin - self.size if self.corner.endswith("right") else self.margin
        return row, col

    def mask(self, height: int = 28, width: int = 28) -> torch.Tensor:
        """Boolean (height, width) mask of the patch."""
        row, col = self.box(height, width)
        out = torch.zeros(height, width, dtype=torch.bool)
        out[row:row + self.size, col:col + self.size] = True
        return out

    def pattern(self, channels: int = 1) -> torch.Tensor:
        """The fixed BadNets trigger as a (channels, size, size) pixel-space pattern."""
        return torch.full((channels, self.size, self.size), float(self.value))

    def tag(self, dataset: str = "fashion") -> dict:
        """A JSON-able description of the poisoned training split (a cache key, e.g. the
        `data_tag` of `condensation.synthetic_set`)."""
        return {"attack": "badnets", "dataset": dataset, "split": "train", **asdict(self)}


def stamp(images: torch.Tensor, attack: BadNets, name: str | None = None,
          pattern: torch.Tensor | None = None) -> torch.Tensor:
    """A copy of `images` (N, C, H, W) with the trigger patch set to `pattern`
    ((C, size, size) pixel values; default: BadNets' constant `attack.value`).

    Pixel-space images when `name` is None; otherwise images normalised for dataset
    `name`, and the patch gets the normalised pattern (the same image as stamping in
    pixel space and normalising, without round-off elsewhere). Differentiable in `pattern`."""
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    pattern = attack.pattern(images.shape[1]) if pattern is None else pattern
    check_pattern(pattern, (images.shape[1], attack.size, attack.size))
    patch = pattern if name is None else data.normalize(pattern, name)
    row, col = attack.box(*images.shape[-2:])
    out = images.clone()
    out[..., row:row + attack.size, col:col + attack.size] = patch.to(out)
    return out


def _check_target(split: data.Split, attack: BadNets) -> None:
    if attack.target >= split.num_classes:
        raise ValueError(f"target {attack.target} is not a class of {split.name} (0..{split.num_classes - 1})")


def poison(split: data.Split, attack: BadNets, pattern: torch.Tensor | None = None
           ) -> tuple[data.Split, torch.Tensor]:
    """The poisoned copy of a training split and the (sorted) indices of poisoned images.

    Exactly round(rate * len(split)) images, chosen with `attack.seed` among those whose
    label is not the target, get the trigger (`pattern`, default BadNets' constant) and the
    target label; all others are unchanged. Fails if there are not enough non-target images."""
    _check_target(split, attack)
    n = round(attack.rate * len(split))
    candidates = torch.nonzero(split.labels != attack.target).flatten()
    if n > len(candidates):
        raise ValueError(f"rate {attack.rate} asks for {n} poisoned images but only {len(candidates)} "
                         f"are outside the target class; lower the rate")
    g = torch.Generator().manual_seed(attack.seed)
    idx = candidates[torch.randperm(len(candidates), generator=g)[:n]].sort().values
    labels = split.labels.clone()
    labels[idx] = attack.target
    return restamp(data.Split(split.name, split.images, labels, split.classes), idx, attack, pattern), idx


def restamp(split: data.Split, idx: torch.Tensor, attack: BadNets, pattern: torch.Tensor | None = None
            ) -> data.Split:
    """A copy of `split` whose images `idx` carry the trigger `pattern` (DOORPING's re-stamping
    after each trigger update); every other image, and all labels, are unchanged."""
    images = split.images.clone()
    images[idx] = stamp(images[idx], attack, split.name, pattern)
    return data.Split(split.name, images, split.labels, split.classes)


def triggered_test(split: data.Split, attack: BadNets, pattern: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images whose true class is not the target, with the trigger stamped
    (normalised), and their true labels: the set the ASR is measured on."""
    _check_target(split, attack)  # else every image is kept and the ASR is silently 0
    keep = split.labels != attack.target
    return stamp(split.images[keep], attack, split.name, pattern), split.labels[keep]


def attack_success_rate(predictions: torch.Tensor, true_labels: torch.Tensor, target: int) -> float:
    """Fraction of images whose true class is not `target` that are predicted as `target`
    (images of the target class are excluded, whatever the model says on them)."""
    for name, t in (("predictions", predictions), ("true_labels", true_labels)):
        check_tensor(name, t, dims=1)
    if len(predictions) != len(true_labels):  # else the mask fails inside torch
        raise ValueError(f"predictions ({len(predictions)}) and true_labels ({len(true_labels)}) must have one "
                         "entry per image each")
    keep = true_labels != target
    if not keep.any():
        raise ValueError("no image outside the target class: the ASR is undefined")
    return (predictions[keep] == target).float().mean().item()


def backdoor_metrics(model: nn.Module, test: data.Split, attack: BadNets,
                     pattern: torch.Tensor | None = None) -> dict:
    """{"cta": clean test accuracy, "asr": attack success rate} of a model on a test split."""
    cta = (predict(model, test.images).argmax(1) == test.labels).float().mean().item()
    x, y = triggered_test(test, attack, pattern)
    return {"cta": cta, "asr": attack_success_rate(predict(model, x).argmax(1), y, attack.target)}


def trigger_brightness(images: torch.Tensor, attack: BadNets, name: str = "fashion") -> torch.Tensor:
    """Per image, the mean pixel value (in [0, 1], clipped) inside the trigger's patch
    minus the mean of the whole image: how strongly a (synthetic) image shows the trigger."""
    pixels = data.to_pixels(images, name).clamp(0, 1)
    row, col = attack.box(*images.shape[-2:])
    patch = pixels[..., row:row + attack.size, col:col + attack.size].flatten(1).mean(1)
    return patch - pixels.flatten(1).mean(1)


# ----------------------------------------------------------------------------------------
# DOORPING: the trigger re-optimised during condensation (Liu et al. 2023, Sec. 5).

@dataclass(frozen=True)
class Doorping:
    """DOORPING's trigger update, defaults from Liu et al.'s code (`update_trigger`)."""

    lr: float = 0.08          # Adam learning rate on the trigger's pixels
    max_steps: int = 1000     # Adam steps per update at most
    alpha: float = 10.0       # target activation: alpha x the neuron's activation at the update's start
    stop_loss: float = 0.5    # early stop once the squared error to the target falls below this
    seed: int = 0             # seed of the random initial trigger

    def __post_init__(self):
        check_range("DOORPING lr", self.lr, 1e-12, math.inf)
        check_range("DOORPING max_steps", self.max_steps, 0, math.inf, integer=True)
        check_range("DOORPING alpha", self.alpha, 1, math.inf)
        check_range("DOORPING stop_loss", self.stop_loss, 0, math.inf)
        check_seed("DOORPING seed", self.seed)


def initial_trigger(attack: BadNets, settings: Doorping, channels: int = 1) -> torch.Tensor:
    """A random (channels, size, size) pixel pattern in [1/255, 1], as their code's
    `randint(1, 256)` initialisation."""
    g = torch.Generator().manual_seed(settings.seed)
    return torch.randint(1, 256, (channels, attack.size, attack.size), generator=g).float() / 255


def _trigger_image(pattern: torch.Tensor, attack: BadNets, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The trigger alone on a black (pixel 0) image, normalised: the input of their update."""
    return stamp(data.normalize(torch.zeros(1, *shape), name), attack, name, pattern)


def _last_conv(net: nn.Module) -> nn.Conv2d:
    convs = [m for m in net.features.modules() if isinstance(m, nn.Conv2d)]
    if not convs or not hasattr(net, "embed"):
        raise ValueError(f"{type(net).__name__} has no convolutional `features` and `embed` (DC's ConvNet)")
    return convs[-1]


@torch.no_grad()
def trigger_neuron(net: nn.Module, pattern: torch.Tensor, attack: BadNets, name: str = "fashion",
                   shape: tuple[int, ...] = (1, 28, 28)) -> int:
    """The unit of `net.embed` (the layer before the classifier) that DOORPING drives.

    Their rule (after TrojanNN) takes the unit with the largest L1 norm of incoming weights;
    in DC's ConvNet the units of one channel share the last convolution's kernel, so each
    unit's score is that norm times how much the trigger moves its activation
    (|embed(trigger image) - embed(black image)|), which picks the position the patch reaches."""
    conv = _last_conv(net)
    x = _trigger_image(pattern, attack, name, shape)
    tie = (net.embed(x) - net.embed(data.normalize(torch.zeros(1, *shape), name)))[0].abs().cpu()
    weight_norm = conv.weight.detach().abs().sum((1, 2, 3)).cpu().repeat_interleave(len(tie) // conv.out_channels)
    return int((weight_norm * tie).argmax())


def update_trigger(net: nn.Module, pattern: torch.Tensor, attack: BadNets, settings: Doorping,
                   name: str = "fashion", shape: tuple[int, ...] = (1, 28, 28)) -> tuple[torch.Tensor, dict]:
    """One DOORPING trigger update on `net` (their `update_trigger`): Adam on the pattern's
    pixels until the chosen neuron's activation is within sqrt(stop_loss) of alpha times its
    starting value, `max_steps` are spent, or the loss has not improved by 0.1 % for `PATIENCE`
    steps (projected onto [0, 1] after each step, the pattern often cannot reach the target). The network's
    weights and mode are left as they were. Returns (new pattern, {"neuron", "steps",
    "activation_before", "activation_after"})."""
    dev = next(net.parameters()).device
    was_training = net.training
    net.eval()
    neuron = trigger_neuron(net, pattern.to(dev), attack, name, shape)
    p = pattern.detach().clone().to(dev).requires_grad_(True)
    opt = torch.optim.Adam([p], lr=settings.lr, betas=(0.9, 0.99))
    start = target = None
    best, since_best = math.inf, 0
    for steps in range(settings.max_steps + 1):
        act = net.embed(_trigger_image(p, attack, name, shape).to(dev))[0, neuron]
        if target is None:
            start, target = act.item(), settings.alpha * act.detach()
        loss = (act - target) ** 2
        if loss.item() < settings.stop_loss or steps == settings.max_steps:
            break
        if loss.item() < best * (1 - 1e-3):
            best, since_best = loss.item(), 0
        elif (since_best := since_best + 1) >= PATIENCE:  # in the box [0, 1] the target may be out of reach
            break
        p.grad, = torch.autograd.grad(loss, p)  # only the trigger: the network's gradients stay untouched
        opt.step()
        with torch.no_grad():
            p.clamp_(0, 1)
    net.train(was_training)
    return p.detach().cpu(), {"neuron": neuron, "steps": steps, "activation_before": start,
                              "activation_after": act.item()}


def doorping_hook(poisoned: data.Split, idx: torch.Tensor, attack: BadNets, settings: Doorping,
                  pattern: torch.Tensor, log: list[dict]) -> Callable[[nn.Module, int, int], data.Split]:
    """The `on_outer_step(net, iteration, step)` hook of `condensation.condense` that runs
    DOORPING: update the trigger on the current network, re-stamp the poisoned images `idx`
    of `poisoned` with it and hand the re-stamped split back as the real data. Appends one
    record per update to `log` ({"iteration", "step", "pattern", update_trigger's info});
    the latest pattern is `log[-1]["pattern"]` (or `pattern` before the first update)."""
    state = {"pattern": pattern}
    shape = tuple(poisoned.images.shape[1:])

    def hook(net: nn.Module, iteration: int, step: int) -> data.Split:
        state["pattern"], info = update_trigger(net, state["pattern"], attack, settings, poisoned.name, shape)
        log.append({"iteration": iteration, "step": step, "pattern": state["pattern"], **info})
        return restamp(poisoned, idx, attack, state["pattern"])

    return hook
