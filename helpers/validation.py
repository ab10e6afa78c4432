"""Argument checks shared by the method modules: a ValueError that names the parameter, its
value and the valid range (and, where it helps, what to do), raised before any work starts."""

from __future__ import annotations

import math
import numbers

import torch
from torch import nn

from .models import frozen

# Seeds: torch's generators take [0, 2**64) (negative seeds wrap around silently, larger ones
# overflow); `runtime.seed_everything` also seeds numpy, which takes only [0, 2**32).
TORCH_SEEDS = 2 ** 64
NUMPY_SEEDS = 2 ** 32


def is_int(value) -> bool:
    """A Python int, not a bool: numpy integers are refused too (torch's seeding and the JSON
    cache keys take only Python ints; `int(x)` converts)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite real number, not a bool (True would silently mean 1)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _suffix(fix: str) -> str:
    return f"; {fix}" if fix else ""


def require(name: str, value, ok: bool, valid: str, fix: str = "") -> None:
    """ValueError naming `name`, `value` and `valid` (and `fix`) unless `ok`."""
    if not ok:
        raise ValueError(f"{name}={value!r} is out of range; valid: {valid}{_suffix(fix)}")


def _bound(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def check_range(name: str, value, low: float, high: float = math.inf, *, integer: bool = False,
                low_open: bool = False, fix: str = "") -> None:
    """ValueError naming `name`, `value` and the valid interval unless `value` is a finite
    number (a Python int when `integer`) in it; NaN and booleans never pass."""
    ok = ((is_int(value) if integer else is_number(value))
          and (low < value if low_open else low <= value) and value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{_bound(low)}, {_bound(high)}{')' if high == math.inf else ']'}"
        raise ValueError(f"{name} must be {'an integer' if integer else 'a finite number'} in {interval}, "
                         f"got {value!r}{_suffix(fix)}")


def seed_ok(value, end: int = TORCH_SEEDS) -> bool:
    """A seed: a Python int in [0, end) (`TORCH_SEEDS`, or `NUMPY_SEEDS` where
    `runtime.seed_everything` sees it)."""
    return is_int(value) and 0 <= value < end


def seed_range(end: int = TORCH_SEEDS) -> str:
    """The valid seeds, for messages: "an integer in [0, 2**64 - 1]"."""
    return f"an integer in [0, 2**{end.bit_length() - 1} - 1]"


def check_seed(name: str, value, end: int = TORCH_SEEDS) -> None:
    """ValueError unless `seed_ok(value, end)`."""
    if not seed_ok(value, end):
        raise ValueError(f"{name} must be {seed_range(end)}, got {value!r}; seeds are Python ints "
                         "(int(x) converts a numpy integer)")


def check_tensor(name: str, value, *, dims: int | None = None, floating: bool = False) -> None:
    """A torch tensor (of `dims` dimensions; of a floating dtype when `floating`)."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if dims is not None and value.dim() != dims:
        shape = "(N, C, H, W)" if dims == 4 else f"{dims}-D"
        hint = "; add the channel dimension with x.unsqueeze(1)" if dims == 4 and value.dim() == 3 else ""
        raise ValueError(f"{name} must be {shape}, got shape {tuple(value.shape)}{hint}")
    if floating and not value.is_floating_point():
        raise ValueError(f"{name} must hold floating-point values, got dtype {value.dtype}; convert with .float()")


def check_finite(name: str, value: torch.Tensor, fix: str = "") -> None:
    """No NaN or inf anywhere in the tensor (they would spread into every result)."""
    if value.is_floating_point() and value.numel() and not torch.isfinite(value).all():
        bad = (~torch.isfinite(value)).sum().item()
        raise ValueError(f"{name} must hold finite values, found {bad} NaN or inf of {value.numel()}"
                         f"{_suffix(fix)}")


def check_labels(name: str, labels, num_classes: int | None, n: int | None = None) -> None:
    """One integer class index per item (`n` of them) in [0, num_classes - 1] (>= 0 when
    num_classes is None): cross-entropy silently ignores -100, and fails deep inside torch on
    other values outside."""
    if (not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.is_complex()
            or labels.dtype == torch.bool or labels.dim() != 1 or (n is not None and len(labels) != n)):
        what = (f"dtype {labels.dtype}, shape {tuple(labels.shape)}" if isinstance(labels, torch.Tensor)
                else type(labels).__name__)
        raise ValueError(f"{name} must be a 1-D integer tensor of class indices"
                         f"{'' if n is None else f' (one per image: {n})'}, got {what}")
    high = math.inf if num_classes is None else num_classes
    bad = labels[(labels < 0) | (labels >= high)]
    if len(bad):
        valid = "[0, inf)" if num_classes is None else f"[0, {num_classes - 1}] ({num_classes} classes)"
        raise ValueError(f"{name} must hold class indices in {valid}, got {sorted(set(bad.tolist()))[:5]}; "
                         "relabel to 0, 1, ... (cross-entropy ignores -100 and fails on others)")


def check_same_dtype(name: str, x: torch.Tensor, model: torch.nn.Module) -> None:
    """Inputs in the dtype of the model's parameters (else torch fails inside the first layer)."""
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    if param is not None and x.dtype != param.dtype:
        raise ValueError(f"{name} has dtype {x.dtype} but the model's parameters are {param.dtype}; "
                         f"use float32 for both (x.float(), model.float())")

def check_images(x: torch.Tensor, y: torch.Tensor) -> None:
    """Pixel-space images (N, C, H, W) in [0, 1] without NaN, and one integer label per image."""
    check_tensor("x", x, dims=4, floating=True)
    check_tensor("y", y)
    if x.numel() and not torch.isfinite(x).all():
        found = "NaN or inf values"
    elif x.numel() and (x.min() < 0 or x.max() > 1):
        found = f"values in [{x.min().item():.3g}, {x.max().item():.3g}]"
    else:
        found = None
    if found:
        raise ValueError(f"x must hold pixel-space images with values in [0, 1], found {found}; convert "
                         "normalised images with data.to_pixels(x, name).clamp(0, 1) and wrap the model in "
                         "models.Normalized")
    if y.dtype not in (torch.int64, torch.int32) or y.dim() != 1 or len(y) != len(x):
        raise ValueError(f"y must hold one integer class label per image ({len(x)}), got dtype {y.dtype}, "
                         f"shape {tuple(y.shape)}")

def check_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: tuple[str, str] = ("x", "y")) -> None:
    """`check_images`, x in the model's dtype, and y within the model's classes (read from one
    forward pass on one image, in eval mode: no state or random number is touched). `names`
    are x's and y's in the messages."""
    check_images(x, y)
    check_same_dtype(names[0], x, model)
    if len(x):
        with torch.no_grad(), frozen(model):
            classes = model(x[:1].to(next(model.parameters()).device)).shape[1]
        check_labels(names[1], y, classes, len(x))
