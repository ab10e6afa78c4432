"""MNIST and FashionMNIST as normalised in-memory tensors, with class-indexed sampling."""

from __future__ import annotations

import hashlib
import os
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets

from .runtime import DATA_ROOT_ENV, data_root
from .validation import TORCH_SEEDS, is_int, require, seed_ok, seed_range

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
# SHA-256 of the original uncompressed IDX files, checked in every root (a root's own SHA256SUMS
# cannot tell MNIST from Fashion-MNIST). Their MD5s are the published ones of the uncompressed
# files (torchvision's `resources` list only the .gz archives' MD5s).
PUBLISHED_SHA256 = {
    "MNIST/raw/train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "MNIST/raw/train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "MNIST/raw/t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "MNIST/raw/t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "FashionMNIST/raw/train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "FashionMNIST/raw/train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "FashionMNIST/raw/t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "FashionMNIST/raw/t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# IDX magic numbers: 0x08 (unsigned bytes) in the third byte, the number of dimensions in the fourth.
IDX_MAGIC = {"images": 2051, "labels": 2049}
# What GNU `sha256sum -c` reads: `<hex>  <path>` (text), `<hex> *<path>` (binary), `<hex> <path>`
# (reversed BSD) and `SHA256 (<path>) = <hex>` (--tag); leading blanks allowed.
_SUM_LINE = re.compile(r"\s*(?P<hex>[0-9a-fA-F]{64}) [ *]?(?P<path>.*\S.*)")
_TAG_LINE = re.compile(r"\s*SHA256 ?\((?P<path>.+)\) ?= ?(?P<hex>[0-9a-fA-F]{64})")


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


def _fix(rel: str) -> str:
    return (f"Replace it with the original {rel} (torchvision downloads it into data/ when {DATA_ROOT_ENV} "
            f"is unset), or set {DATA_ROOT_ENV} to a folder holding the original files (on the project's "
            "build machines: ../shared/datasets).")


def _checksums(root: Path) -> dict[str, str]:
    """The root's `SHA256SUMS` as {path relative to the root: lowercase hex}, read as `sha256sum -c` does."""
    path = root / CHECKSUMS
    if not path.exists():
        return {}
    sums = {}
    for number, line in enumerate(path.read_text(errors="surrogateescape").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = _SUM_LINE.fullmatch(line) or _TAG_LINE.fullmatch(line)
        if not match:
            raise DatasetInvalid(
                f"{path}, line {number}: {line!r} is not a SHA-256 checksum line; expected "
                f"'<64 hex digits>  <path>' (or '<64 hex digits> *<path>'). Fix or delete the line, or "
                f"regenerate the file from {root} with `sha256sum */raw/*-ubyte > {CHECKSUMS}`.")
        rel = match["path"]
        while rel.startswith("./"):
            rel = rel[2:]
        sums[rel] = match["hex"].lower()
    return sums


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino


@lru_cache(maxsize=64)
def _sha256(key: tuple) -> str:
    """SHA-256 of the file `_stat_key` describes: each file is hashed once per process (0.05 s for
    the 47 MB training images), again only when it changes."""
    with open(key[0], "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _check_idx(path: Path, rel: str) -> None:
    """The IDX header (magic, count, 28x28) and the label values: a wrong file is named with what
    is wrong in it, never misread."""
    file = rel.rsplit("/", 1)[1]
    kind = "images" if "images" in file else "labels"
    count = _SPLIT_SIZES[file.split("-")[0]]
    with open(path, "rb") as f:
        head = f.read(16 if kind == "images" else 8)
    magic, n, *dims = struct.unpack(f">{len(head) // 4}I", head)
    found = next((f", the magic of an IDX {k} file" for k, m in IDX_MAGIC.items() if m == magic and k != kind), "")
    problem = None
    if magic != IDX_MAGIC[kind]:
        shape = "3 dimensions: images" if kind == "images" else "1 dimension: labels"
        problem = f"IDX magic number {magic}{found}, expected {IDX_MAGIC[kind]} (unsigned bytes, {shape})"
    elif n != count:
        problem = f"{n} {kind}, expected {count}" + ("" if kind == "images" else " (one per image of the split)")
    elif dims and dims != [28, 28]:
        problem = f"images of {dims[0]}x{dims[1]} pixels, expected 28x28"
    elif kind == "labels":
        labels = np.fromfile(path, dtype=np.uint8, offset=8)
        if labels.max() > 9:
            bad = int(np.argmax(labels > 9))
            problem = f"label {labels[bad]} at item {bad}, expected class labels 0..9"
    if problem:
        raise DatasetInvalid(f"{path} has {problem}: not {rel}. {_fix(rel)}")


def _validate(name: str, train: bool, root: Path) -> tuple:
    """Every file of the split has its IDX size, its checksum in the root's `SHA256SUMS` (when
    listed there) and a sound IDX header, then the published SHA-256 (last, so that what is
    wrong is named first); returns the files' `_stat_key`s."""
    folder = DATASETS[name][0].__name__ + "/raw"
    listed = _checksums(root)
    files = {f"{folder}/{file}": (root / folder / file, size) for file, size in _raw_files(name, train).items()}
    for rel, (path, size) in files.items():
        actual = path.stat().st_size
        if actual != size:
            raise DatasetInvalid(f"{path} has {actual} bytes, expected {size} (an uncompressed IDX file of "
                                 f"{_SPLIT_SIZES[path.name.split('-')[0]]} items): truncated or not this file. "
                                 f"{_fix(rel)}")
    keys = {rel: _stat_key(path) for rel, (path, _) in files.items()}
    for rel, (path, _) in files.items():
        digest = _sha256(keys[rel])
        if rel in listed and digest != listed[rel]:
            raise DatasetInvalid(f"{path} does not match its checksum in {root / CHECKSUMS} (SHA256 {listed[rel]}, "
                                 f"found {digest}): damaged or a different file. {_fix(rel)}")
        _check_idx(path, rel)
    for rel, (path, _) in files.items():
        digest = _sha256(keys[rel])
        if digest != PUBLISHED_SHA256[rel]:
            other = next((k for k, v in PUBLISHED_SHA256.items() if v == digest), None)
            what = f"it is {other}, " if other else "damaged or a different file, "
            raise DatasetInvalid(f"{path} is not the published {rel}: {what}SHA-256 {digest}, expected "
                                 f"{PUBLISHED_SHA256[rel]}. {_fix(rel)}")
    return tuple(keys.values())


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
def _read(name: str, train: bool, root: str, files: tuple) -> Split:
    """The checked split, normalised; `files` (their stat keys) only keys the cache. Read here, not
    by torchvision, which wants both splits on disk."""
    cls, mean, std = DATASETS[name]
    raw = Path(root) / cls.__name__ / "raw"
    prefix = "train" if train else "t10k"
    pixels = np.fromfile(raw / f"{prefix}-images-idx3-ubyte", dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28)
    labels = np.fromfile(raw / f"{prefix}-labels-idx1-ubyte", dtype=np.uint8, offset=8).astype(np.int64)
    images = ((torch.from_numpy(pixels).float() / 255.0 - mean) / std).contiguous()
    return Split(name, images, torch.from_numpy(labels), tuple(cls.classes))


def load(name: str, train: bool = True) -> Split:
    """A whole split of `name` ('mnist' or 'fashion'), normalised, from the data root.

    The files are checked first (sizes, IDX headers, published SHA-256s, and `SHA256SUMS`
    when the root has one). Only when none of a dataset's files is there and the root is the
    project's own `data/` does torchvision download them (internet needed); nothing is ever
    created under a `$DC_DATA_ROOT` that lacks the files. Each call returns its own copies of
    the tensors (0.06 s for a training split, a fifth of reading it again), so editing them in
    place cannot change later loads; `load.cache_clear()` forgets the splits read.
    """
    _check(name)
    cls = DATASETS[name][0]
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
    split = _read(name, train, str(root), _validate(name, train, root))
    return Split(name, split.images.clone(), split.labels.clone(), split.classes)


load.cache_clear = _read.cache_clear  # the tests' hook, as when `load` itself was an lru_cache


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


MNIST_TEST = 10000
STRATIFIED_MAX = 54210  # ten times the training images of MNIST's smallest class (5: 5421)

def mnist_splits(n_train: int, n_val: int, seed: int = 0,
                 n_test: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Pixel-space MNIST: a stratified training subset of `n_train`, a disjoint stratified
    validation subset of `n_val` from the rest of the training split, and the test set (the first
    `n_test` images; None: all 10,000).
    Returns {"train", "val", "test"} -> (images in [0, 1] (N, 1, 28, 28), labels)."""
    for name, value in (("n_train", n_train), ("n_val", n_val)):
        require(name, value, is_int(value) and value >= 10 and value % 10 == 0,
                "positive multiples of 10 (stratified: the same count per class)")
    require("n_train + n_val", n_train + n_val, n_train + n_val <= STRATIFIED_MAX,
            f"at most {STRATIFIED_MAX} (MNIST's smallest class has {STRATIFIED_MAX // 10} training images)")
    # n_test=True would silently mean one test image
    require("n_test", n_test, n_test is None or (is_int(n_test) and 1 <= n_test <= MNIST_TEST),
            f"None (all) or integers from 1 to {MNIST_TEST}")
    require("seed", seed, seed_ok(seed, TORCH_SEEDS), seed_range(TORCH_SEEDS))
    full = load("mnist", True)
    index = Split("mnist", torch.arange(len(full)), full.labels, full.classes)  # subsets of indices
    train_idx = stratified_subset(index, n_train, seed).images
    rest = torch.ones(len(full), dtype=torch.bool)
    rest[train_idx] = False
    val_idx = stratified_subset(index.subset(torch.nonzero(rest).flatten()), n_val, seed).images
    pixels = full.pixels()
    test = load("mnist", False)
    return {"train": (pixels[train_idx], full.labels[train_idx]), "val": (pixels[val_idx], full.labels[val_idx]),
            "test": (test.pixels()[:n_test], test.labels[:n_test])}
