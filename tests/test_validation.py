"""The shared argument checks: what counts as an integer, a number, a seed, finite data and
labels within the classes, and that each message names the argument, value and valid range."""

import math

import numpy as np
import pytest
import torch

from helpers import validation as V


@pytest.mark.parametrize("value, ok", [(3, True), (0, True), (-2, True), (True, False), (3.0, False),
                                       (np.int64(3), False), (np.float64(3.0), False), ("3", False), (None, False)])
def test_is_int_takes_python_ints_only(value, ok):
    assert V.is_int(value) is ok


@pytest.mark.parametrize("value, ok", [(0.5, True), (2, True), (np.float32(0.5), True), (True, False),
                                       (math.nan, False), (math.inf, False), (-math.inf, False),
                                       (np.float64("nan"), False), ("0.5", False), (torch.tensor(0.5), False)])
def test_is_number_takes_finite_non_boolean_reals(value, ok):
    assert V.is_number(value) is ok


def test_check_range_names_value_interval_and_fix():
    V.check_range("rate", 0.5, 0, 1)
    with pytest.raises(ValueError, match=r"^rate must be a finite number in \[0, 1\], got True$"):
        V.check_range("rate", True, 0, 1)
    with pytest.raises(ValueError, match=r"^steps must be an integer in \[1, inf\), got 2.0; use an int$"):
        V.check_range("steps", 2.0, 1, integer=True, fix="use an int")
    with pytest.raises(ValueError, match=r"^lr must be a finite number in \(0, inf\), got 0$"):
        V.check_range("lr", 0, 0.0, low_open=True)


@pytest.mark.parametrize("seed", [-1, 2 ** 64, 2 ** 70, 1.0, True, np.int64(3)])
def test_torch_seeds_are_python_ints_in_0_to_2_pow_64(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64 - 1\], got .*Python ints"):
        V.check_seed("seed", seed)


def test_numpy_seeds_stop_at_2_pow_32():
    V.check_seed("seed", 2 ** 32 - 1, V.NUMPY_SEEDS)
    V.check_seed("seed", 2 ** 64 - 1)
    assert not V.seed_ok(2 ** 32, V.NUMPY_SEEDS)
    with pytest.raises(ValueError, match=r"\[0, 2\*\*32 - 1\], got 4294967296"):
        V.check_seed("seed", 2 ** 32, V.NUMPY_SEEDS)


def test_check_finite_counts_nan_and_inf():
    V.check_finite("x", torch.zeros(3))
    V.check_finite("y", torch.tensor([1, 2]))  # integers are always finite
    with pytest.raises(ValueError, match="x must hold finite values, found 2 NaN or inf of 3; repair them"):
        V.check_finite("x", torch.tensor([math.nan, 0.0, -math.inf]), "repair them")


def test_check_labels_range_dtype_and_count():
    V.check_labels("y", torch.tensor([0, 2, 1]), 3, 3)
    V.check_labels("y", torch.tensor([0, 7]), None)
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, 2\] \(3 classes\), got \[-100, 3\]"):
        V.check_labels("y", torch.tensor([0, 3, -100]), 3)
    with pytest.raises(ValueError, match=r"y must hold class indices in \[0, inf\), got \[-1\]"):
        V.check_labels("y", torch.tensor([-1, 0]), None)
    for bad in (torch.tensor([0.0, 1.0]), torch.tensor([True]), torch.zeros(2, 1, dtype=torch.long), [0, 1]):
        with pytest.raises(ValueError, match="y must be a 1-D integer tensor of class indices"):
            V.check_labels("y", bad, 3)
    with pytest.raises(ValueError, match=r"one per image: 4"):
        V.check_labels("y", torch.tensor([0, 1]), 3, 4)


def test_check_tensor_and_dtype():
    with pytest.raises(ValueError, match=r"x must be a torch.Tensor, got ndarray"):
        V.check_tensor("x", np.zeros((1, 1, 2, 2)))
    with pytest.raises(ValueError, match=r"x must be \(N, C, H, W\), got shape \(2, 2\)$"):
        V.check_tensor("x", torch.zeros(2, 2), dims=4)
    with pytest.raises(ValueError, match="x must hold floating-point values, got dtype torch.int64"):
        V.check_tensor("x", torch.zeros(1, 1, 2, 2, dtype=torch.long), floating=True)
    model = torch.nn.Linear(2, 2)
    V.check_same_dtype("x", torch.zeros(1, 2), model)
    with pytest.raises(ValueError, match="x has dtype torch.float64 but the model's parameters are torch.float32"):
        V.check_same_dtype("x", torch.zeros(1, 2, dtype=torch.float64), model)
