"""Seeding: the same seed gives the same training, step by step."""

import torch

from helpers import runtime
from helpers.models import ConvNet
from helpers.training import fit


def test_seeding_is_deterministic(fashion):
    def run():
        runtime.seed_everything(7)
        model = ConvNet(width=16)
        hist = fit(model, fashion.images[:64], fashion.labels[:64], epochs=2, lr=0.01, batch_size=32, seed=7)
        return hist["step_loss"], model.classifier.weight.detach().clone()

    (loss_a, w_a), (loss_b, w_b) = run(), run()
    assert loss_a == loss_b and torch.equal(w_a, w_b)
