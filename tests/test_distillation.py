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
    with pytest.raises(ValueError, match=r"temperature=0 .*valid: finite numbers >= 0.001"):
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


def test_each_network_has_its_own_colour_in_its_role_hue():
    specs = distillation_study.model_specs("default")
    colors = distillation_colors(specs)
    assert set(colors) == {name for name, _, _ in specs}
    assert len(set(colors.values())) == len(colors)
    for name, role, _ in specs:  # shades of the role's colour: same hue
        assert colorsys.rgb_to_hls(*to_rgb(colors[name]))[0] == pytest.approx(
            colorsys.rgb_to_hls(*to_rgb(CONDITION_COLORS[role]))[0], abs=0.02)


@pytest.mark.parametrize("temperature", [1e-300, 1e-4, 0, -1.0, math.nan, math.inf, True])
def test_temperatures_that_overflow_the_logits_are_refused(temperature):
    """softmax_t(T=1e-300) and Tempered(net, 0) returned inf/NaN; valid: finite T >= 1e-3."""
    z = torch.tensor([[2.0, -1.0, 0.5]])
    message = rf"temperature={temperature!r} is out of range; valid: finite numbers >= 0.001"
    with pytest.raises(ValueError, match=message):
        distillation.softmax_t(z, temperature)
    with pytest.raises(ValueError, match=message):
        distillation.Tempered(torch.nn.Linear(4, 3), temperature)
    assert torch.isfinite(distillation.softmax_t(z, distillation.MIN_TEMPERATURE)).all()


def test_softmax_t_refuses_logits_that_are_or_become_inf():
    with pytest.raises(ValueError, match="logits must hold finite values"):
        distillation.softmax_t(torch.tensor([[math.nan, 0.0]]), 1.0)
    with pytest.raises(ValueError, match=r"logits / temperature \(T=0.001\) must hold finite values"):
        distillation.softmax_t(torch.tensor([[3e38, 0.0]]), 1e-3)


@pytest.mark.parametrize("epochs", [2.0, True, 1.0])
def test_trained_refuses_epochs_that_are_not_integers(epochs, tmp_path, monkeypatch):
    """2.0 and True compare equal to the smoke profile's epoch counts 2 and 1."""
    monkeypatch.setenv("DC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(distillation_study, "mnist_splits", lambda *a: pytest.fail("loaded data before checking"))
    with pytest.raises(ValueError, match=rf"epochs={epochs!r} is not an integer; valid: one of the profile's"):
        distillation_study.trained("smoke", "teacher", 50, epochs)
    assert not any(tmp_path.iterdir())
