"""Named compute budgets, one place for all notebooks.

A notebook's `profile` parameter picks one of `PROFILES`; each notebook reads the
sections it needs with `budget(profile, section)`. `smoke` runs in seconds (tests),
`default` is what the committed report shows (a 2-core CPU), `paper` uses the
papers' settings (a GPU).
"""

from __future__ import annotations

from types import SimpleNamespace

DEFAULT_PROFILE = "default"

PROFILES: dict[str, dict[str, dict]] = {
    "smoke": {
        "datasets": {"grid_per_class": 4},
    },
    "default": {
        "datasets": {"grid_per_class": 10},
    },
    "paper": {
        "datasets": {"grid_per_class": 10},
    },
}


def _choose(kind: str, name: str, valid) -> None:
    if name not in valid:
        raise ValueError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")


def budget(profile: str, section: str, **overrides) -> SimpleNamespace:
    """The settings of `section` under `profile`, with optional overrides of known keys.

    Unknown profile, section or key names raise ValueError listing the valid ones.
    """
    _choose("profile", profile, PROFILES)
    sections = PROFILES[profile]
    _choose(f"section of profile {profile!r}:", section, sections)
    settings = dict(sections[section])
    for key in overrides:
        _choose(f"setting of {profile}/{section}:", key, settings)
    settings.update(overrides)
    return SimpleNamespace(**settings)
