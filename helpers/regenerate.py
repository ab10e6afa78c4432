"""Execute the report's notebooks in order with papermill.

    python -m helpers.regenerate [--profile default] [--only 01 02]

Only the default profile writes the committed outputs (notebooks/, figures/, results/);
any other profile writes into `out/<profile>/` (git-ignored). Each notebook runs with
kernel `python3` in its folder; its figures and tables go to a staging folder and are
moved into place, and the executed notebook written back (volatile metadata and
papermill's injected cell removed), only when every cell succeeded. The run stops at
the first failure, naming the notebook and cell and keeping the executed copy as
`NN_name.failed.ipynb` (removed when that notebook later succeeds). Temporary files carry
the id of the run that made them: the next run of a notebook removes those of killed runs
and leaves those of live ones alone. Wall times go to `timings_<profile>.csv` after each
notebook with the number of cache artifacts the notebook built (0 on a warm re-run: its
time is then not a from-scratch cost); the README quotes the default profile's.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import platform
import re
import shutil
import socket
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
import zmq
from jupyter_client import AsyncKernelManager

from .config import (
    FIGURES_DIR_ENV,
    NOTEBOOKS_DIR,
    PROFILE_ENV,
    REPO_ROOT,
    RESULTS_DIR_ENV,
    anchor_paths,
    figures_dir,
    output_root,
    results_dir,
    shown,
)
from .plotting import save_table
from .profiles import DEFAULT_PROFILE, PROFILES
from .progress import BATCH_ENV
from .runtime import cache_dir, device

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
    fd, tmp = tempfile.mkstemp(prefix=f".{notebook.stem}.{_owner()}-", suffix=".source.ipynb", dir=notebook.parent)
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


class _KernelManager(AsyncKernelManager):
    """The notebooks' kernel without the two lines of noise it printed on every run:
    * ipykernel warns that it runs over TCP without encryption unless its manager provisions
      CurveZMQ keys: provisioned wherever pyzmq supports them;
    * jupyter_client interrupts a kernel before shutting it down (for a busy one); papermill
      shuts down an idle one, and the interrupt made it log `ERROR | KeyboardInterrupt caught
      in kernel` when it landed inside a message handler. A busy kernel still serves the
      shutdown request (control channel), and one that does not stop is killed."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if zmq.has("curve") and self.has_trait("transport_encryption"):
            self.transport_encryption = "auto"  # only for a kernelspec that declares support

    async def _async_interrupt_kernel(self) -> None:
        if not self.shutting_down:
            await super()._async_interrupt_kernel()


def _owner() -> str:
    """The run's id in its temporary files' names: `<pid>@<host>`."""
    return f"{os.getpid()}@{socket.gethostname()}"


def _ended(pid: str | None, host: str | None) -> bool:
    """Whether the run that named a temporary file has ended: unmarked names (from before runs
    were marked) count as ended; another machine's runs cannot be checked and count as live."""
    if pid is None:
        return True
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, OverflowError):
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def _remove_leftovers(notebook: Path, folders: list[Path]) -> list[Path]:
    """Remove the temporary files and staging folders of ended runs of `notebook` (source and
    executed copies, staged outputs) from `folders`; return what was removed."""
    stem, owner = re.escape(notebook.stem), r"(?:(?P<pid>\d+)@(?P<host>[^/]+)-)?[a-z0-9_]{8}"  # mkstemp's 8 last
    names = [re.compile(rf"\.{stem}\.{owner}\.(?:source|running)\.ipynb"), re.compile(rf"\.staging-{stem}-{owner}")]
    removed = []
    for folder in dict.fromkeys(folders):
        for path in sorted(folder.glob(".*")) if folder.is_dir() else []:
            m = next(filter(None, (n.fullmatch(path.name) for n in names)), None)
            if m and _ended(m["pid"], m["host"]):
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
                removed.append(path)
    return removed


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
    staging = [Path(tempfile.mkdtemp(prefix=f".staging-{notebook.stem}-{_owner()}-", dir=t)) for t in targets]
    try:
        # PYTHONPATH: the kernel imports this clone's helpers even for a notebook outside it.
        with _environ(**{BATCH_ENV: "1", PROFILE_ENV: profile, FIGURES_DIR_ENV: str(staging[0]),
                         RESULTS_DIR_ENV: str(staging[1]),
                         "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}):
            pm.execute_notebook(str(source), str(output), parameters={"profile": profile, **parameters},
                                kernel_name="python3", cwd=str(notebook.parent), progress_bar=False,
                                kernel_manager_class=_KernelManager)
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
    parser.add_argument("--only", nargs="+", help="notebook numbers or names, e.g. 00 03")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS_DIR, help="folder of the notebooks to run")
    args = parser.parse_args(argv)
    anchor_paths()
    folder = args.notebooks.absolute()
    if not folder.is_dir():  # checked before out_dir, which is this folder for the default profile, is made
        parser.error(f"--notebooks {shown(folder)}: no such folder")
    chosen = notebooks(args.only, folder)
    if not chosen:
        parser.error(f"no report notebooks (NN_name.ipynb) in {shown(folder)}")
    out_dir = folder if args.profile == DEFAULT_PROFILE else output_root(args.profile) / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    with _environ(**{PROFILE_ENV: args.profile}):
        for nb in chosen:
            print(f"[{time.strftime('%H:%M:%S')}] {nb.name} (profile {args.profile}) ...", flush=True)
            removed = _remove_leftovers(nb, [folder, out_dir, figures_dir(args.profile), results_dir(args.profile)])
            if removed:
                print(f"    removed leftovers of ended runs: {', '.join(shown(p) for p in removed)}", flush=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{nb.stem}.{_owner()}-", suffix=".running.ipynb", dir=out_dir)
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
            (out_dir / f"{nb.stem}.failed.ipynb").unlink(missing_ok=True)  # a stale failure
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
    path.parent.mkdir(parents=True, exist_ok=True)
    # Runs finishing together each read, change and rewrite the table: one at a time (the lock
    # file stays: removing it would let a waiting run lock a file nobody else sees).
    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = pd.DataFrame([timing])
        if path.exists():
            old = pd.read_csv(path)
            rows = pd.concat([old[old.notebook != timing["notebook"]], rows]).sort_values("notebook")
        save_table(rows, f"timings_{profile}")


if __name__ == "__main__":
    sys.exit(main())
