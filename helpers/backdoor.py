"""BadNets backdoor (Gu, Dolan-Gavitt & Garg, 2017): a fixed trigger patch stamped on a
fraction of the training images, which are relabelled to one target class (all-to-one).

The trigger is a `size` x `size` square of pixel value `value` (in [0, 1]) placed in a
corner with a `margin` of pixels to the border. Poisoning picks exactly round(rate * N)
training images, uniformly at random (seeded) among those whose true class is not the
target, so every poisoned image is a label flip (choice as in Gu et al.'s all-to-one
attack; Liu et al.'s NAIVEATTACK samples from all images, which at rate r relabels
about r * 0.9 N of them). The returned split is normalised like `data.load`'s.

Metrics: clean test accuracy (CTA) on the untouched test set, and attack success rate
(ASR): the fraction of triggered test images whose true class is not the target that
the model classifies as the target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import data
from .training import load_model, predict, train_models

CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")


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
        if not 0 <= self.rate <= 1:
            raise ValueError(f"poison rate must be in [0, 1], got {self.rate}")
        if self.corner not in CORNERS:
            raise ValueError(f"unknown corner {self.corner!r}; valid: {', '.join(CORNERS)}")
        if self.size < 1 or self.margin < 0:
            raise ValueError(f"need size >= 1 and margin >= 0 (got size {self.size}, margin {self.margin})")
        if not 0 <= self.value <= 1:
            raise ValueError(f"trigger value is a pixel value in [0, 1], got {self.value}")

    def box(self, height: int = 28, width: int = 28) -> tuple[int, int]:
        """(row, column) of the patch's top-left pixel in an image of the given size."""
        if self.size + self.margin > min(height, width):
            raise ValueError(f"a {self.size}px trigger with margin {self.margin} does not fit {height}x{width}")
        row = height - self.margin - self.size if self.corner.startswith("bottom") else self.margin
        col = width - self.margin - self.size if self.corner.endswith("right") else self.margin
        return row, col

    def tag(self, dataset: str = "fashion") -> dict:
        """A JSON-able description of the poisoned training split (a cache key, e.g. the
        `data_tag` of `condensation.synthetic_set`)."""
        return {"attack": "badnets", "dataset": dataset, "split": "train", **asdict(self)}


def stamp(images: torch.Tensor, attack: BadNets, name: str | None = None) -> torch.Tensor:
    """A copy of `images` (N, C, H, W) with the trigger patch set to `attack.value`.

    Pixel-space images when `name` is None; otherwise images normalised for dataset
    `name`, and the patch gets the normalised value (the same image as stamping in
    pixel space and normalising, without round-off elsewhere)."""
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    value = attack.value if name is None else data.normalize(torch.tensor(attack.value), name).item()
    row, col = attack.box(*images.shape[-2:])
    out = images.clone()
    out[..., row:row + attack.size, col:col + attack.size] = value
    return out


def poison(split: data.Split, attack: BadNets) -> tuple[data.Split, torch.Tensor]:
    """The poisoned copy of a training split and the (sorted) indices of poisoned images.

    Exactly round(rate * len(split)) images, chosen with `attack.seed` among those whose
    label is not the target, get the trigger and the target label; all others are
    unchanged. Fails if there are not enough non-target images."""
    if not 0 <= attack.target < split.num_classes:
        raise ValueError(f"target {attack.target} is not a class of {split.name} (0..{split.num_classes - 1})")
    n = round(attack.rate * len(split))
    candidates = torch.nonzero(split.labels != attack.target).flatten()
    if n > len(candidates):
        raise ValueError(f"rate {attack.rate} asks for {n} poisoned images but only {len(candidates)} "
                         f"are outside the target class; lower the rate")
    g = torch.Generator().manual_seed(attack.seed)
    idx = candidates[torch.randperm(len(candidates), generator=g)[:n]].sort().values
    images, labels = split.images.clone(), split.labels.clone()
    images[idx] = stamp(images[idx], attack, split.name)
    labels[idx] = attack.target
    return data.Split(split.name, images, labels, split.classes), idx


