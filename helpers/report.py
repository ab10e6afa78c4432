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
from .models import DISPLAY_NAMES
from .regenerate import notebooks

README = REPO_ROOT / "README.md"


def _csv(name: str) -> pd.DataFrame | None:
    path = results_dir() / f"{name}.csv"
    return pd.read_csv(path) if path.exists() else None


def timings_block(df: pd.DataFrame) -> str:
    rows = ["| notebook | wall time (min) | device | threads |", "|---|---:|---|---:|"]
    rows += [f"| `{r.notebook}` | {r.seconds / 60:.1f} | {r.device} | {r.cpu_threads} |" for r in df.itertuples()]
    rows.append(f"| **all** | **{df.seconds.sum() / 60:.1f}** | | |")
    return "\n".join(rows)


def _pm(mean: float, std: float, scale: float = 1.0, digits: int = 1) -> str:
    std = 0.0 if pd.isna(std) else std
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def condensation_block(df: pd.DataFrame) -> str:
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


def _over_models(df: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    """Per group of `keys` (in order of appearance): mean and `<value>_std` of each value, and n rows."""
    groups = df.groupby(keys, sort=False)
    out = groups[values].mean().join(groups[values].std().add_suffix("_std")).join(groups.size().rename("n"))
    return out.reset_index()


FGSM_EPS = (0.0, 0.1, 0.2, 0.3)


def fgsm_block(df: pd.DataFrame) -> str:
    df = df[df.eps.round(6).isin(FGSM_EPS)]
    summary = _over_models(df, ["arch", "attack", "label", "steps", "test_images", "eps"], ["accuracy"])
    eps = sorted(summary.eps.unique())
    rows = ["| model | trained on | attack | " + " | ".join(f"eps {e:g}" for e in eps) + " | models | test images |",
            "|---|---|---|" + "---:|" * (len(eps) + 2)]
    for (arch, attack, label), part in summary.groupby(["arch", "attack", "label"], sort=False):
        part = part.set_index("eps")
        name = attack.upper() + ("" if attack == "fgsm" else f" ({part.steps.iloc[0]} steps)")
        rows.append(f"| {arch} | {label} | {name} | "
                    + " | ".join(_pm(part.accuracy[e], part.accuracy_std[e], 100) for e in eps)
                    + f" | {part.n.min()} | {part.test_images.iloc[0]} |")
    rows.append("\nAccuracy under attack (%, mean ± std over models), eps in [0, 1] pixel units; eps 0 is the "
                "clean accuracy. From `results/fgsm.csv` (all eps there).")
    return "\n".join(rows)


def backdoor_block(df: pd.DataFrame) -> str:
    summary = _over_models(df.assign(ipc=df.ipc.fillna(0).astype(int)), ["arch", "condition", "ipc", "rate"],
                           ["cta", "asr"])
    rows = ["| model | condition | ipc | poison rate (%) | clean accuracy (%) | attack success (%) | models |",
            "|---|---|---:|---:|---:|---:|---:|"]
    rows += [f"| {DISPLAY_NAMES[r.arch]} | {r.condition} | {r.ipc or 'all'} | {100 * r.rate:g} | "
             f"{_pm(r.cta, r.cta_std, 100)} | {_pm(r.asr, r.asr_std, 100)} | {r.n} |" for r in summary.itertuples()]
    rows.append("\nMean ± std over models (and condensation seeds), full 10k test set; attack success on the "
                "triggered test images whose class is not the target. From `results/backdoor.csv`.")
    return "\n".join(rows)


def distillation_block(df: pd.DataFrame) -> str:
    acc = df.pivot_table(index="model", columns="epochs", values="test_acc", sort=False)
    logits = df[df.epochs == df.epochs.max()].set_index("model").mean_l1_logits
    rows = ["| model | " + " | ".join(f"test acc., {e} epochs (%)" for e in acc.columns)
            + " | mean L1 logit norm |", "|---|" + "---:|" * (len(acc.columns) + 1)]
    rows += [f"| {model} | " + " | ".join(f"{100 * a:.2f}" for a in accs) + f" | {logits[model]:.0f} |"
             for model, accs in acc.iterrows()]
    rows.append(f"\n{df.n_train.iloc[0]} MNIST training images, {df.seed.nunique()} seed(s) per model, "
                "from `results/distillation.csv`.")
    return "\n".join(rows)


def cw_block(cw: pd.DataFrame, fgsm: pd.DataFrame) -> str:
    eps = fgsm.eps.max()
    fgsm_acc = fgsm[fgsm.eps == eps].set_index("model").accuracy
    rows = ["| model | attack | images | success (%) | mean L2 | mean L0 (pixels) | mean L-inf |"
            f" FGSM acc. at eps {eps:g} (%) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    rows += [f"| {r.model} | {r.attack} | {r.images} | {100 * r.success_rate:.0f} | {r.mean_l2:.2f} | "
             f"{r.mean_l0:.0f} | {r.mean_linf:.2f} | {100 * fgsm_acc[r.model]:.1f} |" for r in cw.itertuples()]
    rows.append("\nFrom `results/cw.csv` and `results/cw_fgsm.csv`; distances on the [0, 1] pixel scale.")
    return "\n".join(rows)


def _condensation_answer(cond: pd.DataFrame) -> str:
    small = cond[cond.method != "whole dataset"]
    condensed, rand = small[small.method != "random real"], small[small.method == "random real"]
    ipcs = " / ".join(f"{i:.0f}" for i in condensed.ipc)
    beats = (condensed["mean"].to_numpy() > rand["mean"].to_numpy()).all()
    paper = " / ".join(f"{PAPER_ACCURACY[('DC', i)][0]}" for i in condensed.ipc)
    return (f"- **Condensed sets {'beat' if beats else 'do not always beat'} random real images.** ConvNets "
            f"trained on {ipcs} condensed images per class reach {' / '.join(f'{m:.1f}' for m in condensed['mean'])}"
            f" % test accuracy on FashionMNIST, against {' / '.join(f'{m:.1f}' for m in rand['mean'])} % for as "
            f"many random real images (DC's paper: {paper} %, with the full condensation and evaluation budget).")


def _robustness_answer(fgsm: pd.DataFrame) -> str:
    lenet = fgsm[(fgsm.arch == "LeNet") & (fgsm.attack == "pgd") & fgsm.eps.round(6).eq(0.1)]
    means = lenet.groupby(["condition", "ipc"])[["accuracy", "success_rate"]].mean()
    ipc = int(lenet[lenet.condition == "condensed"].ipc.min())
    orig, cnd, rnd = means.loc[("original", 0)], means.loc[("condensed", ipc)], means.loc[("random subset", ipc)]
    word = ("less" if cnd.success_rate < min(orig.success_rate, rnd.success_rate) - 0.01 else
            "more" if cnd.success_rate > max(orig.success_rate, rnd.success_rate) + 0.01 else "about as")
    return (f"- **Robustness: LeNets trained on condensed data are {word} easily attacked.** PGD at eps 0.1 "
            f"succeeds on {100 * cnd.success_rate:.1f} % of the test images a LeNet trained on the ipc {ipc} "
            f"condensed set classifies correctly, against {100 * orig.success_rate:.1f} % for the whole "
            f"training set and {100 * rnd.success_rate:.1f} % for an equal-size random subset (accuracy under "
            f"attack {100 * cnd.accuracy:.1f} / {100 * orig.accuracy:.1f} / {100 * rnd.accuracy:.1f} %): "
            "whatever robustness they have comes with far lower clean accuracy.")


def _backdoor_answer(backdoor: pd.DataFrame) -> str:
    top = backdoor.rate.max()
    bd = backdoor.assign(ipc=backdoor.ipc.fillna(0))
    asr = bd[bd.rate.isin([0, top])].groupby(["arch", "condition", "ipc"]).asr.mean()
    ipc = int(bd[bd.condition == "condensed (poisoned)"].ipc.min())
    parts, verdicts = [], []
    for arch in dict.fromkeys(bd.arch):
        a = asr[arch]
        if ("condensed (poisoned)", ipc) not in a.index:
            continue
        cnd, floor = a[("condensed (poisoned)", ipc)], a[("condensed (clean)", ipc)]
        rnd = a[("random subset (poisoned)", ipc)]
        name = DISPLAY_NAMES[arch]
        verdicts.append(f"{'all but removed' if cnd - floor < 0.05 else 'weakened' if cnd < rnd - 0.05 else 'kept'}"
                        f" for a {name}")
        full = f"{100 * a[('poisoned full', 0)]:.1f} % on the whole poisoned set, " if ("poisoned full", 0) in a else ""
        parts.append(f"{name}: {full}{100 * cnd:.1f} % on the set condensed from it, {100 * rnd:.1f} % on an "
                     f"equal-size random subset of it, {100 * floor:.1f} % on a set condensed from clean data")
    return (f"- **A BadNets backdoor through condensation: {', '.join(verdicts)}.** With {100 * top:g} % of "
            f"the training images poisoned, the trigger's success rate (ipc {ipc}) for a " + "; for a ".join(parts)
            + " (the floor).")


def _distillation_answer(cw: pd.DataFrame, cw_fgsm: pd.DataFrame) -> str:
    l2 = cw[cw.attack == "L2 targeted (average)"].set_index("model")
    l0 = cw[cw.attack == "L0 targeted (average)"].set_index("model")
    distilled = [m for m in l2.index if m != "undistilled"]
    eps = cw_fgsm.eps.max()
    fg = cw_fgsm[cw_fgsm.eps == eps].set_index("model").accuracy
    ratio = l2.loc[distilled].mean_l2.mean() / l2.loc["undistilled"].mean_l2
    l0_ratio = l0.loc[distilled].mean_l0.mean() / l0.loc["undistilled"].mean_l0
    success = l2.loc[distilled].success_rate
    masks = ratio < 1.5 and fg[distilled].mean() - fg["undistilled"] > 0.2
    headline = "masks gradients, it does not add robustness" if masks else "changes what the attacks need"
    return (f"- **Defensive distillation {headline}.** Targeted Carlini-Wagner L2 succeeds on "
            f"{100 * success.min():.0f}-{100 * success.max():.0f} % of the images against the distilled MNIST "
            f"networks (undistilled: {100 * l2.loc['undistilled'].success_rate:.0f} %) with {ratio:.2f}x the "
            f"undistilled network's mean L2 distortion, and C&W L0 needs {l0_ratio:.2f}x as many changed pixels; "
            f"FGSM at eps {eps:g} meanwhile leaves them {100 * fg[distilled].mean():.0f} % accuracy against "
            f"{100 * fg['undistilled']:.0f} % undistilled.")


def abstract_block(cond: pd.DataFrame, fgsm: pd.DataFrame, backdoor: pd.DataFrame, cw: pd.DataFrame,
                   cw_fgsm: pd.DataFrame) -> str:
    """The README's answer, one sentence per study, every number from the results tables."""
    return "\n".join([_condensation_answer(cond), _robustness_answer(fgsm), _backdoor_answer(backdoor),
                      _distillation_answer(cw, cw_fgsm)])


# README block name -> (function of the results tables, the tables, what produces them)
BLOCKS = {"abstract": (abstract_block, ["condensation_eval", "fgsm", "backdoor", "cw", "cw_fgsm"], "`make report`"),
          "timings": (timings_block, ["timings_default"], "`make report`"),
          "condensation": (condensation_block, ["condensation_eval"], "notebook 02"),
          "fgsm": (fgsm_block, ["fgsm"], "notebook 03"),
          "backdoor": (backdoor_block, ["backdoor"], "notebook 06"),
          "distillation": (distillation_block, ["distillation"], "notebook 04"),
          "cw": (cw_block, ["cw", "cw_fgsm"], "notebook 05")}


def block(name: str) -> str:
    """The generated text of README block `name`, or a note naming what produces its tables."""
    make, tables, producer = BLOCKS[name]
    frames = [_csv(t) for t in tables]
    if any(f is None for f in frames):
        return f"_Not generated yet: run {producer}._"
    return make(*frames)


def fill_readme(text: str) -> str:
    """`text` with every generated block rewritten from the current results."""
    for name in BLOCKS:
        pattern = re.compile(rf"(<!-- BEGIN {name} -->).*?(<!-- END {name} -->)", flags=re.S)
        text = pattern.sub(lambda m, name=name: f"{m.group(1)}\n{block(name)}\n{m.group(2)}", text)
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
