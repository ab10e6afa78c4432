"""Progress bars that read well live and in executed notebooks."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator

from tqdm.std import tqdm

BATCH_ENV = "DC_BATCH"  # set by the regeneration harness: no bars in executed notebooks


def progress(iterable: Iterable, desc: str = "", **kwargs) -> Iterable:
    """A text tqdm bar on stderr when run by hand. In batch runs no bar (redraws would
    pile up in the executed notebook), only one line on stdout when the loop completes."""
    if os.environ.get(BATCH_ENV):
        return _summary(iterable, desc)
    return tqdm(iterable, desc=desc, ncols=90, file=sys.stderr, mininterval=0.5, **kwargs)


def _summary(iterable: Iterable, desc: str) -> Iterator:
    start, n = time.perf_counter(), 0
    for item in iterable:
        n += 1
        yield item
    print(f"{desc or 'loop'}: {n} steps in {(time.perf_counter() - start) / 60:.1f} min")
