"""Test session setup: outputs and cached artifacts go to a temporary folder, so tests
never touch the committed figures, results, notebooks or the user's cache; networks run
eager."""

import os

import pytest

from helpers import data
from helpers.config import (
    CACHE_DIR_ENV,
    FIGURES_DIR_ENV,
    OUT_DIR_ENV,
    PROFILE_ENV,
    RESULTS_DIR_ENV,
    anchor_paths,
)
from helpers.engine import ENGINE_ENV

OUTPUT_ENVS = {CACHE_DIR_ENV: "cache", FIGURES_DIR_ENV: "figures", RESULTS_DIR_ENV: "results", OUT_DIR_ENV: "out"}


@pytest.fixture(scope="session", autouse=True)
def isolated_outputs(tmp_path_factory):
    anchor_paths()  # a relative DC_DATA_ROOT counts from where pytest was started
    root = tmp_path_factory.mktemp("outputs")
    saved = {k: os.environ.get(k) for k in [*OUTPUT_ENVS, PROFILE_ENV, ENGINE_ENV]}
    os.environ.pop(PROFILE_ENV, None)
    # Eager fp32 everywhere (also in the notebook kernels): no probe, no compile, exact
    # numbers; tests/test_engine.py exercises the fast path explicitly.
    os.environ[ENGINE_ENV] = "eager"
    for name, folder in OUTPUT_ENVS.items():
        os.environ[name] = str(root / folder)
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def fashion():
    """The FashionMNIST training split (each load is its own copy: tests cannot corrupt it for others)."""
    return data.load("fashion", train=True)
