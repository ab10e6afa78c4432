"""Execute the report's notebooks in order with papermill.

    python -m helpers.regenerate [--profile default] [--only 01 02]

Only the default profile writes the committed outputs (notebooks/, figures/, results/);
any other profile writes into `out/<profile>/` (git-ignored). Each notebook runs with
kernel `python3` in its folder; its figures and tables go to a staging folder and are
moved into place, and the executed notebook written back (volatile metadata and
papermill's injected cell removed), only when every cell succeeded. The run stops at
the first failure, naming the notebook and cell and keeping the executed copy as
`NN_name.failed.ipynb`. Wall times go to `timings_<profile>.csv` after each notebook
with the number of cache artifacts the notebook built (0 on a warm re-run: its time is then
not a from-scratch cost); the README quotes the default profile's.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import jupytext
import nbformat
import pandas as pd
import papermill as pm
import torch

from .config import (
    FIGURES_DIR_ENV,
    NOTEBOOKS_DIR,
    PROFILE_ENV,
    REPO_ROOT,
    RESULTS_DIR_ENV,
    anchor_paths,
    cache_dir,
    device,
    figures_dir,
    output_root,
    results_dir,
    shown,
)
from .plotting import save_table
from .profiles import DEFAULT_PROFILE, PROFILES
from .progress import BATCH_ENV

# A report notebook is `NN_name.ipynb`: copies such as `NN_name.failed.ipynb` never match.
REPORT_NOTEBOOK = re.compile(r"\d\d_[A-Za-z0-9_]+\.ipynb")


def notebooks(only: list[str] | None = None, folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The report's notebooks `NN_*.ipynb` in `folder`, in order, optionally only those whose
    number (or full stem) is listed."""
    found = sorted(p for p in folder.glob("*.ipynb") if REPORT_NOTEBOOK.fullmatch(p.name))
    if not only:
        return found
    chosen = [p for p in found if p.stem[:2] in only or p.stem in only]
    unknown = set(only) - {p.stem[:2] for p in chosen} - {p.stem for p in chosen}
    if unknown:
        raise SystemExit(f"no notebook matches {sorted(unknown)}; valid: {[p.stem for p in found]}")
    return chosen


def paired_source(notebook: Path) -> Path:
    """The text file people edit for `notebook`: `NN_name.py` beside it (jupytext, percent
    format); the executed `.ipynb` is the readable output made from it."""
    return notebook.with_suffix(".py")


def out_of_sync(notebook: Path) -> list[str]:
    """Cells where the executed notebook and its paired text file disagree (type or source)."""
    text = jupytext.read(paired_source(notebook))
    executed = nbformat.read(notebook, as_version=4)
    problems = [f"{len(executed.cells)} cells in {notebook.name} vs {len(text.cells)} in the .py"] \
        if len(executed.cells) != len(text.cells) else []
    return problems + [f"cell {i}: {a.cell_type} {a.source[:60]!r} vs {b.cell_type} {b.source[:60]!r}"
                       for i, (a, b) in enumerate(zip(executed.cells, text.cells))
                       if (a.cell_type, a.source) != (b.cell_type, b.source)]


