"""The papers' published numbers that the report sets beside its own, in one place.

Each constant names its source (paper, table); `../shared/REFERENCES.md` in the project's
steering repository holds the wider facts they come from.
"""

from __future__ import annotations

# Zhao, Mopuri & Bilen (ICLR 2021), Table 1: FashionMNIST, ConvNet, 300 evaluation epochs;
# test accuracy % (mean, std where published). "whole dataset": ConvNet on all 60k images.
DC_FASHION_ACCURACY = {("DC", 1): (70.5, 0.6), ("DC", 10): (82.3, 0.4), ("DC", 50): (83.6, 0.4),
                       ("random real", 1): (51.4, None), ("random real", 10): (73.8, None),
                       ("random real", 50): (82.5, None), ("whole dataset", None): (93.5, None)}

# Carlini & Wagner (IEEE S&P 2017), Table IV: MNIST, targeted, undistilled network, mean
# distortion on a [0, 1] pixel scale, (best, average, worst) case over the 9 targets.
CW_TABLE_IV = {"l2": (1.36, 1.76, 2.60), "l0": (8.5, 16.0, 33.0), "linf": (0.13, 0.16, 0.23)}

# Carlini & Wagner (IEEE S&P 2017), their attacks on a defensively distilled MNIST network
# (T = 100): mean distortion of the best case over the 9 targets, 100 % success.
CW_DISTILLED_BEST = {"l2": 1.7, "l0": 10.0}
