"""Profiles: typed sections whose defaults are the papers' values; overrides checked."""

import dataclasses

import pytest

from helpers import profiles


def test_budget_reads_and_overrides_known_fields():
    assert profiles.budget("smoke", "datasets").grid_per_class > 0
    assert profiles.budget("default", "datasets", grid_per_class=3).grid_per_class == 3


def test_unknown_names_fail_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown profile 'fast'; valid: default, paper, smoke"):
        profiles.budget("fast", "datasets")
    with pytest.raises(ValueError, match="valid: .*condense"):
        profiles.budget("smoke", "no_section")
    with pytest.raises(ValueError, match="grid_per_class"):
        profiles.budget("smoke", "datasets", grid_per_clas=3)


@pytest.mark.parametrize("field, value", [("grid_per_class", "10"), ("grid_per_class", 2.5),
                                          ("grid_per_class", True)])
def test_wrong_types_fail_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"Datasets.{field}"):
        profiles.budget("default", "datasets", **{field: value})


def test_nan_and_nested_types_are_checked():
    with pytest.raises(ValueError, match="Evaluate.lr"):
        profiles.budget("default", "evaluate", lr=float("nan"))
    with pytest.raises(ValueError, match="Evaluate.epochs"):
        profiles.budget("default", "evaluate", epochs={10: "300"})


def test_paper_profile_is_the_defaults_and_every_field_is_documented():
    for name, cls in profiles.SECTIONS.items():
        assert profiles.PROFILES["paper"][name] == cls()
        for f in dataclasses.fields(cls):
            assert f.metadata.get("doc"), (name, f.name)


def test_differences_lists_exactly_the_overrides():
    diff = profiles.differences("default")
    expected = {(s, k) for s, changes in profiles.DEFAULT_OVERRIDES.items() for k, v in changes.items()
                if getattr(profiles.PAPER[s], k) != v}
    assert set(zip(diff.section, diff.setting)) == expected
    assert profiles.differences("paper").empty
