"""Notebooks 01-02's wiring: the profile's condensation and evaluation settings are the papers'
(read from the methods' own defaults), condensed sets are cached, and tags name the data."""

import inspect

import pytest
import torch

from helpers import condensation_study as S
from helpers import dsa, model_runs


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
    assert paper["dsa_strategy"] == "none" and paper["init"] == "noise"  # DC's main.py initialises from noise
    dm = S.condense_settings("paper", 10, method="dm")
    assert (dm["outer_loop"], dm["inner_loop"], dm["lr_img"], dm["dsa_strategy"]) == (1, 0, 1.0, dsa.DM_STRATEGY)
    accepted = inspect.signature(model_runs.train_models).parameters
    for profile in ("smoke", "default", "paper"):
        settings = S.evaluation_settings(profile)
        assert set(settings) <= set(accepted) and set(S.whole_settings(profile)) <= set(accepted)
        assert isinstance(settings["epochs"], int)
    ev = S.evaluation_settings("paper", ipc=50)
    assert (ev["epochs"], ev["lr"], ev["momentum"], ev["weight_decay"], ev["batch_size"]) == (300, 0.01, 0.9, 5e-4, 256)


def test_cache_tags_name_the_training_data():
    assert S.synthetic_tag(1, "smoke") != S.synthetic_tag(1, "smoke", seed=1)
    assert S.random_real_tag(10, 0) != S.random_real_tag(10, 0, data_tag={"poison": "x"})
    assert S.whole_tag(60000) != S.whole_tag(60000, poison={"rate": 0.1})
    assert S.synthetic_tag(1, "smoke")["data_tag"] == S.CLEAN_DATA_TAG
