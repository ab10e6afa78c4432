"""The HTML report, built from small synthetic notebooks and README: its title, the README's
abstract and findings before the notebooks, unique heading ids, in-page links that land, and
nothing loaded from the web."""

import re
from collections import Counter

import nbformat
import pytest

from helpers import html_report

README = """# A synthetic report

Intro that the page leaves out.

## The answer, in short

Generated from the results (details under [Findings](#findings)):

<!-- BEGIN abstract -->
- **Condensed sets are the synthetic answer.** Every number from the tables.
<!-- END abstract -->

## The notebooks

NOTEBOOK TABLE the page leaves out

## Findings

Every number below comes from the tables (see [Wall time](#wall-time)).

### First study: condensed vs real

[`notebooks/01_second.ipynb`](notebooks/01_second.ipynb) trains on the sets.

![A figure the notebooks carry](figures/01_figure.png)

## Two commands

```bash
# not a heading
make report
```

## Wall time

Left out of the page.
"""


def _notebook(path, title, *markdown):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"# {title}"),
                                         *(nbformat.v4.new_markdown_cell(m) for m in markdown),
                                         nbformat.v4.new_code_cell("1 + 1")])
    nbformat.write(nb, path)
    return path


@pytest.fixture
def page(tmp_path):
    paths = [_notebook(tmp_path / "00_first.ipynb", "00 · First", "## What this shows\n\nFirst's conclusion."),
             _notebook(tmp_path / "01_second.ipynb", "01 · Second", "Back to [the conclusion](#What-this-shows).",
                       "## What this shows\n\nSecond's conclusion, $F_T(x)$.")]
    html_report.render(paths, tmp_path / "report" / "index.html", README)
    return (tmp_path / "report" / "index.html").read_text(encoding="utf-8")


def test_the_page_has_the_readme_title(page):
    assert html_report.readme_title(README) == "A synthetic report"
    assert "<title>A synthetic report</title>" in page and page.count("<title>") == 1
    assert html_report.readme_title("no heading") == html_report.TITLE


def test_abstract_and_findings_come_before_the_notebooks(page):
    first_notebook = page.index('id="cell-id=00-0"')
    assert page.index("Condensed sets are the synthetic answer.") < first_notebook
    assert page.index("First study: condensed vs real") < first_notebook
    assert page.index("First's conclusion.") < page.index("Second's conclusion")
    for left_out in ["Intro that the page", "NOTEBOOK TABLE", "Two commands", "not a heading", "figures/01_figure"]:
        assert left_out not in page, left_out


def test_heading_ids_are_unique_and_carry_the_notebook_number(page):
    headings = re.findall(r'<h[1-6] id="([^"]+)"', page)
    assert [h for h, n in Counter(headings).items() if n > 1] == []
    assert {"00-What-this-shows", "01-What-this-shows"} <= set(headings)
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert [i for i, n in Counter(ids).items() if n > 1] == []


def test_in_page_links_land(page):
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    assert [h for h in re.findall(r'href="#([^"]*)"', page) if h not in ids] == []
    assert 'href="#01-What-this-shows">the conclusion</a>' in page  # a notebook's own heading
    assert page.count('href="#Findings">Findings</a>') == 2  # the abstract's and the contents' link
    first_heading = re.search(r'<h1 id="(01-[^"]+)"', page).group(1)  # "01 · Second" keeps its own prefix
    assert page.count(f'href="#{first_heading}"') >= 3  # contents, the README's link to it, its anchor
    assert "(see Wall time)" in page  # a link to a README section the page leaves out: plain text
    assert 'href="#First-study:-condensed-vs-real"' in page  # contents lists the findings' subsections


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
