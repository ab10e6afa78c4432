"""Profiles: typed sections whose defaults are the papers' values (the methods' own defaults
where a method has one); overrides checked by name, type and value."""

import dataclasses
import inspect

import pytest

from helpers import condensation, cw, model_runs, profiles
from helpers.backdoor import BadNets, Doorping


def test_sections_are_typed_attributes_of_a_profile():
    p = profiles.get("default")
    assert isinstance(p.condense, profiles.Condense) and isinstance(p.robustness, profiles.Robustness)
    assert all(isinstance(run, profiles.CondenseRun) for run in p.condense.per_ipc.values())
    assert set(profiles.SECTIONS) == {f.name for f in dataclasses.fields(profiles.Profile)} - {"name"}
    assert profiles.replace(p.datasets, grid_per_class=3).grid_per_class == 3


def test_unknown_names_fail_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown profile 'fast'; valid: default, paper, smoke"):
        profiles.get("fast")
    with pytest.raises(ValueError, match="grid_per_class"):
        profiles.replace(profiles.get("smoke").datasets, grid_per_clas=3)


@pytest.mark.parametrize("field, value", [("grid_per_class", "10"), ("grid_per_class", 2.5),
                                          ("grid_per_class", True)])
def test_wrong_types_fail_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"Datasets.{field}"):
        profiles.replace(profiles.get("default").datasets, **{field: value})


def test_nan_and_nested_types_are_checked():
    evaluate = profiles.get("default").evaluate
    with pytest.raises(ValueError, match="Evaluate.lr"):
        profiles.replace(evaluate, lr=float("nan"))
    with pytest.raises(ValueError, match="Evaluate.epochs"):
        profiles.replace(evaluate, epochs={10: "300"})
    with pytest.raises(ValueError, match="Condense.per_ipc"):
        profiles.replace(profiles.get("default").condense, per_ipc={10: {"method": "dm"}})


def test_paper_profile_is_the_defaults_and_every_field_is_documented():
    paper = profiles.get("paper")
    for name, cls in profiles.SECTIONS.items():
        assert getattr(paper, name) == cls()
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc"), (name, f.name)


def default_of(fn, name):
    return inspect.signature(fn).parameters[name].default


def test_paper_values_are_the_methods_own():
    paper = profiles.get("paper")
    for field, fn in (("c_init", cw.cw_l2), ("binary_search_steps", cw.cw_l2), ("max_iter", cw.cw_l2)):
        assert getattr(paper.cw, field) == default_of(fn, field)
    assert paper.cw.l0_max_iter == default_of(cw.cw_l0, "max_iter")
    for field in ("lr", "momentum", "weight_decay", "batch_size", "decay_at"):
        assert getattr(paper.evaluate, field) == default_of(model_runs.train_models, field)
    assert paper.condense.lr_net == default_of(condensation.condense, "lr_net")
    assert paper.backdoor.trigger == BadNets() and paper.backdoor.doorping == Doorping()


def test_differences_lists_exactly_the_overrides():
    diff = profiles.differences("default")
    expected = {(s, k) for s, changes in profiles.DEFAULT_OVERRIDES.items() for k, v in changes.items()
                if getattr(profiles.PAPER[s], k) != v}
    assert set(zip(diff.section, diff.setting)) == expected
    assert profiles.differences("paper").empty


@pytest.mark.parametrize("field, value, valid", [("test_images", 0, "None \\(all\\) or an integer >= 1"),
                                                 ("lr", -0.1, "numbers >= 0"), ("epochs", {10: -3}, "numbers >= 0")])
def test_values_out_of_range_fail_naming_the_range(field, value, valid):
    """test_images=0 silently meant all 10,000 images."""
    with pytest.raises(ValueError, match=f"Evaluate.{field} = .* is out of range; valid: {valid}"):
        profiles.replace(profiles.get("default").evaluate, **{field: value})


def test_a_mistyped_section_names_the_valid_ones():
    with pytest.raises(AttributeError, match="no section 'condnse'; valid: datasets, condense"):
        profiles.get("smoke").condnse  # noqa: B018


def test_counts_that_must_not_be_empty_refuse_zero():
    with pytest.raises(ValueError, match="Evaluate.n_models = 0 is out of range; valid: numbers >= 1"):
        profiles.replace(profiles.get("default").evaluate, n_models=0)
