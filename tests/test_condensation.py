"""Dataset condensation: the matching distance, DSA, one step of DC/DM, the loops, validation,
and the study's settings and cache."""

import inspect
import math

import pytest
import torch

from helpers import condensation as C
from helpers import condensation_study as S
from helpers import data, dsa, engine, model_runs, training
from helpers.models import ConvNet


@pytest.fixture(autouse=True)
def eager_engine():
    """These tests check the methods, not the engine (tests/test_engine.py): run eagerly."""
    with engine.using(engine.eager()):
        yield


@pytest.fixture(scope="module")
def fashion():
    return data.load("fashion", train=True)


def test_identical_gradients_have_distance_zero():
    g = torch.randn(8, 3, 3, 3)
    assert C.layer_distance(g, g.clone()).item() == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("shape", [(8, 3, 3, 3), (10, 2048)])
def test_opposite_gradients_have_distance_two_per_output_unit(shape):
    g = torch.randn(shape)
    assert C.layer_distance(g, -g).item() == pytest.approx(2.0 * shape[0], rel=1e-4)


def test_matching_distance_against_a_hand_computation():
    # Conv gradient (2 output units, 1 input, 1x2 kernel) -> rows (1, 0), (0, 1) vs (1, 1), (0, 2):
    # unit 0: 1 - 1 / (1 * sqrt 2 + 1e-6), unit 1: 1 - 2 / (1 * 2 + 1e-6). Linear gradient (1 unit):
    # (3, 4) vs (4, 3): 1 - 24 / (25 + 1e-6). The bias gradient (1-D) adds nothing.
    conv_syn, conv_real = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]]]), torch.tensor([[[[1.0, 1.0]]], [[[0.0, 2.0]]]])
    lin_syn, lin_real = torch.tensor([[3.0, 4.0]]), torch.tensor([[4.0, 3.0]])
    expected = (1 - 1 / (math.sqrt(2) + 1e-6)) + (1 - 2 / (2 + 1e-6)) + (1 - 24 / (25 + 1e-6))
    total = C.match_distance([conv_syn, torch.tensor([5.0, -1.0]), lin_syn],
                             [conv_real, torch.tensor([-3.0, 2.0]), lin_real])
    assert total.item() == pytest.approx(expected, abs=1e-6)


def test_biases_and_norm_parameters_are_ignored():
    w = torch.randn(6, 5)
    assert C.layer_distance(torch.randn(6), torch.randn(6)).item() == 0.0
    total = C.match_distance([w, torch.randn(6)], [w.clone(), -torch.randn(6)])
    assert total.item() == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="shapes differ"):
        C.layer_distance(torch.randn(6, 5), torch.randn(5, 6))


def test_convnet_output_and_feature_shapes():
    net = ConvNet()
    x = torch.randn(3, 1, 28, 28)
    assert net.embed(x).shape == (3, 2048) and net.num_features == 2048
    assert net(x).shape == (3, 10)


@pytest.mark.parametrize("op", dsa.OPS)
def test_dsa_applies_one_shared_draw_to_both_batches(op):
    g = torch.Generator().manual_seed(3)
    real = torch.randn(6, 1, 28, 28)
    syn = real[:2].clone().requires_grad_(True)
    torch.manual_seed(0)  # the global generator must play no part
    for _ in range(5):  # several draws of this op
        draw = dsa.sample(op, 28, g)
        a, b = dsa.apply(real, draw), dsa.apply(syn, draw)
        assert torch.allclose(a[:2], b, atol=1e-6)  # same transform on the real and the synthetic images
        assert torch.allclose(a[2:], dsa.apply(real[2:], draw), atol=1e-6)  # one draw for the whole batch
        b.sum().backward()  # differentiable in the synthetic images
    assert syn.grad is not None and syn.grad.abs().sum() > 0


