"""Differentiable Siamese Augmentation: one seeded draw shared by the real and the synthetic
batch, differentiable in the synthetic images, with known answers per operation."""

import pytest
import torch

from helpers import dsa


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
