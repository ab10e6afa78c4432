"""Layers point one way: method modules import runtime, numerical and model code only, never the
study wiring (settings, cache, tables, notebooks)."""

import subprocess
import sys

import pytest

from helpers import versions

STUDY_SIDE = ("helpers.profiles", "helpers.cache", "helpers.config", "helpers.report", "helpers.plotting", "pandas")


@pytest.mark.parametrize("module", versions.METHOD_MODULES)
def test_method_modules_do_not_import_the_study_layer(module):
    code = (f"import sys, helpers.{module}; "
            f"print(' '.join(m for m in {STUDY_SIDE!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"helpers.{module} imports {out}"