def test_dsa_siamese_pairs_batches_and_is_seeded():
    real, syn = torch.randn(8, 1, 28, 28), torch.randn(3, 1, 28, 28)
    both = torch.cat([real, syn])
    for seed in range(12):  # covers every op of the strategy
        a_real, a_syn = dsa.siamese(real, syn, dsa.DM_STRATEGY, torch.Generator().manual_seed(seed))
        draw = dsa.sample(dsa.DM_STRATEGY, 28, torch.Generator().manual_seed(seed))
        assert torch.allclose(torch.cat([a_real, a_syn]), dsa.apply(both, draw), atol=1e-6)


def test_dsa_known_answers():
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28)
    assert torch.equal(dsa.apply(x, dsa.Draw("flip", (1.0,))), x.flip(3))
    shifted = dsa.apply(x, dsa.Draw("crop", (2.0, 0.0)))  # rows read from i + 2; zeros shifted in
    assert torch.equal(shifted[:, :, :26], x[:, :, 2:]) and (shifted[:, :, 26:] == 0).all()
    hole = dsa.apply(torch.ones(1, 1, 28, 28), dsa.Draw("cutout", (14.0, 14.0)))
    assert hole.sum().item() == 28 * 28 - 14 * 14 and hole[0, 0, 7:21, 7:21].sum() == 0
    # color: brightness +0.25, saturation the identity on one channel, contrast x1 (0.5 + 0.5)
    assert torch.allclose(dsa.apply(x, dsa.Draw("color", (0.75, 0.3, 0.5))), x + 0.25)
    assert torch.allclose(dsa.apply(x, dsa.Draw("rotate", (0.0,))), x, atol=1e-3)
    with pytest.raises(ValueError, match="dsa_strategy"):
        dsa.parse("color_blur")


@pytest.mark.parametrize("loss_fn", [C.gradient_matching_loss, C.distribution_matching_loss])
def test_one_image_step_lowers_the_matching_loss_on_a_fixed_network(fashion, loss_fn):
    torch.manual_seed(0)
    net = ConvNet(width=32)
    if loss_fn is C.distribution_matching_loss:
        net.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    ipc = 2
    real = [fashion.sample_class(c, 8, g) for c in range(10)]
    syn = torch.randn(10 * ipc, 1, 28, 28, generator=g).requires_grad_(True)
    lr = 0.1 if loss_fn is C.gradient_matching_loss else 1.0
    opt = torch.optim.SGD([syn], lr=lr, momentum=0.5)
    before = loss_fn(net, real, syn, ipc)
    opt.zero_grad()
    before.backward()
    opt.step()
    after = loss_fn(net, real, syn, ipc)
    assert after.item() < before.item()


def test_dm_loss_decreases_under_augmentation(fashion):
    out = C.condense(fashion, 1, method="dm", init="noise", iterations=40, batch_real=16,
                     arch_kwargs={"width": 16}, seed=1)
    assert out["dsa_strategy"] == dsa.DM_STRATEGY
    first, last = sum(out["loss"][:5]) / 5, sum(out["loss"][-5:]) / 5
    assert last < 0.5 * first


def _parameter_trace(fashion, method: str) -> list[list[torch.Tensor]]:
    trace = []

    def hook(net, iteration, step):
        trace.append([p.detach().clone() for p in net.parameters()])

    C.condense(fashion, 1, method=method, iterations=1, batch_real=4, outer_loop=3,
               inner_loop=2 if method == "dc" else 0, arch_kwargs={"width": 8}, on_outer_step=hook)
    return trace


