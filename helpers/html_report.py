"""The report as one self-contained HTML page: its title (the README's first heading), the
README's answer (the generated abstract) and findings first, then every executed notebook (code
hidden) behind a linked table of contents, math as MathML (the page reads the same offline).
Every heading's anchor is unique on the page: a notebook's carry its number (`03-Conclusion`),
and the links in each part follow them."""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
from latex2mathml.converter import convert as tex_to_mathml
from nbconvert import HTMLExporter

TITLE = "Does training on a condensed dataset change robustness to attacks?"  # for a README without a title
ABSTRACT_MARKER = "<!-- BEGIN abstract -->"  # the block helpers.report writes the answer into
README_PART = "readme"  # the cell-id prefix of the README's cells on the page; a notebook's is its number
_FENCE = re.compile(r"^```.*?^```[^\n]*$", flags=re.M | re.S)
_SECTION = re.compile(r"^(#{2,3}) ([^\n]+)\n.*?(?=^#{2,3} |\Z)", flags=re.M | re.S)
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


def readme_title(readme: str) -> str:
    """The README's first `# ` heading (outside code blocks), else `TITLE`."""
    match = re.search(r"^#[ \t]+(.+?)[ \t#]*$", _FENCE.sub("", readme), flags=re.M)
    return match.group(1).strip() if match else TITLE


def _sections(readme: str) -> list[tuple[int, str, str]]:
    """The README's `## ` and `### ` sections: (level, heading, markdown up to the next one)."""
    return [(len(m.group(1)), m.group(2).strip(), m.group(0)) for m in _SECTION.finditer(readme)]


def _chapters(readme: str) -> list[tuple[str, str]]:
    """The README's `## ` sections with their subsections: (heading, markdown)."""
    chapters: list[tuple[str, str]] = []
    for level, heading, text in _sections(readme):
        if level == 2:
            chapters.append((heading, text))
        elif chapters:
            chapters[-1] = (chapters[-1][0], chapters[-1][1] + text)
    return chapters


def abstract(readme: str) -> str:
    """The README's section that holds the generated abstract (else its first section), its
    figures left to the notebooks."""
    chapters = _chapters(readme)
    chosen = next((text for _, text in chapters if ABSTRACT_MARKER in text), chapters[0][1] if chapters else "")
    return _IMAGE.sub("", chosen).strip()


def findings(readme: str) -> str:
    """The README's findings section(s) (`## Findings...` with their subsections), figures left
    to the notebooks."""
    return _IMAGE.sub("", "".join(text for heading, text in _chapters(readme)
                                  if heading.lower().startswith("findings"))).strip()


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a README heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def parts(paths: list[Path]) -> list[str]:
    """Each notebook's prefix on the page: its number (`03` for 03_fgsm), or its stem when it has
    none or an earlier notebook has the same."""
    taken: list[str] = []
    for path in paths:
        number = re.match(r"\d+", path.stem)
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", path.stem)  # what a cell id may hold
        taken.append(number.group(0) if number and number.group(0) not in taken else stem)
    return taken


def _notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if match:
                return match.group(1).strip()
    return fallback


def _cell(source: str, index: int) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(math_to_mathml(source))
    cell.id = f"{README_PART}-{index}"
    return cell


def combined(paths: list[Path], readme: str = "") -> nbformat.NotebookNode:
    """The title, the README's abstract, a linked table of contents, the README's findings,
    then all notebooks' cells in order. Cell ids name their part (`readme-1`, `03-12`), by
    which `unique_anchors` tells the parts apart."""
    found = findings(readme)
    toc = ["## Contents", "", "The findings, then the executed notebooks of the report in order (code hidden; "
           "the notebooks in `notebooks/` hold it).", ""]
    toc += [f"{'1.' if level == 2 else '   1.'} [{heading}](#{github_slug(heading)})"
            for level, heading, _ in _sections(found)]
    book, cells = nbformat.v4.new_notebook(), []
    for path, part in zip(paths, parts(paths)):
        nb = nbformat.read(path, as_version=4)
        toc.append(f"1. [{_notebook_title(nb, path.stem)}]({path.name})")  # `unique_anchors` links it
        for i, cell in enumerate(nb.cells):
            cell.id = f"{part}-{i}"
            if cell.cell_type == "markdown":
                cell.source = math_to_mathml(cell.source)
        cells += nb.cells
        book.metadata = nb.metadata  # the kernel's language, for the page's code styling
    book.metadata["title"] = readme_title(readme)  # the page's <title>
    head = [_cell(f"# {book.metadata['title']}", 0), _cell(abstract(readme), 1) if readme else None,
            _cell("\n".join(toc), 2), _cell(found, 3) if found else None]
    book.cells = [c for c in head if c is not None] + cells
    return book


