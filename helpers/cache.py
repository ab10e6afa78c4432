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


def config_key(config: dict) -> str:
    """Stable 16-hex-digit hash of a JSON-serialisable configuration (key order ignored)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def _load(path: Path, config: dict) -> Any:
    entry = torch.load(path, weights_only=True)
    if not isinstance(entry, dict) or entry.get("config") != json.loads(json.dumps(config)):
        raise ValueError("stored configuration does not match")
    return entry["value"]


def load_or_build(name: str, config: dict, build: Callable[[], Any], root: Path | None = None) -> Any:
    """The cached value for (name, config), or `build()` stored atomically and returned.

    Values must be what `torch.load(weights_only=True)` accepts: tensors, state_dicts,
    and dicts/lists of numbers and strings. An unreadable cache file is moved aside to
    `*.corrupt` (never silently used, never deleted) and the value is rebuilt. A lock
    file makes a second process asking for the same artifact wait for the first one's
    build instead of repeating it (notebooks run side by side).
    """
    path = cache_path(name, config, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _load_or_build_locked(path, config, build)


def _load_or_build_locked(path: Path, config: dict, build: Callable[[], Any]) -> Any:
    if path.exists():
        try:
            return _load(path, config)
        except Exception as err:
            bad = path.with_suffix(".corrupt")
            warnings.warn(f"cache file {path} is unreadable ({err}); moved to {bad.name}, rebuilding",
                          stacklevel=3)
            os.replace(path, bad)
    value = build()
    atomic_save({"config": config, "value": value}, path)
    return value
