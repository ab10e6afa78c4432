"""Defensive distillation: the temperature softmax, the student's targets, the protocol's checks."""

import colorsys
import math

import pytest
import torch
from matplotlib.colors import to_rgb

from helpers import distillation, distillation_study
from helpers.plotting import CONDITION_COLORS, distillation_colors


def test_temperature_softmax_matches_closed_form():
    z = torch.tensor([[2.0, -1.0, 0.5], [100.0, 0.0, -50.0]])
    for t in (1.0, 2.5, 100.0):
        p = distillation.softmax_t(z, t)
        for row in range(len(z)):
            expected = [math.exp(v / t) / sum(math.exp(u / t) for u in z[row].tolist()) for v in z[row].tolist()]
            assert p[row].tolist() == pytest.approx(expected, rel=1e-5, abs=1e-7)
    # high temperature flattens towards uniform, T -> 0 towards one-hot
    assert distillation.softmax_t(z, 1e6)[0].tolist() == pytest.approx([1 / 3] * 3, abs=1e-5)
    with pytest.raises(ValueError, match="temperature=0 .*valid: finite numbers > 0"):
        distillation.softmax_t(z, 0)


def test_tempered_wrapper_divides_logits():
    net = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    assert torch.allclose(distillation.Tempered(net, 50)(x), net(x) / 50)


def test_student_targets_are_distributions():
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 10))
    with torch.no_grad():
        teacher[1].weight.mul_(500)  # huge logits, as a distilled teacher has
    targets = distillation.soft_labels(teacher, torch.rand(64, 1, 4, 4), temperature=100)
    assert targets.shape == (64, 10)
    assert (targets >= 0).all()
    assert torch.allclose(targets.sum(1), torch.ones(64), atol=1e-5)
    assert targets.max(1).values.mean() < 1  # soft, not one-hot


def test_bad_requests_fail_fast():
    with pytest.raises(ValueError, match="temperature"):
        distillation_study.trained("smoke", "undistilled", 50, 2)
    with pytest.raises(ValueError, match="valid"):
        distillation_study.trained("smoke", "teacher", 50, 7)
    with pytest.raises(ValueError, match="valid"):
        distillation_study.trained("smoke", "pupil", 50, 2)


@pytest.mark.parametrize("temperature", [0, -5.0, math.nan, math.inf, 1.0])
@pytest.mark.parametrize("role", ["teacher", "student"])
def test_bad_temperatures_fail_before_any_training(role, temperature, tmp_path, monkeypatch):
    monkeypatch.setenv("DC_CACHE_DIR", str(tmp_path))
    with pytest.raises(ValueError, match=r"temperature=.*valid: finite numbers > 1"):
        distillation_study.trained("smoke", role, temperature, 2)
    assert not any(tmp_path.iterdir())  # nothing trained, nothing cached
    with pytest.raises(ValueError, match="temperature"):
        distillation.softmax_t(torch.zeros(1, 3), temperature if temperature != 1.0 else 0.0)


@pytest.mark.parametrize("kwargs, name", [({"n_test": -5}, "n_test"), ({"n_test": 0}, "n_test"),
                                          ({"n_train": 605}, "n_train"), ({"n_val": -10}, "n_val"),
                                          ({"n_train": 50000, "n_val": 5000}, "n_train \\+ n_val")])
def test_bad_split_sizes_fail_before_loading(kwargs, name, monkeypatch):
    monkeypatch.setattr(distillation.data, "load", lambda *a: pytest.fail("loaded data before checking"))
    sizes = {"n_train": 600, "n_val": 200, **kwargs}
    with pytest.raises(ValueError, match=f"{name}=.*valid"):
        distillation.mnist_splits(sizes["n_train"], sizes["n_val"], n_test=sizes.get("n_test"))


def test_splits_are_disjoint_and_stratified():
    s = distillation.mnist_splits(600, 200, seed=0)
    (xt, yt), (xv, yv), (_, ys) = s["train"], s["val"], s["test"]
    assert yt.bincount().tolist() == [60] * 10 and yv.bincount().tolist() == [20] * 10
    assert len(ys) == 10000 and 0 <= xt.min() and xt.max() <= 1
    flat_t, flat_v = xt.flatten(1), xv.flatten(1)
    assert not any(bool((flat_t == v).all(1).any()) for v in flat_v[:50])


def test_each_network_has_its_own_colour_in_its_role_hue():
    specs = distillation_study.model_specs("default")
    colors = distillation_colors(specs)
    assert set(colors) == {name for name, _, _ in specs}
    assert len(set(colors.values())) == len(colors)
    for name, role, _ in specs:  # shades of the role's colour: same hue
        assert colorsys.rgb_to_hls(*to_rgb(colors[name]))[0] == pytest.approx(
            colorsys.rgb_to_hls(*to_rgb(CONDITION_COLORS[role]))[0], abs=0.02)
