"""Data, cache, seeding, models and training: the foundations every notebook stands on."""


import matplotlib.pyplot as plt
import pytest
import torch

from helpers import cache, config, data
from helpers.models import ConvNet, LeNet, MnistNet, Normalized
from helpers.plotting import save_figure
from helpers.training import evaluate, fit


@pytest.fixture(scope="module")
def fashion():
    return data.load("fashion", train=True)


@pytest.mark.parametrize("name", ["mnist", "fashion"])
@pytest.mark.parametrize("train,n", [(True, 60000), (False, 10000)])
def test_split_shapes_and_normalisation(name, train, n):
    split = data.load(name, train)
    assert split.images.shape == (n, 1, 28, 28) and split.images.dtype == torch.float32
    assert split.labels.shape == (n,) and split.labels.dtype == torch.int64
    assert set(split.labels.unique().tolist()) == set(range(10))
    assert abs(split.images.mean().item()) < 0.02 and abs(split.images.std().item() - 1) < 0.02
    pixels = split.pixels()
    assert pixels.min() >= 0 and pixels.max() <= 1
    assert torch.allclose(data.normalize(pixels, name), split.images, atol=1e-5)


def test_fashion_is_balanced(fashion):
    assert fashion.labels.bincount().tolist() == [6000] * 10


def test_stratified_subset_is_balanced_and_deterministic():
    mnist = data.load("mnist", True)
    a, b = data.stratified_subset(mnist, 30000, seed=1), data.stratified_subset(mnist, 30000, seed=1)
    assert a.labels.bincount().tolist() == [3000] * 10
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.labels, data.stratified_subset(mnist, 30000, seed=2).labels)
    with pytest.raises(ValueError):
        data.stratified_subset(mnist, 30001, seed=1)


def test_class_sampling(fashion):
    g = torch.Generator().manual_seed(0)
    imgs = fashion.sample_class(3, 50, g)
    idx = fashion.class_indices(3)
    # every sampled image is an image of class 3
    matches = (imgs.flatten(1)[:, None, :] == fashion.images[idx].flatten(1)[None]).all(-1).any(-1)
    assert matches.all()
    images, labels = data.random_per_class(fashion, 5, seed=0)
    assert images.shape == (50, 1, 28, 28) and labels.bincount().tolist() == [5] * 10


def test_cache_key_is_stable_and_order_free():
    assert cache.config_key({"a": 1, "b": [1, 2]}) == cache.config_key({"b": [1, 2], "a": 1})
    assert cache.config_key({"a": 1}) != cache.config_key({"a": 2})
    # known answer: keys must not change between versions, or every cache is invalidated
    assert cache.config_key({"ipc": 10, "method": "dc"}) == "c8ff87189accd964"


def test_cache_builds_once_and_returns_identical_tensors(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"x": torch.randn(3, 4), "meta": [1.0, 2.0]}

    first = cache.load_or_build("thing", {"k": 1}, build, root=tmp_path)
    second = cache.load_or_build("thing", {"k": 1}, build, root=tmp_path)
    assert len(calls) == 1 and torch.equal(first["x"], second["x"]) and second["meta"] == [1.0, 2.0]


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "a.pt"
    cache.atomic_save({"v": torch.ones(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cache.atomic_save({"v": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary left behind


def test_seeding_is_deterministic(fashion):
    def run():
        config.seed_everything(7)
        model = ConvNet(width=16)
        hist = fit(model, fashion.images[:64], fashion.labels[:64], epochs=2, lr=0.01, batch_size=32, seed=7)
        return hist["step_loss"], model.classifier.weight.detach().clone()

    (loss_a, w_a), (loss_b, w_b) = run(), run()
    assert loss_a == loss_b and torch.equal(w_a, w_b)


def test_training_learns_and_reports(fashion):
    config.seed_everything(0)
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
    from helpers.training import load_model, train_models

    x, y = fashion.images[:200], fashion.labels[:200]
    kw = dict(arch="lenet", n_models=2, epochs=2, tag={"data": "test-subset"}, test=(x, y), batch_size=50)
    first = train_models(x, y, **kw)
    again = train_models(x, y, **kw)
    assert [r["seed"] for r in first] == [0, 1]
    assert first[0]["test_acc"] == again[0]["test_acc"]
    assert first[0]["test_acc"] != first[1]["test_acc"] or first[0]["test_loss"] != first[1]["test_loss"]
    model = load_model("lenet", again[1]["state_dict"])
    assert evaluate(model, x, y)[0] == pytest.approx(first[1]["test_acc"])


def test_concurrent_builders_build_once(tmp_path):
    """Two processes asking for the same artifact: the second waits and loads the first's."""
    import subprocess
    import sys

    script = (
        "import sys, time, torch\n"
        "from pathlib import Path\n"
        "from helpers.cache import load_or_build\n"
        "def build():\n"
        "    Path(sys.argv[1], 'built-' + sys.argv[2]).touch(); time.sleep(1.5); return torch.ones(1)\n"
        "load_or_build('shared', {'k': 1}, build, root=Path(sys.argv[1]))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(i)], cwd=config.REPO_ROOT)
             for i in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert len(list(tmp_path.glob("built-*"))) == 1


def test_save_figure_stamps_the_source_below_rotated_tick_labels():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(["a long tick label", "another long tick label"], [1, 2])
    ax.tick_params(axis="x", rotation=60)
    assert save_figure(fig, "stamp_check", "test · profile smoke") is None  # nothing echoed in notebooks
    stamp = fig.texts[-1]
    assert (config.figures_dir() / "stamp_check.png").exists() and stamp.get_text() == "test · profile smoke"
    lowest_tick = min(label.get_window_extent().y0 for label in ax.get_xticklabels())
    assert stamp.get_window_extent().y1 <= lowest_tick
