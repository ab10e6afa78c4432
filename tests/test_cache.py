"""The artifact cache: stable keys, one build, atomic files, quarantine of bad content (every
artifact kind's schema), and builds kept when the folder cannot take them."""

import errno
import fcntl
import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import torch

from helpers import cache, config, models, schemas


def test_cache_key_is_stable_and_order_free():
    assert cache.config_key({"a": 1, "b": [1, 2]}) == cache.config_key({"b": [1, 2], "a": 1})
    assert cache.config_key({"a": 1}) != cache.config_key({"a": 2})
    # known answer: keys must not change between versions, or every cache is invalidated
    assert cache.config_key({"ipc": 10, "method": "dc"}) == "c8ff87189accd964"


def test_equal_numbers_give_one_key():
    key = cache.config_key({"lr": 1, "eps": (0.0, 0.5), "on": 1, "epochs": {10: 300}})
    assert cache.config_key({"lr": 1.0, "eps": [-0.0, 0.5], "on": True, "epochs": {"10": 300}}) == key
    assert cache.config_key({"lr": np.float32(1.0), "eps": (np.float64(0), 0.5), "on": np.int64(1),
                             "epochs": {np.int64(10): torch.tensor(300)}}) == key


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), object()])
def test_keys_refuse_what_is_not_a_setting(bad):
    with pytest.raises((ValueError, TypeError), match="cache key cannot hold"):
        cache.config_key({"x": bad})


def test_unknown_artifact_kinds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown artifact kind 'thing'"):
        cache.load_or_build("thing", {"k": 1}, lambda: 1, root=tmp_path)


