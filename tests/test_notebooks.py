"""Smoke run of every notebook with the `smoke` profile: no cell may fail, the tables each
notebook writes have the columns the README's blocks read, and the executed notebook's
outputs are clean (no injected parameters cell, no stderr, no machine paths).

Notebooks run in order in one session, sharing one temporary cache, so later notebooks
reuse the artifacts earlier ones built, as in the real regeneration.
"""

import re
import tempfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from helpers.config import REPO_ROOT
from helpers.regenerate import execute, notebooks, out_of_sync, paired_source
from helpers.report import REQUIRED_COLUMNS

SAVED = re.compile(r"""save_table\([^,]+,\s*["']([a-z_]+)["']\)""")


def machine_paths() -> list[str]:
    return [str(REPO_ROOT), str(Path.home()), tempfile.gettempdir() + "/"]


def output_problems(nb: nbformat.NotebookNode) -> list[str]:
    """What a reader should not see in an executed notebook."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if "injected-parameters" in cell.metadata.get("tags", []):
            problems.append(f"cell {i}: papermill's injected-parameters cell")
        for out in cell.get("outputs", []):
            if out.get("name") == "stderr":
                problems.append(f"cell {i}: stderr output {out['text'][:200]!r}")
            text = str(out.get("text", "")) + str(out.get("data", {}).get("text/plain", ""))
            problems += [f"cell {i}: machine path {p!r} in {text[:200]!r}" for p in machine_paths() if p in text]
    return problems


@pytest.mark.parametrize("notebook", notebooks(), ids=lambda p: p.stem)
def test_notebook_runs(notebook, tmp_path):
    out = tmp_path / notebook.name
    published = execute(notebook, out, profile="smoke")
    for path in published:
        if path.suffix == ".csv" and path.stem in REQUIRED_COLUMNS:
            table = pd.read_csv(path)
            assert set(table.profile) == {"smoke"}, path.name
            lacking = set(REQUIRED_COLUMNS[path.stem]) - set(table.columns)
            assert not lacking, f"{path.name} lacks the column(s) report.py reads: {sorted(lacking)}"
    assert output_problems(nbformat.read(out, as_version=4)) == []


def test_every_table_the_report_reads_is_written_by_a_notebook():
    """Read from the notebooks' sources, so it holds whichever notebooks this run executes."""
    written = {name for nb in notebooks() for name in SAVED.findall(paired_source(nb).read_text())}
    assert set(REQUIRED_COLUMNS) - {"timings_default"} <= written


def test_unknown_parameter_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="valid"):
        execute(notebooks()[0], tmp_path / "x.ipynb", profile="smoke", no_such_parameter=1)


@pytest.mark.parametrize("notebook", notebooks(), ids=lambda p: p.stem)
def test_executed_notebook_matches_its_text_file(notebook):
    """People edit `NN_name.py`; the committed `.ipynb` must have been executed from it."""
    assert paired_source(notebook).exists(), f"{notebook.name} has no paired text file"
    assert out_of_sync(notebook) == [], f"{notebook.name} is stale: run `make report` (or jupytext --sync)"
