"""Dataset condensation: the matching distance, the ConvNet, one step of DC/DM, the cache."""

import inspect

import pytest
import torch

from helpers import condensation as C
from helpers import data, training
from helpers.models import ConvNet


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


def test_orthogonal_rows_have_distance_one_per_output_unit():
    a, b = torch.eye(4)[:2], torch.eye(4)[2:]
    assert C.layer_distance(a, b).item() == pytest.approx(2.0, abs=1e-4)


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


@pytest.mark.parametrize("method,init", [("dc", "noise"), ("dm", "real")])
def test_condense_keeps_labels_balanced_and_ordered(fashion, method, init):
    out = C.condense(fashion, 2, method=method, init=init, iterations=1, batch_real=4, outer_loop=2,
                     inner_loop=1, snapshots=2, arch_kwargs={"width": 16})
    assert out["images"].shape == (20, 1, 28, 28) and out["images"].dtype == torch.float32
    assert out["labels"].tolist() == [c for c in range(10) for _ in range(2)]
    assert len(out["loss"]) == 1 and out["snapshots"].shape == (2, 20, 1, 28, 28)
    assert out["snapshot_iters"] == [0, 1]
    assert not torch.equal(out["snapshots"][0], out["images"])  # the images moved


def test_real_init_starts_from_real_images_of_each_class(fashion):
    out = C.condense(fashion, 1, init="real", iterations=0, batch_real=4, snapshots=1)
    for c, img in enumerate(out["images"]):
        assert (fashion.images[fashion.class_indices(c)] == img).all(dim=(1, 2, 3)).any()


def test_synthetic_set_is_cached_and_identical(fashion):
    a = C.synthetic_set(1, "smoke")
    b = C.synthetic_set(1, "smoke")
    assert torch.equal(a["images"], b["images"]) and torch.equal(a["labels"], b["labels"])
    assert a["labels"].bincount().tolist() == [1] * 10
    with pytest.raises(ValueError, match="data_tag"):
        C.synthetic_set(1, "smoke", train=fashion)
    with pytest.raises(ValueError, match="valid"):
        C.synthetic_set(1, "smoke", method="kip")
    with pytest.raises(ValueError, match="no condensation settings"):
        C.synthetic_set(7, "smoke")


def test_settings_match_the_paper_and_train_models():
    paper = C.condense_settings("paper", 10)
    assert (paper["outer_loop"], paper["inner_loop"], paper["iterations"], paper["batch_real"]) == (10, 50, 1000, 256)
    assert C.condense_settings("paper", 50)["outer_loop"] == 50 and C.condense_settings("paper", 1)["lr_img"] == 0.1
    accepted = inspect.signature(training.train_models).parameters
    for profile in ("smoke", "default", "paper"):
        settings = C.evaluation_settings(profile)
        assert set(settings) <= set(accepted)
        assert isinstance(settings["epochs"], int)
    ev = C.evaluation_settings("paper", ipc=50)
    assert (ev["epochs"], ev["lr"], ev["momentum"], ev["weight_decay"], ev["batch_size"]) == (300, 0.01, 0.9, 5e-4, 256)
    assert C.evaluation_settings("default")["n_models"] >= 5
