"""The report for readers: README blocks generated from the results tables, and one HTML
page built from the executed notebooks.

    python -m helpers.report    # refresh README.md's generated blocks, write report/index.html

README.md holds blocks between `<!-- BEGIN name -->` and `<!-- END name -->`; each is
rewritten from the CSVs in results/, so no number in them is typed by hand.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import pandas as pd
from nbconvert import HTMLExporter

from .condensation import PAPER_ACCURACY
from .config import REPO_ROOT, results_dir
from .regenerate import notebooks

README = REPO_ROOT / "README.md"


def _csv(name: str) -> pd.DataFrame | None:
    path = results_dir() / f"{name}.csv"
    return pd.read_csv(path) if path.exists() else None


def timings_block() -> str:
    df = _csv("timings_default")
    if df is None:
        return "_Not generated yet: run `make report`._"
    rows = ["| notebook | wall time (min) | device | threads |", "|---|---:|---|---:|"]
    rows += [f"| `{r.notebook}` | {r.seconds / 60:.1f} | {r.device} | {r.cpu_threads} |" for r in df.itertuples()]
    rows.append(f"| **all** | **{df.seconds.sum() / 60:.1f}** | | |")
    return "\n".join(rows)


def _pm(mean: float, std: float, scale: float = 1.0, digits: int = 1) -> str:
    std = 0.0 if pd.isna(std) else std
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def condensation_block() -> str:
    df = _csv("condensation_eval")
    if df is None:
        return "_Not generated yet: run notebook 02._"
    whole = df[df.method == "whole dataset"].iloc[0]
    small = df[df.method != "whole dataset"]
    rows = ["| ipc | condensed: method, init | condensed (%) | random real (%) | evaluation epochs | models |"
            " condensed, % of whole | paper DC (%) | paper random (%) |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for ipc, part in small.groupby("ipc", sort=True):
        c, r = part[part.method != "random real"].iloc[0], part[part.method == "random real"].iloc[0]
        paper_dc, paper_random = PAPER_ACCURACY[("DC", ipc)], PAPER_ACCURACY[("random real", ipc)]
        rows.append(f"| {ipc:.0f} | {c.method}, {c.init} | {_pm(c['mean'], c['std'])} | {_pm(r['mean'], r['std'])} | "
                    f"{c.epochs} | {c.n_models} | {100 * c['mean'] / whole['mean']:.0f} | "
                    f"{paper_dc[0]} ± {paper_dc[1]} | {paper_random[0]} |")
    rows.append(f"\nWhole training set (upper bound): {_pm(whole['mean'], whole['std'])} % ({whole.n_models} "
                f"model(s), {whole.epochs} epoch(s); paper {PAPER_ACCURACY[('whole dataset', None)][0]}, 300 "
                "epochs). Mean ± std over independently initialised ConvNets, full 10k test set, from "
                "`results/condensation_eval.csv`.")
    return "\n".join(rows)


FGSM_EPS = (0.0, 0.1, 0.2, 0.3)


def fgsm_block() -> str:
    df = _csv("fgsm")
    if df is None:
        return "_Not generated yet: run notebook 03._"
    df = df[df.eps.round(6).isin(FGSM_EPS)]
    summary = (df.groupby(["arch", "attack", "label", "eps"], sort=False)
               .agg(acc=("accuracy", "mean"), std=("accuracy", "std"), n=("accuracy", "size"),
                    images=("test_images", "first"), steps=("steps", "first")).reset_index())
    eps = sorted(summary.eps.unique())
    rows = ["| model | trained on | attack | " + " | ".join(f"eps {e:g}" for e in eps) + " | models | test images |",
            "|---|---|---|" + "---:|" * (len(eps) + 2)]
    for (arch, attack, label), part in summary.groupby(["arch", "attack", "label"], sort=False):
        part = part.set_index("eps")
        name = attack.upper() + ("" if attack == "fgsm" else f" ({part.steps.iloc[0]} steps)")
        rows.append(f"| {arch} | {label} | {name} | " + " | ".join(_pm(part.acc[e], part['std'][e], 100) for e in eps)
                    + f" | {part.n.min()} | {part.images.iloc[0]} |")
    rows.append("\nAccuracy under attack (%, mean ± std over models), eps in [0, 1] pixel units; eps 0 is the "
                "clean accuracy. From `results/fgsm.csv` (all eps there).")
    return "\n".join(rows)


def backdoor_block() -> str:
    df = _csv("backdoor")
    if df is None:
        return "_Not generated yet: run notebook 06._"
    summary = (df.assign(ipc=df.ipc.fillna(0).astype(int))
               .groupby(["arch", "condition", "ipc", "rate"], sort=False)
               .agg(cta=("cta", "mean"), cta_std=("cta", "std"), asr=("asr", "mean"), asr_std=("asr", "std"),
                    n=("asr", "size")).reset_index())
    rows = ["| model | condition | ipc | poison rate (%) | clean accuracy (%) | attack success (%) | models |",
            "|---|---|---:|---:|---:|---:|---:|"]
    rows += [f"| {r.arch} | {r.condition} | {r.ipc or 'all'} | {100 * r.rate:g} | {_pm(r.cta, r.cta_std, 100)} | "
             f"{_pm(r.asr, r.asr_std, 100)} | {r.n} |" for r in summary.itertuples()]
    rows.append("\nMean ± std over models (and condensation seeds), full 10k test set; attack success on the "
                "triggered test images whose class is not the target. From `results/backdoor.csv`.")
    return "\n".join(rows)


def distillation_block() -> str:
    df = _csv("distillation")
    if df is None:
        return "_Not generated yet: run notebook 04._"
    acc = df.pivot_table(index="model", columns="epochs", values="test_acc", sort=False)
    logits = df[df.epochs == df.epochs.max()].set_index("model").mean_l1_logits
    rows = ["| model | " + " | ".join(f"test acc., {e} epochs (%)" for e in acc.columns)
            + " | mean L1 logit norm |", "|---|" + "---:|" * (len(acc.columns) + 1)]
    rows += [f"| {model} | " + " | ".join(f"{100 * a:.2f}" for a in accs) + f" | {logits[model]:.0f} |"
             for model, accs in acc.iterrows()]
    rows.append(f"\n{df.n_train.iloc[0]} MNIST training images, {df.seed.nunique()} seed(s) per model, "
                "from `results/distillation.csv`.")
    return "\n".join(rows)


def cw_block() -> str:
    cw, fgsm = _csv("cw"), _csv("cw_fgsm")
    if cw is None or fgsm is None:
        return "_Not generated yet: run notebook 05._"
    eps = fgsm.eps.max()
    fgsm_acc = fgsm[fgsm.eps == eps].set_index("model").accuracy
    rows = ["| model | attack | images | success (%) | mean L2 | mean L0 (pixels) | mean L-inf |"
            f" FGSM acc. at eps {eps:g} (%) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    rows += [f"| {r.model} | {r.attack} | {r.images} | {100 * r.success_rate:.0f} | {r.mean_l2:.2f} | "
             f"{r.mean_l0:.0f} | {r.mean_linf:.2f} | {100 * fgsm_acc[r.model]:.1f} |" for r in cw.itertuples()]
    rows.append("\nFrom `results/cw.csv` and `results/cw_fgsm.csv`; distances on the [0, 1] pixel scale.")
    return "\n".join(rows)


BLOCKS = {"timings": timings_block, "condensation": condensation_block, "fgsm": fgsm_block,
          "backdoor": backdoor_block, "distillation": distillation_block, "cw": cw_block}


def fill_readme(text: str) -> str:
    """`text` with every generated block rewritten from the current results."""
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->).*?(<!-- END {name} -->)", flags=re.S)
        text = pattern.sub(lambda m, make=make: f"{m.group(1)}\n{make()}\n{m.group(2)}", text)
    return text


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
    README.write_text(fill_readme(README.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"refreshed {README.name}; wrote {render(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
