"""What every layer needs to run: the clone's root, the data and cache roots, the device and
seeding. Imports no settings, tables or plotting, so method modules can depend on it."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent

DATA_ROOT_ENV = "DC_DATA_ROOT"
CACHE_DIR_ENV = "DC_CACHE_DIR"


def env_path(name: str, default: Path) -> Path:
    """`$name` as a path; a relative one counts from the clone's root (commands make theirs
    absolute first, see `anchor_paths`; a kernel started by hand cannot know the caller's folder)."""
    path = Path(os.environ.get(name) or default).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def data_root() -> Path:
    """Dataset root in torchvision's layout: `$DC_DATA_ROOT`, else `data/`."""
    return env_path(DATA_ROOT_ENV, REPO_ROOT / "data")


def cache_dir() -> Path:
    """Artifact cache (condensed sets, trained models): `$DC_CACHE_DIR`, else `data/cache/`."""
    return env_path(CACHE_DIR_ENV, REPO_ROOT / "data" / "cache")


def device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)

