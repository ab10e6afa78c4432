"""`fit` and `train_models`: bad data and settings refused before any weight moves or any
cache file is written, with the parameter, its value and the valid range named."""

import math

import pytest
import torch
from torch import nn

from helpers import model_runs, runtime, training
from helpers.models import ConvNet


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def _data(n: int = 24):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 4, 4, generator=g), torch.randint(3, (n,), generator=g)


def _fails_untouched(match: str, model: nn.Module | None = None, **kwargs) -> None:
    """fit(**kwargs) raises ValueError matching `match` and leaves the weights as they were."""
    model = model or _net()
    before = [p.detach().clone() for p in model.parameters()]
    x, y = _data()
    args = {"images": x, "targets": y, "epochs": 1, "lr": 0.1, "batch_size": 8, **kwargs}
    with pytest.raises(ValueError, match=match):
        training.fit(model, args.pop("images"), args.pop("targets"), **args)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("name", ["momentum", "weight_decay"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -0.1, True])
def test_fit_refuses_nan_momentum_and_weight_decay(name, value):
    """Today momentum=nan or weight_decay=nan silently make every weight NaN."""
    _fails_untouched(rf"^{name}={value!r} is out of range; valid: a finite number", **{name: value})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_fit_refuses_images_with_nan_or_inf(bad):
    x, y = _data()
    x[3, 0, 1, 2] = bad
    _fails_untouched(r"images must hold finite values, found 1 NaN or inf", images=x, targets=y)


@pytest.mark.parametrize("label", [-100, -1, 3])
def test_fit_refuses_labels_outside_the_classes(label):
    """-100 is silently ignored by cross-entropy; 3 (of 3 classes) fails inside torch."""
    x, y = _data()
    y[5] = label
    _fails_untouched(rf"targets must hold class indices in \[0, 2\] \(3 classes\), got \[{label}\]",
                     images=x, targets=y)
    _fails_untouched(r"eval_sets\['val'\] targets must hold class indices in \[0, 2\]",
                     eval_sets={"val": (x, y)})


def test_fit_refuses_soft_labels_with_nan():
    x, _ = _data()
    soft = torch.full((len(x), 3), 1 / 3)
    soft[0, 0] = math.nan
    _fails_untouched("targets must hold finite values", images=x, targets=soft)


def test_fit_refuses_images_of_the_wrong_shape_or_dtype():
    x, y = _data()
    _fails_untouched(r"images must be \(N, C, H, W\), got shape \(24, 4, 4\); add the channel dimension",
                     images=x[:, 0], targets=y)
    _fails_untouched("images has dtype torch.float64 but the model's parameters are torch.float32",
                     images=x.double(), targets=y)
    _fails_untouched("images has dtype torch.float32 but the model's parameters are torch.float64",
                     model=_net().double())
    _fails_untouched("images must hold floating-point values", images=(x * 255).to(torch.uint8), targets=y)