_CELL = re.compile(r'(?=<div\b[^>]*\bid="cell-id=)')
_CELL_PART = re.compile(r'<div\b[^>]*\bid="cell-id=([^"]+)-\d+"')
_HEADING = re.compile(r'(<h[1-6] id=")([^"]+)(">(.*?)<a class="anchor-link" href="#)\2(">)', flags=re.S)
_LINK = re.compile(r'<a (?![^>]*class="anchor-link")([^>]*?)href="([^"]*)"([^>]*)>(.*?)</a>', flags=re.S)


def unique_anchors(page: str, notebooks: dict[str, str] | None = None) -> str:
    """`page` with every heading id unique (nbconvert derives them from the heading's text, so
    every notebook's "What this shows" would share one) and its in-page links with them. A
    notebook's headings get its part as a prefix (`03-What-this-shows`; "03 · FGSM", which starts
    with it, keeps its id), taken from the cell ids `combined` gives; whatever still repeats is
    numbered -2, -3, ... in page order, and each part's links to its own headings follow them. In
    the README's part, links by GitHub's anchors (`#findings`) go to that heading, links to a
    README section the page leaves out become plain text, and links to a notebook
    (`notebooks/03_fgsm.ipynb`; `notebooks` maps stem to part) go to its first heading."""
    chunks = _CELL.split(page)
    chunk_parts = [m.group(1) if (m := _CELL_PART.match(c)) else None for c in chunks]
    seen: set[str] = set()
    ids: dict[str | None, dict[str, str]] = {}  # part -> old id -> new id (of its first heading with it)
    slugs: dict[str, str] = {}  # GitHub anchors of the README's headings -> new id
    first: dict[str | None, str] = {}  # part -> its first heading's new id

    def rename(m: re.Match, part: str | None) -> str:
        old = m.group(2)
        new = base = old if part in (None, README_PART) or old.startswith(f"{part}-") else f"{part}-{old}"
        n = 1
        while new in seen:
            n += 1
            new = f"{base}-{n}"
        seen.add(new)
        ids.setdefault(part, {}).setdefault(old, new)
        first.setdefault(part, new)
        if part == README_PART:
            slugs.setdefault(github_slug(html.unescape(re.sub(r"<[^>]+>", "", m.group(4)))), new)
        return f"{m.group(1)}{new}{m.group(3)}{new}{m.group(5)}"

    chunks = [_HEADING.sub(lambda m, p=p: rename(m, p), c) for c, p in zip(chunks, chunk_parts)]
    stems = {stem: first[part] for stem, part in (notebooks or {}).items() if part in first}

    def relink(m: re.Match, part: str | None) -> str:
        before, href, after, text = m.groups()
        name = href.rsplit("/", 1)[-1].removesuffix(".ipynb")
        if href.startswith("#"):
            old = href[1:]
            if old in ids.get(part, {}):
                href = "#" + ids[part][old]
            elif part == README_PART and old in slugs:
                href = "#" + slugs[old]
            elif part == README_PART and old not in seen:
                return text  # a README section the page leaves out
        elif href.endswith(".ipynb") and "://" not in href and name in stems:
            href = "#" + stems[name]
        return f'<a {before}href="{href}"{after}>{text}</a>'

    return "".join(_LINK.sub(lambda m, p=p: relink(m, p), c) for c, p in zip(chunks, chunk_parts))


# nbconvert's page without the scripts it loads from the web (MathJax, require.js, mermaid):
# the report has no widgets, and its math is MathML already.
_SELF_CONTAINED = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def render(paths: list[Path], out: Path, readme: str = "") -> None:
    """The README's title, answer and findings and the notebooks `paths` as one self-contained
    HTML page `out`."""
    exporter = HTMLExporter(template_name="lab", raw_template=_SELF_CONTAINED, exclude_input=True,
                            exclude_input_prompt=True, exclude_output_prompt=True)
    book = combined(paths, readme)
    body, _ = exporter.from_notebook_node(book, resources={"metadata": {"name": book.metadata["title"]}})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(unique_anchors(body, {p.stem: part for p, part in zip(paths, parts(paths))}), encoding="utf-8")
