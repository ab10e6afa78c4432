"""The report for readers: README blocks generated from the results tables, and one HTML
page (`html_report`) built from the README's answer and the executed notebooks.

    python -m helpers.report                  # refresh README.md's blocks, write report/index.html
    python -m helpers.report --profile smoke  # only out/smoke/report/index.html

README.md holds blocks between `<!-- BEGIN name -->` and `<!-- END name -->`; each is
rewritten from the CSVs in results/, so no number in them is typed by hand. It refuses
(and leaves README.md as it was) unless every table is there, has the columns the
blocks read and comes from the default profile.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from . import backdoor_study, condensation_study, cw_study, distillation_study, html_report, robustness_study
from .config import REPO_ROOT, anchor_paths, output_root, results_dir, shown
from .profiles import DEFAULT_PROFILE, PROFILES
from .regenerate import notebooks

README = REPO_ROOT / "README.md"


def timings_block(df: pd.DataFrame) -> str:
    rows = ["| notebook | wall time (min) | cache artifacts built | device | threads |", "|---|---:|---:|---|---:|"]
    built = df.get("artifacts_built", pd.Series(index=df.index, dtype=float))  # absent from older timings
    rows += [f"| `{r.notebook}` | {r.seconds / 60:.1f} | {'?' if pd.isna(n) else f'{n:.0f}'} | {r.device} | "
             f"{r.cpu_threads} |" for r, n in zip(df.itertuples(), built)]
    rows.append(f"| **all** | **{df.seconds.sum() / 60:.1f}** | | | |")
    if built.isna().any():
        rows.append("\n?: timed before the harness counted the artifacts a run builds.")
    return "\n".join(rows)
























def abstract_block(cond: pd.DataFrame, fgsm: pd.DataFrame, backdoor: pd.DataFrame, cw: pd.DataFrame,
                   cw_fgsm: pd.DataFrame, cw_search: pd.DataFrame) -> str:
    """The README's answer, one sentence per study, every number from the results tables."""
    return "\n".join([condensation_study.abstract_line(cond), robustness_study.abstract_line(fgsm),
                      backdoor_study.abstract_line(backdoor), cw_study.abstract_line(cw, cw_fgsm, cw_search)])


# README block name -> (function of the results tables, the tables, what produces them)
BLOCKS = {"abstract": (abstract_block, ["condensation_eval", "fgsm", "backdoor", "cw", "cw_fgsm", "cw_search"],
                       "`make report`"),
          "timings": (timings_block, ["timings_default"], "`make report`"),
          "condensation": (condensation_study.readme_block, ["condensation_eval"], "notebook 02"),
          "fgsm": (robustness_study.readme_block, ["fgsm"], "notebook 03"),
          "backdoor": (backdoor_study.readme_block, ["backdoor"], "notebook 06"),
          "distillation": (distillation_study.readme_block, ["distillation"], "notebook 04"),
          "cw": (cw_study.readme_block, ["cw", "cw_fgsm", "cw_search"], "notebook 05")}

# README block name -> the figure shown under its table (alt text), once the notebook wrote it
FIGURES = {"condensation": ("02_accuracy_vs_ipc", "Test accuracy vs images per class"),
           "fgsm": ("03_accuracy_vs_eps", "Accuracy under attack vs eps"),
           "backdoor": ("06_asr_cta_vs_rate", "Attack success and clean accuracy vs poison rate"),
           "distillation": ("04_logit_magnitude", "Logit magnitude of every network"),
           "cw": ("05_cw_summary", "Carlini-Wagner success and mean distortion per network")}

# Per results table, the columns the blocks above read: the only ones they are given, so a
# block reading another fails the README test, and the notebook smoke test checks each
# notebook's tables against this.
REQUIRED_COLUMNS = {
    "condensation_eval": ["method", "ipc", "init", "mean", "std", "epochs", "n_models"],
    "fgsm": ["arch", "condition", "ipc", "label", "attack", "steps", "test_images", "seed", "eps", "accuracy",
             "clean_accuracy", "success_rate"],
    "backdoor": ["arch", "trigger", "condition", "ipc", "rate", "cta", "asr"],
    "distillation": ["model", "epochs", "test_acc", "mean_l1_logits", "n_train", "seed"],
    "cw": ["model", "attack", "case", "metric", "images", "success_rate", "mean", "median", "ci_low", "ci_high",
           "paired_images", "paired_mean", "median_all"],
    "cw_fgsm": ["model", "eps", "accuracy"],
    "cw_search": ["model", "attack", "max_iter", "images", "success_rate", "paired_mean", "used"],
    "timings_default": ["notebook", "seconds", "device", "cpu_threads"],
}


class ResultsIncomplete(ValueError):
    """The results cannot make the README: tables lacking columns or of another profile."""


