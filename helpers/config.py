"""Paths, device and seeding: the one place that decides where things live and run."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"

DATA_ROOT_ENV = "DC_DATA_ROOT"
CACHE_DIR_ENV = "DC_CACHE_DIR"
# The smoke tests send figures and tables to a temporary folder through these.
FIGURES_DIR_ENV = "DC_FIGURES_DIR"
RESULTS_DIR_ENV = "DC_RESULTS_DIR"


def data_root() -> Path:
    """Dataset root in torchvision's layout: `$DC_DATA_ROOT`, else `data/`."""
    return Path(os.environ.get(DATA_ROOT_ENV, REPO_ROOT / "data")).expanduser()


def cache_dir() -> Path:
    """Artifact cache (condensed sets, trained models): `$DC_CACHE_DIR`, else `data/cache/`."""
    return Path(os.environ.get(CACHE_DIR_ENV, REPO_ROOT / "data" / "cache")).expanduser()


def figures_dir() -> Path:
    return Path(os.environ.get(FIGURES_DIR_ENV, REPO_ROOT / "figures"))


def results_dir() -> Path:
    """Results tables (CSV): `$DC_RESULTS_DIR`, else `results/`."""
    return Path(os.environ.get(RESULTS_DIR_ENV, REPO_ROOT / "results"))


def device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(dev: torch.device | None = None):
    """bf16 autocast: ~1.5x faster ConvNet training on CPU, native on recent GPUs."""
    dev = dev or device()
    return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
