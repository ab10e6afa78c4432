"""On-disk cache of expensive artifacts, keyed by a stable hash of their configuration and of
the versions of the method code that builds them (`helpers.versions`)."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import math
import numbers
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import versions
from .runtime import cache_dir


def canonical(value: Any) -> Any:
    """`value` as plain JSON data, so that equal settings give one key: tuples as lists, numpy
    scalars as Python numbers, booleans and integral floats as integers, -0.0 as 0; dict keys
    as strings. NaN and infinities have no key (a setting that is not a number is a bug)."""
    if isinstance(value, dict):
        return {str(canonical(k)): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, str) or value is None:
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(f"a cache key cannot hold {value!r}; valid: finite numbers")
        return int(value) if float(value).is_integer() else float(value)
    raise TypeError(f"a cache key cannot hold {value!r} ({type(value).__name__}); valid: JSON-like data "
                    "(dicts, lists, strings, numbers, None)")


def _text(config: dict) -> str:
    return json.dumps(canonical(config), sort_keys=True, separators=(",", ":"))


def config_key(config: dict) -> str:
    """Stable 16-hex-digit hash of a configuration (key order, tuple vs list, 1 vs 1.0 ignored)."""
    return hashlib.sha256(_text(config).encode()).hexdigest()[:16]


def keyed(name: str, config: dict) -> dict:
    """The full key of an artifact of kind `name`: its configuration and its method code's versions."""
    return {**config, "code": versions.code(name)}


def cache_path(name: str, config: dict, root: Path | None = None) -> Path:
    """Where the artifact of kind `name` built with `config` is (or would be) stored."""
    return (root or cache_dir()) / f"{name}-{config_key(keyed(name, config))}.pt"


class NotStored(OSError):
    """The cache folder could not take a file (no space, read-only): the value is kept, not stored."""


def atomic_save(obj: Any, path: Path) -> None:
    """Write `torch.save(obj)` to a temporary file in the same folder, then rename it over `path`:
    a reader sees the old file or the new one, never a part. Serialised in memory first, so that
    a full disk surfaces as `NotStored` naming the folder (not as a torch stream error)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        why = "no space left on" if err.errno == errno.ENOSPC else f"cannot write ({err.strerror or err}) to"
        raise NotStored(err.errno, f"{why} {path.parent}") from err
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise


class CacheProblem(ValueError):
    """A cache file is unreadable, or holds another key's or a malformed value."""


def _load(path: Path, config: dict, validate: Callable[[Any], None] | None) -> Any:
    try:
        entry = torch.load(path, weights_only=True)
    except (FileNotFoundError, NotADirectoryError) as err:  # nothing stored there (the folder may be a file)
        raise FileNotFoundError(path) from err
    except Exception as err:
        raise CacheProblem(f"unreadable ({type(err).__name__})") from err
    try:
        same = isinstance(entry, dict) and _text(entry.get("config")) == _text(config)
    except (TypeError, ValueError):
        same = False
    if not same:
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


def _not_stored(path: Path, why: str) -> None:
    warnings.warn(f"{why}; {path.name} is built and not stored (it is kept for this run only)", stacklevel=3)


def _locked(lock, path: Path) -> None:
    """Take the build lock of `path`, saying whom the process waits for when another holds it."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = Path(lock.name).read_text().strip() or "another process"
        print(f"waiting for {holder} to finish building {path.name}", file=sys.stderr, flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    lock.seek(0)
    lock.truncate()
    lock.write(f"process {os.getpid()}")
    lock.flush()


def load_or_build(name: str, config: dict, build: Callable[[], Any], root: Path | None = None,
                  validate: Callable[[Any], None] | None = None) -> Any:
    """The cached artifact of kind `name` for `config`, or `build()` stored atomically and returned.

    `name` must be a kind of `versions.ARTIFACT_CODE`: the versions of its method code join the
    key, so an artifact built by older code is never served. Values must be what
    `torch.load(weights_only=True)` accepts: tensors, state_dicts, and dicts/lists of numbers and
    strings. `validate(value)` raises when a value lacks the expected structure (keys, shapes,
    dtypes, finite values); it checks loaded and freshly built values alike. A cache file that is
    unreadable or fails `validate` is reported as a cache problem and moved aside to `*.corrupt`
    (never silently used, never deleted), then the value is rebuilt. A lock file makes a second
    process asking for the same artifact wait for the first one's build instead of repeating it.
    A cache folder that cannot take the file (read-only, full) still serves what it holds; the
    value built is returned and not stored.
    """
    config = keyed(name, config)
    path = (root or cache_dir()) / f"{name}-{config_key(config)}.pt"
    bad = None
    try:  # no lock needed to read: files are only ever replaced atomically
        return _load(path, config, validate)
    except FileNotFoundError:
        pass
    except CacheProblem as problem:  # looked at again under the lock, where it is quarantined
        bad = problem
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path.with_suffix(".lock"), "a+")
    except OSError as err:
        if bad:
            _quarantine(path, bad)
        why = "is a file, not a folder" if path.parent.is_file() else f"is not writable ({err})"
        _not_stored(path, f"cache folder {path.parent} {why}")
        return _built(build, validate, path)
    with lock:
        _locked(lock, path)
        if path.exists():  # built by another process while this one waited, or bad
            try:
                return _load(path, config, validate)
            except CacheProblem as problem:
                _quarantine(path, problem)
        value = _built(build, validate, path)
        try:
            atomic_save({"config": canonical(config), "value": value}, path)
        except NotStored as err:
            _not_stored(path, str(err))
        return value


def _built(build: Callable[[], Any], validate: Callable[[Any], None] | None, path: Path) -> Any:
    value = build()
    if validate:
        try:
            validate(value)
        except ValueError as err:  # a build that breaks its own contract is a bug: never store it
            raise ValueError(f"the value just built for {path.name} does not fit its artifact kind: {err}; "
                             "nothing was stored (the code that builds it is at fault)") from err
    return value
