"""The README's generated blocks agree with the committed results, its figures exist, and the
HTML report reads offline."""

import re

import nbformat

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


def test_combined_notebook_opens_with_the_answer_and_links_every_notebook():
    book = html_report.combined(report.notebooks(), report.README.read_text(encoding="utf-8"))
    toc, first = book.cells[0].source, book.cells[1].source
    assert "## Contents" in toc and toc.count("\n1. [") == len(report.notebooks()) + 1
    abstract = report.README.read_text(encoding="utf-8").split("<!-- BEGIN abstract -->")[1].split("\n")[1]
    assert abstract[:60] in first and "![" not in first  # the answer, without the README's figure links


def test_repeated_headings_get_their_own_anchors():
    heading = '<h2 id="What-this-shows">What this shows<a class="anchor-link" href="#What-this-shows">¶</a></h2>'
    ids = re.findall(r'id="([^"]+)"', html_report.unique_anchors(heading * 3))
    assert ids == ["What-this-shows", "What-this-shows-2", "What-this-shows-3"]
    assert 'href="#What-this-shows-3"' in html_report.unique_anchors(heading * 3)


def test_html_report_is_self_contained_with_math_as_mathml(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "# Title\n\nInline $F_T(x)$, a `$code$` span, and\n\n$$\\lVert x - x_0\\rVert_2^2 + c\\cdot f(x)$$")])
    nbformat.write(nb, tmp_path / "00_math.ipynb")
    html_report.render([tmp_path / "00_math.ipynb"], tmp_path / "index.html")
    html = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert f"<title>{html_report.TITLE}</title>" in html
    assert not re.search(r"""<(script|link)[^>]+(src|href)=["']?(https?:)?//""", html)  # nothing from the web
    assert html.count("<math") == 2 and 'display="block"' in html and "<code>$code$</code>" in html


def test_readme_layout_lists_every_module_once():
    text = report.README.read_text(encoding="utf-8")
    modules = sorted(p.stem for p in (REPO_ROOT / "helpers").glob("*.py") if p.stem != "__init__")
    counts = {m: len(re.findall(rf"^\| `{m}` \|", text, re.M)) for m in modules}
    assert {m: n for m, n in counts.items() if n != 1} == {}, "README's layout tables: one row per helpers module"


# Words about how the report was made, not about its methods and results.
PROCESS_WORDS = re.compile(r"(?i)\b(this round|issues? \d+|earlier report|previous session|today's|aimed at|"
                           r"seed report|the seed's|during development|former setting|not yet re-timed)\b")


def test_the_report_speaks_of_its_methods_and_results_only():
    texts = {"README.md": report.README.read_text(encoding="utf-8")}
    for path in report.notebooks():
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            outputs = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                              for o in cell.get("outputs", []))
            texts[f"{path.name} cell {i}"] = cell.source + outputs
    found = {where: m.group(0) for where, text in texts.items() if (m := PROCESS_WORDS.search(text))}
    assert found == {}
