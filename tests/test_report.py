"""The README's generated blocks agree with the committed results, its figures exist, and the
HTML report finds its parts (tests/test_html_report.py tests the page itself)."""

import re

from helpers import html_report, report
from helpers.config import REPO_ROOT


def test_readme_blocks_match_results():
    text = report.README.read_text(encoding="utf-8")
    for name in report.BLOCKS:
        assert f"<!-- BEGIN {name} -->" in text and f"<!-- END {name} -->" in text, name
    tables = report.results_tables(REPO_ROOT / "results")  # complete, default profile, required columns only
    assert report.fill_readme(text, tables) == text, "README is stale: run `python -m helpers.report`"


def test_readme_figures_exist():
    text = report.README.read_text(encoding="utf-8")
    for link in re.findall(r"\]\((figures/[^)]+)\)", text):
        assert (REPO_ROOT / link).exists(), link


def test_html_report_finds_the_readmes_answer_and_findings():
    readme = report.README.read_text(encoding="utf-8")
    book = html_report.combined(report.notebooks(), readme)
    assert book.metadata["title"] == html_report.readme_title(readme) == readme.splitlines()[0].removeprefix("# ")
    abstract = readme.split("<!-- BEGIN abstract -->")[1].split("\n")[1]
    assert abstract[:60] in book.cells[1].source and "![" not in book.cells[1].source  # figures: notebooks'
    toc, found = book.cells[2].source, book.cells[3].source
    assert found.startswith("## Findings") and "![" not in found and "## Two commands" not in found
    notebooks = [line for line in toc.splitlines() if line.startswith("1. [")][1:]  # after the findings
    assert [line.rsplit("(", 1)[1] for line in notebooks] == [f"{p.name})" for p in report.notebooks()]


def test_readme_layout_lists_every_module_once():
    text = report.README.read_text(encoding="utf-8")
    modules = sorted(p.stem for p in (REPO_ROOT / "helpers").glob("*.py") if p.stem != "__init__")
    counts = {m: len(re.findall(rf"^\| `{m}` \|", text, re.M)) for m in modules}
    assert {m: n for m, n in counts.items() if n != 1} == {}, "README's layout tables: one row per helpers module"