def triggered_test(split: data.Split, attack: BadNets) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images whose true class is not the target, with the trigger stamped
    (normalised), and their true labels: the set the ASR is measured on."""
    keep = split.labels != attack.target
    return stamp(split.images[keep], attack, split.name), split.labels[keep]


def attack_success_rate(predictions: torch.Tensor, true_labels: torch.Tensor, target: int) -> float:
    """Fraction of images whose true class is not `target` that are predicted as `target`
    (images of the target class are excluded, whatever the model says on them)."""
    keep = true_labels != target
    if not keep.any():
        raise ValueError("no image outside the target class: the ASR is undefined")
    return (predictions[keep] == target).float().mean().item()


def backdoor_metrics(model: nn.Module, test: data.Split, attack: BadNets) -> dict:
    """{"cta": clean test accuracy, "asr": attack success rate} of a model on a test split."""
    cta = (predict(model, test.images).argmax(1) == test.labels).float().mean().item()
    x, y = triggered_test(test, attack)
    return {"cta": cta, "asr": attack_success_rate(predict(model, x).argmax(1), y, attack.target)}


# ----------------------------------------------------------------------------------------
# The study of notebook 06: conditions, training and the verdict.

CLEAN_TAG = {"dataset": "fashion", "split": "train"}  # condensation.synthetic_set's default data


def training_data(n_images: int | None = None, seed: int = 0) -> tuple[data.Split, dict]:
    """The clean FashionMNIST training split (or a stratified subset of `n_images`, for quick
    runs) and its tag; with the whole split the tag equals `condensation.synthetic_set`'s
    default, so clean condensed sets are shared with notebook 01's cache."""
    train = data.load("fashion", True)
    if n_images is None:
        return train, dict(CLEAN_TAG)
    return data.stratified_subset(train, n_images, seed), {**CLEAN_TAG, "subset": n_images, "subset_seed": seed}


def poisoned_data(clean: data.Split, clean_tag: dict, attack: BadNets) -> tuple[data.Split, torch.Tensor, dict]:
    """(poisoned split, poisoned indices, tag): `poison` plus a tag naming the clean data and
    the attack (pass it as `data_tag` to `condensation.synthetic_set`)."""
    poisoned, idx = poison(clean, attack)
    return poisoned, idx, {**clean_tag, "poison": attack.tag(clean.name)}


def train_and_measure(images: torch.Tensor, labels: torch.Tensor, *, arch: str, tag: dict, test: data.Split,
                      attack: BadNets, settings: dict) -> list[dict]:
    """Train `settings["n_models"]` networks of `arch` on (images, labels) with
    `training.train_models` (cached; `settings` are its keyword arguments, e.g.
    `condensation.evaluation_settings(profile)`), then measure each: CTA is the accuracy on
    the clean `test` split, ASR the attack success rate on its triggered non-target images.
    Returns one record per model: {"model_seed", "cta", "asr"}."""
    kwargs = {**settings, "arch": arch}
    results = train_models(images, labels, tag=tag, test=(test.images, test.labels), **kwargs)
    x, y = triggered_test(test, attack)
    out = []
    for r in results:
        model = load_model(arch, r["state_dict"])
        out.append({"model_seed": r["seed"], "cta": r["test_acc"],
                    "asr": attack_success_rate(predict(model, x).argmax(1), y, attack.target)})
    return out


def trigger_brightness(images: torch.Tensor, attack: BadNets, name: str = "fashion") -> torch.Tensor:
    """Per image, the mean pixel value (in [0, 1], clipped) inside the trigger's patch
    minus the mean of the whole image: how strongly a (synthetic) image shows the trigger."""
    pixels = data.to_pixels(images, name).clamp(0, 1)
    row, col = attack.box(*images.shape[-2:])
    patch = pixels[..., row:row + attack.size, col:col + attack.size].flatten(1).mean(1)
    return patch - pixels.flatten(1).mean(1)


def verdict(asr_condensed: float, asr_poisoned_full: float, asr_floor: float, tolerance: float = 0.05) -> str:
    """'removes', 'weakens' or 'keeps' the backdoor: condensation keeps it when the ASR after
    condensing retains at least 75% of the reference's (poisoned full data) ASR excess over the
    clean floor, removes it when it is within `tolerance` of the floor, weakens it otherwise;
    'undetermined' when the reference itself is within `tolerance` of the floor (no backdoor)."""
    excess_full = asr_poisoned_full - asr_floor
    excess = asr_condensed - asr_floor
    if excess_full <= tolerance:
        return "undetermined"
    if excess <= tolerance:
        return "removes"
    if excess >= 0.75 * excess_full:
        return "keeps"
    return "weakens"
