"""Execute the report's notebooks in order with papermill.

    python -m helpers.regenerate [--profile default] [--only 01 02]

Each notebook runs with kernel `python3` in `notebooks/`, is written back with its
outputs (volatile metadata stripped, progress bars collapsed) only when it succeeded,
and the run stops at the first failure, naming the notebook and cell. Wall times go
to `results/timings_<profile>.csv` (the README quotes them).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import torch

from .config import NOTEBOOKS_DIR, REPO_ROOT, device, results_dir
from .plotting import save_table
from .profiles import DEFAULT_PROFILE, PROFILES
from .progress import BATCH_ENV


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The report's notebooks `NN_*.ipynb` in order, optionally only those whose number
    (or full stem) is listed."""
    found = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    chosen = [p for p in found if p.stem[:2] in only or p.stem in only]
    unknown = set(only) - {p.stem[:2] for p in chosen} - {p.stem for p in chosen}
    if unknown:
        raise SystemExit(f"no notebook matches {sorted(unknown)}; valid: {[p.stem for p in found]}")
    return chosen


def _collapse_redraws(text: str) -> str:
    """Keep only the last state of each carriage-return-redrawn line (tqdm)."""
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def strip_volatile(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop timestamps and durations so re-runs differ only where results differ."""
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in ("papermill", "execution"):
            cell.metadata.pop(key, None)
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                out["text"] = _collapse_redraws(out["text"])
    return nb


def execute(notebook: Path, output: Path, profile: str, **parameters) -> None:
    """Run one notebook with papermill into `output` (stripped). Raises on a failing cell;
    parameters the notebook's `parameters` cell does not declare are an error."""
    declared = pm.inspect_notebook(str(notebook))
    unknown = ({"profile", *parameters}) - set(declared)
    if unknown:
        raise ValueError(f"{notebook.name} has no parameter(s) {sorted(unknown)}; "
                         f"valid: {sorted(declared)}")
    os.environ[BATCH_ENV] = "1"
    # The kernel imports this checkout's helpers even when the shared venv's editable
    # install points at another clone.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    pm.execute_notebook(str(notebook), str(output), parameters={"profile": profile, **parameters},
                        kernel_name="python3", cwd=str(notebook.parent), progress_bar=False)
    nb = nbformat.read(output, as_version=4)
    nbformat.write(strip_volatile(nb), output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES))
    parser.add_argument("--only", nargs="*", help="notebook numbers or names, e.g. 00 03")
    args = parser.parse_args(argv)

    timings = []
    for nb in notebooks(args.only):
        tmp = nb.with_name(f".{nb.stem}.running.ipynb")
        print(f"[{time.strftime('%H:%M:%S')}] {nb.name} (profile {args.profile}) ...", flush=True)
        start = time.perf_counter()
        try:
            execute(nb, tmp, args.profile)
        except pm.PapermillExecutionError as err:
            failed = nb.with_name(f"{nb.stem}.failed.ipynb")
            os.replace(tmp, failed)
            print(f"FAILED: {nb.name}, cell {err.cell_index} ({err.ename}: {err.evalue}).\n"
                  f"The executed copy is {failed}; {nb.name} was left as it was.", file=sys.stderr)
            return 1
        seconds = time.perf_counter() - start
        os.replace(tmp, nb)
        print(f"    done in {seconds / 60:.1f} min", flush=True)
        timings.append({"notebook": nb.stem, "profile": args.profile, "seconds": round(seconds, 1),
                        "cpu_threads": torch.get_num_threads(), "device": device().type,
                        "machine": platform.processor() or platform.machine()})
    _record(pd.DataFrame(timings), args.profile)
    return 0


def _record(timings: pd.DataFrame, profile: str) -> None:
    """Update this run's rows of `results/timings_<profile>.csv`, keeping the others."""
    path = results_dir() / f"timings_{profile}.csv"
    if path.exists():
        old = pd.read_csv(path)
        timings = pd.concat([old[~old.notebook.isin(timings.notebook)], timings]).sort_values("notebook")
    save_table(timings, f"timings_{profile}")


if __name__ == "__main__":
    sys.exit(main())
