"""The report for readers without Jupyter: one HTML page built from the executed notebooks.

    python -m helpers.report            # -> report/index.html (git-ignored build output)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from .config import REPO_ROOT
from .regenerate import notebooks


def _title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#\s+(.+)$", cell.source, flags=re.M)
            if match:
                return match.group(1).strip()
    return fallback


def _anchor(title: str) -> str:
    """nbconvert's heading id: the text with spaces as dashes."""
    return title.replace(" ", "-")


def combined(paths: list[Path]) -> nbformat.NotebookNode:
    """All notebooks' cells in order behind a linked table of contents; the injected
    papermill parameter cells are dropped."""
    book = nbformat.v4.new_notebook()
    toc = ["# Does training on a condensed dataset change robustness to attacks?", "",
           "Executed notebooks of the report, in order (code hidden; the notebooks in "
           "`notebooks/` hold it).", "", "## Contents", ""]
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        title = _title(nb, path.stem)
        toc.append(f"1. [{title}](#{_anchor(title)})")
        book.cells += [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
        book.metadata = nb.metadata
    book.cells.insert(0, nbformat.v4.new_markdown_cell("\n".join(toc)))
    return book


def render(out: Path) -> Path:
    exporter = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(combined(notebooks()))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "report" / "index.html")
    args = parser.parse_args(argv)
    print(f"wrote {render(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
