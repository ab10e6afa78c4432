"""Smoke run of every notebook with the `smoke` profile: no cell may fail.

Notebooks run in order in one session, sharing one temporary cache, so later notebooks
reuse the artifacts earlier ones built, as in the real regeneration.
"""

import pytest

from helpers.regenerate import execute, notebooks


@pytest.mark.parametrize("notebook", notebooks(), ids=lambda p: p.stem)
def test_notebook_runs(notebook, tmp_path):
    out = tmp_path / notebook.name
    execute(notebook, out, profile="smoke")
    assert out.exists()


def test_unknown_parameter_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="valid"):
        execute(notebooks()[0], tmp_path / "x.ipynb", profile="smoke", no_such_parameter=1)
