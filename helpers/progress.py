"""Progress bars that read well live and in executed notebooks."""

from __future__ import annotations

import os
import sys

from tqdm.std import tqdm

BATCH_ENV = "DC_BATCH"  # set by the regeneration command and the tests


def progress(iterable, desc: str = "", **kwargs):
    """A text tqdm bar on stderr. In batch runs it redraws rarely, so executed notebooks
    keep a short, readable trace instead of thousands of redraws."""
    kwargs.setdefault("mininterval", 30 if os.environ.get(BATCH_ENV) else 0.5)
    return tqdm(iterable, desc=desc, ncols=90, file=sys.stderr, **kwargs)
