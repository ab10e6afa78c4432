"""MNIST and FashionMNIST as normalised in-memory tensors, with class-indexed sampling."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torchvision import datasets

from .config import DATA_ROOT_ENV, data_root

# name -> (torchvision class, mean, std); statistics as in DC's official code.
DATASETS = {
    "mnist": (datasets.MNIST, 0.1307, 0.3081),
    "fashion": (datasets.FashionMNIST, 0.2861, 0.3530),
}
RAW_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


class DatasetMissing(FileNotFoundError):
    """The dataset is neither on disk nor downloadable."""


def _check(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")


def to_pixels(x: torch.Tensor, name: str) -> torch.Tensor:
    """Normalised images -> pixel space [0, 1] (unclamped)."""
    _check(name)
    _, mean, std = DATASETS[name]
    return x * std + mean


def normalize(x: torch.Tensor, name: str) -> torch.Tensor:
    """Pixel-space images in [0, 1] -> normalised."""
    _check(name)
    _, mean, std = DATASETS[name]
    return (x - mean) / std


@dataclass(frozen=True)
class Split:
    """One split held in memory: normalised images (N, 1, 28, 28) and int64 labels."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def mean_std(self) -> tuple[float, float]:
        return DATASETS[self.name][1:]

    def pixels(self) -> torch.Tensor:
        """The images in pixel space [0, 1]."""
        return to_pixels(self.images, self.name).clamp(0, 1)

    def class_indices(self, c: int) -> torch.Tensor:
        return torch.nonzero(self.labels == c).flatten()

    def sample_class(self, c: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n random images of class c (without replacement when n <= class size)."""
        idx = self.class_indices(c)
        if n <= len(idx):
            pick = torch.randperm(len(idx), generator=generator)[:n]
        else:
            pick = torch.randint(len(idx), (n,), generator=generator)
        return self.images[idx[pick]]

    def subset(self, indices: torch.Tensor) -> Split:
        return Split(self.name, self.images[indices], self.labels[indices], self.classes)


def _missing_message(name: str, root, err: Exception) -> str:
    folder = root / DATASETS[name][0].__name__ / "raw"
    return (f"{name} is not under {folder} and could not be downloaded ({type(err).__name__}: {err}).\n"
            f"Expected files there: {', '.join(RAW_FILES)} (uncompressed IDX, torchvision's layout).\n"
            f"Fix: connect to the internet once, copy the files into {folder}, or set "
            f"{DATA_ROOT_ENV} to a folder that holds {DATASETS[name][0].__name__}/raw/ "
            f"(on the project's build machines: ../shared/datasets).")


@lru_cache(maxsize=4)
def load(name: str, train: bool = True) -> Split:
    """A whole split of `name` ('mnist' or 'fashion'), normalised, from the data root.

    torchvision downloads into the data root when the files are missing and the
    internet is reachable; otherwise this fails with what to supply and where.
    """
    _check(name)
    cls, mean, std = DATASETS[name]
    root = data_root()
    try:
        ds = cls(root=str(root), train=train, download=True)
    except Exception as err:  # offline download failures come in many types
        raise DatasetMissing(_missing_message(name, root, err)) from err
    images = ((ds.data.float() / 255.0 - mean) / std).unsqueeze(1).contiguous()
    return Split(name, images, ds.targets.long().clone(), tuple(ds.classes))


def stratified_subset(split: Split, n: int, seed: int) -> Split:
    """A deterministic class-balanced subset of n images (n divisible by the class count)."""
    k = split.num_classes
    if n % k or n > len(split):
        raise ValueError(f"n={n} must be a multiple of {k} and at most {len(split)}")
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(k):
        idx = split.class_indices(c)
        if len(idx) < n // k:
            raise ValueError(f"class {c} has only {len(idx)} images, {n // k} requested")
        picks.append(idx[torch.randperm(len(idx), generator=g)[: n // k]])
    order = torch.cat(picks)
    return split.subset(order[torch.randperm(n, generator=g)])


def random_per_class(split: Split, ipc: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ipc random real images per class (the coreset baseline and DC's real init),
    ordered by class: images (ipc * k, 1, 28, 28), labels (ipc * k,)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.cat([split.sample_class(c, ipc, g) for c in range(split.num_classes)])
    labels = torch.arange(split.num_classes).repeat_interleave(ipc)
    return images, labels
