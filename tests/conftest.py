"""Test session setup: outputs and cached artifacts go to a temporary folder, so tests
never touch the committed figures, results or the user's cache."""

import os

import pytest

from helpers.config import CACHE_DIR_ENV, FIGURES_DIR_ENV, RESULTS_DIR_ENV


@pytest.fixture(scope="session", autouse=True)
def isolated_outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    saved = {k: os.environ.get(k) for k in (CACHE_DIR_ENV, FIGURES_DIR_ENV, RESULTS_DIR_ENV)}
    os.environ[CACHE_DIR_ENV] = str(root / "cache")
    os.environ[FIGURES_DIR_ENV] = str(root / "figures")
    os.environ[RESULTS_DIR_ENV] = str(root / "results")
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