@contextlib.contextmanager
def _source_notebook(notebook: Path) -> Iterator[Path]:
    """`notebook` as an .ipynb built from its paired text file (when it has one), next to it
    so that the kernel runs in the same folder; removed afterwards."""
    paired = paired_source(notebook)
    if not paired.exists():
        yield notebook
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{notebook.stem}.", suffix=".source.ipynb", dir=notebook.parent)
    os.close(fd)
    try:
        jupytext.write(jupytext.read(paired), tmp, fmt="ipynb")
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def strip_volatile(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop timestamps, durations and papermill's injected-parameters cell, so re-runs differ
    only where results differ and a reader's edit of the `parameters` cell takes effect
    (the notebook's `start(...)` line prints the values it ran with)."""
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        for key in ("papermill", "execution"):
            cell.metadata.pop(key, None)
    return nb


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables (inherited by the kernel) for the duration of a block."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(notebook: Path, output: Path, profile: str, **parameters) -> list[Path]:
    """Run one notebook (built from its paired `.py` when it has one) with papermill into
    `output` (stripped) and return the figures and tables it published. They are written to
    staging folders and moved into the profile's folders only when every cell succeeded: a
    failing cell raises and publishes nothing.
    Parameters the notebook's `parameters` cell does not declare are an error."""
    with _source_notebook(notebook) as source:
        return _execute(source, notebook, output, profile, **parameters)


def _execute(source: Path, notebook: Path, output: Path, profile: str, **parameters) -> list[Path]:
    declared = pm.inspect_notebook(str(source))
    unknown = ({"profile", *parameters}) - set(declared)
    if unknown:
        raise ValueError(f"{notebook.name} has no parameter(s) {sorted(unknown)}; "
                         f"valid: {sorted(declared)}")
    targets = [figures_dir(profile), results_dir(profile)]
    for target in targets:
        target.mkdir(parents=True, exist_ok=True)
    # Unique names, in the target folders themselves: concurrent runs never collide, and
    # publishing is a rename within one file system.
    staging = [Path(tempfile.mkdtemp(prefix=f".staging-{notebook.stem}-", dir=t)) for t in targets]
    try:
        # PYTHONPATH: the kernel imports this clone's helpers even for a notebook outside it.
        with _environ(**{BATCH_ENV: "1", PROFILE_ENV: profile, FIGURES_DIR_ENV: str(staging[0]),
                         RESULTS_DIR_ENV: str(staging[1]),
                         "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}):
            pm.execute_notebook(str(source), str(output), parameters={"profile": profile, **parameters},
                                kernel_name="python3", cwd=str(notebook.parent), progress_bar=False)
        published = []
        for stage, target in zip(staging, targets):
            for f in sorted(stage.iterdir()):
                os.replace(f, target / f.name)
                published.append(target / f.name)
    finally:
        for stage in staging:
            shutil.rmtree(stage, ignore_errors=True)
    nb = nbformat.read(output, as_version=4)
    nbformat.write(strip_volatile(nb), output)
    return published


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    parser.add_argument("--only", nargs="*", help="notebook numbers or names, e.g. 00 03")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS_DIR, help="folder of the notebooks to run")
    args = parser.parse_args(argv)
    anchor_paths()
    folder = args.notebooks.absolute()
    out_dir = folder if args.profile == DEFAULT_PROFILE else output_root(args.profile) / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    with _environ(**{PROFILE_ENV: args.profile}):
        for nb in notebooks(args.only, folder):
            print(f"[{time.strftime('%H:%M:%S')}] {nb.name} (profile {args.profile}) ...", flush=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{nb.stem}.", suffix=".running.ipynb", dir=out_dir)
            os.close(fd)
            cached = _cache_files()
            start = time.perf_counter()
            try:
                execute(nb, Path(tmp), args.profile)
            except pm.PapermillExecutionError as err:
                failed = out_dir / f"{nb.stem}.failed.ipynb"
                os.replace(tmp, failed)
                print(f"FAILED: {nb.name}, cell {err.cell_index} ({err.ename}: {err.evalue}).\n"
                      f"The executed copy is {shown(failed)}; the notebook, figures and tables were left as they "
                      "were.", file=sys.stderr)
                return 1
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            seconds = time.perf_counter() - start
            os.replace(tmp, out_dir / nb.name)
            print(f"    done in {seconds / 60:.1f} min", flush=True)
            _record({"notebook": nb.stem, "profile": args.profile, "seconds": round(seconds, 1),
                     "artifacts_built": len(_cache_files() - cached),
                     "cpu_threads": torch.get_num_threads(), "device": device().type,
                     "machine": platform.processor() or platform.machine()}, args.profile)
    return 0


def _cache_files() -> set[str]:
    return {p.name for p in cache_dir().glob("*.pt")} if cache_dir().is_dir() else set()


def _record(timing: dict, profile: str) -> None:
    """Update this notebook's row of `timings_<profile>.csv`, keeping the others."""
    path = results_dir(profile) / f"timings_{profile}.csv"
    rows = pd.DataFrame([timing])
    if path.exists():
        old = pd.read_csv(path)
        rows = pd.concat([old[old.notebook != timing["notebook"]], rows]).sort_values("notebook")
    save_table(rows, f"timings_{profile}")


if __name__ == "__main__":
    sys.exit(main())
