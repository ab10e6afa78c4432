"""The README's generated blocks agree with the committed results, its figures exist, and the
HTML report reads offline."""

import re

import nbformat

from helpers import report
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


def test_combined_notebook_has_toc_and_every_notebook():
    book = report.combined(report.notebooks())
    toc = book.cells[0].source
    assert "## Contents" in toc and toc.count("\n1. [") == len(report.notebooks())


def test_html_report_is_self_contained_with_math_as_mathml(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "# Title\n\nInline $F_T(x)$, a `$code$` span, and\n\n$$\\lVert x - x_0\\rVert_2^2 + c\\cdot f(x)$$")])
    nbformat.write(nb, tmp_path / "00_math.ipynb")
    report.render([tmp_path / "00_math.ipynb"], tmp_path / "index.html")
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"""<(script|link)[^>]+(src|href)=["']?(https?:)?//""", html)  # nothing from the web
    assert html.count("<math") == 2 and 'display="block"' in html and "<code>$code$</code>" in html


def test_readme_layout_lists_every_module_once():
    text = report.README.read_text(encoding="utf-8")
    modules = sorted(p.stem for p in (REPO_ROOT / "helpers").glob("*.py") if p.stem != "__init__")
    counts = {m: len(re.findall(rf"^\| `{m}` \|", text, re.M)) for m in modules}
    assert {m: n for m, n in counts.items() if n != 1} == {}, "README's layout tables: one row per helpers module"
