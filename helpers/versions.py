"""Versions of the method code behind every cached artifact.

`cache.load_or_build` puts the versions of the method modules that build an artifact kind
(`ARTIFACT_CODE`) into its key, and the tag of a training set made by method code carries that
code's versions (`code`), so a changed method rebuilds what it built and every network trained
on it. `method_versions.json` records each method module's version with a hash of its code
(comments, docstrings and formatting excluded); a test fails when a module's code no longer
matches its record. After editing a method module, say which it is:

    python -m helpers.versions bump condensation   # its results change: new version, rebuilt downstream
    python -m helpers.versions same condensation   # results unchanged (a refactor): version kept
"""

from __future__ import annotations

import argparse
import ast
import functools
import hashlib
import json
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
RECORD = PACKAGE / "method_versions.json"

# The modules whose code decides what an artifact holds (the engine's plan is excluded on purpose:
# fast and eager paths agree within the tested tolerance, and a cache must serve both).
METHOD_MODULES = ("data", "models", "training", "dsa", "condensation", "backdoor", "distillation", "attacks", "cw")
_SYNTHETIC = ("data", "models", "training", "dsa", "condensation")
_DISTILLED = ("data", "models", "training", "distillation")
ARTIFACT_CODE: dict[str, tuple[str, ...]] = {
    "synthetic": _SYNTHETIC,
    "doorping": (*_SYNTHETIC, "backdoor"),
    "model": ("data", "models", "training"),  # the training data's own code is in its tag
    "distill-net": _DISTILLED,
    "cw-attack": (*_DISTILLED, "cw"),  # C&W attacks the distillation study's networks only
    "poisoned": ("data", "backdoor"),  # a training set rebuilt on the fly, never stored: its tag carries it
}


def code_hash(module: str) -> str:
    """SHA-256 (16 hex digits) of the module's syntax tree without docstrings: edits to comments,
    docstrings or layout keep it, any change to what the code does changes it."""
    if module not in METHOD_MODULES:
        raise ValueError(f"module={module!r} is not a method module; valid: {', '.join(METHOD_MODULES)}")
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree, include_attributes=False).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def _read(path: Path, mtime_ns: int, size: int) -> dict:
    """The record file's content, read once per version of the file (every cache key asks for it)."""
    return json.loads(path.read_text())


def recorded() -> dict[str, dict]:
    """{module: {"version": int, "code": hash}} as recorded in `method_versions.json`."""
    try:
        stat = RECORD.stat()
        record = _read(RECORD, stat.st_mtime_ns, stat.st_size)
    except (OSError, ValueError) as err:
        raise RuntimeError(f"{RECORD} is unreadable ({err}); restore it from git") from err
    missing = set(METHOD_MODULES) - set(record)
    if missing:
        raise RuntimeError(f"{RECORD} has no version for {sorted(missing)}; run "
                           f"`python -m helpers.versions bump {' '.join(sorted(missing))}`")
    return record


def code(kind: str) -> dict[str, int]:
    """{module: version} of the method code that builds artifacts of `kind` (its cache-key part)."""
    if kind not in ARTIFACT_CODE:
        raise ValueError(f"unknown artifact kind {kind!r}; valid: {', '.join(ARTIFACT_CODE)} "
                         f"(a new kind declares its method modules in helpers.versions.ARTIFACT_CODE)")
    record = recorded()
    return {m: record[m]["version"] for m in ARTIFACT_CODE[kind]}


def stale() -> list[str]:
    """Method modules whose code differs from its recorded hash."""
    record = recorded()
    return [m for m in METHOD_MODULES if record[m]["code"] != code_hash(m)]


def _write(modules: list[str], bump: bool) -> None:
    record = dict(recorded()) if RECORD.exists() else {}  # a copy: the read is cached
    for m in modules:
        old = record.get(m, {"version": 0})
        record[m] = {"version": old["version"] + 1 if bump else old["version"], "code": code_hash(m)}
        print(f"{m}: version {record[m]['version']}" + (" (bumped)" if bump else " (kept)"))
    RECORD.write_text(json.dumps(dict(sorted(record.items())), indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("bump", "same", "check"),
                        help="bump: results change; same: code changed, results do not; check: list stale modules")
    parser.add_argument("modules", nargs="*", help=f"method modules: {', '.join(METHOD_MODULES)}")
    args = parser.parse_args(argv)
    if args.action == "check":
        out = stale()
        print("stale: " + ", ".join(out) if out else "every method module matches its recorded version")
        raise SystemExit(1 if out else 0)
    unknown = set(args.modules) - set(METHOD_MODULES)
    if not args.modules or unknown:
        parser.error(f"name the modules to {args.action} (unknown: {sorted(unknown)}); "
                     f"valid: {', '.join(METHOD_MODULES)}")
    _write(args.modules, bump=args.action == "bump")


if __name__ == "__main__":
    main()