@pytest.mark.parametrize("kwargs, name", [
    ({"seed": 2 ** 70}, "seed"), ({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"), ({"seed": True}, "seed"),
    ({"eval_every": 0}, "eval_every"), ({"eval_every": 1.0}, "eval_every"),
    ({"decay_at": (1.5,)}, "decay_at"), ({"decay_at": (0.0,)}, "decay_at"), ({"decay_at": (1.0,)}, "decay_at"),
    ({"decay_at": (-0.5,)}, "decay_at"), ({"decay_at": (math.nan,)}, "decay_at"), ({"decay_at": 0.5}, "decay_at"),
    ({"epochs": True}, "epochs"), ({"epochs": 2.0}, "epochs"), ({"lr": True}, "lr"),
    ({"batch_size": True}, "batch_size"),
    ({"momentum": 1.0}, "momentum"), ({"nesterov": True, "momentum": 0.0}, "nesterov"), ({"nesterov": 1}, "nesterov"),
])
def test_fit_refuses_bad_settings_by_name(kwargs, name):
    """Booleans are not numbers here, seeds outside torch's [0, 2**64) fail inside torch, and
    decay_at fractions outside (0, 1) were silently dropped."""
    _fails_untouched(rf"^{name}=.*valid:", **kwargs)


def test_train_models_refuses_bad_settings_before_any_cache_write(tmp_path, monkeypatch):
    monkeypatch.setenv("DC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(model_runs.models, "build", lambda *a, **k: pytest.fail("built a network before checking"))
    x, y = _data()
    common = {"arch": "lenet", "n_models": 1, "epochs": 1, "tag": {"data": "bad"}, "test": (x, y)}
    for kwargs, name in [({"n_models": 1.5}, "n_models"), ({"n_models": True}, "n_models"),
                         ({"n_models": 0}, "n_models"), ({"eval_every": 0}, "eval_every"),
                         ({"seed": 2 ** 32}, "seed"), ({"seed": 2 ** 32 - 1, "n_models": 2}, "seed"),
                         ({"seed": -1}, "seed"), ({"momentum": math.nan}, "momentum"),
                         ({"weight_decay": math.nan}, "weight_decay"), ({"decay_at": (2.0,)}, "decay_at")]:
        with pytest.raises(ValueError, match=rf"^{name}=.*valid:"):
            model_runs.train_models(x, y, **{**common, **kwargs})
    bad = x.clone()
    bad[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="images must hold finite values"):
        model_runs.train_models(bad, y, **common)
    with pytest.raises(ValueError, match=r"test targets must hold class indices in \[0, inf\)"):
        model_runs.train_models(x, y, **{**common, "test": (x, torch.full_like(y, -100))})
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\)"):
        model_runs.train_models(x[:, 0], y, **common)
    assert not any(tmp_path.iterdir())  # nothing trained, nothing cached


def test_valid_calls_still_train():
    """The checks add nothing to a valid run: it trains, and the same seed gives the same weights."""
    x, y = _data()
    runs = []
    for _ in range(2):
        model = _net()
        history = training.fit(model, x, y, epochs=2, lr=0.1, batch_size=8, decay_at=(0.5,), seed=2 ** 64 - 1,
                               eval_sets={"train": (x, y)})
        runs.append((history, [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0] and all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    assert all(math.isfinite(r["train_loss"]) for r in runs[0][0]["epochs"])


def _toy(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 2, 2, generator=g)
    return x, (x.flatten(1).sum(1) > 0).long()


def test_validation_split_is_disjoint_and_deterministic():
    images, labels = torch.arange(50.0).view(50, 1, 1, 1), torch.arange(50)
    (fx, fy), (vx, vy) = training.validation_split(images, labels, 10, seed=3)
    assert len(fy) == 40 and len(vy) == 10
    assert set(fy.tolist()).isdisjoint(vy.tolist()) and set(fy.tolist()) | set(vy.tolist()) == set(range(50))
    assert torch.equal(fx.flatten(), fy.float())
    assert torch.equal(training.validation_split(images, labels, 10, seed=3)[1][1], vy)
    with pytest.raises(ValueError, match=r"n_val must be an integer in \[1, 49\], got 50"):
        training.validation_split(images, labels, 50, seed=3)


def test_train_to_accuracy_stops_at_the_first_check_that_reaches_the_target():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    (x, y), val = _toy(2000, 0), _toy(500, 1)
    start = training.evaluate(model, *val)[0]
    target = min(0.95, start + 0.25)
    history = training.train_to_accuracy(model, x, y, val, target, check_every=3, max_epochs=5, lr=0.01,
                                           momentum=0.9, weight_decay=5e-4, batch_size=32, seed=0)
    accs = [c["val_acc"] for c in history["checks"]]
    assert history["reached"] and accs[-1] >= target and all(a < target for a in accs[:-1])
    assert [c["step"] for c in history["checks"]] == list(range(0, history["steps"] + 1, 3))
    assert training.evaluate(model, *val)[0] == pytest.approx(accs[-1])  # the model is the stopped one
    assert history["epochs"] == pytest.approx(history["steps"] / 63)  # 2000 images in batches of 32


def test_train_to_accuracy_says_when_the_target_is_out_of_reach():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    (x, y), (vx, vy) = _toy(200, 0), _toy(100, 1)
    history = training.train_to_accuracy(model, x, y, (vx, 1 - vy), 1.0, check_every=2, max_epochs=1,
                                           lr=0.01, momentum=0.9, weight_decay=0.0, batch_size=50, seed=0)
    assert not history["reached"] and history["steps"] == 4
    with pytest.raises(ValueError, match=r"target must be an accuracy in \(0, 1\], got 1.5"):
        training.train_to_accuracy(model, x, y, (vx, vy), 1.5, check_every=2, max_epochs=1, lr=0.01,
                                     momentum=0.9, weight_decay=0.0, batch_size=50, seed=0)


def test_training_learns_and_reports(fashion):
    runtime.seed_everything(0)
    model = ConvNet(width=32)
    x, y = fashion.images[:2000], fashion.labels[:2000]
    hist = training.fit(model, x, y, epochs=3, lr=0.01, batch_size=128, eval_sets={"train": (x, y)})
    last = hist["epochs"][-1]
    assert last["train_acc"] > 0.6 and len(hist["step_loss"]) == 3 * 16
    assert training.evaluate(model, x, y)[0] == pytest.approx(last["train_acc"])


@pytest.mark.parametrize("bad,name", [({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"),
                                      ({"lr": float("nan")}, "lr")])
def test_training_rejects_bad_settings(fashion, bad, name):
    x, y = fashion.images[:10], fashion.labels[:10]
    with pytest.raises(ValueError, match=rf"^{name}="):
        training.fit(ConvNet(width=8), x, y, **{"epochs": 1, "lr": 0.01, **bad})
    with pytest.raises(ValueError, match=rf"^{name}="):
        model_runs.train_models(x, y, arch="lenet", n_models=1, tag={"data": "bad"}, test=(x, y),
                              **{"epochs": 1, **bad})
    with pytest.raises(ValueError, match="at least 1 image"):
        training.fit(ConvNet(width=8), x[:0], y[:0], epochs=1, lr=0.01)
