"""On-disk cache of expensive artifacts, keyed by a stable hash of their configuration."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .config import cache_dir


def _canonical(config: dict) -> str:
    """The configuration as JSON text: key order ignored, tuples and lists alike."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def config_key(config: dict) -> str:
    """Stable 16-hex-digit hash of a JSON-serialisable configuration (key order ignored)."""
    return hashlib.sha256(_canonical(config).encode()).hexdigest()[:16]


def cache_path(name: str, config: dict, root: Path | None = None) -> Path:
    return (root or cache_dir()) / f"{name}-{config_key(config)}.pt"


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CacheProblem(ValueError):
    """A cache file is unreadable, or holds another key's or a malformed value."""


def _load(path: Path, config: dict, validate: Callable[[Any], None] | None) -> Any:
    try:
        entry = torch.load(path, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise CacheProblem(f"unreadable ({type(err).__name__})") from err
    if not isinstance(entry, dict) or _canonical(entry.get("config")) != _canonical(config):
        raise CacheProblem("its stored configuration is not its key's")
    if validate:
        try:
            validate(entry["value"])
        except Exception as err:
            raise CacheProblem(f"wrong content for its key: {err}") from err
    return entry["value"]


def _quarantine(path: Path, problem: CacheProblem) -> None:
    """Move a bad cache file aside to a free `*.corrupt[-N]` name (an earlier one is kept) and say so."""
    bad, n = path.with_suffix(".corrupt"), 1
    while bad.exists():
        bad, n = path.with_suffix(f".corrupt-{n}"), n + 1
    try:
        os.replace(path, bad)
        done = f"moved to {bad.name}, rebuilding"
    except OSError as err:  # a read-only cache folder
        done = f"could not be moved aside ({err}), rebuilding without storing"
    warnings.warn(f"cache problem: {path} is {problem}; {done}", stacklevel=3)


def load_or_build(name: str, config: dict, build: Callable[[], Any], root: Path | None = None,
                  validate: Callable[[Any], None] | None = None) -> Any:
    """The cached value for (name, config), or `build()` stored atomically and returned.

    Values must be what `torch.load(weights_only=True)` accepts: tensors, state_dicts,
    and dicts/lists of numbers and strings. `validate(value)` raises when a value lacks the
    expected structure (keys, shapes); it checks loaded and freshly built values alike. A
    cache file that is unreadable or fails `validate` is reported as a cache problem and
    moved aside to `*.corrupt` (never silently used, never deleted), then the value is rebuilt.
    A lock file makes a second process asking for the same artifact wait for the first
    one's build instead of repeating it (notebooks run side by side). A read-only cache
    folder still serves the artifacts it holds; anything else is built and not stored.
    """
    path = cache_path(name, config, root)
    bad = None
    try:  # no lock needed to read: files are only ever replaced atomically
        return _load(path, config, validate)
    except FileNotFoundError:
        pass
    except CacheProblem as problem:  # looked at again under the lock, where it is quarantined
        bad = problem
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_suffix(".lock"), "w")
    except OSError as err:
        if bad:
            _quarantine(path, bad)
        warnings.warn(f"cache folder {path.parent} is not writable ({err}); {path.name} is built and not stored",
                      stacklevel=2)
        return _built(build, validate)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():  # built by another process while this one waited, or bad
            try:
                return _load(path, config, validate)
            except CacheProblem as problem:
                _quarantine(path, problem)
        value = _built(build, validate)
        atomic_save({"config": config, "value": value}, path)
        return value


def _built(build: Callable[[], Any], validate: Callable[[Any], None] | None) -> Any:
    value = build()
    if validate:
        validate(value)  # a build that breaks its own contract is a bug: never store it
    return value
