"""Paths, device and seeding: the one place that decides where things live and run."""

from __future__ import annotations

import numbers
import os
import random
from pathlib import Path

import numpy as np
import torch

from .profiles import DEFAULT_PROFILE, PROFILES

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"

DATA_ROOT_ENV = "DC_DATA_ROOT"
CACHE_DIR_ENV = "DC_CACHE_DIR"
# The profile of the running notebook: set by `start` and by the regeneration harness.
PROFILE_ENV = "DC_PROFILE"
# Override where figures and tables go (the harness's staging folders, the tests' temporary ones).
FIGURES_DIR_ENV = "DC_FIGURES_DIR"
RESULTS_DIR_ENV = "DC_RESULTS_DIR"
# Where profiles other than the default write their outputs: `out/<profile>/`, git-ignored.
OUT_DIR_ENV = "DC_OUT_DIR"
PATH_ENVS = (DATA_ROOT_ENV, CACHE_DIR_ENV, FIGURES_DIR_ENV, RESULTS_DIR_ENV, OUT_DIR_ENV)


def _env_path(name: str, default: Path) -> Path:
    """`$name` as a path; a relative one counts from the clone's root (commands make theirs
    absolute first, see `anchor_paths`; a kernel started by hand cannot know the caller's folder)."""
    path = Path(os.environ.get(name) or default).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def anchor_paths() -> None:
    """Make the path variables that are set absolute from the current folder, so that a
    relative `DC_DATA_ROOT=../shared/datasets` means what it meant where it was typed,
    also for the notebook kernels (which run in `notebooks/`)."""
    for name in PATH_ENVS:
        if os.environ.get(name):
            os.environ[name] = str(Path(os.environ[name]).expanduser().absolute())


def data_root() -> Path:
    """Dataset root in torchvision's layout: `$DC_DATA_ROOT`, else `data/`."""
    return _env_path(DATA_ROOT_ENV, REPO_ROOT / "data")


def cache_dir() -> Path:
    """Artifact cache (condensed sets, trained models): `$DC_CACHE_DIR`, else `data/cache/`."""
    return _env_path(CACHE_DIR_ENV, REPO_ROOT / "data" / "cache")


def active_profile() -> str:
    """The profile of the running notebook (`$DC_PROFILE`), else the default."""
    return os.environ.get(PROFILE_ENV, DEFAULT_PROFILE)


def output_root(profile: str | None = None) -> Path:
    """The clone itself for the default profile (the committed figures/, results/ and
    notebooks), `out/<profile>/` (or `$DC_OUT_DIR/<profile>/`) for any other."""
    profile = profile or active_profile()
    return REPO_ROOT if profile == DEFAULT_PROFILE else _env_path(OUT_DIR_ENV, REPO_ROOT / "out") / profile


def figures_dir(profile: str | None = None) -> Path:
    """Figures (PNG and PDF): `$DC_FIGURES_DIR`, else the profile's `figures/`."""
    return _env_path(FIGURES_DIR_ENV, output_root(profile) / "figures")


def results_dir(profile: str | None = None) -> Path:
    """Results tables (CSV): `$DC_RESULTS_DIR`, else the profile's `results/`."""
    return _env_path(RESULTS_DIR_ENV, output_root(profile) / "results")


def shown(path: Path) -> str:
    """`path` as printed for readers: relative to the clone when inside it."""
    path = Path(path)
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def start(profile: str, seed: int, **params) -> None:
    """First call of every notebook, right after its `parameters` cell: checks `profile` and
    `seed`, sends the notebook's figures and tables to the profile's folders (only the
    default profile writes the committed ones), prints the parameters in one line and the
    engine's decision (how networks run in this process) in another."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not a profile; valid: {', '.join(sorted(PROFILES))}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid; valid: an integer >= 0")
    os.environ[PROFILE_ENV] = profile
    line = ", ".join(f"{k}={v!r}" for k, v in {"profile": profile, "seed": seed, **params}.items())
    if profile != DEFAULT_PROFILE and FIGURES_DIR_ENV not in os.environ:
        line += f" (figures and tables go to {shown(output_root(profile))}/, not the committed ones)"
    print(f"Parameters: {line}")
    from .engine import describe  # engine imports config

    print(describe())


def device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
