"""Carlini-Wagner attacks: box constraint, failure reporting, the closed-form L2 distance on a
linear model, and the L0 attack's shrinking mask."""

import math

import torch
from torch import nn

from helpers import cw


def _linear(w: torch.Tensor, b: float) -> nn.Module:
    """Two-class linear model on 1x4x4 inputs with Z_1 - Z_0 = w . x + b."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.zeros(16), w]))
        model[1].bias.copy_(torch.tensor([0.0, b]))
    return model


def test_margin_is_cw_objective():
    z = torch.tensor([[1.0, 3.0, 2.0]])
    assert cw.margin(z, torch.tensor([2]), kappa=0.0, targeted=True).item() == 1.0  # max_{i!=t} Z_i - Z_t
    assert cw.margin(z, torch.tensor([1]), kappa=0.5, targeted=True).item() == -0.5  # clipped at -kappa
    assert cw.margin(z, torch.tensor([1]), kappa=10.0, targeted=False).item() == 1.0  # Z_y - max_{i!=y} Z_i


def test_l2_distortion_matches_distance_to_linear_boundary():
    torch.manual_seed(0)
    w = torch.randn(16) * 0.5
    x0 = (0.5 + 0.05 * torch.randn(4, 1, 4, 4)).clamp(0, 1)
    b = -(x0.flatten(1) @ w).max().item() - 0.3  # every image on class 0's side, boundary inside the box
    model = _linear(w, b)
    exact = (-(x0.flatten(1) @ w + b) / w.norm())
    res = cw.cw_l2(model, x0, torch.ones(4, dtype=torch.long), search_steps=7, max_iter=500)
    assert res["success"].all()
    assert torch.allclose(res["l2"], exact, rtol=0.03), (res["l2"], exact)
    assert (res["adv"] >= 0).all() and (res["adv"] <= 1).all()
    # untargeted against the true class 0 is the same problem here
    unt = cw.cw_l2(model, x0, torch.zeros(4, dtype=torch.long), targeted=False, search_steps=7, max_iter=500)
    assert torch.allclose(unt["l2"], exact, rtol=0.03)


def test_adversarials_stay_in_box_on_a_network():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 10))
    x0 = torch.rand(6, 1, 6, 6)
    x0[:, :, 0] = 0.0
    x0[:, :, -1] = 1.0  # pixels on both box edges
    target = (model(x0).argmax(1) + 1) % 10
    res = cw.cw_l2(model, x0, target, c_init=1.0, search_steps=3, max_iter=60)
    assert res["success"].any()
    adv = res["adv"][res["success"]]
    assert (adv >= 0).all() and (adv <= 1).all()
    assert (model(adv).argmax(1) == target[res["success"]]).all()
    assert model.training and all(p.requires_grad for p in model.parameters())  # state restored


def test_unsuccessful_attack_returns_no_adversarial():
    model = _linear(torch.zeros(16), -5.0)  # class 0 always wins: target 1 is unreachable
    x0 = torch.rand(3, 1, 4, 4)
    res = cw.cw_l2(model, x0, torch.ones(3, dtype=torch.long), search_steps=3, max_iter=50)
    assert not res["success"].any()
    assert torch.isnan(res["adv"]).all() and torch.isnan(res["l2"]).all() and torch.isnan(res["l0"]).all()
    l0 = cw.cw_l0(model, x0, torch.ones(3, dtype=torch.long), search_steps=2, max_iter=20)
    assert not l0["success"].any() and torch.isnan(l0["adv"]).all()


def test_l0_mask_never_grows_and_changes_few_pixels():
    torch.manual_seed(2)
    w = torch.zeros(16)
    w[:3] = torch.tensor([4.0, 3.0, 2.0])  # three influential pixels
    x0 = torch.full((2, 1, 4, 4), 0.3)
    model = _linear(w, -4.0)  # class 0 at x0 (margin 2.7 - 4 < 0)
    res = cw.cw_l0(model, x0, torch.ones(2, dtype=torch.long), freeze_fraction=0.3, search_steps=6, max_iter=300)
    assert res["success"].all()
    for sizes in res["mask_sizes"]:
        assert sizes[0] == 16 and all(a >= b for a, b in zip(sizes, sizes[1:]))
    assert (res["l0"] <= 3).all()  # only the influential pixels stay changed
    assert (res["adv"] >= 0).all() and (res["adv"] <= 1).all()
    assert not math.isnan(res["l2"][0].item())