def test_dc_trains_its_network_between_outer_steps_and_dm_never(fashion):
    dc, dm = _parameter_trace(fashion, "dc"), _parameter_trace(fashion, "dm")
    assert len(dc) == len(dm) == 3
    for before, after in zip(dc, dc[1:]):  # the inner loop moved the weights
        assert any(not torch.equal(a, b) for a, b in zip(before, after))
    for before, after in zip(dm, dm[1:]):
        assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_outer_step_hook_can_replace_the_real_data(fashion, monkeypatch):
    seen, reals = [], []
    swapped = data.Split(fashion.name, torch.zeros_like(fashion.images), fashion.labels, fashion.classes)
    loss = C.distribution_matching_loss

    def recording_loss(net, real_per_class, *args):
        reals.append(real_per_class[0])
        return loss(net, real_per_class, *args)

    def hook(net, iteration, step):
        seen.append((iteration, step))
        return swapped

    monkeypatch.setattr(C, "distribution_matching_loss", recording_loss)
    C.condense(fashion, 1, method="dm", iterations=2, batch_real=4, arch_kwargs={"width": 8}, on_outer_step=hook)
    assert seen == [(0, 0), (1, 0)]
    assert reals[0].abs().sum() > 0 and (reals[1] == 0).all()  # the second iteration matched the hook's data


@pytest.mark.parametrize("method,init", [("dc", "noise"), ("dm", "real")])
def test_condense_keeps_labels_balanced_and_ordered(fashion, method, init):
    out = C.condense(fashion, 2, method=method, init=init, iterations=1, batch_real=4, outer_loop=2,
                     inner_loop=1 if method == "dc" else 0, snapshots=2, arch_kwargs={"width": 16})
    assert out["images"].shape == (20, 1, 28, 28) and out["images"].dtype == torch.float32
    assert out["labels"].tolist() == [c for c in range(10) for _ in range(2)]
    assert len(out["loss"]) == 1 and out["snapshots"].shape == (2, 20, 1, 28, 28)
    assert out["snapshot_iters"] == [0, 1]
    assert not torch.equal(out["snapshots"][0], out["images"])  # the images moved


def test_real_init_starts_from_real_images_of_each_class(fashion):
    out = C.condense(fashion, 1, init="real", iterations=0, batch_real=4, snapshots=1)
    for c, img in enumerate(out["images"]):
        assert (fashion.images[fashion.class_indices(c)] == img).all(dim=(1, 2, 3)).any()


@pytest.mark.parametrize("bad,name", [({"lr_img": float("nan")}, "lr_img"), ({"outer_loop": 0}, "outer_loop"),
                                      ({"outer_loop": -1}, "outer_loop"), ({"inner_loop": -1}, "inner_loop"),
                                      ({"snapshots": -1}, "snapshots"), ({"batch_real": 6001}, "batch_real"),
                                      ({"iterations": -2}, "iterations"), ({"lr_net": 0.0}, "lr_net"),
                                      ({"method": "kip"}, "method"), ({"init": "zeros"}, "init"),
                                      ({"method": "dm", "inner_loop": 1}, "inner_loop"),
                                      ({"dsa_strategy": "blur"}, "dsa_strategy"),
                                      ({"lr_img": True}, "lr_img"), ({"lr_net": True}, "lr_net"),
                                      ({"iterations": True}, "iterations"), ({"outer_loop": 2.0}, "outer_loop"),
                                      ({"seed": 2 ** 70}, "seed"), ({"seed": 2 ** 32}, "seed"),
                                      ({"seed": -1}, "seed"), ({"seed": 0.5}, "seed")])
def test_condense_rejects_bad_settings_before_any_work(fashion, monkeypatch, bad, name):
    monkeypatch.setattr(C.models, "ConvNet", None)  # building a network would fail differently
    with pytest.raises(ValueError, match=rf"^{name}="):
        C.condense(fashion, 1, **{"iterations": 1, "batch_real": 4, **bad})


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


def test_synthetic_set_is_cached_and_identical(fashion):
    a = S.synthetic_set(1, "smoke")
    b = S.synthetic_set(1, "smoke")
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["labels"], b["labels"])
    assert a["labels"].bincount().tolist() == [1] * 10
    with pytest.raises(ValueError, match="data_tag"):
        S.synthetic_set(1, "smoke", train=fashion)
    with pytest.raises(ValueError, match="valid"):
        S.synthetic_set(1, "smoke", method="kip")
    with pytest.raises(ValueError, match="no condensation settings"):
        S.synthetic_set(7, "smoke")


