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

from . import html_report
from .config import REPO_ROOT, anchor_paths, output_root, results_dir, shown
from .models import DISPLAY_NAMES
from .profiles import DEFAULT_PROFILE, PROFILES
from .references import DC_FASHION_ACCURACY
from .regenerate import notebooks
from .stats import over_groups, pm

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




def condensation_block(df: pd.DataFrame) -> str:
    whole = df[df.method == "whole dataset"].iloc[0]
    small = df[df.method != "whole dataset"]
    rows = ["| ipc | condensed: method, init | condensed (%) | random real (%) | evaluation epochs | models |"
            " condensed, % of whole | paper DC (%) | paper random (%) |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for ipc, part in small.groupby("ipc", sort=True):
        c, r = part[part.method != "random real"].iloc[0], part[part.method == "random real"].iloc[0]
        paper_dc, paper_random = DC_FASHION_ACCURACY[("DC", ipc)], DC_FASHION_ACCURACY[("random real", ipc)]
        rows.append(f"| {ipc:.0f} | {c.method}, {c.init} | {pm(c['mean'], c['std'])} | {pm(r['mean'], r['std'])} | "
                    f"{c.epochs} | {c.n_models} | {100 * c['mean'] / whole['mean']:.0f} | "
                    f"{paper_dc[0]} ± {paper_dc[1]} | {paper_random[0]} |")
    epochs = f"{whole.epochs} epoch{'' if whole.epochs == 1 else 's'}"
    rows.append(f"\nWhole training set (upper bound): {pm(whole['mean'], whole['std'])} % ({whole.n_models} "
                f"model(s), {epochs}; paper {DC_FASHION_ACCURACY[('whole dataset', None)][0]}, 300 epochs). "
                "Every set is evaluated with DC's protocol (fresh ConvNets, SGD, lr x0.1 at the midpoint, no "
                "augmentation); DM condenses with DSA augmentation as its official code does. Mean ± std over "
                "independently initialised ConvNets, full 10k test set, from `results/condensation_eval.csv`.")
    return "\n".join(rows)


FGSM_EPS = (0.0, 0.1, 0.2, 0.3)


def fgsm_block(df: pd.DataFrame) -> str:
    df = df[df.eps.round(6).isin(FGSM_EPS)]
    summary = over_groups(df, ["arch", "attack", "label", "steps", "test_images", "eps"], ["accuracy"])
    eps = sorted(summary.eps.unique())
    rows = ["| model | trained on | attack | " + " | ".join(f"eps {e:g}" for e in eps) + " | models | test images |",
            "|---|---|---|" + "---:|" * (len(eps) + 2)]
    for (arch, attack, label), part in summary.groupby(["arch", "attack", "label"], sort=False):
        part = part.set_index("eps")
        name = attack.upper() + ("" if attack == "fgsm" else f" ({part.steps.iloc[0]} steps)")
        rows.append(f"| {arch} | {label} | {name} | "
                    + " | ".join(pm(part.accuracy[e], part.accuracy_std[e], 100) for e in eps)
                    + f" | {part.n.min()} | {part.test_images.iloc[0]} |")
    rows.append("\nAccuracy under attack (%, mean ± std over models), eps in [0, 1] pixel units; eps 0 is the "
                "clean accuracy. From `results/fgsm.csv` (all eps there).")
    return "\n".join(rows)


def backdoor_block(df: pd.DataFrame) -> str:
    from .backdoor_study import summarize  # notebook 06's own summary

    rows = ["| model | attack | condition | ipc | poison rate (%) | clean accuracy (%) | attack success (%) | models |",
            "|---|---|---|---:|---:|---:|---:|---:|"]
    rows += [f"| {DISPLAY_NAMES[r.arch]} | {r.attack} | {r.condition} | {r.ipc or 'all'} | {100 * r.rate:g} | "
             f"{pm(r.cta_mean, r.cta_std, 100)} | {pm(r.asr_mean, r.asr_std, 100)} | {r.n} |"
             for r in summarize(df).itertuples()]
    rows.append("\nMean ± std over models (and condensation seeds), full 10k test set; attack success on the "
                "triggered test images whose class is not the target, with the attack's own trigger (clean-data "
                "conditions are scored with each trigger they are compared with). From `results/backdoor.csv`.")
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
    from .cw_study import CASES
    from .references import CW_DISTILLED_BEST, CW_TABLE_IV

    eps = fgsm.eps.max()
    fgsm_acc = fgsm[fgsm.eps == eps].set_index("model").accuracy
    stat = cw.assign(success_rate=100 * cw.success_rate).set_index(["model", "attack", "case", "metric"])

    def per_case(model: str, attack: str, metric: str, column: str, fmt: str) -> str:
        values = [stat[column].get((model, attack, case, metric)) for case in CASES]
        return " / ".join("–" if v is None or pd.isna(v) else format(v, fmt) for v in values)

    rows = ["| model | images | L2 success (%) | mean L2 | 95 % CI, average | untargeted L2: success (%), mean | "
            "L0 images | L0 success (%) | mean L0 (pixels) | mean L-inf of the L2 attack | "
            f"FGSM acc. at eps {eps:g} (%) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for model in cw.model.unique():
        avg, l0 = stat.loc[(model, "L2", "average", "l2")], stat.loc[(model, "L0", "average", "l0")]
        unt = stat.loc[(model, "L2 untargeted", "untargeted", "l2")]
        rows.append(f"| {model} | {avg.images} | {per_case(model, 'L2', 'l2', 'success_rate', '.0f')} | "
                    f"{per_case(model, 'L2', 'l2', 'mean', '.2f')} | {avg.ci_low:.2f}–{avg.ci_high:.2f} | "
                    f"{unt.success_rate:.0f}, {unt['mean']:.2f} | {l0.images} | "
                    f"{per_case(model, 'L0', 'l0', 'success_rate', '.0f')} | "
                    f"{per_case(model, 'L0', 'l0', 'mean', '.1f')} | {per_case(model, 'L2', 'linf', 'mean', '.2f')} | "
                    f"{100 * fgsm_acc[model]:.1f} |")
    paper = {m: " / ".join(f"{v:g}" for v in CW_TABLE_IV[m]) for m in CW_TABLE_IV}
    rows.append(f"| C&W Table IV (undistilled) | | | {paper['l2']} | | | | | {paper['l0']} | "
                f"{paper['linf']} (their L-inf attack) | |")
    rows.append(f"| C&W, distilled T=100 (best case) | | | {CW_DISTILLED_BEST['l2']:g} | | | | | "
                f"{CW_DISTILLED_BEST['l0']:g} | | |")
    rows.append("\nBest / average / worst case over the nine wrong targets (\"–\": not run for this network); the "
                "average case is one random wrong target per image, the worst case fails when any target fails. "
                "Means over the images each attack broke, with a 95 % bootstrap interval of the average-case mean; "
                "the attacked images are the first test images that every network classifies correctly. C&W "
                "report 100 % success on 1000 images. From `results/cw.csv` and `results/cw_fgsm.csv`; "
                "distances on the [0, 1] pixel scale.")
    return "\n".join(rows)


def _condensation_answer(cond: pd.DataFrame) -> str:
    small = cond[cond.method != "whole dataset"]
    condensed, rand = small[small.method != "random real"], small[small.method == "random real"]
    whole = cond[cond.method == "whole dataset"].iloc[0]
    ipcs = " / ".join(f"{i:.0f}" for i in condensed.ipc)
    beats = (condensed["mean"].to_numpy() > rand["mean"].to_numpy()).all()
    paper = " / ".join(f"{DC_FASHION_ACCURACY[('DC', i)][0]}" for i in condensed.ipc)
    methods = " / ".join(condensed.method)
    epochs = sorted(set(condensed.epochs))
    protocol = (f"DC's {epochs[0]}-epoch evaluation" if len(epochs) == 1
                else f"DC's evaluation with {' / '.join(str(e) for e in condensed.epochs)} epochs")
    return (f"- **Condensed sets {'beat' if beats else 'do not always beat'} random real images.** ConvNets "
            f"trained on {ipcs} condensed images per class ({methods}) reach "
            f"{' / '.join(f'{m:.1f}' for m in condensed['mean'])} % test accuracy on FashionMNIST, against "
            f"{' / '.join(f'{m:.1f}' for m in rand['mean'])} % for as many random real images and "
            f"{whole['mean']:.1f} % for the whole training set ({protocol}; DC's paper: {paper} %, whole "
            f"dataset {DC_FASHION_ACCURACY[('whole dataset', None)][0]} %).")


def _robustness_answer(fgsm: pd.DataFrame) -> str:
    """The abstract's robustness sentence: LeNets, PGD, the smallest condensed ipc, at
    `robustness_study.HEADLINE_EPS`, judged by `robustness_study.verdict` (the notebook's rule)."""
    from .robustness_study import verdicts  # notebook 03's rule itself, not a copy of it

    table = verdicts(fgsm)
    lenet = table[(table.arch == "LeNet") & (table.attack == "pgd")]
    lenet = lenet[lenet.ipc == lenet.ipc.min()].set_index("baseline")
    cnd, orig, rnd = lenet.iloc[0], lenet.loc["original"], lenet.loc["random subset"]
    phrase = {"more robust": "less easily attacked than", "less robust": "more easily attacked than",
              "indistinguishable": "as easily attacked as"}
    headline = (f"{phrase[orig.verdict]} whole-data and random-subset ones" if orig.verdict == rnd.verdict else
                f"{phrase[orig.verdict]} whole-data LeNets, {phrase[rnd.verdict]} random-subset ones")
    numbers = (f"PGD at eps {cnd.eps:g} succeeds on {100 * cnd.success:.1f} % of the test images a LeNet trained "
               f"on the ipc {cnd.ipc} condensed set classifies correctly (clean accuracy {100 * cnd.clean:.1f} %), "
               f"against {100 * orig.baseline_success:.1f} % for the whole training set "
               f"({100 * orig.baseline_clean:.1f} %), {100 * rnd.baseline_success:.1f} % for an equal-size random "
               f"subset ({100 * rnd.baseline_clean:.1f} %)")
    if "accuracy-matched" not in lenet.index:
        return f"- **Robustness: LeNets trained on condensed data are {headline}.** {numbers}."
    m = lenet.loc["accuracy-matched"]
    matched = {"indistinguishable": "at equal clean accuracy the difference from the whole-data LeNets goes away, "
                                    "so it comes with the lower accuracy, not with condensed data",
               "more robust": "the condensed LeNets stay less easily attacked at equal clean accuracy, so lower "
                              "accuracy alone does not explain it",
               "less robust": "at equal clean accuracy the condensed LeNets are the more easily attacked"}
    return (f"- **Robustness: LeNets trained on condensed data are {headline}.** {numbers} and "
            f"{100 * m.baseline_success:.1f} % for a whole-data LeNet stopped at the condensed one's clean accuracy "
            f"({100 * m.baseline_clean:.1f} %): {matched[m.verdict]}.")


def _backdoor_answer(backdoor: pd.DataFrame) -> str:
    """The abstract's backdoor sentence: `backdoor_study.verdicts` (notebook 06's rule) at the
    smallest condensed ipc, per attack, architecture and poison rate."""
    from .backdoor_study import VERDICT_RULE, verdicts

    said = {"keeps": "kept", "weakens": "weakened", "removes": "removed", "undetermined": "never learned (no verdict)"}
    table = verdicts(backdoor)
    table = table[table.ipc == table.ipc.min()]
    headline, numbers = [], []
    for attack, part in table.groupby("attack", sort=False):
        words = "; ".join(f"{said[w]} for a {DISPLAY_NAMES[arch]} at " + " / ".join(f"{100 * r:g}" for r in g.rate)
                          + " %" for (arch, w), g in part.groupby(["arch", "verdict"], sort=False))
        headline.append(f"{attack} backdoor {words}")
        numbers += [f"{attack}, {DISPLAY_NAMES[r.arch]}, {100 * r.rate:g} %: {100 * r.asr_condensed:.1f} / "
                    f"{100 * r.asr_reference:.1f} ({r.reference}) / {100 * r.asr_floor:.1f} %"
                    for r in part.itertuples()]
    return (f"- **Backdoors through condensation (ipc {table.ipc.min()}), {'; '.join(headline)}.** Attack success "
            f"rate of models trained on the set condensed from poisoned data / on the reference / on a set "
            f"condensed from clean data (the floor): {'; '.join(numbers)}. Condensation {VERDICT_RULE}.")


def _distillation_answer(cw: pd.DataFrame, cw_fgsm: pd.DataFrame) -> str:
    from .cw_study import masks_gradients  # notebook 05's rule itself

    avg = cw[(cw.case == "average") & (cw.metric == cw.attack.map({"L2": "l2", "L0": "l0"}))]
    l2, l0 = avg[avg.attack == "L2"].set_index("model"), avg[avg.attack == "L0"].set_index("model")
    distilled = [m for m in l2.index if m != "undistilled"]
    eps = cw_fgsm.eps.max()
    fg = cw_fgsm[cw_fgsm.eps == eps].set_index("model").accuracy
    base, base_l0 = l2.loc["undistilled"], l0.loc["undistilled"]
    headline = ("masks gradients, it does not add robustness" if masks_gradients(l2.success_rate, fg)
                else "changes what the attacks need")
    return (f"- **Defensive distillation {headline}.** Targeted Carlini-Wagner L2 (average case, "
            f"{base.images} test images) succeeds on {100 * l2.loc[distilled].success_rate.min():.0f}-"
            f"{100 * l2.loc[distilled].success_rate.max():.0f} % of the images against the distilled MNIST networks "
            f"(undistilled: {100 * base.success_rate:.0f} %) with mean L2 distortion "
            f"{l2.loc[distilled, 'mean'].min():.2f}-{l2.loc[distilled, 'mean'].max():.2f} (undistilled "
            f"{base['mean']:.2f}, 95 % CI {base.ci_low:.2f}-{base.ci_high:.2f}), and C&W's L0 attack changes "
            f"{l0.loc[distilled, 'mean'].min():.1f}-{l0.loc[distilled, 'mean'].max():.1f} pixels (undistilled "
            f"{base_l0['mean']:.1f}, 95 % CI {base_l0.ci_low:.1f}-{base_l0.ci_high:.1f}, on {base_l0.images} images); "
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

# README block name -> the figure shown under its table (alt text), once the notebook wrote it
FIGURES = {"condensation": ("02_accuracy_vs_ipc", "Test accuracy vs images per class"),
           "fgsm": ("03_accuracy_vs_eps", "Accuracy under attack vs eps"),
           "backdoor": ("06_asr_cta_vs_rate", "Attack success and clean accuracy vs poison rate"),
           "distillation": ("04_curves_20ep", "Training and validation curves, 20 epochs")}

# Per results table, the columns the blocks above read: the only ones they are given, so a
# block reading another fails the README test, and the notebook smoke test checks each
# notebook's tables against this.
REQUIRED_COLUMNS = {
    "condensation_eval": ["method", "ipc", "init", "mean", "std", "epochs", "n_models"],
    "fgsm": ["arch", "condition", "ipc", "label", "attack", "steps", "test_images", "seed", "eps", "accuracy",
             "clean_accuracy", "success_rate"],
    "backdoor": ["arch", "trigger", "condition", "ipc", "rate", "cta", "asr"],
    "distillation": ["model", "epochs", "test_acc", "mean_l1_logits", "n_train", "seed"],
    "cw": ["model", "attack", "case", "metric", "images", "success_rate", "mean", "median", "ci_low", "ci_high"],
    "cw_fgsm": ["model", "eps", "accuracy"],
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
