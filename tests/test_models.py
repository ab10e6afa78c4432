"""The study's networks: output and feature shapes, the normalising wrapper."""

import pytest
import torch

from helpers.models import ConvNet, LeNet, MnistNet, Normalized


@pytest.mark.parametrize("net,features", [(ConvNet, 2048), (LeNet, None), (MnistNet, None)])
def test_model_shapes(net, features):
    model = net()
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    if features:
        assert model.embed(torch.randn(5, 1, 28, 28)).shape == (5, features)


def test_convnet_output_and_feature_shapes():
    net = ConvNet()
    x = torch.randn(3, 1, 28, 28)
    assert net.embed(x).shape == (3, 2048) and net.num_features == 2048
    assert net(x).shape == (3, 10)


def test_normalized_wrapper():
    inner = torch.nn.Flatten()
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(Normalized(inner, 0.5, 0.25)(x), ((x - 0.5) / 0.25).flatten(1))
