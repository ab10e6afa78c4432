"""One figure style for the whole report, and one way to save figures."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
from IPython import get_ipython
from IPython.display import display
from matplotlib.colors import to_hex
from torchvision.utils import make_grid

from .config import active_profile, figures_dir, results_dir

# One colour per condition, the same in every notebook: the only place the report writes a
# colour (a test fails on a colour literal in a notebook or another module).
CONDITION_COLORS = {
    "whole dataset": "#222222",
    "DM": "#1f77b4",  # = "condensed": the default profile's condensed sets of notebooks 03 and 06 are DM's
    "DC": "#17becf",
    "random real": "#ff7f0e",
    "original": "#222222",
    "condensed": "#1f77b4",
    "random subset": "#ff7f0e",
    "accuracy-matched": "#7f7f7f",  # whole-data LeNets stopped at the condensed ones' accuracy
    "undistilled": "#222222",
    "teacher": "#2ca02c",
    "student": "#d62728",
    "poisoned full": "#9467bd",
    "clean full": "#222222",
    "DOORPING-condensed": "#8c564b",  # condensed from data poisoned with the trigger DOORPING optimises
    "paper": "#555555",  # numbers published in the papers: reference lines and markers
}
NEUTRAL = "#999999"  # not a condition: outlines, "before" states, context drawn behind the data


def distillation_colors(specs: list[tuple[str, str, float]]) -> dict[str, str]:
    """A colour per network of the distillation study, given `(name, role, temperature)`:
    each role keeps its colour from `CONDITION_COLORS`, shaded from light (lowest T) to dark
    (highest T) so that networks at different temperatures stay apart in one plot."""
    colors = {}
    for role in dict.fromkeys(r for _, r, _ in specs):
        members = sorted((t, name) for name, r, t in specs if r == role)
        base = CONDITION_COLORS[role]
        shades = (sns.blend_palette([sns.set_hls_values(base, l=0.65), base, sns.set_hls_values(base, l=0.22)],
                                    n_colors=len(members)) if len(members) > 1 else [base])
        colors.update({name: to_hex(shade) for (_, name), shade in zip(members, shades)})
    return colors


def set_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", font_scale=1.0)
    # Long legend handles, so that dashed lines (ipc 50 beside ipc 10) read as dashed
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "figure.autolayout": False,
                         "legend.handlelength": 3.5})


def save_figure(fig: plt.Figure, name: str, source: str) -> None:
    """Stamp `source` (notebook and profile) under the bottom-right corner of everything drawn,
    save `<name>.png` and `.pdf` into the profile's figures folder, show it once when running
    under IPython and close it."""
    # Below the drawn content's bounding box, so rotated tick labels never overlap the stamp.
    drawn = fig.get_tightbbox().transformed(fig.dpi_scale_trans)
    corner = fig.transFigure.inverted().transform((drawn.x1, drawn.y0))
    fig.text(*corner, source, ha="right", va="top", fontsize=7, color="0.45")
    out = figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    for suffix in (".png", ".pdf"):
        fig.savefig(out / f"{name}{suffix}", bbox_inches="tight")
    if get_ipython() is not None:
        display(fig)
    plt.close(fig)


def save_table(df: pd.DataFrame, name: str) -> None:
    """Write a results table to `<name>.csv` in the profile's results folder, with a `profile`
    column saying which profile produced it (the README is generated only from `default`'s)."""
    profile = active_profile()
    if "profile" in df and set(df.profile) - {profile}:
        raise ValueError(f"table {name!r} has profile(s) {sorted(set(df.profile))} but the running profile "
                         f"is {profile!r}: call helpers.config.start(profile, seed) first")
    out = results_dir()
    out.mkdir(parents=True, exist_ok=True)
    # Written beside it under a unique name, then renamed over it: a reader (or a concurrent
    # run) sees the old table or the new one, never a truncated one.
    tmp = out / f".{name}.{os.getpid()}-{secrets.token_hex(4)}.csv.tmp"
    try:
        df.assign(profile=profile).to_csv(tmp, index=False, float_format="%.6g")
        os.replace(tmp, out / f"{name}.csv")
    finally:
        tmp.unlink(missing_ok=True)


def image_grid(ax: plt.Axes, pixels: torch.Tensor, nrow: int, title: str = "",
               row_labels: Sequence[str] = ()) -> None:
    """Draw pixel-space images (N, 1, H, W) in [0, 1] as one grid on `ax`, `nrow` images
    per row, with optional labels left of the rows."""
    grid = make_grid(pixels.clamp(0, 1), nrow=nrow, padding=1, pad_value=1.0)
    ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_axis_off()
    height = pixels.shape[-2] + 1  # one image plus make_grid's padding
    for row, label in enumerate(row_labels):
        ax.text(-4, 1 + row * height + height / 2, label, ha="right", va="center", fontsize=8)
    if title:
        ax.set_title(title)
