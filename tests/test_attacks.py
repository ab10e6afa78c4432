"""FGSM / PGD: the eps-ball and pixel-range invariants, the closed form on a linear model,
PGD at least as strong as FGSM, success rates counted on initially correct images, and bad
input (NaN or out-of-range eps and images, impossible settings) refused with the parameter,
its value and the valid range."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import attacks, training


def _linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def _batch(n: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 4, 4, generator=g), torch.randint(3, (n,), generator=g)


@pytest.fixture(scope="module")
def trained():
    """A small MLP trained briefly on a separable toy problem, so attacks have work to do."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(600, 1, 4, 4, generator=g)
    y = (x.flatten(1)[:, :8].sum(1) > x.flatten(1)[:, 8:].sum(1)).long()
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
    training.fit(model, x, y, epochs=30, lr=0.1, batch_size=64, weight_decay=0.0)
    return model.eval(), x[:200], y[:200]


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
@pytest.mark.parametrize("eps", [0.03, 0.1, 0.3])
def test_stays_in_eps_ball_and_pixel_range(attack, eps):
    model, (x, y) = _linear(), _batch()
    x[0] = 0.0  # pixels at the box edges must stay inside [0, 1]
    x[1] = 1.0
    adv = attacks.fgsm(model, x, y, eps) if attack == "fgsm" else attacks.pgd(
        model, x, y, eps, steps=5, generator=torch.Generator().manual_seed(0))
    assert adv.shape == x.shape
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() > 0  # it did move


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_eps_zero_returns_the_input(attack):
    model, (x, y) = _linear(), _batch()
    adv = attacks.fgsm(model, x, y, 0.0) if attack == "fgsm" else attacks.pgd(model, x, y, 0.0)
    assert torch.equal(adv, x)


def test_fgsm_on_linear_model_matches_closed_form():
    """For logits z = W x + b, d CE / d x = W^T (softmax(z) - onehot(y)), so
    x_adv = clip(x + eps * sign(W^T (p - e_y)), 0, 1)."""
    model, (x, y) = _linear(), _batch()
    lin = model[1]
    p = F.softmax(lin(x.flatten(1)), dim=1)
    grad = (p - F.one_hot(y, 3).float()) @ lin.weight  # (n, 16)
    expected = (x + 0.1 * grad.sign().view_as(x)).clamp(0, 1)
    torch.testing.assert_close(attacks.fgsm(model, x, y, 0.1), expected)


def test_attacks_leave_parameters_and_mode_alone():
    model, (x, y) = _linear(), _batch()
    model.train()
    attacks.fgsm(model, x, y, 0.1)
    attacks.pgd(model, x, y, 0.1, steps=2)
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_pgd_loss_at_least_fgsm_loss(trained):
    model, x, y = trained
    for eps in (0.05, 0.1, 0.2):
        loss_fgsm = F.cross_entropy(model(attacks.fgsm(model, x, y, eps)), y).item()
        loss_pgd = F.cross_entropy(model(attacks.pgd(model, x, y, eps, steps=20,
                                                     generator=torch.Generator().manual_seed(0))), y).item()
        assert loss_pgd >= loss_fgsm - 1e-6, (eps, loss_pgd, loss_fgsm)


