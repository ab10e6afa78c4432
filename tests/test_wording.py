"""The report speaks of its methods and results, not of how it was made: no process words in the
README (its prose and its generated blocks), in the notebooks' text (the markdown of the jupytext
sources people edit) or in what the executed notebooks print."""

import re

import jupytext
import nbformat
import pytest

from helpers import report
from helpers.config import NOTEBOOKS_DIR
from helpers.regenerate import notebooks

# Words about how the report was made (rounds, issues, earlier versions, development), not about
# its methods and results.
PROCESS_WORDS = re.compile(
    r"(?i)\bissues? \d|\bissue |\bthis round\b|\bthe earlier report\b|\bearlier report\b|\bseed report\b"
    r"|\bthe seed's\b|\bseed's own method\b|\bmeasured during development\b|\bduring development\b"
    r"|\bwas the former setting\b|\bformer setting\b|\(unconfirmed\)|\bprevious session\b|\btoday's\b"
    r"|\baimed at\b|\bnot yet re-timed\b")

_BLOCK = re.compile(r"<!-- BEGIN (\w+) -->(.*?)<!-- END \1 -->", flags=re.S)


def _hits(text: str) -> list[str]:
    """Each process word in `text` with the line it is on."""
    return [f"line {text[:m.start()].count(chr(10)) + 1}: {m.group(0)!r}" for m in PROCESS_WORDS.finditer(text)]


def test_the_words_are_caught():
    assert _hits("as measured during development (unconfirmed)\nsee issue 12, this round") == [
        "line 1: 'measured during development'", "line 1: '(unconfirmed)'", "line 2: 'issue 1'", "line 2: 'this round'"]
    assert _hits("a tissue of results, issued by the method; seeds 0-2") == []


def test_readme_prose():
    """The README outside its generated blocks (the blocks keep their lines, so line numbers hold)."""
    text = _BLOCK.sub(lambda m: m.group(0).count("\n") * "\n", report.README.read_text(encoding="utf-8"))
    assert _hits(text) == []


@pytest.mark.parametrize("name", list(report.BLOCKS))
def test_readme_generated_block(name):
    """A generated block's words come from the code that writes it (`helpers.report.BLOCKS`)."""
    blocks = dict(_BLOCK.findall(report.README.read_text(encoding="utf-8")))
    assert _hits(blocks.get(name, "")) == []


@pytest.mark.parametrize("path", sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py")), ids=lambda p: p.name)
def test_notebook_source_markdown(path):
    cells = jupytext.read(path).cells
    assert {i: _hits(c.source) for i, c in enumerate(cells) if c.cell_type == "markdown" and _hits(c.source)} == {}


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.name)
def test_executed_notebook_outputs(path):
    """What the code prints into the committed notebooks (their markdown is the sources', above)."""
    found = {}
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        text = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                       + str(o.get("data", {}).get("text/markdown", "")) for o in cell.get("outputs", []))
        if _hits(text):
            found[i] = _hits(text)
    assert found == {}