def test_cache_builds_once_and_returns_identical_tensors(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"x": torch.randn(3, 4), "meta": [1.0, 2.0]}

    first = cache.load_or_build("model", {"k": 1}, build, root=tmp_path)
    second = cache.load_or_build("model", {"k": 1.0}, build, root=tmp_path)
    assert len(calls) == 1 and torch.equal(first["x"], second["x"]) and second["meta"] == [1.0, 2.0]


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "a.pt"
    cache.atomic_save({"v": torch.ones(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cache.atomic_save({"v": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary left behind


def test_a_full_disk_keeps_the_built_value_and_leaves_no_partial_file(tmp_path, monkeypatch):
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, fd, mode):
            self.f = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(bytes(data)[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache.os, "fdopen", Full)
    with pytest.warns(UserWarning, match=f"no space left on {tmp_path}.*built and not stored"):
        value = cache.load_or_build("model", {"k": 1}, lambda: {"x": torch.ones(3)}, root=tmp_path)
    assert torch.equal(value["x"], torch.ones(3))
    assert not [p for p in tmp_path.iterdir() if p.suffix in (".pt", ".tmp")]


def test_a_read_only_folder_holding_a_lock_still_returns_the_build(tmp_path, monkeypatch):
    cache.cache_path("model", {"k": 5}, tmp_path).with_suffix(".lock").touch()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cache.tempfile, "mkstemp", refuse)
    with pytest.warns(UserWarning, match="cannot write.*built and not stored"):
        assert cache.load_or_build("model", {"k": 5}, lambda: torch.zeros(2), root=tmp_path).shape == (2,)


def test_a_build_that_fails_validation_is_not_stored(tmp_path):
    with pytest.raises(ValueError, match="expected a tensor"):
        cache.load_or_build("model", {"k": 2}, lambda: {"state_dict": 1}, root=tmp_path,
                            validate=lambda v: schemas._tensor(v["state_dict"], "state_dict"))
    assert not cache.cache_path("model", {"k": 2}, tmp_path).exists()


def test_read_only_cache_serves_what_it_holds(tmp_path, monkeypatch):
    cache.load_or_build("model", {"k": 3}, lambda: torch.ones(2), root=tmp_path)
    real_open = open

    def no_writes(path, mode="r", *args, **kwargs):  # root ignores the folder's mode; refuse as it would
        if set(mode) & set("wa+"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(cache, "open", no_writes, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(cache.load_or_build("model", {"k": 3}, lambda: None, root=tmp_path), torch.ones(2))
    with pytest.warns(UserWarning, match="not writable.*built and not stored"):
        assert torch.equal(cache.load_or_build("model", {"k": 4}, lambda: torch.zeros(1), root=tmp_path),
                           torch.zeros(1))
    assert not cache.cache_path("model", {"k": 4}, tmp_path).exists()


def test_a_process_waiting_on_a_lock_says_whom_it_waits_for(tmp_path, capfd):
    lock_path = cache.cache_path("model", {"k": 6}, tmp_path).with_suffix(".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write("process 4242")
        lock.flush()
        result = []
        waiter = threading.Thread(target=lambda: result.append(
            cache.load_or_build("model", {"k": 6}, lambda: torch.ones(1), root=tmp_path)))
        waiter.start()
        time.sleep(0.5)
        fcntl.flock(lock, fcntl.LOCK_UN)
    waiter.join(10)
    assert result and "waiting for process 4242 to finish building model-" in capfd.readouterr().err


def test_concurrent_builders_build_once(tmp_path):
    """Two processes asking for the same artifact: the second waits and loads the first's."""
    script = (
        "import sys, time, torch\n"
        "from pathlib import Path\n"
        "from helpers.cache import load_or_build\n"
        "def build():\n"
        "    Path(sys.argv[1], 'built-' + sys.argv[2]).touch(); time.sleep(1.5); return torch.ones(1)\n"
        "load_or_build('model', {'k': 1}, build, root=Path(sys.argv[1]))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(i)], cwd=config.REPO_ROOT)
             for i in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    assert len(list(tmp_path.glob("built-*"))) == 1


# --- every artifact kind's content is checked on load -------------------------------------------


def lenet_run(**change) -> dict:
    state = {k: v.clone() for k, v in models.build("lenet").state_dict().items()}
    return {"seed": 0, "test_acc": 0.5, "test_loss": 1.2, "history": {"epochs": []}, "state_dict": state, **change}


def condensed(ipc: int = 1, **change) -> dict:
    return {"images": torch.zeros(10 * ipc, 1, 28, 28), "labels": torch.arange(10).repeat_interleave(ipc),
            "loss": [0.5], "seconds": 1.0, "snapshots": torch.empty(0), **change}


def first_weight(run: dict) -> str:
    return next(iter(run["state_dict"]))


BAD = {
    "model without test_acc": ("model", schemas.model("lenet", {}), lambda: {
        k: v for k, v in lenet_run().items() if k != "test_acc"}),
    "model with NaN test_acc": ("model", schemas.model("lenet", {}), lambda: lenet_run(test_acc=float("nan"))),
    "model with a wrong-shaped weight": ("model", schemas.model("lenet", {}), lambda: lenet_run(
        state_dict={**lenet_run()["state_dict"], first_weight(lenet_run()): torch.zeros(1)})),
    "14x14 synthetic images": ("synthetic", schemas.synthetic(1), lambda: condensed(images=torch.zeros(10, 1, 14, 14))),
    "NaN synthetic images": ("synthetic", schemas.synthetic(1), lambda: condensed(
        images=torch.full((10, 1, 28, 28), float("nan")))),
    "float64 synthetic images": ("synthetic", schemas.synthetic(1), lambda: condensed(
        images=torch.zeros(10, 1, 28, 28, dtype=torch.float64))),
    "DOORPING set without its trigger": ("doorping", schemas.doorping(1), condensed),
}


@pytest.mark.parametrize("case", BAD)
def test_every_artifact_kind_quarantines_wrong_content(tmp_path, case):
    kind, validate, bad_value = BAD[case]
    key = cache.keyed(kind, {"k": 1})
    path = cache.cache_path(kind, {"k": 1}, tmp_path)
    cache.atomic_save({"config": cache.canonical(key), "value": bad_value()}, path)
    good = {"model": lenet_run, "synthetic": condensed,
            "doorping": lambda: {**condensed(), "trigger": torch.ones(1, 3, 3), "initial_trigger": torch.ones(1, 3, 3),
                                 "trigger_log": []}}[kind]
    with pytest.warns(UserWarning, match=f"cache problem: {path} is wrong content.*moved to .*corrupt"):
        value = cache.load_or_build(kind, {"k": 1}, good, root=tmp_path, validate=validate)
    validate(value)
    assert path.with_suffix(".corrupt").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt file is served as is
        cache.load_or_build(kind, {"k": 1}, lambda: None, root=tmp_path, validate=validate)


def test_distilled_networks_and_cw_results_have_schemas():
    net = models.build("mnistnet", dropout=0.5).state_dict()
    summary = {"test_acc": 0.9, "mean_abs_logit": 3.0}
    schemas.distill_net(0.5, [2])({"history": {"epochs": []}, "states": {"2": net}, "summaries": {"2": summary}})
    with pytest.raises(ValueError, match="lacks '2'"):
        schemas.distill_net(0.5, [2])({"history": {"epochs": []}, "states": {}, "summaries": {"2": summary}})
    result = {"success": torch.ones(3, dtype=torch.bool), "adv": torch.full((3, 1, 28, 28), float("nan"))}
    schemas.cw_attack(3, ("success", "adv"))(result)
    with pytest.raises(ValueError, match="holds 3 instances, expected 4"):
        schemas.cw_attack(4, ("success", "adv"))(result)


def test_a_cache_root_that_is_a_file_builds_and_says_so(tmp_path):
    root = tmp_path / "cache"
    root.write_text("not a folder")
    with pytest.warns(UserWarning, match="is a file, not a folder.*built and not stored"):
        assert cache.load_or_build("model", {"k": 1}, lambda: torch.ones(1), root=root).shape == (1,)
