"""The report as one self-contained HTML page: the README's answer and findings first, then
every executed notebook (code hidden) behind a linked table of contents, math as MathML (the
page reads the same offline) and one anchor per heading."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from latex2mathml.converter import convert as tex_to_mathml
from nbconvert import HTMLExporter

TITLE = "Does training on a condensed dataset change robustness to attacks?"
# The README's part that carries the answer: from its abstract to its usage sections.
_ANSWER = re.compile(r"^## The answer, in short$.*?(?=^## Two commands$)", flags=re.M | re.S)
_IMAGE = re.compile(r"^!\[[^\]]*\]\([^)]*\)\s*$", flags=re.M)  # the notebooks below carry the figures
# Code spans are skipped; $$...$$ is display math, $...$ (within a line) inline math.
_MATH = re.compile(r"(`+).*?\1|\$\$(.+?)\$\$|\$([^$\n]+?)\$", flags=re.S)


def math_to_mathml(markdown: str) -> str:
    """`markdown` with its TeX math as MathML, which browsers render without any script."""
    def convert(m: re.Match) -> str:
        if m.group(2) is not None:
            return tex_to_mathml(m.group(2).strip(), display="block")
        if m.group(3) is not None:
            return tex_to_mathml(m.group(3), display="inline")
        return m.group(0)
    return _MATH.sub(convert, markdown)


def _anchor(title: str) -> str:
    """nbconvert's heading id: the text with spaces as dashes."""
    return title.replace(" ", "-")


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if match:
                return match.group(1).strip()
    return fallback


_HEADING_ID = re.compile(r'(<h[1-6] id=")([^"]+)(">.*?<a class="anchor-link" href="#)\2(">)', flags=re.S)


def unique_anchors(html: str) -> str:
    """`html` with repeated heading ids (nbconvert derives them from the text, so every notebook's
    "What this shows" shares one) numbered -2, -3, ... in page order, their links with them."""
    seen: dict[str, int] = {}

    def number(m: re.Match) -> str:
        seen[m.group(2)] = seen.get(m.group(2), 0) + 1
        anchor = m.group(2) if seen[m.group(2)] == 1 else f"{m.group(2)}-{seen[m.group(2)]}"
        return f"{m.group(1)}{anchor}{m.group(3)}{anchor}{m.group(4)}"

    return _HEADING_ID.sub(number, html)


def answer(readme: str) -> str:
    """The README's abstract and findings (its figures left to the notebooks)."""
    match = _ANSWER.search(readme)
    return _IMAGE.sub("", match.group(0)) if match else ""


def combined(paths: list[Path], readme: str = "") -> nbformat.NotebookNode:
    """The README's answer, a linked table of contents, then all notebooks' cells in order."""
    book = nbformat.v4.new_notebook()
    toc = [f"# {TITLE}", "", "The answer and the findings first, then the executed notebooks of the report "
           "in order (code hidden; the notebooks in `notebooks/` hold it).", "", "## Contents", ""]
    cells = []
    if readme:
        cells.append(nbformat.v4.new_markdown_cell(math_to_mathml(answer(readme))))
        toc.append(f"1. [The answer, in short](#{_anchor('The answer, in short')})")
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        title = _title(nb, path.stem)
        toc.append(f"1. [{title}](#{_anchor(title)})")
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = math_to_mathml(cell.source)
        cells += nb.cells
        book.metadata = nb.metadata
    book.cells = [nbformat.v4.new_markdown_cell("\n".join(toc)), *cells]
    return book


# nbconvert's page without the scripts it loads from the web (MathJax, require.js, mermaid):
# the report has no widgets, and its math is MathML already.
_SELF_CONTAINED = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def render(paths: list[Path], out: Path, readme: str = "") -> None:
    """The README's answer and the notebooks `paths` as one self-contained HTML page `out`."""
    exporter = HTMLExporter(template_name="lab", raw_template=_SELF_CONTAINED, exclude_input=True,
                            exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(combined(paths, readme), resources={"metadata": {"name": TITLE}})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(unique_anchors(body), encoding="utf-8")
