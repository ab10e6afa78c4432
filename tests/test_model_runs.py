"""Cached multi-seed training: one network per seed, each built once and reloaded identically."""

import pytest

from helpers import data
from helpers.model_runs import train_models
from helpers.training import evaluate, load_model


def test_train_models_caches_each_model():
    fashion = data.load("fashion", train=True)
    x, y = fashion.images[:200], fashion.labels[:200]
    kw = dict(arch="lenet", n_models=2, epochs=2, tag={"data": "test-subset"}, test=(x, y), batch_size=50)
    first = train_models(x, y, **kw)
    again = train_models(x, y, **kw)
    assert [r["seed"] for r in first] == [0, 1]
    assert first[0]["test_acc"] == again[0]["test_acc"]
    assert first[0]["test_acc"] != first[1]["test_acc"] or first[0]["test_loss"] != first[1]["test_loss"]
    model = load_model("lenet", again[1]["state_dict"])
    assert evaluate(model, x, y)[0] == pytest.approx(first[1]["test_acc"])
