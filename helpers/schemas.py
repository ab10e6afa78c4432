"""What every cached artifact kind must hold (keys, shapes, dtypes, finite values): the
validators `cache.load_or_build` runs on every loaded and freshly built value, so that a damaged
or foreign file is reported as a cache problem and rebuilt, never used."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from . import models
from .validation import check_finite, is_number

Validator = Callable[[object], None]


def _fields(value, names: tuple[str, ...]) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"expected a dict with {', '.join(names)}, got {type(value).__name__}")
    missing = [n for n in names if n not in value]
    if missing:
        raise ValueError(f"lacks {', '.join(map(repr, missing))}")
    return value


def _number(value, name: str, low: float = -math.inf, high: float = math.inf) -> None:
    if not (is_number(value) and low <= value <= high):
        raise ValueError(f"{name} = {value!r}; expected a finite number in [{low:g}, {high:g}]")


def _tensor(value, name: str, shape: tuple | None = None, dtype: torch.dtype | None = None,
            finite: bool = True) -> None:
    """A tensor of `shape` (None entries match any size) and `dtype`, all finite."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} is {type(value).__name__}, expected a tensor")
    if shape is not None and (value.dim() != len(shape)
                              or any(s is not None and s != v for s, v in zip(shape, value.shape))):
        raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {shape}")
    if dtype is not None and value.dtype != dtype:
        raise ValueError(f"{name} has dtype {value.dtype}, expected {dtype}")
    if finite:
        check_finite(name, value)


def _state_dict(value, name: str, arch: str, arch_kwargs: dict) -> None:
    """The weights of `arch`: every parameter and buffer of a fresh network, same shapes and dtypes, finite."""
    if not isinstance(value, dict):
        raise ValueError(f"{name} is {type(value).__name__}, expected a state dict")
    expected = models.build(arch, **arch_kwargs).state_dict()
    if set(value) != set(expected):
        raise ValueError(f"{name} does not hold {arch}'s weights (differs in "
                         f"{sorted(set(value) ^ set(expected))[:4]})")
    for key, ref in expected.items():
        _tensor(value[key], f"{name}[{key!r}]", tuple(ref.shape), ref.dtype)


def model(arch: str, arch_kwargs: dict) -> Validator:
    """A `train_models` result: seed, test accuracy and loss, history, the network's weights."""
    def check(value) -> None:
        v = _fields(value, ("seed", "test_acc", "test_loss", "history", "state_dict"))
        _number(v["test_acc"], "test_acc", 0, 1)
        _number(v["test_loss"], "test_loss", 0)
        _fields(v["history"], ("epochs",))
        _state_dict(v["state_dict"], "state_dict", arch, arch_kwargs)
    return check


def synthetic(ipc: int, image_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10) -> Validator:
    """A condensed set (`condense`'s dict): ipc images per class, labels ordered by class, finite loss."""
    n = ipc * num_classes

    def check(value) -> None:
        v = _fields(value, ("images", "labels", "loss", "seconds", "snapshots"))
        _tensor(v["images"], "images", (n, *image_shape), torch.float32)
        _tensor(v["labels"], "labels", (n,), torch.int64)
        if not torch.equal(v["labels"], torch.arange(num_classes).repeat_interleave(ipc)):
            raise ValueError(f"labels are not {ipc} per class ordered by class")
        for i, loss in enumerate(v["loss"]):
            _number(loss, f"loss[{i}]")
        _tensor(v["snapshots"], "snapshots")
    return check


def doorping(ipc: int, image_shape: tuple[int, int, int] = (1, 28, 28)) -> Validator:
    """A DOORPING condensation: a condensed set plus its final and initial trigger patterns and log."""
    condensed = synthetic(ipc, image_shape)

    def check(value) -> None:
        condensed(value)
        v = _fields(value, ("trigger", "initial_trigger", "trigger_log"))
        for key in ("trigger", "initial_trigger"):
            _tensor(v[key], key, (image_shape[0], None, None), torch.float32)
    return check


def distill_net(dropout: float, kept: list[int]) -> Validator:
    """A distillation training run: history, and the network's weights and logit summary at each kept epoch."""
    def check(value) -> None:
        v = _fields(value, ("history", "states", "summaries"))
        _fields(v["history"], ("epochs",))
        for e in map(str, kept):
            _fields(v["states"], (e,))
            _state_dict(v["states"][e], f"states[{e!r}]", "mnistnet", {"dropout": dropout})
            summary = _fields(v["summaries"], (e,))[e]
            _number(_fields(summary, ("test_acc",))["test_acc"], f"summaries[{e!r}].test_acc", 0, 1)
            for key, x in summary.items():
                _number(x, f"summaries[{e!r}].{key}")
    return check


def cw_attack(n: int, keys: tuple[str, ...]) -> Validator:
    """A Carlini-Wagner result: each of `keys` (tensors) for each of the `n` attacked instances."""
    def check(value) -> None:
        v = _fields(value, keys)
        for key in keys:  # a failed attack leaves NaN in its instance's distortions and adversarial
            _tensor(v[key], key, finite=False)
            if len(v[key]) != n:
                raise ValueError(f"{key} holds {len(v[key])} instances, expected {n}")
    return check
