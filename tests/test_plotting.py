"""Figures carry the notebook and profile that made them, below everything else."""

import matplotlib.pyplot as plt

from helpers import config
from helpers.plotting import save_figure


def test_save_figure_stamps_the_source_below_rotated_tick_labels():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(["a long tick label", "another long tick label"], [1, 2])
    ax.tick_params(axis="x", rotation=60)
    assert save_figure(fig, "stamp_check", "test · profile smoke") is None  # nothing echoed in notebooks
    stamp = fig.texts[-1]
    assert (config.figures_dir() / "stamp_check.png").exists() and stamp.get_text() == "test · profile smoke"
    lowest_tick = min(label.get_window_extent().y0 for label in ax.get_xticklabels())
    assert stamp.get_window_extent().y1 <= lowest_tick