def test_settings_match_the_papers_and_train_models():
    paper = S.condense_settings("paper", 10)
    assert (paper["outer_loop"], paper["inner_loop"], paper["iterations"], paper["batch_real"]) == (10, 50, 1000, 256)
    assert S.condense_settings("paper", 50)["outer_loop"] == 50 and S.condense_settings("paper", 1)["lr_img"] == 0.1
    assert paper["dsa_strategy"] == "none"
    dm = S.condense_settings("paper", 10, method="dm")
    assert (dm["outer_loop"], dm["inner_loop"], dm["lr_img"], dm["dsa_strategy"]) == (1, 0, 1.0, dsa.DM_STRATEGY)
    accepted = inspect.signature(model_runs.train_models).parameters
    for profile in ("smoke", "default", "paper"):
        settings = S.evaluation_settings(profile)
        assert set(settings) <= set(accepted) and set(S.whole_settings(profile)) <= set(accepted)
        assert isinstance(settings["epochs"], int)
    ev = S.evaluation_settings("paper", ipc=50)
    assert (ev["epochs"], ev["lr"], ev["momentum"], ev["weight_decay"], ev["batch_size"]) == (300, 0.01, 0.9, 5e-4, 256)
    for ipc in (1, 10):  # DC's full protocol at ipc 1 and 10, >= 5 models, in the default profile
        ev = S.evaluation_settings("default", ipc)
        assert ev["epochs"] == 300 and ev["decay_at"] == (0.5,) and ev["n_models"] >= 5
    assert S.evaluation_settings("default", 50)["n_models"] >= 3


def test_cache_tags_name_the_training_data():
    assert S.synthetic_tag(1, "smoke") != S.synthetic_tag(1, "smoke", seed=1)
    assert S.random_real_tag(10, 0) != S.random_real_tag(10, 0, data_tag={"poison": "x"})
    assert S.whole_tag(60000) != S.whole_tag(60000, poison={"rate": 0.1})
    assert S.synthetic_tag(1, "smoke")["data_tag"] == S.CLEAN_DATA_TAG


def _small(fashion, n=200):
    return fashion.subset(torch.arange(n))


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_condense_refuses_images_with_nan_before_any_work(fashion, monkeypatch, bad):
    """One NaN pixel made every synthetic image NaN."""
    monkeypatch.setattr(C.models, "ConvNet", None)
    small = _small(fashion)
    images = small.images.clone()
    images[7, 0, 3, 3] = bad
    with pytest.raises(ValueError, match="train.images must hold finite values, found 1 NaN or inf"):
        C.condense(data.Split(small.name, images, small.labels, small.classes), 1, iterations=1, batch_real=4)


def test_condense_refuses_labels_outside_the_classes(fashion, monkeypatch):
    monkeypatch.setattr(C.models, "ConvNet", None)
    small = _small(fashion)
    for labels, message in [(small.labels + 1, r"train.labels must hold class indices in \[0, 9\] \(10 classes\), "
                                               r"got \[10\]"),
                            (small.labels - 1, r"train.labels must hold class indices in \[0, 9\].*got \[-1\]"),
                            (torch.where(small.labels == 3, 4, small.labels), r"classes \[3\] of fashion have no "
                                                                                r"training images")]:
        with pytest.raises(ValueError, match=message):  # was "ipc=1 is out of range; valid: 1..0"
            C.condense(data.Split(small.name, small.images, labels, small.classes), 1, iterations=1, batch_real=4)


def test_condense_refuses_images_of_the_wrong_shape_or_dtype(fashion, monkeypatch):
    monkeypatch.setattr(C.models, "ConvNet", None)
    small = _small(fashion)
    for images, message in [(small.images[:, 0], r"train.images must be \(N, C, H, W\), got shape \(200, 28, 28\)"),
                            (small.images.double(), "train.images has dtype torch.float64; valid: torch.float32")]:
        with pytest.raises(ValueError, match=message):
            C.condense(data.Split(small.name, images, small.labels, small.classes), 1, iterations=1, batch_real=4)
