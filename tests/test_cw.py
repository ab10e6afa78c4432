"""Carlini-Wagner attacks: the objective, the constant search, the closed-form L2 distance on a
linear model, per-instance independence, and the L0 attack's rules (first-success stop, the
constant doubling up to its cap, a mask that only shrinks, the pixels a linear model needs);
notebook 05's study logic: best / average / worst case, bootstrap intervals, the attack plan."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from helpers import cw, cw_study


@pytest.fixture(autouse=True)
def one_thread():
    """The models here are tiny: a second thread only adds synchronisation, slow on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _linear(w: torch.Tensor, b: float) -> nn.Module:
    """Two-class linear model on 1xHxW inputs with Z_1 - Z_0 = w . x + b."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(len(w), 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([torch.zeros(len(w)), w]))
        model[1].bias.copy_(torch.tensor([0.0, b]))
    return model


def _net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 10))


def test_margin_is_cw_objective():
    z = torch.tensor([[1.0, 3.0, 2.0]])
    assert cw.margin(z, torch.tensor([2]), kappa=0.0, targeted=True).item() == 1.0  # max_{i!=t} Z_i - Z_t
    assert cw.margin(z, torch.tensor([1]), kappa=0.5, targeted=True).item() == -0.5  # clipped at -kappa
    assert cw.margin(z, torch.tensor([1]), kappa=10.0, targeted=False).item() == 1.0  # Z_y - max_{i!=y} Z_i


def test_constant_grows_x10_until_first_success_then_bisects():
    const, lower, upper = torch.tensor([1e-3], dtype=torch.float64), torch.zeros(1, dtype=torch.float64), \
        torch.full((1,), 1e10, dtype=torch.float64)
    seen = []
    for success in (False, False, True, True, False):
        const, lower, upper = cw.binary_search_update(const, lower, upper, torch.tensor([success]))
        seen.append(const.item())
    # fail, fail: x10 twice; success at 0.1: midpoint of [0.01, 0.1]; success at 0.055: [0.01, 0.055];
    # fail at 0.0325: [0.0325, 0.055]
    assert seen == pytest.approx([1e-2, 1e-1, 0.055, 0.0325, 0.04375])
    assert (lower.item(), upper.item()) == pytest.approx((0.0325, 0.055))


def test_l2_distortion_matches_distance_to_linear_boundary():
    torch.manual_seed(0)
    w = torch.randn(16) * 0.5
    x0 = (0.5 + 0.05 * torch.randn(4, 1, 4, 4)).clamp(0, 1)
    b = -(x0.flatten(1) @ w).max().item() - 0.3  # every image on class 0's side, boundary inside the box
    model = _linear(w, b)
    exact = (-(x0.flatten(1) @ w + b) / w.norm())
    res = cw.cw_l2(model, x0, torch.ones(4, dtype=torch.long), binary_search_steps=7, max_iter=500)
    assert res["success"].all()
    assert torch.allclose(res["l2"], exact, rtol=0.03), (res["l2"], exact)
    assert (res["adv"] >= 0).all() and (res["adv"] <= 1).all()
    # untargeted against the true class 0 is the same problem here
    unt = cw.cw_l2(model, x0, torch.zeros(4, dtype=torch.long), targeted=False, binary_search_steps=7, max_iter=500)
    assert torch.allclose(unt["l2"], exact, rtol=0.03)


def test_adversarials_stay_in_box_and_instances_do_not_depend_on_their_batch():
    model = _net()
    x0 = torch.rand(6, 1, 6, 6)
    x0[:, :, 0] = 0.0
    x0[:, :, -1] = 1.0  # pixels on both box edges
    target = (model(x0).argmax(1) + 1) % 10
    res = cw.cw_l2(model, x0, target, c_init=1.0, binary_search_steps=3, max_iter=60, batch_size=6)
    assert res["success"].any()
    adv = res["adv"][res["success"]]
    assert (adv >= 0).all() and (adv <= 1).all()
    assert (model(adv).argmax(1) == target[res["success"]]).all()
    assert model.training and all(p.requires_grad for p in model.parameters())  # state restored
    # rows that finish are refilled from the queue: each instance still gets the same answer
    small = cw.cw_l2(model, x0, target, c_init=1.0, binary_search_steps=3, max_iter=60, batch_size=4)
    assert torch.equal(small["success"], res["success"])
    assert torch.allclose(small["l2"], res["l2"], equal_nan=True, atol=1e-5)


def test_unsuccessful_attack_returns_no_adversarial():
    model = _linear(torch.zeros(16), -5.0)  # class 0 always wins: target 1 is unreachable
    x0 = torch.rand(3, 1, 4, 4)
    res = cw.cw_l2(model, x0, torch.ones(3, dtype=torch.long), binary_search_steps=3, max_iter=50)
    assert not res["success"].any()
    assert torch.isnan(res["adv"]).all() and torch.isnan(res["l2"]).all() and torch.isnan(res["l0"]).all()


def test_l0_constant_doubles_after_each_failed_run_up_to_its_cap():
    model = _linear(torch.zeros(16), -5.0)  # unreachable target: every run fails
    x0 = torch.rand(2, 1, 4, 4)
    res = cw.cw_l0(model, x0, torch.ones(2, dtype=torch.long), c_init=0.5, largest_const=8.0, max_iter=7)
    # runs at c = 0.5, 1, 2, 4 (8 reaches the cap), each the full max_iter iterations
    assert res["iterations"].tolist() == [4 * 7, 4 * 7]
    assert not res["success"].any() and torch.isnan(res["adv"]).all()


def test_l0_stops_at_the_first_iterate_that_reaches_the_target():
    model = _linear(torch.zeros(16), 5.0)  # the target already wins at x0, by more than 0.01
    x0 = torch.rand(2, 1, 4, 4)
    res = cw.cw_l0(model, x0, torch.ones(2, dtype=torch.long), max_iter=50)
    # every round succeeds at its first iterate; nothing changed, so one pixel is frozen per round
    assert res["iterations"].tolist() == [16, 16] and res["rounds"].tolist() == [16, 16]
    assert res["success"].all() and (res["l0"] == 0).all()


def test_l0_finds_the_few_pixels_a_linear_model_needs():
    w = torch.full((36,), 0.1)
    strong = [5, 17, 20, 30]
    w[strong] = 2.0
    x0 = torch.full((2, 1, 6, 6), 0.2)
    # the target needs w . (x - x0) >= 4: three strong pixels give 3 x 2 x 0.8 = 4.8, two give 3.2 and
    # need ten weak ones (0.1 x 0.8 each) besides: the sparsest adversarial changes 3 pixels
    model = _linear(w, -(x0[0].flatten() @ w).item() - 4.0)
    target = torch.ones(2, dtype=torch.long)
    res = cw.cw_l0(model, x0, target, c_init=0.1, max_iter=30, lr=0.1, largest_const=20.0, batch_size=1)
    assert res["success"].all() and res["l0"].tolist() == [3, 3]
    changed = (res["adv"] - x0).abs().flatten(1) > cw.CHANGED
    assert all(set(torch.nonzero(row).flatten().tolist()) < set(strong) for row in changed)
    assert (model(res["adv"]).argmax(1) == target).all()
    assert torch.equal(res["adv"][~res["mask"]], x0[~res["mask"]])  # frozen pixels are the original's
    for sizes in res["mask_sizes"]:
        assert sizes[0] == 36 and all(a > b for a, b in zip(sizes, sizes[1:]))  # the mask only shrinks
    # the constant that worked is c_init doubled a whole number of times (it carries over between rounds)
    doublings = torch.log2(res["const"].double() / 0.1)
    assert torch.allclose(doublings, doublings.round(), atol=1e-6)


@pytest.mark.parametrize("kwargs, name", [
    ({"c_init": 0.0}, "c_init"), ({"c_init": -1.0}, "c_init"), ({"c_init": math.nan}, "c_init"),
    ({"max_iter": 0}, "max_iter"), ({"binary_search_steps": 0}, "binary_search_steps"), ({"lr": -0.1}, "lr"),
    ({"kappa": math.inf}, "kappa"), ({"batch_size": 0}, "batch_size")])
def test_l2_rejects_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        cw.cw_l2(_net(), torch.rand(2, 1, 6, 6), torch.tensor([1, 2]), **kwargs)


@pytest.mark.parametrize("kwargs, name", [
    ({"c_init": 0.0}, "c_init"), ({"largest_const": 1e-4}, "largest_const"), ({"const_factor": 1.0}, "const_factor"),
    ({"const_factor": math.nan}, "const_factor"), ({"max_iter": -1}, "max_iter"), ({"lr": 0.0}, "lr")])
def test_l0_rejects_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        cw.cw_l0(_net(), torch.rand(2, 1, 6, 6), torch.tensor([1, 2]), **kwargs)


def test_bad_images_and_targets_fail_before_any_work():
    x = torch.rand(2, 1, 6, 6)
    with pytest.raises(ValueError, match=r"label .*\[0, 9\].*\[10\]"):
        cw.cw_l2(_net(), x, torch.tensor([1, 10]))
    with pytest.raises(ValueError, match="label"):
        cw.cw_l0(_net(), x, torch.tensor([-1, 2]))
    x[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        cw.cw_l2(_net(), x, torch.tensor([1, 2]))


def _instances(l2_per_target: list[float], success: list[bool]) -> pd.DataFrame:
    """One image (label 0) attacked with its nine targets on two models; target 4 is the average case."""
    rows = [{"model": model, "attack": "L2", "image": 0, "label": 0, "target": t, "average": t == 4,
             "all_targets": True, "success": ok, "l2": v + shift if ok else math.nan, "l0": 10.0, "linf": 0.1}
            for model, shift in (("undistilled", 0.0), ("student T=100", 1.0))
            for t, v, ok in zip(range(1, 10), l2_per_target, success)]
    return pd.DataFrame(rows)


def test_best_average_worst_case_over_targets():
    l2 = [3.0, 1.0, 2.0, 5.0, 4.0, 2.5, 1.5, 3.5, 2.2]
    per_case = cw_study.cases(_instances(l2, [True] * 9)).set_index(["model", "case"])
    assert per_case.loc[("undistilled", "best")].l2 == 1.0 and per_case.loc[("undistilled", "best")].target == 2
    assert per_case.loc[("undistilled", "worst")].l2 == 5.0
    assert per_case.loc[("undistilled", "average")].l2 == 5.0  # target 4 is the 4th of targets 1..9
    failed = cw_study.cases(_instances(l2, [True] * 8 + [False])).set_index(["model", "case"])
    assert not failed.loc[("undistilled", "worst")].success  # the worst case fails when any target fails
    assert failed.loc[("undistilled", "best")].success


def test_bootstrap_interval_and_paired_comparison():
    values = np.arange(100, dtype=float)
    lo, hi = cw_study.bootstrap_ci(values)
    assert lo < values.mean() < hi and hi - lo < 15
    assert cw_study.bootstrap_ci(np.full(20, 3.0)) == (3.0, 3.0)
    per_case = pd.concat([cw_study.cases(_instances([1.0 + i / 10] * 9, [True] * 9)).assign(image=i)
                          for i in range(10)])
    paired = cw_study.versus_undistilled(per_case).set_index(["case", "metric"])
    row = paired.loc[("average", "l2")]
    assert row.images == 10 and row.diff_ci_low == pytest.approx(1.0) and row.differs
    assert not paired.loc[("average", "l0")].differs  # the same pixel counts on both


def test_plan_attacks_every_wrong_target_once():
    labels = torch.tensor([3, 7, 0, 9])
    plan = cw_study.attack_instances("smoke", labels)
    every = plan[plan.all_targets]
    for _, group in every.groupby(["model", "attack", "image"]):
        assert sorted(group.target) == [t for t in range(10) if t != group.label.iloc[0]]
    averages = plan[plan.average & (plan.attack != "L2 untargeted")]
    assert not averages.duplicated(["model", "attack", "image"]).any()
    assert (averages.target != averages.label).all()
    untargeted = plan[plan.attack == "L2 untargeted"]
    assert (untargeted.target == untargeted.label).all() and len(untargeted) == 4 * plan.model.nunique()


def test_c_init_tensor_must_hold_one_constant_per_instance():
    x, label = torch.rand(2, 1, 6, 6), torch.tensor([1, 2])
    for c_init in (torch.tensor([1e-2, 1e-2, 1e-2]), torch.full((2, 1), 1e-2)):  # .expand(n) failed inside torch
        with pytest.raises(ValueError, match=r"c_init must be a number or a 1-D tensor of one constant per instance "
                                             r"\(2\), got shape"):
            cw.cw_l2(_net(), x, label, c_init=c_init, max_iter=1)
    with pytest.raises(ValueError, match="c_init must hold finite numbers"):
        cw.cw_l2(_net(), x, label, c_init=torch.tensor(math.nan), max_iter=1)
    with pytest.raises(ValueError, match="c_init must be a finite number"):  # cw_l0 takes one number
        cw.cw_l0(_net(), x, label, c_init=torch.tensor([1e-2, 1e-2]), max_iter=1)


def test_images_of_the_wrong_shape_or_dtype_fail_before_any_work():
    x, label = torch.rand(2, 1, 6, 6), torch.tensor([1, 2])
    for attack in (cw.cw_l2, cw.cw_l0):
        with pytest.raises(ValueError, match=r"x must be \(N, C, H, W\)"):
            attack(_net(), x[:, 0], label, max_iter=1)
        with pytest.raises(ValueError, match="x0 has dtype torch.float64 but the model's parameters are"):
            attack(_net(), x.double(), label, max_iter=1)
        with pytest.raises(ValueError, match=r"label must hold class indices in \[0, 9\].*\[-100\]"):
            attack(_net(), x, torch.tensor([-100, 2]), max_iter=1)
        with pytest.raises(ValueError, match="max_iter must be an integer"):
            attack(_net(), x, label, max_iter=True)


@pytest.mark.parametrize("steps", [1, 4])
def test_the_search_runs_every_configured_binary_step_on_an_instance_that_never_succeeds(steps):
    model = _linear(torch.zeros(16), -5.0)  # class 0 always wins: target 1 is unreachable
    res = cw.cw_l2(model, torch.rand(2, 1, 4, 4), torch.ones(2, dtype=torch.long), binary_search_steps=steps,
                   max_iter=20, abort_early=False)
    assert res["iterations"].tolist() == [steps * 20] * 2 and not res["success"].any()


def test_failures_enter_the_median_as_infinite_and_paired_means_share_images():
    per_case = pd.DataFrame({"model": ["undistilled"] * 3 + ["student T=100"] * 3, "attack": "L2", "case": "average",
                             "image": [0, 1, 2] * 2, "target": 1, "success": [True, True, False, True, False, False],
                             "l2": [1.0, 2.0, np.nan, 3.0, np.nan, np.nan], "l0": 1.0, "linf": 0.1})
    stats = cw_study.summary(per_case).set_index(["model", "metric"])
    assert stats.loc[("undistilled", "l2")].median_all == 2.0  # 1, 2, inf
    assert stats.loc[("student T=100", "l2")].median_all == math.inf  # 3, inf, inf
    assert stats.loc[("undistilled", "l2")].paired_images == 1  # image 0: the only one both broke
    assert stats.loc[("undistilled", "l2")].paired_mean == 1.0 and stats.loc[("student T=100", "l2")].paired_mean == 3.0


def test_all_targets_go_to_the_named_networks_only_and_unknown_names_fail(monkeypatch):
    plan = cw_study.attack_instances("smoke", torch.tensor([3, 7, 0, 9]))
    every = plan[plan.all_targets].groupby("attack").model.unique()
    assert sorted(every["L2"]) == ["student T=100", "undistilled"] and list(every["L0"]) == ["undistilled"]
    smoke = cw_study.get("smoke")
    wrong = dataclasses.replace(smoke, cw=dataclasses.replace(smoke.cw, l2_all_targets=("student",)))
    monkeypatch.setattr(cw_study, "get", lambda profile: wrong)
    with pytest.raises(ValueError, match=r"l2_all_targets=\('student',\) names \['student'\].*valid: undistilled"):
        cw_study.attack_instances("smoke", torch.tensor([3, 7]))


def test_search_check_compares_max_iter_on_the_same_instances():
    torch.manual_seed(0)
    nets = {name: nn.Sequential(nn.Flatten(), nn.Linear(784, 10)) for name, _, _ in
            cw_study.distillation_study.model_specs("smoke")}
    images = {"index": torch.arange(4), "x": torch.rand(4, 1, 28, 28), "y": torch.tensor([3, 7, 0, 9])}
    results, _ = cw_study.run("smoke", nets, images, cw_study.attack_instances("smoke", images["y"]))
    check = cw_study.search_check("smoke", nets, images, results)
    cfg = cw_study.get("smoke").cw
    l0 = cw_study.search_check("smoke", nets, images, results, "L0")
    checked = [n for n in nets if n in cfg.l0_all_targets]  # L0 checks the networks with all nine L0 targets
    assert sorted(l0.model.unique()) == sorted(checked) and len(l0) == len(checked) * len(cfg.l0_search_iters)
    assert (l0.images == cfg.l0_search_images).all()
    assert len(check) == len(nets) * len(cfg.search_iters) and set(check.max_iter) == set(cfg.search_iters)
    assert (check.images == cfg.search_images).all() and (check.paired_images <= check.images).all()
    per_net = check.set_index(["model", "max_iter"]).evaluations
    for (name, m), cost in per_net.items():  # each check ran at its own max_iter
        assert 0 < cost <= cfg.binary_search_steps * m, (name, m, cost)
    own = results[(results.attack == "L2") & results.average & (results.image < cfg.search_images)]
    assert per_net.xs(cfg.max_iter, level="max_iter").to_dict() == own.groupby("model").iterations.mean().to_dict()
    with pytest.raises(ValueError, match="run the attacks"):  # the profile's own budget comes from the main run
        cw_study.search_check("smoke", nets, images, results[results.attack != "L2"])
