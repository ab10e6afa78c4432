"""Differentiable Siamese Augmentation (DSA).

Zhao & Bilen, "Dataset Condensation with Differentiable Siamese Augmentation" (ICML 2021),
as the official code runs it (VICO-UoE/DatasetCondensation, `utils.py`: `DiffAugment` with
`ParamDiffAug`, aug_mode 'S', a seed given): each call picks ONE transformation of the
strategy at random and ONE set of its parameters for the whole batch; the Siamese part is
that the real and the synthetic batch of a class get the same draw (Sec. 3 of the paper),
so matching compares like with like. All transformations are differentiable in the images.

For 1-channel images the 'color' group's saturation step is the identity (the mean over
channels is the image itself), exactly as in the official code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# The official `ParamDiffAug` ranges.
PROB_FLIP = 0.5
RATIO_SCALE = 1.2
RATIO_ROTATE = 15.0  # degrees
RATIO_CROP_PAD = 0.125
RATIO_CUTOUT = 0.5
BRIGHTNESS, SATURATION, CONTRAST = 1.0, 2.0, 0.5

OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
DM_STRATEGY = "color_crop_cutout_flip_scale_rotate"  # `main_DM.py`'s --dsa_strategy


@dataclass(frozen=True)
class Draw:
    """One random draw: the chosen transformation and its parameters (shared by the batch)."""

    op: str
    values: tuple[float, ...]


def parse(strategy: str) -> tuple[str, ...]:
    """The transformations of a strategy string such as 'color_crop_flip'."""
    ops = tuple(strategy.split("_"))
    unknown = [op for op in ops if op not in OPS]
    if not strategy or unknown:
        raise ValueError(f"dsa_strategy={strategy!r} is not a DSA strategy; "
                         f"valid: '_'-joined names from {', '.join(OPS)}")
    return ops


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=g).item()


def _randint(g: torch.Generator, low: int, high: int) -> int:
    """An integer in [low, high)."""
    return int(torch.randint(low, high, (), generator=g).item())


def sample(strategy: str, size: int, g: torch.Generator) -> Draw:
    """One draw for images of `size` x `size` pixels, with the official code's ranges."""
    ops = parse(strategy)
    op = ops[_randint(g, 0, len(ops))]
    if op == "color":  # brightness, saturation, contrast factors, applied in this order
        values = (torch.rand((), generator=g).item(), torch.rand((), generator=g).item(),
                  torch.rand((), generator=g).item())
    elif op == "crop":  # integer shift in [-shift, shift] along rows and columns
        shift = int(size * RATIO_CROP_PAD + 0.5)
        values = (_randint(g, -shift, shift + 1), _randint(g, -shift, shift + 1))
    elif op == "cutout":  # centre of the square hole
        hole = int(size * RATIO_CUTOUT + 0.5)
        values = (_randint(g, 0, size + 1 - hole % 2), _randint(g, 0, size + 1 - hole % 2))
    elif op == "flip":
        values = (float(torch.rand((), generator=g).item() < PROB_FLIP),)
    elif op == "scale":
        values = (_uniform(g, 1 / RATIO_SCALE, RATIO_SCALE), _uniform(g, 1 / RATIO_SCALE, RATIO_SCALE))
    else:  # rotate: angle in radians
        values = (_uniform(g, -RATIO_ROTATE, RATIO_ROTATE) * math.pi / 180,)
    return Draw(op, values)


def _affine(x: torch.Tensor, theta: list[list[float]]) -> torch.Tensor:
    mat = torch.tensor(theta, dtype=x.dtype, device=x.device).expand(len(x), 2, 3)
    grid = F.affine_grid(mat, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def _shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """The official crop: pad by one zero pixel, then read each pixel from (i + dx, j + dy),
    clamped to the padded border (so everything shifted in is zero)."""
    h, w = x.shape[-2:]
    rows = (torch.arange(h, device=x.device) + dx + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device) + dy + 1).clamp(0, w + 1)
    return F.pad(x, [1, 1, 1, 1])[:, :, rows][:, :, :, cols]


def _cutout(x: torch.Tensor, ox: int, oy: int) -> torch.Tensor:
    """The official cutout: zero a hole of RATIO_CUTOUT x the side centred at (ox, oy); hole
    coordinates are clamped to the image, as there."""
    h, w = x.shape[-2:]
    hh, hw = int(h * RATIO_CUTOUT + 0.5), int(w * RATIO_CUTOUT + 0.5)
    rows = (torch.arange(hh, device=x.device) + ox - hh // 2).clamp(0, h - 1)
    cols = (torch.arange(hw, device=x.device) + oy - hw // 2).clamp(0, w - 1)
    mask = torch.ones(h, w, dtype=x.dtype, device=x.device)
    mask[rows.unsqueeze(1), cols.unsqueeze(0)] = 0
    return x * mask


def apply(x: torch.Tensor, draw: Draw) -> torch.Tensor:
    """Transform every image of the batch `x` (N, C, H, W) by `draw`, differentiably."""
    v = draw.values
    if draw.op == "color":
        x = x + (v[0] - 0.5) * BRIGHTNESS
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (v[1] * SATURATION) + mean  # the identity for one channel
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (v[2] + CONTRAST) + mean
    if draw.op == "crop":
        return _shift(x, int(v[0]), int(v[1]))
    if draw.op == "cutout":
        return _cutout(x, int(v[0]), int(v[1]))
    if draw.op == "flip":
        return x.flip(3) if v[0] else x
    if draw.op == "scale":
        return _affine(x, [[v[0], 0.0, 0.0], [0.0, v[1], 0.0]])
    if draw.op == "rotate":
        c, s = math.cos(v[0]), math.sin(v[0])
        return _affine(x, [[c, -s, 0.0], [s, c, 0.0]])
    raise ValueError(f"unknown DSA transformation {draw.op!r}; valid: {', '.join(OPS)}")


def siamese(real: torch.Tensor, syn: torch.Tensor, strategy: str,
            g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The real and the synthetic batch of one class under the same random draw."""
    draw = sample(strategy, real.shape[-1], g)
    return apply(real, draw), apply(syn, draw)