def _producer(table: str) -> str:
    """What writes `table`: the last block reading it names its notebook (the abstract's is
    `make report`)."""
    return [who for _, tables, who in BLOCKS.values() if table in tables][-1]


# Read when present: tables written before the column existed still render ("?")
OPTIONAL_COLUMNS = {"timings_default": ("artifacts_built",)}


def results_tables(folder: Path | None = None) -> dict[str, pd.DataFrame]:
    """The tables the README reads (their `REQUIRED_COLUMNS` only) that exist in `folder`, by
    default the default profile's results; a missing table leaves its blocks pending (see
    `fill_readme`). Raises `ResultsIncomplete` naming every table that lacks a column or holds
    another profile's rows: such a table is never rendered."""
    folder = folder or results_dir(DEFAULT_PROFILE)
    tables, problems = {}, []
    for name, columns in REQUIRED_COLUMNS.items():
        path = folder / f"{name}.csv"
        if not path.exists():
            continue
        header = pd.read_csv(path, nrows=0).columns
        lacking = [c for c in [*columns, "profile"] if c not in header]
        if lacking:
            problems.append(f"{name}.csv lacks column(s) {lacking} (re-run {_producer(name)})")
            continue
        optional = [c for c in OPTIONAL_COLUMNS.get(name, ()) if c in header]
        tables[name] = pd.read_csv(path, usecols=[*columns, "profile", *optional])
        other = sorted(set(tables[name].profile) - {DEFAULT_PROFILE})
        if other:
            problems.append(f"{name}.csv holds rows of profile(s) {other}, not only {DEFAULT_PROFILE!r}")
    if problems:
        raise ResultsIncomplete(f"the results in {shown(folder)} cannot make the README: " + "; ".join(problems))
    return tables


def pending(name: str, tables: dict[str, pd.DataFrame]) -> list[str]:
    """Why block `name` cannot be written yet: its missing tables, and for the timings block
    every notebook without a time (the table of wall times shows a complete run only)."""
    _, needed, _ = BLOCKS[name]
    why = [f"`results/{t}.csv` (written by {_producer(t)})" for t in needed if t not in tables]
    if name == "timings" and not why:
        untimed = sorted({p.stem for p in notebooks()} - set(tables["timings_default"].notebook))
        why += [f"a wall time for `{nb}`" for nb in untimed]
    return why


def block(name: str, tables: dict[str, pd.DataFrame]) -> str:
    """The generated text of README block `name` from `results_tables()`, or a note saying
    what it still waits for."""
    why = pending(name, tables)
    if why:
        return (f"*Pending: not yet regenerated in the `{DEFAULT_PROFILE}` profile with the current code; "
                f"waits for {', '.join(why)}.*")
    make, needed, _ = BLOCKS[name]
    text = make(*(tables[t] for t in needed))
    stem, alt = FIGURES.get(name, ("", ""))
    if stem and (README.parent / "figures" / f"{stem}.png").exists():  # links are relative to the README
        text += f"\n\n![{alt}](figures/{stem}.png)"
    return text


def fill_readme(text: str, tables: dict[str, pd.DataFrame] | None = None) -> str:
    """`text` with every generated block rewritten from `tables` (default: `results_tables()`)."""
    tables = results_tables() if tables is None else tables
    for name in BLOCKS:
        pattern = re.compile(rf"(<!-- BEGIN {name} -->).*?(<!-- END {name} -->)", flags=re.S)
        text = pattern.sub(lambda m, name=name: f"{m.group(1)}\n{block(name, tables)}\n{m.group(2)}", text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default=DEFAULT_PROFILE, choices=sorted(PROFILES),
                        help="whose executed notebooks make the HTML page; only the default's refresh README.md")
    parser.add_argument("--out", type=Path, help="the HTML page (default: report/index.html under the "
                                                 "profile's output folder)")
    args = parser.parse_args(argv)
    anchor_paths()
    root = output_root(args.profile)
    if args.profile == DEFAULT_PROFILE:
        try:
            tables = results_tables()
        except ResultsIncomplete as err:
            print(f"README.md left as it was: {err}", file=sys.stderr)
            return 1
        README.write_text(fill_readme(README.read_text(encoding="utf-8"), tables), encoding="utf-8")
        waiting = [name for name in BLOCKS if pending(name, tables)]
        print(f"refreshed {README.name}" + (f"; blocks still pending: {', '.join(waiting)}" if waiting else ""))
    else:
        print(f"{README.name} left as it is: it shows the {DEFAULT_PROFILE} profile's results only")
    paths = notebooks(folder=root / "notebooks")
    if not paths:
        print(f"no executed notebooks in {shown(root / 'notebooks')}: run `python -m helpers.regenerate "
              f"--profile {args.profile}` first", file=sys.stderr)
        return 1
    out = args.out or root / "report" / "index.html"
    html_report.render(paths, out, README.read_text(encoding="utf-8"))
    print(f"wrote {shown(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
