"""The notebook side of the settings: the running profile, where its figures and tables go, and
a notebook's first call `start`. Device, seeding and the data and cache roots are `runtime`'s."""

from __future__ import annotations

import numbers
import os
from pathlib import Path

from . import engine
from .profiles import DEFAULT_PROFILE, PROFILES
from .runtime import CACHE_DIR_ENV, DATA_ROOT_ENV, REPO_ROOT, env_path

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"

# The profile of the running notebook: set by `start` and by the regeneration harness.
PROFILE_ENV = "DC_PROFILE"
# Override where figures and tables go (the harness's staging folders, the tests' temporary ones).
FIGURES_DIR_ENV = "DC_FIGURES_DIR"
RESULTS_DIR_ENV = "DC_RESULTS_DIR"
# Where profiles other than the default write their outputs: `out/<profile>/`, git-ignored.
OUT_DIR_ENV = "DC_OUT_DIR"
PATH_ENVS = (DATA_ROOT_ENV, CACHE_DIR_ENV, FIGURES_DIR_ENV, RESULTS_DIR_ENV, OUT_DIR_ENV)




def anchor_paths() -> None:
    """Make the path variables that are set absolute from the current folder, so that a
    relative `DC_DATA_ROOT=../shared/datasets` means what it meant where it was typed,
    also for the notebook kernels (which run in `notebooks/`)."""
    for name in PATH_ENVS:
        if os.environ.get(name):
            os.environ[name] = str(Path(os.environ[name]).expanduser().absolute())






def active_profile() -> str:
    """The profile of the running notebook (`$DC_PROFILE`), else the default."""
    return os.environ.get(PROFILE_ENV, DEFAULT_PROFILE)


def output_root(profile: str | None = None) -> Path:
    """The clone itself for the default profile (the committed figures/, results/ and
    notebooks), `out/<profile>/` (or `$DC_OUT_DIR/<profile>/`) for any other."""
    profile = profile or active_profile()
    return REPO_ROOT if profile == DEFAULT_PROFILE else env_path(OUT_DIR_ENV, REPO_ROOT / "out") / profile


def figures_dir(profile: str | None = None) -> Path:
    """Figures (PNG and PDF): `$DC_FIGURES_DIR`, else the profile's `figures/`."""
    return env_path(FIGURES_DIR_ENV, output_root(profile) / "figures")


def results_dir(profile: str | None = None) -> Path:
    """Results tables (CSV): `$DC_RESULTS_DIR`, else the profile's `results/`."""
    return env_path(RESULTS_DIR_ENV, output_root(profile) / "results")


def shown(path: Path) -> str:
    """`path` as printed for readers: relative to the clone when inside it."""
    path = Path(path)
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def start(profile: str, seed: int, **params) -> None:
    """First call of every notebook, right after its `parameters` cell: checks `profile` and
    `seed`, sends the notebook's figures and tables to the profile's folders (only the
    default profile writes the committed ones), prints the parameters in one line, the
    engine's decision (how networks run in this process) in another and which `helpers`
    package runs in a third."""
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not a profile; valid: {', '.join(sorted(PROFILES))}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid; valid: an integer >= 0")
    os.environ[PROFILE_ENV] = profile
    line = ", ".join(f"{k}={v!r}" for k, v in {"profile": profile, "seed": seed, **params}.items())
    if profile != DEFAULT_PROFILE and FIGURES_DIR_ENV not in os.environ:
        line += f" (figures and tables go to {shown(output_root(profile))}/, not the committed ones)"
    print(f"Parameters: {line}")
    print(engine.describe())
    # Which clone's code runs (another one on PYTHONPATH would win silently): relative to the
    # kernel's folder inside this clone, so that committed outputs show no machine's paths.
    package, here = Path(__file__).resolve().parent, Path.cwd().resolve()
    print(f"helpers from {os.path.relpath(package, here)} (this clone)" if here.is_relative_to(REPO_ROOT)
          else f"helpers from {package}")
