"""MNIST and FashionMNIST as normalised in-memory tensors, with class-indexed sampling."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torchvision import datasets

from .config import DATA_ROOT_ENV, data_root

# name -> (torchvision class, mean, std); statistics as in DC's official code.
DATASETS = {
    "mnist": (datasets.MNIST, 0.1307, 0.3081),
    "fashion": (datasets.FashionMNIST, 0.2861, 0.3530),
}
# IDX files per split: name -> expected size in bytes (header + 28x28 uint8 images or uint8 labels).
_SPLIT_SIZES = {"train": 60000, "t10k": 10000}
RAW_FILES = {f"{split}-{kind}": (16 + n * 28 * 28 if kind.startswith("images") else 8 + n)
             for split, n in _SPLIT_SIZES.items() for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")}
CHECKSUMS = "SHA256SUMS"  # `sha256sum` format, paths relative to the data root; checked when present


class DatasetMissing(FileNotFoundError):
    """The dataset is neither on disk nor downloadable."""


class DatasetInvalid(ValueError):
    """A dataset file is on disk but is not the file it should be (size or checksum)."""


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


def _raw_files(name: str, train: bool) -> dict[str, int]:
    """The IDX files of one split and their expected sizes in bytes."""
    prefix = "train" if train else "t10k"
    return {f: size for f, size in RAW_FILES.items() if f.startswith(prefix)}


def _checksums(root: Path) -> dict[str, str]:
    path = root / CHECKSUMS
    if not path.exists():
        return {}
    return {rel.lstrip("*"): digest for digest, rel in (line.split(maxsplit=1) for line in
                                                       path.read_text().splitlines() if line.strip())}


def _validate(name: str, train: bool, root: Path) -> None:
    """Every file of the split has its IDX size and, when the root has `SHA256SUMS`, its checksum."""
    folder = DATASETS[name][0].__name__ + "/raw"
    expected = _checksums(root)
    for file, size in _raw_files(name, train).items():
        path = root / folder / file
        actual = path.stat().st_size
        if actual != size:
            raise DatasetInvalid(f"{path} has {actual} bytes, expected {size} (an uncompressed IDX file of "
                                 f"{_SPLIT_SIZES[file.split('-')[0]]} items): truncated or not this file. "
                                 f"Replace it with the original {file}.")
        digest = expected.get(f"{folder}/{file}")
        if digest and hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise DatasetInvalid(f"{path} does not match its checksum in {root / CHECKSUMS} (SHA256 {digest}): "
                                 f"damaged or a different file. Replace it with the original {file}.")


def _download(cls, root: Path) -> None:
    """torchvision's download into the project's own data/ (needs the internet); the folders it
    creates are removed again when it fails."""
    created = [p for p in (root / cls.__name__ / "raw", root / cls.__name__) if not p.exists()]
    try:
        cls(root=str(root), train=True, download=True)
    except BaseException:
        for folder in created:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def _missing_message(name: str, root: Path, missing: list[str], download_error: Exception | None) -> str:
    folder = DATASETS[name][0].__name__
    lines = [f"{name}: {', '.join(missing)} not found in {root / folder / 'raw'}."]
    if download_error:
        lines.append(f"torchvision could not download them into the project's data/ "
                     f"({type(download_error).__name__}: {download_error}).")
    lines += ["Expected there (uncompressed IDX, torchvision's layout): "
              + ", ".join(f"{f} ({size} bytes)" for f, size in RAW_FILES.items()) + ".",
              f"Fix: copy the files there, or set {DATA_ROOT_ENV} to a folder that holds {folder}/raw/ (on the "
              f"project's build machines: ../shared/datasets); with {DATA_ROOT_ENV} unset and internet access, "
              "they are downloaded into data/."]
    return "\n".join(lines)


@lru_cache(maxsize=4)
def load(name: str, train: bool = True) -> Split:
    """A whole split of `name` ('mnist' or 'fashion'), normalised, from the data root.

    The files are checked first (sizes, and `SHA256SUMS` when the root has one). Only when
    none of a dataset's files is there and the root is the project's own `data/` does
    torchvision download them (internet needed); nothing is ever created under a
    `$DC_DATA_ROOT` that lacks the files.
    """
    _check(name)
    cls, mean, std = DATASETS[name]
    root = data_root()
    raw = root / cls.__name__ / "raw"
    missing = [f for f in _raw_files(name, train) if not (raw / f).exists()]
    if missing:
        err = None
        if not os.environ.get(DATA_ROOT_ENV) and not any((raw / f).exists() for f in RAW_FILES):
            try:
                _download(cls, root)
            except Exception as exc:  # offline download failures come in many types
                err = exc
        missing = [f for f in _raw_files(name, train) if not (raw / f).exists()]
        if missing:
            raise DatasetMissing(_missing_message(name, root, missing, err)) from err
    _validate(name, train, root)
    ds = cls(root=str(root), train=train, download=False)
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
