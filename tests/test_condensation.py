"""Dataset condensation: the matching distance, DSA, one step of DC/DM, the loops, validation,
and the study's settings and cache."""

import math

import pytest
import torch

from helpers import condensation as C
from helpers import data, dsa, engine
from helpers.models import ConvNet


@pytest.fixture(autouse=True)
def eager_engine():
    """These tests check the methods, not the engine (tests/test_engine.py): run eagerly."""
    with engine.using(engine.eager()):
        yield


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
