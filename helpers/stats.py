"""The report's one way to summarise repeated runs: mean, sample standard deviation (ddof 1, as
papers report; 0 for a single run) and n over models, seeds or images, and how it is printed."""

from __future__ import annotations

import math

import pandas as pd


def over_groups(df: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    """Per group of `keys` (in order of appearance): the mean of each value, its sample std as
    `<value>_std` (0 for a group of one) and the group's size `n`."""
    groups = df.groupby(keys, sort=False)
    out = groups[values].mean().join(groups[values].std(ddof=1).fillna(0.0).add_suffix("_std"))
    return out.join(groups.size().rename("n")).reset_index()


def pm(mean: float, std: float, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    """`mean ± std` scaled (100 for percent) to `digits` decimals; a missing std prints as 0."""
    std = 0.0 if std is None or (isinstance(std, float) and math.isnan(std)) else std
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}{unit}"
