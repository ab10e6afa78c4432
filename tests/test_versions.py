"""Method code versions: recorded for every method module, checked against the code, and part
of the cache keys of what the code builds and of the tags of the sets it makes."""

import shutil

import pytest

from helpers import cache, condensation_study, versions


def test_every_method_module_matches_its_recorded_version():
    stale = versions.stale()
    assert stale == [], (f"{stale} changed since their versions were recorded: run `python -m helpers.versions "
                         f"bump {' '.join(stale)}` if results change, else `... same {' '.join(stale)}`")


@pytest.fixture
def package_copy(tmp_path, monkeypatch):
    """A copy of the package's method modules and record, which the test may edit."""
    for name in (*versions.METHOD_MODULES, "method_versions"):
        suffix = ".json" if name == "method_versions" else ".py"
        shutil.copy(versions.PACKAGE / f"{name}{suffix}", tmp_path)
    monkeypatch.setattr(versions, "PACKAGE", tmp_path)
    monkeypatch.setattr(versions, "RECORD", tmp_path / "method_versions.json")
    versions.main(["same", *versions.METHOD_MODULES])  # the copy starts up to date whatever the checkout holds
    return tmp_path


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_changing_a_method_without_its_version_fails_the_check(package_copy):
    edit(package_copy / "condensation.py", "def distribution_matching_loss(", "def _spare():\n    return 1\n\n\n"
                                                                              "def distribution_matching_loss(")
    assert versions.stale() == ["condensation"]
    with pytest.raises(SystemExit):
        versions.main(["check"])


def test_comments_and_docstrings_do_not_count_as_changes(package_copy):
    path = package_copy / "condensation.py"
    text = path.read_text()
    path.write_text(text.replace('"""', '"""Reworded. ', 1).replace("\n", "\n# a new comment\n", 1))
    assert versions.stale() == []


def test_a_bump_changes_the_keys_of_what_the_module_builds_and_of_sets_it_made(package_copy):
    config = {"ipc": 10}
    synthetic, model = cache.cache_path("synthetic", config), cache.cache_path("model", config)
    tag, before = condensation_study.synthetic_tag(10, "smoke"), versions.recorded()["condensation"]["version"]
    edit(package_copy / "condensation.py", "def distribution_matching_loss(", "def _spare():\n    return 1\n\n\n"
                                                                              "def distribution_matching_loss(")
    versions.main(["bump", "condensation"])
    assert versions.stale() == [] and versions.recorded()["condensation"]["version"] == before + 1
    assert cache.cache_path("synthetic", config) != synthetic  # the condensed set is rebuilt ...
    assert condensation_study.synthetic_tag(10, "smoke") != tag  # ... and so is every network trained on it,
    assert cache.cache_path("model", config) == model  # while networks trained on other data are kept


def test_same_keeps_the_version_and_records_the_code(package_copy):
    before = versions.recorded()["dsa"]["version"]
    edit(package_copy / "dsa.py", "import ", "import math as _unused_math\nimport ")
    assert versions.stale() == ["dsa"]
    versions.main(["same", "dsa"])
    assert versions.stale() == [] and versions.recorded()["dsa"]["version"] == before


def test_unknown_kinds_and_modules_are_refused():
    with pytest.raises(ValueError, match="unknown artifact kind 'thing'.*valid: synthetic"):
        versions.code("thing")
    with pytest.raises(ValueError, match="not a method module"):
        versions.code_hash("report")
    with pytest.raises(SystemExit):
        versions.main(["bump"])
