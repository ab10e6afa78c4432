"""The README's generated blocks agree with the committed results, and its figures exist."""

import re

from helpers import report
from helpers.config import REPO_ROOT


def test_readme_blocks_match_results(monkeypatch):
    monkeypatch.setenv("DC_RESULTS_DIR", str(REPO_ROOT / "results"))
    text = report.README.read_text(encoding="utf-8")
    for name in report.BLOCKS:
        assert f"<!-- BEGIN {name} -->" in text and f"<!-- END {name} -->" in text, name
    assert report.fill_readme(text) == text, "README is stale: run `python -m helpers.report`"


def test_readme_figures_exist():
    text = report.README.read_text(encoding="utf-8")
    for link in re.findall(r"\]\((figures/[^)]+)\)", text):
        assert (REPO_ROOT / link).exists(), link


def test_combined_notebook_has_toc_and_every_notebook():
    book = report.combined(report.notebooks())
    toc = book.cells[0].source
    assert "## Contents" in toc and toc.count("\n1. [") == len(report.notebooks())
