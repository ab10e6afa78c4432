"""Cache, seeding, models and training: the foundations every notebook stands on (data
loading: tests/test_data.py)."""


import matplotlib.pyplot as plt
import pytest
import torch

from helpers import config, data, runtime
from helpers.models import ConvNet, LeNet, MnistNet, Normalized
from helpers.plotting import save_figure
from helpers.training import evaluate, fit


@pytest.fixture(scope="module")
def fashion():
    return data.load("fashion", train=True)








def test_seeding_is_deterministic(fashion):
    def run():
        runtime.seed_everything(7)
        model = ConvNet(width=16)
        hist = fit(model, fashion.images[:64], fashion.labels[:64], epochs=2, lr=0.01, batch_size=32, seed=7)
        return hist["step_loss"], model.classifier.weight.detach().clone()

    (loss_a, w_a), (loss_b, w_b) = run(), run()
    assert loss_a == loss_b and torch.equal(w_a, w_b)


def test_training_learns_and_reports(fashion):
    runtime.seed_everything(0)
    model = ConvNet(width=32)
    x, y = fashion.images[:2000], fashion.labels[:2000]
    hist = fit(model, x, y, epochs=3, lr=0.01, batch_size=128, eval_sets={"train": (x, y)})
    last = hist["epochs"][-1]
    assert last["train_acc"] > 0.6 and len(hist["step_loss"]) == 3 * 16
    assert evaluate(model, x, y)[0] == pytest.approx(last["train_acc"])


@pytest.mark.parametrize("net,features", [(ConvNet, 2048), (LeNet, None), (MnistNet, None)])
def test_model_shapes(net, features):
    model = net()
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    if features:
        assert model.embed(torch.randn(5, 1, 28, 28)).shape == (5, features)


def test_normalized_wrapper():
    inner = torch.nn.Flatten()
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(Normalized(inner, 0.5, 0.25)(x), ((x - 0.5) / 0.25).flatten(1))


def test_train_models_caches_each_model(fashion):
    from helpers.model_runs import train_models
    from helpers.training import load_model

    x, y = fashion.images[:200], fashion.labels[:200]
    kw = dict(arch="lenet", n_models=2, epochs=2, tag={"data": "test-subset"}, test=(x, y), batch_size=50)
    first = train_models(x, y, **kw)
    again = train_models(x, y, **kw)
    assert [r["seed"] for r in first] == [0, 1]
    assert first[0]["test_acc"] == again[0]["test_acc"]
    assert first[0]["test_acc"] != first[1]["test_acc"] or first[0]["test_loss"] != first[1]["test_loss"]
    model = load_model("lenet", again[1]["state_dict"])
    assert evaluate(model, x, y)[0] == pytest.approx(first[1]["test_acc"])




def test_save_figure_stamps_the_source_below_rotated_tick_labels():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(["a long tick label", "another long tick label"], [1, 2])
    ax.tick_params(axis="x", rotation=60)
    assert save_figure(fig, "stamp_check", "test · profile smoke") is None  # nothing echoed in notebooks
    stamp = fig.texts[-1]
    assert (config.figures_dir() / "stamp_check.png").exists() and stamp.get_text() == "test · profile smoke"
    lowest_tick = min(label.get_window_extent().y0 for label in ax.get_xticklabels())
    assert stamp.get_window_extent().y1 <= lowest_tick