def test_pgd_is_reproducible_with_a_generator(trained):
    model, x, y = trained
    a = attacks.pgd(model, x, y, 0.1, steps=3, generator=torch.Generator().manual_seed(5))
    b = attacks.pgd(model, x, y, 0.1, steps=3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


class _Fixed(nn.Module):
    """Predicts class 0 for images whose first pixel is < 0.5, else class 1, whatever the rest."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(50.0))

    def forward(self, x):
        s = (x.flatten(1)[:, 0] - 0.5) * self.scale
        return torch.stack([-s, s], dim=1)


def test_success_rate_counts_only_initially_correct_images():
    model = _Fixed()
    x = torch.full((4, 1, 2, 2), 0.5)
    x[:, 0, 0, 0] = torch.tensor([0.45, 0.45, 0.9, 0.1])
    y = torch.tensor([0, 1, 1, 1])  # correct, wrong, correct, wrong (clean accuracy 0.5)
    res = attacks.evaluate_attack(model, x, y, [0.0, 0.1], attack="fgsm", batch_size=3, keep=3)
    clean, attacked = res["records"]
    assert clean["accuracy"] == 0.5 and clean["success_rate"] == 0.0 and clean["n_correct"] == 2
    # eps 0.1 flips image 0 (0.45 -> 0.55, now class 1: wrong) but not image 2 (0.9 -> 0.8);
    # images 1 and 3 were wrong before and stay wrong: they do not count as successes
    # (1 of 2 initially correct fooled, not 3 of 4 wrong after the attack)
    assert attacked["accuracy"] == 0.25
    assert attacked["success_rate"] == 0.5
    assert res["examples"][0.1]["adv"].shape == (3, 1, 2, 2)
    assert res["examples"][0.1]["pred"].tolist() == [1, 0, 1]


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_batched_evaluation_matches_single_attack(trained, attack):
    model, x, y = trained
    res = attacks.evaluate_attack(model, x, y, [0.1], attack=attack, steps=3, random_start=False, batch_size=64)
    if attack == "fgsm":
        adv = attacks.fgsm(model, x, y, 0.1)
    else:
        adv = attacks.pgd(model, x, y, 0.1, steps=3, step_size=attacks.PGD_PATH * 0.1 / 3, random_start=False)
    expected = (model(adv).argmax(1) == y).float().mean().item()
    assert res["records"][0]["accuracy"] == pytest.approx(expected)


def _fgsm(model, x, y, eps):
    return attacks.fgsm(model, x, y, eps)


def _pgd(model, x, y, eps):
    return attacks.pgd(model, x, y, eps, steps=2)


def _evaluate(model, x, y, eps):
    return attacks.evaluate_attack(model, x, y, [0.0, eps])


@pytest.mark.parametrize("attack", [_fgsm, _pgd, _evaluate])
@pytest.mark.parametrize("eps", [float("nan"), float("inf"), -0.1, 1.5])
def test_bad_eps_names_parameter_value_and_range(attack, eps):
    model, (x, y) = _linear(), _batch()
    with pytest.raises(ValueError, match=rf"eps must be a finite number in \[0, 1\], got {eps}"):
        attack(model, x, y, eps)


@pytest.mark.parametrize("attack", [_fgsm, _pgd, _evaluate])
@pytest.mark.parametrize("bad", ["nan", "low", "high"])
def test_images_with_nan_or_out_of_range_are_refused(attack, bad):
    model, (x, y) = _linear(), _batch()
    x[3, 0, 1, 1] = {"nan": float("nan"), "low": -0.5, "high": 1.5}[bad]
    with pytest.raises(ValueError, match=r"x must hold pixel-space images with values in \[0, 1\], found"):
        attack(model, x, y, 0.1)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, r"steps must be an integer in \[1, inf\), got 0"),
    ({"steps": -3}, r"steps must be an integer in \[1, inf\), got -3"),
    ({"steps": 2.5}, r"steps must be an integer in \[1, inf\), got 2.5"),
    ({"batch_size": 0}, r"batch_size must be an integer in \[1, inf\), got 0"),
    ({"keep": -1}, r"keep must be an integer in \[0, inf\), got -1"),
    ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*64 - 1\], got -1"),
    ({"attack": "cw"}, r"attack must be one of fgsm, pgd, got 'cw'"),
])
def test_evaluate_attack_bad_settings_fail_before_any_work(kwargs, message):
    model, (x, y) = _linear(), _batch()
    with pytest.raises(ValueError, match=message):
        attacks.evaluate_attack(model, x, y, [0.1], **{"attack": "pgd", **kwargs})


def test_pgd_bad_steps_and_step_size_and_labels():
    model, (x, y) = _linear(), _batch()
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, inf\), got -1"):
        attacks.pgd(model, x, y, 0.1, steps=-1)
    with pytest.raises(ValueError, match=r"step_size must be a finite number in \(0, inf\), got nan"):
        attacks.pgd(model, x, y, 0.1, step_size=float("nan"))
    with pytest.raises(ValueError, match=r"y must hold one integer class label per image \(32\)"):
        attacks.fgsm(model, x, y[:5], 0.1)
    with pytest.raises(ValueError, match="eps_values must name at least one eps"):
        attacks.evaluate_attack(model, x, y, [])


@pytest.mark.parametrize("attack", [_fgsm, _pgd, _evaluate])
@pytest.mark.parametrize("label", [-100, -1, 3])
def test_labels_outside_the_classes_are_refused(attack, label):
    """Cross-entropy ignores -100 (the image came back unchanged, counted wrong) and fails inside
    torch on the others ("Target 3 is out of bounds")."""
    model, (x, y) = _linear(), _batch()
    y[4] = label
    with pytest.raises(ValueError, match=rf"y must hold class indices in \[0, 2\] \(3 classes\), got \[{label}\]"):
        attack(model, x, y, 0.1)


@pytest.mark.parametrize("attack", [_fgsm, _pgd, _evaluate])
def test_images_of_the_wrong_shape_or_dtype_are_refused(attack):
    model, (x, y) = _linear(), _batch()
    with pytest.raises(ValueError, match=r"x must be \(N, C, H, W\), got shape \(32, 4, 4\); add the channel"):
        attack(model, x[:, 0], y, 0.1)
    with pytest.raises(ValueError, match="x has dtype torch.float64 but the model's parameters are torch.float32"):
        attack(model, x.double(), y, 0.1)
    with pytest.raises(ValueError, match="x has dtype torch.float32 but the model's parameters are torch.float64"):
        attack(model.double(), x, y, 0.1)


@pytest.mark.parametrize("eps_values", [0.1, "0.1", torch.tensor([0.1])])
def test_evaluate_attack_wants_a_sequence_of_eps(eps_values):
    model, (x, y) = _linear(), _batch()
    with pytest.raises(ValueError, match="eps_values must be a sequence of budgets in"):
        attacks.evaluate_attack(model, x, y, eps_values)


@pytest.mark.parametrize("kwargs, message", [
    ({"seed": 2 ** 70}, r"seed must be an integer in \[0, 2\*\*64 - 1\], got 1180591620717411303424"),
    ({"seed": True}, r"seed must be an integer in \[0, 2\*\*64 - 1\], got True"),
    ({"seed": 1.0}, r"seed must be an integer in \[0, 2\*\*64 - 1\], got 1.0"),
    ({"steps": True}, r"steps must be an integer in \[1, inf\), got True"),
    ({"batch_size": 2.0}, r"batch_size must be an integer in \[1, inf\), got 2.0"),
])
def test_evaluate_attack_refuses_bad_seeds_and_booleans(kwargs, message):
    model, (x, y) = _linear(), _batch()
    with pytest.raises(ValueError, match=message):
        attacks.evaluate_attack(model, x, y, [0.1], **{"attack": "pgd", **kwargs})
